"""Citizens' messages: numbers, text for SMS, consent, ZNS first then SMS, against the stand-in
gateways (kyso.dev.gateways) that answer in the providers' documented shapes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

import audit
from kyso import db
from kyso.app import components
from kyso.dev.gateways import StandInGateways
from kyso.metrics import Metrics
from kyso.notify.citizens import (
    RETRIES,
    Citizens,
    GatewayError,
    SmsGateway,
    ZnsGateway,
    fit_sms,
    fold,
    normalise_phone,
)
from kyso.notify.runner import backlog
from kyso.notify.schema import events
from kyso.operations.ledger import Staging

UNIT = "000.00.02.H49"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("0912345678", "84912345678"),
        ("0912 345 678", "84912345678"),
        ("+84 912-345-678", "84912345678"),
        ("84912345678", "84912345678"),
        ("(091) 234.5678", "84912345678"),
    ],
)
def test_numbers_are_kept_as_84(given: str, kept: str) -> None:
    assert normalise_phone(given) == kept


@pytest.mark.parametrize(
    "given", ["", "912345678", "0912", "+1 202 555 0100", "09123456789", "abc"]
)
def test_other_numbers_are_refused(given: str) -> None:
    with pytest.raises(ValueError, match="Vietnamese mobile number"):
        normalise_phone(given)


def test_sms_text_without_diacritics_within_160() -> None:
    assert fold("Hồ sơ của ông Đặng Văn Ước đã được tiếp nhận") == (
        "Ho so cua ong Dang Van Uoc da duoc tiep nhan"
    )
    long = "Thông báo: hồ sơ đã được tiếp nhận. " * 10
    text = fit_sms(long, unicode=False)
    assert text.isascii()
    assert len(text) == 160
    assert text.endswith("...")
    assert fit_sms("Hồ sơ", unicode=True) == "Hồ sơ"


@pytest.fixture
def gateways() -> Iterator[StandInGateways]:
    stand_in = StandInGateways(slow_seconds=2.0)
    stand_in.start()
    yield stand_in
    stand_in.stop()


def _zns(g: StandInGateways, **kw: object) -> ZnsGateway:
    return ZnsGateway(
        url=g.zns_url,
        access_token=str(kw.get("token", g.access_token)),
        template_id=g.template_id,
        timeout=0.5,
    )


def _sms(g: StandInGateways, **kw: object) -> SmsGateway:
    return SmsGateway(
        url=g.sms_url,
        api_key=g.api_key,
        secret_key=str(kw.get("secret", g.secret_key)),
        brandname=g.brandname,
        template="Hồ sơ {document_id}: {status_name}",
        timeout=0.5,
    )


def test_the_gateways_answers_are_read_as_documented(gateways: StandInGateways) -> None:
    data = {"document_id": "HS-1", "status_code": "03", "status_name": "Đã tiếp nhận"}
    assert _zns(gateways).send("84912345678", data, "kyso-1")
    with pytest.raises(GatewayError, match="-124"):
        _zns(gateways, token="wrong").send("84912345678", data, "kyso-2")
    with pytest.raises(GatewayError, match="-108"):
        _zns(gateways).send("0912345678", data, "kyso-3")  # the API wants 84…
    assert _sms(gateways).send("84912345678", data, "kyso-4")
    assert gateways.requests[-1].body["Content"] == "Ho so HS-1: Da tiep nhan"
    with pytest.raises(GatewayError, match="SMS error 101"):
        _sms(gateways, secret="wrong").send("84912345678", data, "kyso-5")
    gateways.fail_zns = "rate"
    with pytest.raises(GatewayError, match="-32"):
        _zns(gateways).send("84912345678", data, "kyso-6")
    gateways.fail_sms = "rate"
    with pytest.raises(GatewayError, match="HTTP 429"):
        _sms(gateways).send("84912345678", data, "kyso-7")
    gateways.fail_zns = "slow"
    with pytest.raises(GatewayError, match="timed out"):
        _zns(gateways).send("84912345678", data, "kyso-8")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def engine(db_engine: sa.Engine) -> sa.Engine:
    """A new database with every component's tables, on SQLite and on PostgreSQL."""
    db.upgrade(db_engine, components())
    return db_engine


