"""RFC 7512 PKCS#11 URIs: parse, validate and print ``pkcs11:token=…;object=…?module-path=…``.

Parsing is strict: unknown (non ``x-``) attributes, duplicates, characters outside the RFC's
sets and bad percent-encoding are rejected with a message naming the part and its position.
The ``pin-value`` query attribute is kept but never printed: ``str()`` and ``repr()`` leave it
out, and error messages show the URI with its value replaced by ``***``.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Literal

from hsm.errors import InvalidUri

__all__ = ["ObjectType", "Pkcs11Uri"]

ObjectType = Literal["public", "private", "cert", "secret-key", "data"]
_OBJECT_TYPES: frozenset[str] = frozenset({"public", "private", "cert", "secret-key", "data"})

_SCHEME = "pkcs11:"
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_RES_AVAIL = frozenset(":[]@!$'()*+,=")
_PATH_CHARS = _UNRESERVED | _RES_AVAIL | {"&"}
_QUERY_CHARS = _UNRESERVED | _RES_AVAIL | {"/", "?", "|"}
_VENDOR_NAME = re.compile(r"x-[A-Za-z0-9-]+\Z")
_VERSION = re.compile(r"[0-9]+(\.[0-9]+)?\Z")

# Path attributes in canonical print order (RFC 7512 section 2.3), mapped to field names.
_PATH_ATTRS: dict[str, str] = {
    "library-manufacturer": "library_manufacturer",
    "library-description": "library_description",
    "library-version": "library_version",
    "slot-manufacturer": "slot_manufacturer",
    "slot-description": "slot_description",
    "slot-id": "slot_id",
    "manufacturer": "manufacturer",
    "model": "model",
    "serial": "serial",
    "token": "token",
    "object": "object",
    "id": "id",
    "type": "type",
}
_QUERY_ATTRS: dict[str, str] = {
    "module-name": "module_name",
    "module-path": "module_path",
    "pin-source": "pin_source",
    "pin-value": "pin_value",
}


@dataclass(frozen=True, kw_only=True)
class Pkcs11Uri:
    """A parsed PKCS#11 URI. Text attributes are decoded (UTF-8); ``id`` is raw bytes.

    ``None`` means "attribute absent" (matches anything); an empty string is a present, empty
    attribute. ``slot_id`` is kept for completeness, but kyso names tokens by label or serial.
    """

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    library_manufacturer: str | None = None
    library_description: str | None = None
    library_version: str | None = None
    slot_manufacturer: str | None = None
    slot_description: str | None = None
    slot_id: int | None = None
    object: str | None = None
    id: bytes | None = None
    type: ObjectType | None = None
    module_name: str | None = None
    module_path: str | None = None
    pin_source: str | None = None
    pin_value: str | None = field(default=None, repr=False)
    vendor_path: tuple[tuple[str, str], ...] = ()
    vendor_query: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """Parse ``text``; raise ``InvalidUri`` naming the bad part and its position."""
        return _Parser(text).parse()

    def __str__(self) -> str:
        """The canonical form: fixed attribute order, minimal percent-encoding, no pin-value."""
        path: list[str] = []
        for name, attr in _PATH_ATTRS.items():
            value = getattr(self, attr)
            if value is None:
                continue
            if name == "id":
                encoded = "".join(f"%{b:02X}" for b in value)
            else:
                encoded = _encode(str(value), _PATH_CHARS)
            path.append(f"{name}={encoded}")
        path.extend(f"{k}={_encode(v, _PATH_CHARS)}" for k, v in self.vendor_path)
        query: list[str] = []
        for name, attr in _QUERY_ATTRS.items():
            value = getattr(self, attr)
            if value is None or name == "pin-value":
                continue
            query.append(f"{name}={_encode(value, _QUERY_CHARS)}")
        query.extend(f"{k}={_encode(v, _QUERY_CHARS)}" for k, v in self.vendor_query)
        text = _SCHEME + ";".join(path)
        return f"{text}?{'&'.join(query)}" if query else text

    @property
    def token_attributes(self) -> dict[str, str]:
        """The attributes that select a token (those present), keyed by RFC name."""
        names = ("token", "manufacturer", "serial", "model")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def describe_token(self) -> str:
        """A short human description of the token selector, for messages."""
        attrs = self.token_attributes
        return ", ".join(f"{k}={v!r}" for k, v in attrs.items()) or "any token"

    def describe_object(self) -> str:
        """A short human description of the object selector, for messages."""
        parts = []
        if self.object is not None:
            parts.append(f"object={self.object!r}")
        if self.id is not None:
            parts.append(f"id={self.id.hex()}")
        return ", ".join(parts) or "any object"


def _encode(value: str, allowed: frozenset[str]) -> str:
    out = []
    for ch in value:
        if ch in allowed:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def _redacted(text: str) -> str:
    """``text`` with any pin-value replaced, safe to show in a message."""
    return re.sub(r"(pin-value=)[^&#]*", r"\1***", text, flags=re.IGNORECASE)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.shown = _redacted(text)

    def fail(self, what: str, position: int | None) -> InvalidUri:
        where = f" at position {position}" if position is not None else ""
        return InvalidUri(
            f"invalid PKCS#11 URI {self.shown!r}: {what}{where}. "
            "Expected the RFC 7512 form pkcs11:token=LABEL;object=LABEL;type=private"
            "[?module-path=PATH&pin-source=SOURCE].",
            position=position,
        )

    def parse(self) -> Pkcs11Uri:
        text = self.text
        if not isinstance(text, str):
            raise InvalidUri(f"a PKCS#11 URI must be text, not {type(text).__name__}")
        if not text[: len(_SCHEME)].lower() == _SCHEME:
            raise self.fail("it must start with 'pkcs11:'", 0)
        if "#" in text:
            raise self.fail("a fragment ('#') is not allowed", text.index("#"))
        body_start = len(_SCHEME)
        path_text, sep, query_text = text[body_start:].partition("?")
        values: dict[str, object] = {}
        vendor_path: list[tuple[str, str]] = []
        vendor_query: list[tuple[str, str]] = []
        seen: set[str] = set()
        pos = body_start
        if path_text:
            for item in path_text.split(";"):
                self._attribute(item, pos, True, values, vendor_path, seen)
                pos += len(item) + 1
        pos = body_start + len(path_text) + 1
        if sep and not query_text:
            raise self.fail("'?' must be followed by query attributes", pos - 1)
        if query_text:
            for item in query_text.split("&"):
                self._attribute(item, pos, False, values, vendor_query, seen)
                pos += len(item) + 1
        return Pkcs11Uri(
            **values,  # type: ignore[arg-type]  # names and types checked by _attribute
            vendor_path=tuple(vendor_path),
            vendor_query=tuple(vendor_query),
        )

    def _attribute(
        self,
        item: str,
        pos: int,
        in_path: bool,
        values: dict[str, object],
        vendor: list[tuple[str, str]],
        seen: set[str],
    ) -> None:
        part = "path" if in_path else "query"
        if not item:
            raise self.fail(f"empty {part} attribute", pos)
        name, eq, raw = item.partition("=")
        if not eq:
            raise self.fail(f"{part} attribute {name!r} has no '=VALUE'", pos)
        if not name:
            raise self.fail(f"{part} attribute without a name", pos)
        lname = name.lower()
        known = _PATH_ATTRS if in_path else _QUERY_ATTRS
        is_vendor = _VENDOR_NAME.match(lname) is not None
        if lname not in known and not is_vendor:
            other = _QUERY_ATTRS if in_path else _PATH_ATTRS
            hint = (
                f" (it belongs in the {'query, after ?' if in_path else 'path, before ?'})"
                if lname in other
                else f" (known: {', '.join(known)})"
            )
            raise self.fail(f"unknown {part} attribute {name!r}{hint}", pos)
        if lname in seen:
            raise self.fail(f"attribute {name!r} appears twice", pos)
        seen.add(lname)
        value_pos = pos + len(name) + 1
        allowed = _PATH_CHARS if in_path else _QUERY_CHARS
        data = self._unquote(raw, value_pos, allowed, name)
        if lname == "id":
            values["id"] = data
            return
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(
                f"value of {name!r} is not UTF-8 after percent-decoding", value_pos
            ) from None
        if is_vendor:
            vendor.append((lname, value))
        elif lname == "type":
            if value not in _OBJECT_TYPES:
                raise self.fail(
                    f"type {value!r} is not one of {', '.join(sorted(_OBJECT_TYPES))}", value_pos
                )
            values["type"] = value
        elif lname == "slot-id":
            if not value.isascii() or not value.isdigit():
                raise self.fail(f"slot-id {value!r} is not a decimal number", value_pos)
            values["slot_id"] = int(value)
        elif lname == "library-version" and not _VERSION.match(value):
            raise self.fail(f"library-version {value!r} is not MAJOR[.MINOR]", value_pos)
        else:
            values[known[lname]] = value

    def _unquote(self, raw: str, pos: int, allowed: frozenset[str], name: str) -> bytes:
        out = bytearray()
        i = 0
        while i < len(raw):
            ch = raw[i]
            if ch == "%":
                pair = raw[i + 1 : i + 3]
                if len(pair) != 2 or any(c not in string.hexdigits for c in pair):
                    raise self.fail(
                        f"bad percent-encoding {raw[i : i + 3]!r} in the value of {name!r}",
                        pos + i,
                    )
                out.append(int(pair, 16))
                i += 3
                continue
            if ch not in allowed:
                raise self.fail(
                    f"character {ch!r} is not allowed in the value of {name!r} (percent-encode it)",
                    pos + i,
                )
            out.extend(ch.encode("utf-8"))
            i += 1
        return bytes(out)
