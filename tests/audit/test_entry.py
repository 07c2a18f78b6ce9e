"""Events and the canonical entry encoding."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from audit import Entry, Event, EventType, InvalidEntry, InvalidEvent, decode_entry, encode_entry
from audit.entry import MAX_ENTRY_BYTES, prepare_event
from tests.audit.conftest import make_event

TRICKY = [
    "",
    "Nguyễn Văn Ánh",
    'quote " and backslash \\ ',
    '\\",\\"index\\":0,\\"key\\":',
    ',"index":0,"key":',
    "line\nbreak\ttab\u2028sep",
    "\x00control",
    "emoji 😀",
]


def test_encoding_is_the_documented_canonical_json() -> None:
    event = Event(
        time=dt.datetime(2026, 1, 2, 10, 4, 5, 7, tzinfo=dt.timezone(dt.timedelta(hours=7))),
        actor="CN=Văn thư",
        unit="000.00.01.H23",
        type=EventType.SIGNATURE_SEALED,
        document_sha256="AB" * 32,
        refs=("sha256/x", "a"),
        key="pkcs11:token=seal;object=k",
        details={"z": "1", "a": "2"},
    )
    data = encode_entry(Entry(index=42, event=event))
    assert (
        data
        == (
            '{"actor":"CN=Văn thư","details":{"a":"2","z":"1"},"document_sha256":"'
            + "ab" * 32
            + '","index":42,"key":"pkcs11:token=seal;object=k","refs":["sha256/x","a"],'
            '"time":"2026-01-02T03:04:05.000007Z","type":"signature.sealed",'
            '"unit":"000.00.01.H23","v":1}'
        ).encode()
    )


@pytest.mark.parametrize("number", range(40))
def test_decode_inverts_encode(number: int) -> None:
    entry = Entry(index=number * 7919, event=make_event(number))
    assert decode_entry(encode_entry(entry)) == entry


def test_event_normalises_to_one_form() -> None:
    here = dt.timezone(dt.timedelta(hours=7))
    a = make_event(
        1, time=dt.datetime(2026, 5, 1, 14, 0, tzinfo=here), details={"b": "1", "a": "2"}
    )
    b = make_event(
        1, time=dt.datetime(2026, 5, 1, 7, 0, tzinfo=dt.UTC), details={"a": "2", "b": "1"}
    )
    assert a == b
    assert hash(a) == hash(b)
    assert encode_entry(Entry(index=0, event=a)) == encode_entry(Entry(index=0, event=b))
    assert list(a.details) == ["a", "b"]
    with pytest.raises(TypeError):
        a.details["c"] = "3"  # type: ignore[index]


def test_prepared_event_equals_encoding_at_every_index() -> None:
    rng = random.Random(7)
    for number in range(200):
        text = rng.choice(TRICKY[1:])
        event = make_event(
            number,
            actor=text,
            refs=(text, rng.choice(TRICKY[1:])),
            details={rng.choice(TRICKY[1:]): text, "index": "0", "key": text},
            key=rng.choice([None, text]),
        )
        prepared = prepare_event(event)
        for index in (0, 9, 10, 12345, 2**40):
            assert prepared.at(index) == encode_entry(Entry(index=index, event=event))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.replace(b'"v":1}', b'"v":1 }'),
        lambda d: d.replace(b'{"actor"', b'{ "actor"'),
        lambda d: d.replace(b'"index":3', b'"index":3.0'),
        lambda d: d.replace(b'"index":3', b'"index":true'),
        lambda d: d.replace(b".000000Z", b"Z"),
        lambda d: d.replace(b"Z", b"+00:00", 1),
        lambda d: d.replace(b'"v":1', b'"v":2'),
        lambda d: d.replace(b'"unit":', b'"unit":"x","unit":'),
        lambda d: d.replace(b',"v":1', b""),
        lambda d: d.replace(b'"v":1', b'"v":1,"extra":1'),
        lambda d: d.replace("Hệ".encode(), b"H\\u1ec7"),
        lambda d: d.replace(b"document.stored", b"document.burnt"),
        lambda d: d + b"\n",
        lambda d: d[:-1],
        lambda d: b"\xff" + d,
        lambda d: b"[]",
    ],
)
def test_decode_rejects_anything_not_canonical(mutate) -> None:
    data = encode_entry(Entry(index=3, event=make_event(0)))
    assert b"document.stored" in data
    assert "Hệ".encode() in data
    changed = mutate(data)
    assert changed != data
    with pytest.raises(InvalidEntry):
        decode_entry(changed)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"time": dt.datetime(2026, 1, 1)}, "time"),
        ({"actor": ""}, "actor"),
        ({"unit": 5}, "unit"),
        ({"type": "document.burnt"}, "type"),
        ({"document_sha256": "12"}, "document_sha256"),
        ({"document_sha256": "g" * 64}, "document_sha256"),
        ({"refs": "sha256/abc"}, "refs"),
        ({"refs": ("",)}, "refs"),
        ({"key": ""}, "key"),
        ({"details": {"a": 1}}, "details"),
        ({"details": [("a", "b")]}, "details"),
        ({"actor": "bad \ud800 surrogate"}, "actor"),
    ],
)
def test_invalid_events_are_refused_with_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        make_event(1, **changes)
    assert caught.value.field == field


def test_event_type_accepts_its_string_value() -> None:
    assert make_event(1, type="authz.denied").type is EventType.AUTHZ_DENIED


def test_oversized_events_are_refused() -> None:
    event = make_event(1, details={"blob": "x" * MAX_ENTRY_BYTES})
    with pytest.raises(InvalidEvent, match="limit"):
        prepare_event(event)
    with pytest.raises(InvalidEvent, match="limit"):
        encode_entry(Entry(index=0, event=event))


def test_encoded_entry_is_one_jsonl_line() -> None:
    event = make_event(1, details={"text": "a\nb\r\nc\u2028d"})
    data = encode_entry(Entry(index=0, event=event))
    assert b"\n" not in data
    assert b"\r" not in data
    assert json.loads(data)["details"]["text"] == "a\nb\r\nc\u2028d"
