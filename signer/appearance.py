"""Signature appearances per Nghị định 30/2020/NĐ-CP, Phụ lục I.

- ``seal``: the signer's image (if configured), the organisation's red seal over the left third
  of it, and beside them the text block (Ký bởi / Email / Cơ quan / Thời gian ký … +07:00);
- ``text``: the text block alone, serif 10 pt black, at the top right of page 1 (copies and
  attachments);
- ``none``: an invisible signature.

A ``PreparedStamp`` holds what does not change between signatures of one key (the font subset,
the decoded images, the identity lines); ``layout`` places one signature's text in a box and
fails with ``RectangleInvalid`` before anything is signed when the box is too small.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pyhanko.pdf_utils import content, layout
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.stamp.base import BaseStamp, BaseStampStyle

from signer.errors import RectangleInvalid
from signer.fonts import PreparedFont, normalise
from signer.images import PreparedImage

__all__ = [
    "SANS_FONT",
    "SERIF_FONT",
    "VIETNAM_TIME",
    "AppearanceKind",
    "KysoStampStyle",
    "PreparedStamp",
    "StampIdentity",
    "StampLayout",
    "format_signing_time",
]

SANS_FONT = Path("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf")
SERIF_FONT = Path("/usr/share/fonts/truetype/noto/NotoSerif-Regular.ttf")
VIETNAM_TIME = timezone(timedelta(hours=7), "ICT")

# Characters the varying part of the text (the time) can use, added to every key's subset.
_TIME_ALPHABET = "0123456789.:+- "
_TEXT_FORM_SIZE = 10.0
_SEAL_MAX_SIZE = 9.0
_MIN_SIZE = 4.5
_LEADING = 1.25
_PAD = 3.0
_PAGE_MARGIN = 20.0
_NBSP = "\u00a0"


class AppearanceKind(enum.Enum):
    SEAL = "seal"
    TEXT = "text"
    NONE = "none"


@dataclass(frozen=True, kw_only=True)
class StampIdentity:
    """Who signs, as the text block shows it (from the certificate and the key's unit)."""

    signer_name: str
    organisation: str
    email: str | None = None

    def lines(self, signing_time: datetime) -> tuple[str, ...]:
        out = [f"Ký bởi: {self.signer_name}"]
        if self.email:
            out.append(f"Email: {self.email}")
        out.append(f"Cơ quan: {self.organisation}")
        # No-break spaces keep the time on one line when the block wraps (undone in _wrap).
        out.append(f"Thời gian ký: {format_signing_time(signing_time).replace(' ', _NBSP)}")
        return tuple(normalise(line) for line in out)


def format_signing_time(moment: datetime) -> str:
    """``dd.MM.yyyy HH:mm:ss +07:00`` in Vietnam time (ISO 8601 offset)."""
    local = moment.astimezone(VIETNAM_TIME)
    return local.strftime("%d.%m.%Y %H:%M:%S ") + "+07:00"


@dataclass(frozen=True, kw_only=True)
class StampLayout:
    """One signature's placed content: text lines with positions, image boxes, font size."""

    width: float
    height: float
    size: float
    lines: tuple[tuple[float, float, str], ...]
    images: tuple[tuple[str, float, float, float, float], ...]
    """``(resource name, x, y, width, height)``, drawn in order (the seal last, on top)."""


@dataclass(frozen=True, eq=False)
class PreparedStamp:
    """The per-key, per-kind parts of an appearance, built once and reused."""

    kind: AppearanceKind
    identity: StampIdentity
    font: PreparedFont
    signer_image: PreparedImage | None = None
    seal_image: PreparedImage | None = None

    @classmethod
    def prepare(
        cls,
        *,
        kind: AppearanceKind,
        identity: StampIdentity,
        signer_image: Path | None = None,
        seal_image: Path | None = None,
    ) -> PreparedStamp:
        if kind is AppearanceKind.NONE:
            raise ValueError("an invisible signature has no stamp to prepare")
        sample = "".join(identity.lines(datetime(2000, 1, 1, tzinfo=VIETNAM_TIME)))
        sample = sample.replace(_NBSP, " ")
        font_path = SANS_FONT if kind is AppearanceKind.SEAL else SERIF_FONT
        font = PreparedFont.build(font_path, sample + _TIME_ALPHABET)
        if kind is AppearanceKind.TEXT:
            return cls(kind=kind, identity=identity, font=font)
        return cls(
            kind=kind,
            identity=identity,
            font=font,
            signer_image=PreparedImage.load(signer_image) if signer_image else None,
            seal_image=PreparedImage.load(seal_image) if seal_image else None,
        )

    def text_form_rect(self, media_box: tuple[float, float, float, float]) -> tuple[float, ...]:
        """Where the ``text`` form goes: the top right corner of the page, sized to the text."""
        lines = self.identity.lines(datetime(2000, 1, 1, tzinfo=VIETNAM_TIME))
        width = max(self.font.width(line.replace(_NBSP, " "), _TEXT_FORM_SIZE) for line in lines)
        width += 2 * _PAD + 2
        height = len(lines) * _TEXT_FORM_SIZE * _LEADING + 2 * _PAD
        _x1, _y1, x2, y2 = media_box
        right, top = x2 - _PAGE_MARGIN, y2 - _PAGE_MARGIN
        return (right - width, top - height, right, top)

    def layout(self, width: float, height: float, signing_time: datetime) -> StampLayout:
        """Place this signature's content in a ``width`` × ``height`` box (points)."""
        lines = self.identity.lines(signing_time)
        if self.kind is AppearanceKind.TEXT:
            return self._place_text(
                lines,
                x=_PAD,
                width=width - 2 * _PAD,
                height=height,
                sizes=[_TEXT_FORM_SIZE],
                images=(),
                box=(width, height),
            )
        images: list[tuple[str, float, float, float, float]] = []
        text_x = _PAD
        if self.seal_image is not None or self.signer_image is not None:
            zone = width * 0.45
            seal_side = 0.0
            if self.seal_image is not None:
                seal_side = min(height, zone * (0.55 if self.signer_image else 1.0))
            if self.signer_image is not None:
                # The seal covers the left third of the signer's image: the image starts at
                # seal_side - w/3, so its width is 1.5 × (zone - seal_side) (or less, for height).
                sig_w = 1.5 * (zone - seal_side) if self.seal_image else zone
                sig_h = sig_w / self.signer_image.aspect
                if sig_h > height:
                    sig_h, sig_w = height, height * self.signer_image.aspect
                sig_x = seal_side - sig_w / 3 if self.seal_image else 0.0
                images.append(("/ImSigner", sig_x, (height - sig_h) / 2, sig_w, sig_h))
            if self.seal_image is not None:
                images.append(("/ImSeal", 0.0, (height - seal_side) / 2, seal_side, seal_side))
            text_x = zone + _PAD
        sizes = [
            _SEAL_MAX_SIZE - 0.25 * i for i in range(int((_SEAL_MAX_SIZE - _MIN_SIZE) * 4) + 1)
        ]
        return self._place_text(
            lines,
            x=text_x,
            width=width - text_x - _PAD,
            height=height,
            sizes=sizes,
            images=tuple(images),
            box=(width, height),
        )

    def _place_text(
        self,
        lines: tuple[str, ...],
        *,
        x: float,
        width: float,
        height: float,
        sizes: list[float],
        images: tuple[tuple[str, float, float, float, float], ...],
        box: tuple[float, float],
    ) -> StampLayout:
        for size in sizes:
            wrapped = self._wrap(lines, width, size)
            if wrapped is None:
                continue
            leading = size * _LEADING
            block = len(wrapped) * leading
            if block > height - 2 * _PAD + (leading - size):
                continue
            top = (height + block) / 2
            placed = tuple(
                (x, top - (i + 1) * leading + (leading - size) / 2 + size * 0.2, text)
                for i, text in enumerate(wrapped)
            )
            return StampLayout(width=box[0], height=box[1], size=size, lines=placed, images=images)
        raise RectangleInvalid(
            f"the rectangle ({box[0]:g} × {box[1]:g} pt) is too small for the "
            f"{self.kind.value} stamp's text; make it larger (for example 260 × 90 pt)"
        )

    def _wrap(self, lines: tuple[str, ...], width: float, size: float) -> list[str] | None:
        if width <= 0:
            return None
        out: list[str] = []
        for line in lines:
            current = ""
            for word in line.split(" "):
                candidate = f"{current} {word}" if current else word
                if self.font.width(candidate, size) <= width:
                    current = candidate
                elif current and self.font.width(word, size) <= width:
                    out.append(current)
                    current = word
                else:
                    return None
            out.append(current)
        return [line.replace(_NBSP, " ") for line in out]


@dataclass(frozen=True)
class KysoStampStyle(BaseStampStyle):
    """A pyHanko stamp style that draws a precomputed ``StampLayout`` with prepared resources."""

    border_width: int = 0
    stamp: PreparedStamp | None = None
    placed: StampLayout | None = None

    def create_stamp(
        self,
        writer: BasePdfFileWriter,
        box: layout.BoxConstraints,
        text_params: dict[str, Any],
    ) -> KysoStamp:
        return KysoStamp(writer=writer, style=self, box=box)


class KysoStamp(BaseStamp):
    """Renders a ``KysoStampStyle``: images first, seal on top, then the text."""

    style: KysoStampStyle

    def _render_inner_content(self) -> list[bytes]:
        stamp, placed = self.style.stamp, self.style.placed
        assert stamp is not None
        assert placed is not None
        assert self.writer is not None
        commands: list[bytes] = []
        for name, x, y, w, h in placed.images:
            image = stamp.seal_image if name == "/ImSeal" else stamp.signer_image
            assert image is not None
            self.set_resource(
                category=content.ResourceType.XOBJECT,
                name=pdf_name(name),
                value=image.register(self.writer),
            )
            commands.append(b"q %.3f 0 0 %.3f %.3f %.3f cm %s Do Q" % (w, h, x, y, name.encode()))
        self.set_resource(
            category=content.ResourceType.FONT,
            name=pdf_name("/F1"),
            value=stamp.font.register(self.writer),
        )
        text = [b"BT 0 g /F1 %.2f Tf" % placed.size]
        for x, y, line in placed.lines:
            text.append(b"1 0 0 1 %.3f %.3f Tm %s Tj" % (x, y, stamp.font.encode(line)))
        text.append(b"ET")
        commands.append(b" ".join(text))
        return commands
