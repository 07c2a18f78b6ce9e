"""Send input that would make a ledger event invalid is refused before anything is stored, with
INVALID_ARGUMENT naming the field and the limit; what is accepted commits with its events."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy as sa

from kyso.v1 import exchange_pb2, exchange_pb2_grpc
from tests.support.statuses import bad_request_field

COMMUNE = "000.21.30.H49"
DEPARTMENT = "000.00.02.H49"


def _auth(config):
    path = config.clients["dev"].token_file
    return [("authorization", f"Bearer {path.read_text().strip()}")]


def _request(**fields) -> exchange_pb2.SendRequest:
    request = exchange_pb2.SendRequest(from_unit=COMMUNE, to_units=[DEPARTMENT])
    request.fields.subject = "Về việc báo cáo"
    for name, value in fields.items():
        if name == "document_id":
            request.document_id = value
        elif name == "attachments":
            for n in range(value):
                request.fields.attachments.add(name=f"a{n}.txt", content=b"x")
    return request


def _counts(config) -> tuple[int, int, int]:
    engine = sa.create_engine(config.database.url)
    try:
        with engine.connect() as conn:
            return tuple(  # type: ignore[return-value]
                conn.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar_one()
                for table in ("exchange_messages", "audit_entries", "audit_outbox")
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("fields", "field", "limit"),
    [
        ({"document_id": "x" * 70_000}, "document_id", "at most 255"),
        ({"attachments": 880}, "fields.attachments", "at most 200"),
    ],
)
async def test_send_that_would_break_its_event_is_refused_and_stores_nothing(
    dev_channel, dev_config, fields, field, limit
) -> None:
    stub = exchange_pb2_grpc.ExchangeServiceStub(dev_channel)
    before = _counts(dev_config)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(_request(**fields), metadata=_auth(dev_config))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert limit in caught.value.details()
    assert bad_request_field(caught.value) == field
    assert _counts(dev_config) == before
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.Track(
            exchange_pb2.TrackRequest(document_id="x" * 70_000, from_unit=COMMUNE),
            metadata=_auth(dev_config),
        )
    # nothing was sent; the answer echoing the id stays within what a client accepts
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    assert "characters left out" in unknown.value.details()


async def test_an_accepted_send_commits_with_its_events(dev_channel, dev_config) -> None:
    stub = exchange_pb2_grpc.ExchangeServiceStub(dev_channel)
    messages, entries, _ = _counts(dev_config)
    sent = await stub.Send(_request(attachments=2), metadata=_auth(dev_config))
    assert [r.unit_code for r in sent.recipients] == [DEPARTMENT]
    # one package.sent and one package.delivered (the department is served here)
    after_messages, after_entries, _ = _counts(dev_config)
    assert (after_messages, after_entries) == (messages + 1, entries + 2)
    engine = sa.create_engine(dev_config.database.url)
    try:
        with engine.connect() as conn:
            pending = conn.execute(
                sa.text("SELECT count(*) FROM audit_outbox WHERE idx IS NULL")
            ).scalar_one()
    finally:
        engine.dispose()
    assert pending == 0