def _status(engine: sa.Engine, document_id: str, code: str) -> None:
    event = audit.Event(
        time=datetime.now(UTC),
        actor="workflow",
        unit=UNIT,
        type=audit.EventType.STATUS_CHANGED,
        details={"document_id": document_id, "sender": "000.21.30.H49", "status": code},
    )
    with engine.begin() as conn:
        Staging().write(conn, [event])


def test_only_consented_dossiers_and_chosen_statuses_are_told_once(
    engine: sa.Engine, gateways: StandInGateways
) -> None:
    clock = Clock()
    citizens = Citizens(
        engine, statuses=("03",), zns=_zns(gateways), sms=_sms(gateways), clock=clock
    )
    citizens.set_consent(document_id="HS-1", phone="0912345678", unit=UNIT, recorded_by="wf")
    _status(engine, "HS-1", "03")
    _status(engine, "HS-1", "04")  # not a told status
    _status(engine, "HS-2", "03")  # no consent
    assert citizens.collect() == 1
    assert citizens.collect() == 0  # each event is queued once
    assert citizens.send_due() == 1
    [message] = citizens.messages()
    assert (message.state, message.channel, message.phone) == ("sent", "zns", "84912345678")
    assert [r.channel for r in gateways.requests] == ["zns"]


def test_both_gateways_failing_is_retried_then_failed_and_visible(
    engine: sa.Engine, gateways: StandInGateways
) -> None:
    clock = Clock()
    citizens = Citizens(
        engine, statuses=("06",), zns=_zns(gateways), sms=_sms(gateways), clock=clock
    )
    citizens.set_consent(document_id="HS-9", phone="+84912345678", unit=UNIT, recorded_by="wf")
    gateways.fail_zns, gateways.fail_sms = "-124", "103"
    _status(engine, "HS-9", "06")
    citizens.collect()
    for delay in RETRIES:
        assert citizens.send_due() == 0
        clock.now += delay
    assert citizens.send_due() == 0
    [message] = citizens.messages()
    assert message.state == "failed"
    assert message.attempts == len(RETRIES) + 1
    assert "zns: ZNS error -124" in message.last_error
    assert "sms: SMS error 103" in message.last_error
    assert citizens.messages(state="failed") == [message]
    assert backlog(engine)["messages_failed"] == 1
    metrics = Metrics()
    metrics.watch_notify(lambda: backlog(engine))
    scraped = generate_latest(metrics.registry).decode()
    assert 'kyso_notify_messages{state="failed"} 1.0' in scraped


def test_a_change_that_rolls_back_notifies_nothing(engine: sa.Engine) -> None:
    event = audit.Event(
        time=datetime.now(UTC),
        actor="workflow",
        unit=UNIT,
        type=audit.EventType.STATUS_CHANGED,
        details={"document_id": "HS-1", "sender": "000.21.30.H49", "status": "03"},
    )

    def change_that_fails() -> None:
        with engine.begin() as conn:
            Staging().write(conn, [event])
            raise RuntimeError("the change failed after its events were staged")

    with pytest.raises(RuntimeError):
        change_that_fails()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 0
    _status(engine, "HS-1", "03")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 1


def test_a_retry_is_not_sent_before_it_is_due(engine: sa.Engine, gateways: StandInGateways) -> None:
    clock = Clock()
    citizens = Citizens(engine, statuses=("03",), zns=_zns(gateways), sms=None, clock=clock)
    citizens.set_consent(document_id="HS-3", phone="0912345678", unit=UNIT, recorded_by="wf")
    gateways.fail_zns = "-124"
    _status(engine, "HS-3", "03")
    citizens.collect()
    citizens.send_due()
    sent = len(gateways.requests)
    clock.now += RETRIES[0] - timedelta(seconds=1)
    citizens.send_due()
    assert len(gateways.requests) == sent
    gateways.fail_zns = ""
    clock.now += timedelta(seconds=2)
    assert citizens.send_due() == 1
