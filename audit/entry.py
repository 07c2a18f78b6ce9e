"""Ledger events and their canonical, deterministic byte encoding.

An ``Event`` is what happened (time, actor, unit, type, document, refs, key, details); an
``Entry`` is an event at its place in the ledger (``index``). The leaf of the Merkle tree is
the canonical encoding of the *entry*, so an entry moved to another index no longer matches its
own bytes — reordering and insertion show up at the entry itself, not only at the root.

Canonical encoding (version 1), produced by ``encode_entry`` and required by ``decode_entry``:

- a JSON object with exactly the keys ``actor``, ``details``, ``document_sha256``, ``index``,
  ``key``, ``refs``, ``time``, ``type``, ``unit``, ``v``;
- keys sorted by code point, no whitespace (separators ``,`` and ``:``), UTF-8, non-ASCII
  characters written as themselves, the JSON escapes of Python's ``json`` module for the rest
  (so no raw newline can occur: one entry is one line of a JSONL file);
- ``time`` is UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six fraction digits);
- ``document_sha256`` is 64 lowercase hex digits or ``null``; ``key`` a string or ``null``;
- ``refs`` is a list of strings in the caller's order; ``details`` an object of strings
  (sorted like every object); ``v`` is 1.

Strings are encoded as given (no Unicode normalisation). ``decode_entry`` re-encodes what it
parsed and rejects input that differs by a single byte, so every entry has exactly one encoding.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from audit.errors import InvalidEntry, InvalidEvent

__all__ = [
    "ENCODING_VERSION",
    "MAX_ENTRY_BYTES",
    "Entry",
    "Event",
    "EventType",
    "PreparedEvent",
    "decode_entry",
    "encode_entry",
    "format_time",
    "parse_time",
    "prepare_event",
]

ENCODING_VERSION = 1
# Entries are metadata, not documents: a bound keeps rows small and rejects misuse early.
# It applies to the encoding without the index digits.
MAX_ENTRY_BYTES = 64 * 1024

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_TIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
_KEYS = frozenset(
    {"actor", "details", "document_sha256", "index", "key", "refs", "time", "type", "unit", "v"}
)


class EventType(enum.StrEnum):
    """The consequential events the ledger records (the value is what is encoded)."""

    DOCUMENT_STORED = "document.stored"
    DOCUMENT_RENEWED = "document.renewed"
    """A new version of a stored signed PDF with renewed evidence (refs: new, then old)."""
    SIGNATURE_SEALED = "signature.sealed"
    SIGNATURE_PREPARED = "signature.prepared"
    SIGNATURE_COMPLETED = "signature.completed"
    SIGNATURE_CANCELLED = "signature.cancelled"
    SIGNATURE_EXPIRED = "signature.expired"
    SIGNATURE_REQUESTED = "signature.requested"
    """Sent to a remote-signing provider for the official's approval."""
    SIGNATURE_REJECTED = "signature.rejected"
    """The official refused a remote signature."""
    PACKAGE_SENT = "package.sent"
    PACKAGE_RECEIVED = "package.received"
    PACKAGE_FORWARDED = "package.forwarded"
    PACKAGE_DELIVERED = "package.delivered"
    PACKAGE_ACKNOWLEDGED = "package.acknowledged"
    PACKAGE_REJECTED = "package.rejected"
    PACKAGE_QUARANTINED = "package.quarantined"
    PACKAGE_RELEASED = "package.released"
    STATUS_CHANGED = "status.changed"
    AUTHZ_DENIED = "authz.denied"
    HUB_INSPECTED = "hub.inspected"


def format_time(value: datetime) -> str:
    """``value`` (timezone-aware) in the canonical UTC form ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return value.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """The inverse of ``format_time``; rejects any other form."""
    if not _TIME_PATTERN.fullmatch(text):
        raise ValueError(f"time {text!r} is not in the form YYYY-MM-DDTHH:MM:SS.ffffffZ")
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _check_text(value: object, name: str, *, required: bool) -> str:
    if not isinstance(value, str):
        raise InvalidEvent(f"{name} must be a string, not {type(value).__name__}", field=name)
    if required and not value:
        raise InvalidEvent(f"{name} must not be empty", field=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEvent(
            f"{name} is not valid Unicode text (lone surrogate)", field=name
        ) from exc
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One consequential event, as the application reports it.

    Invariants (checked at construction): ``time`` is timezone-aware and kept in UTC; ``actor``
    (the client identity) and ``unit`` (the unit code) are non-empty; ``document_sha256`` is
    ``None`` or 64 hex digits, kept lowercase; ``refs`` is a tuple of strings; ``details`` is a
    read-only str→str mapping in sorted key order.
    """

    time: datetime
    actor: str
    unit: str
    type: EventType
    document_sha256: str | None = None
    refs: tuple[str, ...] = ()
    key: str | None = None
    details: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.time, datetime) or self.time.utcoffset() is None:
            raise InvalidEvent("time must be a timezone-aware datetime", field="time")
        object.__setattr__(self, "time", self.time.astimezone(UTC))
        _check_text(self.actor, "actor", required=True)
        _check_text(self.unit, "unit", required=True)
        try:
            object.__setattr__(self, "type", EventType(self.type))
        except ValueError as exc:
            raise InvalidEvent(f"unknown event type {self.type!r}", field="type") from exc
        if self.document_sha256 is not None:
            digest = _check_text(self.document_sha256, "document_sha256", required=True).lower()
            if not _SHA256_PATTERN.fullmatch(digest):
                raise InvalidEvent(
                    "document_sha256 must be 64 hexadecimal digits", field="document_sha256"
                )
            object.__setattr__(self, "document_sha256", digest)
        if isinstance(self.refs, str):
            raise InvalidEvent("refs must be a sequence of strings, not one string", field="refs")
        refs = tuple(self.refs)
        for ref in refs:
            _check_text(ref, "refs", required=True)
        object.__setattr__(self, "refs", refs)
        if self.key is not None:
            _check_text(self.key, "key", required=True)
        if not isinstance(self.details, Mapping):
            raise InvalidEvent("details must be a mapping of strings", field="details")
        for name, value in self.details.items():
            _check_text(name, "details", required=True)
            _check_text(value, "details", required=False)
        object.__setattr__(self, "details", MappingProxyType(dict(sorted(self.details.items()))))


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """An event at its place in the ledger: ``index`` is dense, 0 for the first entry."""

    index: int
    event: Event

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise InvalidEvent("an entry index is an integer ≥ 0", field="index")


