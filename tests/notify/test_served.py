"""Notifications end to end: a real `kyso serve` with the development configuration, the
stand-in ZNS and SMS gateways, a webhook receiver that verifies with ``standardwebhooks``,
and the `kyso` commands an operator and a workflow system use."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from kyso.dev.gateways import StandInGateways
from tests.kyso.served import Served, serve
from tests.notify.receivers import Receiver

pytestmark = pytest.mark.slow

COMMUNE = "000.21.30.H49"
DEPARTMENT = "000.00.02.H49"


@pytest.fixture(scope="module")
def gateways() -> Iterator[StandInGateways]:
    stand_in = StandInGateways()
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def served(dev_env, tmp_path_factory, gateways: StandInGateways) -> Iterator[Served]:
    extra = f"""
[notify]
webhook_allow = ["127.0.0.1"]
webhook_http_loopback = true
citizen_statuses = ["03", "05", "06"]

[notify.zns]
url = "{gateways.zns_url}"
template_id = "{gateways.template_id}"
access_token_env = "KYSO_TEST_ZNS_TOKEN"
timeout_seconds = 2

[notify.sms]
url = "{gateways.sms_url}"
brandname = "{gateways.brandname}"
api_key_env = "KYSO_TEST_SMS_KEY"
secret_key_env = "KYSO_TEST_SMS_SECRET"
template = "Hồ sơ {{document_id}} của ông/bà: {{status_name}}. Tra cứu: dichvucong.gov.vn"
"""
    env = {
        "KYSO_TEST_ZNS_TOKEN": gateways.access_token,
        "KYSO_TEST_SMS_KEY": gateways.api_key,
        "KYSO_TEST_SMS_SECRET": gateways.secret_key,
    }
    running = serve(dev_env, tmp_path_factory.mktemp("notify"), extra=extra, env=env)
    try:
        yield running
    finally:
        assert running.stop() == 0


def _ok(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def _send(served: Served, document_id: str) -> None:
    _ok(
        served.kyso(
            "send", "--from", COMMUNE, "--to", DEPARTMENT, "--subject", "Hồ sơ cấp phép",
            "--document-id", document_id,
        )
    )  # fmt: skip


def _set(served: Served, document_id: str, code: str) -> None:
    _ok(
        served.kyso(
            "status", "--set", code, "--document", document_id, "--unit", DEPARTMENT,
            "--from", COMMUNE,
        )
    )  # fmt: skip


def test_status_03_with_consent_reaches_zalo_then_sms_when_zalo_fails(
    served: Served, gateways: StandInGateways, receiver: Receiver
) -> None:
    created = json.loads(
        _ok(served.kyso("notify", "create", "--unit", COMMUNE, "--url", receiver.url, "--json"))
    )
    receiver.secrets = [created["secret"]]
    document_id = "000.21.30.H49-HS-2026-0001"
    _send(served, document_id)
    consent = _ok(
        served.kyso(
            "notify", "consent", "--document", document_id, "--unit", DEPARTMENT,
            "--phone", "0912 345 678",
        )
    )  # fmt: skip
    assert "84912345678" in consent

    before = len(gateways.requests)
    started = time.monotonic()
    _set(served, document_id, "03")
    returned = time.monotonic()
    requests = gateways.wait_for(before + 1, timeout=30)
    zns = requests[before]
    print(
        f"status 03 -> ZNS request {zns.at - started:.3f} s after `kyso status --set` started"
        f" ({zns.at - returned:+.3f} s after it returned)"
    )
    assert zns.channel == "zns"
    assert zns.headers["access_token"] == gateways.access_token
    assert zns.body["phone"] == "84912345678"
    assert zns.body["template_id"] == gateways.template_id
    assert zns.body["template_data"]["status_code"] == "03"
    assert zns.body["template_data"]["document_id"] == document_id
    assert zns.body["tracking_id"].startswith("kyso-")

    # Zalo refuses (the phone has no Zalo account): the SMS gateway gets it, without diacritics
    gateways.fail_zns = "-108"
    before = len(gateways.requests)
    _set(served, document_id, "05")
    requests = gateways.wait_for(before + 2, timeout=30)
    assert [r.channel for r in requests[before:]] == ["zns", "sms"]
    sms = requests[before + 1].body
    assert sms["Phone"] == "84912345678"
    assert sms["IsUnicode"] == "0"
    assert sms["Content"].isascii()
    assert len(sms["Content"]) <= 160
    assert sms["Content"].startswith(f"Ho so {document_id} cua ong/ba: Dang xu ly.")

    # both fail: the operator sees it, with both reasons
    gateways.fail_sms = "101"
    _set(served, document_id, "06")
    deadline = time.monotonic() + 30
    while True:
        listed = json.loads(
            _ok(served.kyso("notify", "messages", "--document", document_id, "--json"))
        )
        latest = next(m for m in listed if m["status"] == "06") if listed else None
        if (latest and latest["attempts"] >= 1) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert latest is not None
    assert latest["state"] == "pending"
    assert "zns: ZNS error -108" in latest["last_error"]
    assert "sms: SMS error 101" in latest["last_error"]
    sent = {m["status"]: m["channel"] for m in listed if m["state"] == "sent"}
    assert sent == {"03": "zns", "05": "sms"}
    gateways.fail_zns = gateways.fail_sms = ""

    # the sender's system got every status as a verified webhook, in order
    deadline = time.monotonic() + 30
    while len([r for r in receiver.received if r.type == "status.changed"]) < 3:
        assert time.monotonic() < deadline, receiver.received
        time.sleep(0.1)
    statuses = [
        r.data["status"]
        for r in receiver.received
        if r.type == "status.changed" and r.data["document_id"] == document_id
    ]
    assert statuses == ["03", "05", "06"]
    assert receiver.rejected == []
    assert "phone" not in json.dumps([r.data for r in receiver.received])


def test_notify_commands(served: Served, receiver: Receiver) -> None:
    created = json.loads(
        _ok(
            served.kyso(
                "notify", "create", "--unit", DEPARTMENT, "--url", receiver.url,
                "--type", "document.delivered", "--json",
            )
        )
    )  # fmt: skip
    endpoint = created["id"]
    receiver.secrets.append(created["secret"])
    event_id = json.loads(_ok(served.kyso("notify", "test", endpoint, "--json")))["event_id"]
    deadline = time.monotonic() + 30
    while event_id not in receiver.ids():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    listed = json.loads(_ok(served.kyso("notify", "list", "--json")))
    assert endpoint in [e["id"] for e in listed]
    refused = served.kyso("notify", "create", "--unit", DEPARTMENT, "--url", "https://10.0.0.7/x")
    assert refused.returncode == 1
    assert "INVALID_ARGUMENT" in refused.stderr
    assert "webhook_allow" in refused.stderr
    long = served.kyso("notify", "create", "--unit", DEPARTMENT, "--url", receiver.url + "x" * 2000)
    assert long.returncode == 1
    assert "INVALID_ARGUMENT" in long.stderr
    assert "at most 2000" in long.stderr
    rotated = json.loads(_ok(served.kyso("notify", "rotate", endpoint, "--json")))
    assert rotated["secret"].startswith("whsec_")
    _ok(served.kyso("notify", "delete", endpoint))
    assert endpoint not in [
        e["id"] for e in json.loads(_ok(served.kyso("notify", "list", "--json")))
    ]
