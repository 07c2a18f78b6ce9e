"""PNG stamp images decoded and compressed once, embedded into many PDFs as-is.

An RGBA PNG becomes an RGB image XObject with its alpha channel as a soft mask (``/SMask``),
so the transparent background stays transparent over the page.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from PIL import Image, UnidentifiedImageError
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import BasePdfFileWriter

from signer.errors import StampImageInvalid

__all__ = ["PreparedImage"]

_MAX_PIXELS = 4_000_000
_number = cast(Callable[[int], generic.NumberObject], generic.NumberObject)


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """A decoded PNG: compressed RGB samples and alpha, and its pixel size."""

    width: int
    height: int
    rgb: bytes
    alpha: bytes | None

    @classmethod
    def load(cls, path: Path) -> PreparedImage:
        """Decode the PNG at ``path``; raise StampImageInvalid if it is not a usable PNG."""
        try:
            with Image.open(path) as image:
                if image.format != "PNG":
                    raise StampImageInvalid(f"stamp image {path} is {image.format}, not PNG")
                if image.width * image.height > _MAX_PIXELS:
                    raise StampImageInvalid(
                        f"stamp image {path} is {image.width}×{image.height} pixels; "
                        "use at most 4 megapixels"
                    )
                rgba = image.convert("RGBA")
        except (OSError, UnidentifiedImageError) as exc:
            raise StampImageInvalid(f"stamp image {path} cannot be read as a PNG: {exc}") from exc
        alpha_band = rgba.getchannel("A")
        extrema = alpha_band.getextrema()
        opaque = isinstance(extrema, tuple) and extrema[0] == 255
        return cls(
            width=rgba.width,
            height=rgba.height,
            rgb=zlib.compress(rgba.convert("RGB").tobytes(), 6),
            alpha=None if opaque else zlib.compress(alpha_band.tobytes(), 6),
        )

    @property
    def aspect(self) -> float:
        """Width over height."""
        return self.width / self.height

    def register(self, writer: BasePdfFileWriter) -> generic.IndirectObject:
        """Add the image (and its soft mask) to ``writer``; return the image XObject."""
        entries: dict[generic.NameObject, generic.PdfObject] = {
            pdf_name("/Type"): pdf_name("/XObject"),
            pdf_name("/Subtype"): pdf_name("/Image"),
            pdf_name("/Width"): _number(self.width),
            pdf_name("/Height"): _number(self.height),
            pdf_name("/BitsPerComponent"): _number(8),
            pdf_name("/Filter"): pdf_name("/FlateDecode"),
        }
        if self.alpha is not None:
            mask = dict(entries)
            mask[pdf_name("/ColorSpace")] = pdf_name("/DeviceGray")
            entries[pdf_name("/SMask")] = writer.add_object(
                generic.StreamObject(mask, encoded_data=self.alpha)
            )
        entries[pdf_name("/ColorSpace")] = pdf_name("/DeviceRGB")
        return writer.add_object(generic.StreamObject(entries, encoded_data=self.rgb))
