"""Draw the development stamp images with Pillow: a blue handwritten-looking signature and a red
round seal, both RGBA PNGs with a transparent background (Nghị định 30/2020, Phụ lục I).

Drawing is deterministic (fixed seeds, fixed fonts), so every development home gets the same
images and a rendering comparison across runs stays meaningful. The images are samples, clearly
marked as such on the seal ("MẪU" – specimen), not imitations of a real organisation's seal.
"""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = ["draw_seal", "draw_signature", "write_sample_images"]

_FONT_BOLD = Path("/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf")
_SEAL_RED = (218, 37, 29, 255)
_INK_BLUE = (22, 56, 168, 255)
# Supersampling factor: draw large, downscale with a good filter for smooth anti-aliased edges.
_SS = 4


def write_sample_images(directory: Path, *, organisation: str) -> tuple[Path, Path]:
    """Write ``signature.png`` and ``seal.png`` into ``directory`` if absent; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    signature = directory / "signature.png"
    seal = directory / "seal.png"
    if not signature.is_file():
        draw_signature().save(signature, optimize=True)
    if not seal.is_file():
        draw_seal(organisation=organisation).save(seal, optimize=True)
    return signature, seal


def draw_signature(*, width: int = 420, height: int = 160, seed: int = 30) -> Image.Image:
    """A blue cursive-looking scribble: slanted loops of varying size and pressure, a flourish."""
    rng = random.Random(seed)  # noqa: S311 - drawing, not cryptography; fixed seed on purpose
    big = Image.new("RGBA", (width * _SS, height * _SS), (0, 0, 0, 0))
    draw = ImageDraw.Draw(big)
    # A prolate cycloid (x runs backwards inside each turn) draws loops like joined letters; a
    # random height per turn and a slant make it look written rather than plotted.
    turns = 7
    heights = [rng.uniform(0.18, 0.42) * height for _ in range(turns + 1)]
    path: list[tuple[float, float]] = []
    samples = 420
    for k in range(samples + 1):
        t = k / samples * turns * 2 * math.pi
        turn = min(int(t / (2 * math.pi)), turns)
        h = heights[turn]
        x = 0.1 * width + t / (turns * 2 * math.pi) * 0.62 * width - 0.05 * width * math.sin(t)
        y = 0.52 * height - h * math.cos(t) * 0.9 + 0.05 * height * math.sin(t / 3)
        path.append((x + 0.35 * (0.5 * height - y), y))
    # The flourish: a long underline sweeping back to the left under the name.
    end_x, end_y = path[-1]
    path += [
        (end_x + 0.08 * width * t - 0.78 * width * t * t, end_y + 0.22 * height * math.sin(t * 2.4))
        for t in (j / 80 for j in range(1, 81))
    ]
    for index, ((x0, y0), (x1, y1)) in enumerate(itertools.pairwise(path)):
        pressure = 0.5 + 0.5 * math.sin(index / len(path) * math.pi * 5) ** 2
        line_width = max(1, round(3.8 * pressure * _SS))
        draw.line((x0 * _SS, y0 * _SS, x1 * _SS, y1 * _SS), fill=_INK_BLUE, width=line_width)
        radius = line_width / 2
        draw.ellipse(
            (x1 * _SS - radius, y1 * _SS - radius, x1 * _SS + radius, y1 * _SS + radius),
            fill=_INK_BLUE,
        )
    return big.resize((width, height), Image.Resampling.LANCZOS)


def draw_seal(*, organisation: str, size: int = 320) -> Image.Image:
    """A red round seal: two rings, the organisation's name around the top, a star, "MẪU"."""
    side = size * _SS
    big = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(big)
    centre = side / 2
    outer = side / 2 - 2 * _SS
    ring = 7 * _SS
    draw.ellipse((centre - outer,) * 2 + (centre + outer,) * 2, outline=_SEAL_RED, width=ring)
    inner = outer * 0.66
    draw.ellipse((centre - inner,) * 2 + (centre + inner,) * 2, outline=_SEAL_RED, width=3 * _SS)
    font = ImageFont.truetype(str(_FONT_BOLD), round(side * 0.062))
    _text_on_arc(
        big,
        organisation.upper(),
        font=font,
        centre=centre,
        radius=(outer + inner) / 2 - side * 0.022,
        span_degrees=300,
    )
    _star(draw, centre=(centre, centre - side * 0.06), radius=side * 0.12)
    label_font = ImageFont.truetype(str(_FONT_BOLD), round(side * 0.075))
    draw.text(
        (centre, centre + side * 0.15),
        "MẪU",
        font=label_font,
        fill=_SEAL_RED,
        anchor="mm",
    )
    return big.resize((size, size), Image.Resampling.LANCZOS)


def _text_on_arc(
    canvas: Image.Image,
    text: str,
    *,
    font: ImageFont.FreeTypeFont,
    centre: float,
    radius: float,
    span_degrees: float,
) -> None:
    """Write ``text`` clockwise along a circle, centred on the top, each glyph upright to it."""
    advances = [font.getlength(char) for char in text]
    total = sum(advances)
    # Angle per pixel of advance, so the text fills the span at this radius.
    span = math.radians(span_degrees)
    scale = min(span / total, 1.0 / radius * 1.15)
    angle = -math.pi / 2 - total * scale / 2
    for char, advance in zip(text, advances, strict=True):
        middle = angle + advance * scale / 2
        angle += advance * scale
        if char == " ":
            continue
        cell = round(font.size * 1.6)
        glyph = Image.new("RGBA", (cell, cell), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text(
            (cell / 2, cell / 2), char, font=font, fill=_SEAL_RED, anchor="mm"
        )
        rotated = glyph.rotate(-math.degrees(middle) - 90, resample=Image.Resampling.BICUBIC)
        x = centre + radius * math.cos(middle) - cell / 2
        y = centre + radius * math.sin(middle) - cell / 2
        canvas.alpha_composite(rotated, (round(x), round(y)))


def _star(draw: ImageDraw.ImageDraw, *, centre: tuple[float, float], radius: float) -> None:
    cx, cy = centre
    vertices = []
    for k in range(10):
        r = radius if k % 2 == 0 else radius * 0.4
        theta = -math.pi / 2 + k * math.pi / 5
        vertices.append((cx + r * math.cos(theta), cy + r * math.sin(theta)))
    draw.polygon(vertices, fill=_SEAL_RED)