def _to_json(entry: Entry) -> dict[str, Any]:
    event = entry.event
    return {
        "actor": event.actor,
        "details": dict(event.details),
        "document_sha256": event.document_sha256,
        "index": entry.index,
        "key": event.key,
        "refs": list(event.refs),
        "time": format_time(event.time),
        "type": event.type.value,
        "unit": event.unit,
        "v": ENCODING_VERSION,
    }


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _check_size(data: bytes, index: int) -> None:
    # The bound is on the event, not its index, so an event that fits fits at any index.
    size = len(data) - len(str(index))
    if size > MAX_ENTRY_BYTES:
        raise InvalidEvent(
            f"the event encodes to {size} bytes, over the {MAX_ENTRY_BYTES}-byte limit;"
            " keep documents in storage and put only references and short details in events"
        )


def encode_entry(entry: Entry) -> bytes:
    """The canonical bytes of ``entry`` (see the module docstring); the Merkle leaf."""
    data = _dump(_to_json(entry))
    _check_size(data, entry.index)
    return data


# Where the index sits in a canonical encoding. Inside a JSON string every '"' is escaped, so
# the marker can only be structure; the only other objects and arrays ("details", "refs") hold
# strings, never the bare number 0 it contains. So its one occurrence is the top-level index.
_INDEX_MARKER = b',"index":0,"key":'
_INDEX_VALUE_OFFSET = len(b',"index":')


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """An event validated and encoded ahead of knowing its index.

    ``at(index)`` equals ``encode_entry(Entry(index=index, event=event))`` byte for byte; it lets
    the ledger encode outside its write lock, reject a bad event before a batch starts, and keep
    a staged event in the outbox as its two halves.
    """

    prefix: bytes
    suffix: bytes

    def at(self, index: int) -> bytes:
        """The canonical encoding of this event as the entry at ``index``."""
        return self.prefix + str(index).encode("ascii") + self.suffix


def prepare_event(event: Event) -> PreparedEvent:
    """Validate and encode ``event`` for appending (raises ``InvalidEvent``)."""
    if not isinstance(event, Event):
        raise InvalidEvent(f"expected an audit Event, not {type(event).__name__}")
    data = encode_entry(Entry(index=0, event=event))
    position = data.index(_INDEX_MARKER)
    return PreparedEvent(
        prefix=data[: position + _INDEX_VALUE_OFFSET],
        suffix=data[position + _INDEX_VALUE_OFFSET + 1 :],
    )


def _string_or_none(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError("expected a string or null")
    return value


def decode_entry(data: bytes) -> Entry:
    """Parse canonical entry bytes; raises ``InvalidEntry`` for anything not canonical."""
    try:
        raw = json.loads(data.decode("utf-8"))
        if not isinstance(raw, dict) or set(raw) != _KEYS:
            raise InvalidEntry("the entry is not a JSON object with exactly the version-1 fields")
        if raw["v"] != ENCODING_VERSION:
            raise InvalidEntry(
                f"the entry has encoding version {raw['v']!r}; this kyso reads version"
                f" {ENCODING_VERSION} (upgrade kyso to read newer ledgers)"
            )
        refs, details = raw["refs"], raw["details"]
        if not isinstance(refs, list) or not isinstance(details, dict):
            raise TypeError("refs must be a list and details an object")
        index = raw["index"]
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError("index must be an integer")
        entry = Entry(
            index=index,
            event=Event(
                time=parse_time(raw["time"]),
                actor=raw["actor"],
                unit=raw["unit"],
                type=raw["type"],
                document_sha256=_string_or_none(raw["document_sha256"]),
                refs=tuple(refs),
                key=_string_or_none(raw["key"]),
                details=details,
            ),
        )
        canonical = encode_entry(entry)
    except InvalidEntry:
        raise
    except (ValueError, TypeError, KeyError, InvalidEvent) as exc:
        raise InvalidEntry(f"the entry does not decode: {exc}") from exc
    if canonical != data:
        raise InvalidEntry("the entry is not in canonical form (re-encoding it gives other bytes)")
    return entry
