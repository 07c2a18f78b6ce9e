"""The quarantine through the API (issue 14, observation 4): a delivery that Receive cannot hand
over is set aside after ``[exchange] max_delivery_attempts`` while the deliveries behind it are
received; a hop the next hub keeps refusing is set aside after ``max_forward_attempts``; both
are shown by Track and ListQuarantined with their reasons, ledgered, and released by an
operator. Real servers on loopback, the development configuration (SoftHSM2, SQLite)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import prometheus_client
import pytest
import sqlalchemy as sa

from exchange.adapters import StoredPackages
from exchange.edxml import (
    Attachment,
    ManifestReference,
    MessageHeader,
    Organization,
    Package,
    TraceHeader,
    TrustPolicy,
    build_package,
)
from exchange.routing import Router, Submission
from kyso.app import Application
from kyso.config import Config, load_config
from kyso.server import Server
from kyso.v1 import exchange_pb2, exchange_pb2_grpc
from tests.exchange.pki import Authority

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

COMMUNE = "000.21.30.H49"
DEPARTMENT = "000.00.02.H49"
NOI_VU_NA = "000.00.02.H41"  # served by another province's hub, reached through G22


def _auth(config: Config):
    path = config.clients["dev"].token_file
    assert path is not None
    return [("authorization", f"Bearer {path.read_text().strip()}")]


def _send(subject: str, to: str = DEPARTMENT) -> exchange_pb2.SendRequest:
    request = exchange_pb2.SendRequest(from_unit=COMMUNE, to_units=[to])
    request.fields.subject = subject
    request.fields.attachments.add(name="to-trinh.txt", content=subject.encode())
    return request


def _object(config: Config, ref: str) -> Path:
    digest = ref.removeprefix("sha256/")
    return config.storage.path / "objects" / digest[:2] / digest[2:4] / digest


def _events(config: Config, kind: str) -> int:
    """Ledger events of ``kind`` committed so far: appended, or staged in the ledger's outbox
    in the transaction of their change (appended just after, by the group committer)."""
    engine = sa.create_engine(config.database.url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT (SELECT count(*) FROM audit_entries WHERE instr(entry, :kind) > 0)"
                        " + (SELECT count(*) FROM audit_outbox WHERE idx IS NULL"
                        " AND (instr(prefix, :kind) > 0 OR instr(suffix, :kind) > 0))"
                    ),
                    {"kind": kind.encode()},
                ).scalar_one()
            )
    finally:
        engine.dispose()


async def _receive(stub, config: Config) -> list[exchange_pb2.Delivery]:
    calls = stub.Receive(
        exchange_pb2.ReceiveRequest(unit_code=DEPARTMENT, lease_seconds=1),
        metadata=_auth(config),
    )
    return [d async for d in calls]


async def _recipient(stub, config: Config, document_id: str) -> exchange_pb2.RecipientState:
    reply = await stub.Track(
        exchange_pb2.TrackRequest(document_id=document_id, from_unit=COMMUNE),
        metadata=_auth(config),
    )
    [recipient] = reply.recipients
    return recipient


async def _kyso(config_path: Path, port: int, *args: str) -> str:
    """Run the `kyso` command (in a thread: the server answering it runs on this loop)."""
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "kyso.cli.main", *args, "--server", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "KYSO_CONFIG": str(config_path)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_a_delivery_that_cannot_be_handed_over_is_quarantined_and_the_rest_go_on(
    dev_server, dev_channel, dev_config
) -> None:
    stub = exchange_pb2_grpc.ExchangeServiceStub(dev_channel)
    sent = [
        await stub.Send(_send(f"Công văn số {n}"), metadata=_auth(dev_config)) for n in range(3)
    ]
    # The first package's stored bytes are damaged: Receive can never hand it over.
    broken = _object(dev_config, sent[0].package.ref.ref)
    original = broken.read_bytes()
    broken.chmod(0o644)
    broken.write_bytes(original[:100] + bytes([original[100] ^ 0xFF]) + original[101:])

    # the deliveries behind it are received at once, and acknowledged
    first = await _receive(stub, dev_config)
    assert [d.document_id for d in first] == [s.document_id for s in sent[1:]]
    await stub.Ack(
        exchange_pb2.AckRequest(unit_code=DEPARTMENT, delivery_ids=[d.delivery_id for d in first]),
        metadata=_auth(dev_config),
    )
    # each Receive after its lease runs out counts one more failure; at the fifth
    # (max_delivery_attempts' default) it is quarantined
    attempts = 1
    while (
        await _recipient(stub, dev_config, sent[0].document_id)
    ).state != exchange_pb2.DELIVERY_STATE_FAILED:
        assert attempts < 5, "still not quarantined after max_delivery_attempts"
        await asyncio.sleep(1.2)  # the lease of 1 s runs out
        assert await _receive(stub, dev_config) == []
        attempts += 1
    assert attempts == 5
    recipient = await _recipient(stub, dev_config, sent[0].document_id)
    assert recipient.detail.startswith("quarantined (served by this hub): IntegrityError")
    assert _events(dev_config, "package.quarantined") == 1

    # the operator sees it, with its reason, through the API and the command line
    listed = await stub.ListQuarantined(
        exchange_pb2.ListQuarantinedRequest(), metadata=_auth(dev_config)
    )
    [item] = listed.items
    assert (item.kind, item.document_id, list(item.to_units), item.failures) == (
        exchange_pb2.QUARANTINE_KIND_DELIVERY,
        sent[0].document_id,
        [DEPARTMENT],
        5,
    )
    assert dev_config.source is not None
    [shown] = json.loads(
        await _kyso(dev_config.source, dev_server.port, "exchange", "quarantine", "--json")
    )
    assert (shown["kind"], shown["id"], shown["failures"]) == ("delivery", item.id, 5)
    assert shown["reason"].startswith("IntegrityError")
    assert await _receive(stub, dev_config) == []  # set aside: no longer tried

    # repaired, then released: back in the inbox, received, nothing left in quarantine
    broken.write_bytes(original)
    released = json.loads(
        await _kyso(
            dev_config.source, dev_server.port, "exchange", "release", "delivery", item.id, "--json"
        )
    )
    assert released["document_id"] == sent[0].document_id
    assert _events(dev_config, "package.released") == 1
    again = await _receive(stub, dev_config)
    assert [d.document_id for d in again] == [sent[0].document_id]
    assert (await stub.ListQuarantined(
        exchange_pb2.ListQuarantinedRequest(), metadata=_auth(dev_config)
    )).items == []  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ReleaseQuarantined(
            exchange_pb2.ReleaseQuarantinedRequest(
                kind=exchange_pb2.QUARANTINE_KIND_DELIVERY, id=item.id
            ),
            metadata=_auth(dev_config),
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


# -- forwarding ---------------------------------------------------------------------------------


@pytest.fixture
async def refusing_hub(tmp_path: Path) -> AsyncIterator[Server]:
    """A kyso server standing as hub G22 that knows no client of ours: every Forward is
    answered UNAUTHENTICATED (an error from the next hub, not an absent hub)."""
    home = tmp_path / "g22"
    home.mkdir()
    (home / "other.token").write_text("token-of-another-system")
    path = home / "kyso.toml"
    path.write_text(
        "[server]\n"
        'address = "127.0.0.1:0"\n'
        'metrics_address = ""\n'
        "grace_seconds = 1\n\n"
        f'[database]\nurl = "sqlite:///{home / "kyso.db"}"\n\n'
        f'[storage]\npath = "{home / "objects"}"\n\n'
        '[clients.other]\nroles = ["hub"]\ntoken_file = "other.token"\n'
    )
    config = load_config(path)
    server = Server(config, Application.open(config))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def forwarding_config(dev_env, tmp_path: Path, refusing_hub: Server) -> Config:
    """The development hub H49 under G22 (the refusing hub) beside H41; a hop is quarantined
    after two refusals."""
    from kyso.dev.setup import render_config

    text = render_config(dev_env, address="127.0.0.1:0", data_dir=tmp_path, metrics_address="")
    text = text.replace('key = "seal"\n', 'key = "seal"\nmax_forward_attempts = 2\n', 1)
    text = text.replace(
        'root_unit = "000.00.00.H49"\n',
        'root_unit = "000.00.00.H49"\nparent = "G22"\n',
        1,
    )
    text += (
        "\n[exchange.hubs.G22]\n"
        'root_unit = "000.00.00.G22"\n'
        f'address = "127.0.0.1:{refusing_hub.port}"\n\n'
        "[exchange.hubs.H41]\n"
        'root_unit = "000.00.00.H41"\n'
        'parent = "G22"\n'
    )
    path = tmp_path / "forwarding.toml"
    path.write_text(text)
    return load_config(path)


async def test_a_hop_the_next_hub_keeps_refusing_is_quarantined_and_released(
    forwarding_config,
) -> None:
    config = forwarding_config
    server = Server(config, Application.open(config))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
            sent = await stub.Send(_send("Về việc phối hợp", to=NOI_VU_NA), metadata=_auth(config))

            async def quarantined() -> exchange_pb2.ListQuarantinedResponse:
                for _ in range(300):  # refusals come after the backoff (1–2 s, then 2–4 s)
                    listed = await stub.ListQuarantined(
                        exchange_pb2.ListQuarantinedRequest(), metadata=_auth(config)
                    )
                    if listed.items:
                        return listed
                    await asyncio.sleep(0.2)
                raise AssertionError("the refused hop was not quarantined")

            [item] = (await quarantined()).items
            assert (item.kind, item.next_hub, list(item.to_units), item.failures) == (
                exchange_pb2.QUARANTINE_KIND_HOP,
                "G22",
                [NOI_VU_NA],
                2,
            )
            assert "UNAUTHENTICATED" in item.reason
            recipient = await _recipient(stub, config, sent.document_id)
            assert recipient.state == exchange_pb2.DELIVERY_STATE_FAILED
            assert recipient.detail.startswith("quarantined (next hub G22): hub G22 did not take")
            assert _events(config, "package.quarantined") == 1
            scraped = prometheus_client.generate_latest(server.metrics.registry).decode()
            assert 'kyso_exchange_quarantined{kind="hop"} 1.0' in scraped
            assert 'kyso_exchange_quarantined{kind="delivery"} 0.0' in scraped

            released = await stub.ReleaseQuarantined(
                exchange_pb2.ReleaseQuarantinedRequest(
                    kind=exchange_pb2.QUARANTINE_KIND_HOP, id=item.id
                ),
                metadata=_auth(config),
            )
            assert released.released.id == item.id
            assert _events(config, "package.released") == 1
            # released with no failures counted: it is tried again, twice, then set aside again
            [again] = (await quarantined()).items
            assert (again.id, again.failures) == (item.id, 2)
            assert _events(config, "package.quarantined") == 2
    finally:
        await server.stop()


# -- a package an earlier version accepted, too large to deliver ---------------------------------


@pytest.fixture
def outside_authority() -> Authority:
    return Authority.create("Kyso Test Root CA (gói tin cũ)")


@pytest.fixture
def legacy_config(dev_env, tmp_path: Path, outside_authority: Authority) -> Config:
    """The development configuration, also trusting ``outside_authority`` for packages."""
    from cryptography.hazmat.primitives import serialization

    from kyso.dev.setup import render_config

    pem = tmp_path / "outside-root.pem"
    pem.write_bytes(outside_authority.certificate.public_bytes(serialization.Encoding.PEM))
    text = render_config(dev_env, address="127.0.0.1:0", data_dir=tmp_path, metrics_address="")
    text = text.replace("[trust]\nanchors = [", f'[trust]\nanchors = ["{pem}", ', 1)
    path = tmp_path / "legacy.toml"
    path.write_text(text)
    return load_config(path)


def _large_package(key, document_id: str) -> bytes:
    """About 20 MiB: three 5 MiB attachments (each under libxml2's 10 MB text node)."""
    attachments = tuple(
        Attachment(
            content_id=f"att{n}",
            content=os.urandom(5 * 1024 * 1024),
            content_type="application/octet-stream",
            name=f"phu-luc-{n}.bin",
        )
        for n in range(1, 4)
    )
    package = Package(
        header=MessageHeader(
            from_=Organization(organ_id=COMMUNE),
            to=(Organization(organ_id=DEPARTMENT),),
            document_id=document_id,
            subject="Về việc gửi hồ sơ lớn",
        ),
        traces=(TraceHeader(organ_id=COMMUNE, timestamp=datetime.now(UTC)),),
        manifest=tuple(
            ManifestReference(
                content_id=a.content_id, content_type=a.content_type, attachment_name=a.name
            )
            for a in attachments
        ),
        attachments=attachments,
    )
    return build_package(package, key=key)


async def test_a_package_an_earlier_version_accepted_too_large_to_deliver_is_quarantined(
    legacy_config, outside_authority
) -> None:
    config = legacy_config
    app = Application.open(config)
    server = Server(config, app)
    await server.start()
    try:
        # What kyso before this change accepted (a package of 16–32 MiB, read within the old
        # default limits), stored by a router with those limits over the same database.
        data = _large_package(outside_authority.issue("UBND phường 01"), "ho-so-lon")
        assert 16 * 1024 * 1024 < len(data) < 32 * 1024 * 1024
        assert app.directory is not None
        earlier = Router(
            engine=app.engine,
            directory=app.directory,
            hub_id=config.exchange.hub_id,
            store=StoredPackages(app.store),
            policy=TrustPolicy(anchors=(outside_authority.certificate,)),
        )
        await asyncio.to_thread(earlier.accept, Submission(package=data))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
            behind = [
                await stub.Send(_send(f"Công văn số {n}"), metadata=_auth(config)) for n in range(2)
            ]
            first = await _receive(stub, config)
            assert [d.document_id for d in first] == [s.document_id for s in behind]
            await stub.Ack(
                exchange_pb2.AckRequest(
                    unit_code=DEPARTMENT, delivery_ids=[d.delivery_id for d in first]
                ),
                metadata=_auth(config),
            )
            for _ in range(4):  # max_delivery_attempts (5) in all
                await asyncio.sleep(1.2)  # the lease of 1 s runs out
                assert [d.document_id for d in await _receive(stub, config)] == []
            recipient = await _recipient(stub, config, "ho-so-lon")
            assert recipient.state == exchange_pb2.DELIVERY_STATE_FAILED
            assert "PackageTooLarge" in recipient.detail
            [item] = (
                await stub.ListQuarantined(
                    exchange_pb2.ListQuarantinedRequest(), metadata=_auth(config)
                )
            ).items
            assert (item.document_id, item.failures) == ("ho-so-lon", 5)
    finally:
        await server.stop()
