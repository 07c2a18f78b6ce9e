"""Decoding attachments: base64, and the ZIP wrapping some builders add, within limits.

A decoded attachment that is a ZIP archive with exactly one file, whose declared name and content
type do not say it is meant to be an archive, is a wrapped attachment: it is unpacked, provided
the unpacked size stays under ``max_attachment_bytes`` and ``max_zip_ratio`` times the packed
size. Sizes declared in the archive are not trusted: reading stops at the limit. Office files
(several entries) and declared archives are kept as they are.

The attachments of one package share ``max_expanded_bytes``: each is decoded within what the
ones before it left (``budget``), so a package of many small ZIP bombs is refused at the first
byte over the total, never expanded whole.
"""

from __future__ import annotations

import binascii
import io
import zipfile
import zlib

from exchange.edxml.safexml import Limits
from exchange.errors import AttachmentTooLarge, PackageInvalid

__all__ = ["decode_attachment"]

_ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 64 * 1024


def decode_attachment(
    text: str,
    *,
    name: str | None,
    content_type: str | None,
    field: str,
    limits: Limits,
    budget: int | None = None,
) -> bytes:
    """The attachment's bytes from its base64 text, unwrapped when it is a one-file ZIP.

    ``budget``: how many decoded bytes the package's attachments may still take (default: all
    of ``max_expanded_bytes``); the result is never longer.
    """
    left = limits.max_expanded_bytes if budget is None else budget
    if len(text) // 4 * 3 > limits.max_attachment_bytes + 3:
        raise AttachmentTooLarge(
            f"attachment {name or field} is over the limit of {limits.max_attachment_bytes} bytes",
            field=field,
        )
    if len(text) // 4 * 3 > left + 3:
        raise AttachmentTooLarge(_over_total(name or field, limits), field=field)
    try:
        data = binascii.a2b_base64(text)
    except binascii.Error as exc:
        raise PackageInvalid(
            f"attachment {name or field} is not valid base64", field=field
        ) from exc
    if len(data) > left:
        raise AttachmentTooLarge(_over_total(name or field, limits), field=field)
    if data[:4] != _ZIP_MAGIC or _declared_archive(name, content_type):
        return data
    return _unwrap_zip(data, name=name, field=field, limits=limits, left=left)


def _over_total(shown: str, limits: Limits) -> str:
    return (
        f"attachment {shown} takes the package's attachments over their limit of"
        f" {limits.max_expanded_bytes} bytes decoded and unpacked together"
    )


def _declared_archive(name: str | None, content_type: str | None) -> bool:
    return (name or "").lower().endswith(".zip") or "zip" in (content_type or "").lower()


def _unwrap_zip(data: bytes, *, name: str | None, field: str, limits: Limits, left: int) -> bytes:
    shown = name or field
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = [info for info in archive.infolist() if not info.is_dir()]
        if len(entries) != 1:
            return data  # not a wrapper: an office file or a multi-file archive, kept as sent
        entry = entries[0]
        cap = min(limits.max_attachment_bytes, max(len(data), 1) * limits.max_zip_ratio)
        if entry.file_size > cap:
            raise AttachmentTooLarge(
                f"attachment {shown} unpacks to {entry.file_size} bytes, over the limit of {cap}",
                field=field,
            )
        if entry.file_size > left:
            raise AttachmentTooLarge(_over_total(shown, limits), field=field)
        out = bytearray()
        with archive.open(entry) as stream:
            while chunk := stream.read(_CHUNK):
                out += chunk
                if len(out) > cap:
                    raise AttachmentTooLarge(
                        f"attachment {shown} unpacks to more than its limit of {cap} bytes",
                        field=field,
                    )
                if len(out) > left:
                    raise AttachmentTooLarge(_over_total(shown, limits), field=field)
        return bytes(out)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        RuntimeError,
        EOFError,
        zlib.error,
    ) as exc:
        raise PackageInvalid(f"attachment {shown} is a damaged ZIP archive", field=field) from exc
