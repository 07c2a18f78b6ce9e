"""Archive status and renewal: documents time-stamped by the development TSA whose certificate
ends about a week after the PKI was built (``kyso.dev.pki.SHORT_TSA_DAYS``) are renewed with the
default TSA; after the short TSA's certificate has expired (pyHanko's AdES LTA validation at an
injected time, and ``kyso verify`` under libfaketime) the renewed version verifies TOTAL-PASSED,
the earlier revisions are byte-for-byte the same, and the versions are chained in the ledger. A
renewal run killed in the middle (a real ``kyso serve`` child, SIGKILL) leaves no half-renewed
version, and the next run finishes the work.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from asn1crypto import pem, x509
from prometheus_client import generate_latest

from kyso.app import Application
from kyso.config import load_config
from kyso.dev.init import DevEnvironment
from kyso.dev.setup import render_config
from kyso.server import Server
from kyso.v1 import (
    archive_pb2,
    archive_pb2_grpc,
    common_pb2,
    documents_pb2,
    documents_pb2_grpc,
    signing_pb2,
    signing_pb2_grpc,
)
from tests.kyso.served import Served, serve
from tests.kyso.test_tsa_metrics import _value
from tests.signer.pdfgen import make_pdf


def _archive_text(env: DevEnvironment, text: str, **archive: object) -> str:
    """The dev configuration signing with the short-lived TSA and renewing with the default."""
    text = text.replace(
        f'tsa_urls = ["{env.tsa_url}"]', f'tsa_urls = ["{env.pki.short_tsa_url}"]\nworkers = 1'
    )
    settings = {"tsa_urls": [env.tsa_url], **archive}
    lines = ["", "[archive]"]
    for key, value in settings.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return text + "\n".join(lines) + "\n"


def _auth(env: DevEnvironment) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {env.api_token_path.read_text().strip()}"),)


def _root(env: DevEnvironment) -> x509.Certificate:
    return x509.Certificate.load(pem.unarmor(env.root_certificate_path.read_bytes())[2])


def _short_tsa_end(env: DevEnvironment) -> datetime:
    cert = x509.Certificate.load(pem.unarmor(env.pki.short_tsa_certificate_path.read_bytes())[2])
    end: datetime = cert["tbs_certificate"]["validity"]["not_after"].native
    return end


async def _seal(channel: grpc.aio.Channel, env: DevEnvironment) -> str:
    stub = signing_pb2_grpc.SigningServiceStub(channel)
    reply = await stub.SignPdf(
        signing_pb2.SignPdfRequest(
            document=common_pb2.DocumentInput(content=make_pdf(), filename="kq.pdf"),
            key_alias="seal",
            level=signing_pb2.SIGNATURE_LEVEL_B_LTA,
        ),
        metadata=_auth(env),
    )
    return str(reply.document.ref.ref)


async def _download(channel: grpc.aio.Channel, env: DevEnvironment, ref: str) -> bytes:
    stub = documents_pb2_grpc.DocumentServiceStub(channel)
    chunks = stub.Download(
        documents_pb2.DownloadRequest(ref=common_pb2.DocumentRef(ref=ref)), metadata=_auth(env)
    )
    return b"".join([c.chunk async for c in chunks])


def _lta_passes(pdf: bytes, root: x509.Certificate, at: datetime) -> bool:
    """pyHanko's AdES LTA validation (EN 319 102-1 § 5.6.3) of the first signature at ``at``."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.ades.report import AdESStatus
    from pyhanko.sign.validation.ades import ades_lta_validation
    from pyhanko.sign.validation.policy_decl import (
        PdfSignatureValidationSpec,
        RevinfoOnlineFetchingRule,
        RevocationInfoGatheringSpec,
        SignatureValidationSpec,
    )
    from pyhanko_certvalidator.context import CertValidationPolicySpec, ValidationTimingInfo
    from pyhanko_certvalidator.policy_decl import (
        CertRevTrustPolicy,
        FreshnessReqType,
        RevocationCheckingPolicy,
        RevocationCheckingRule,
    )
    from pyhanko_certvalidator.registry import SimpleTrustManager

    reader = PdfFileReader(io.BytesIO(pdf))
    spec = PdfSignatureValidationSpec(
        SignatureValidationSpec(
            # only what the document carries: nothing fetched at the (injected) later time
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY
            ),
            cert_validation_policy=CertValidationPolicySpec(
                trust_manager=SimpleTrustManager.build(trust_roots=[root]),
                revinfo_policy=CertRevTrustPolicy(
                    RevocationCheckingPolicy(
                        ee_certificate_rule=RevocationCheckingRule.CHECK_IF_DECLARED,
                        intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED,
                    ),
                    # an archive validated years on: the newest time-stamp's revocation data
                    # may be as old as the validator's policy allows (here 30 days)
                    freshness=timedelta(days=30),
                    freshness_req_type=FreshnessReqType.MAX_DIFF_REVOCATION_VALIDATION,
                ),
            ),
        )
    )
    timing = ValidationTimingInfo(
        validation_time=at, best_signature_time=at, point_in_time_validation=False
    )
    result = asyncio.run(
        ades_lta_validation(reader.embedded_regular_signatures[0], spec, timing_info=timing)
    )
    return result.ades_subindic.status is AdESStatus.PASSED


@pytest.fixture
async def archive_server(dev_env: DevEnvironment, tmp_path: Path) -> AsyncIterator[Server]:
    text = render_config(dev_env, address="127.0.0.1:0", data_dir=tmp_path, metrics_address="")
    path = tmp_path / "kyso.toml"
    path.write_text(_archive_text(dev_env, text, renew=False, margin_days=0))
    config = load_config(path)
    app = Application.open(config)
    server = Server(config, app)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_renewed_document_verifies_after_the_old_tsa_expired(
    archive_server: Server, dev_env: DevEnvironment, tmp_path: Path
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{archive_server.port}") as channel:
        archive = archive_pb2_grpc.ArchiveServiceStub(channel)
        ref = await _seal(channel, dev_env)
        old = await _download(channel, dev_env, ref)

        run = await archive.RunRenewal(archive_pb2.RunRenewalRequest(), metadata=_auth(dev_env))
        assert run.scanned >= 1
        assert run.renewed == 0
        status = await archive.GetArchiveStatus(
            archive_pb2.GetArchiveStatusRequest(), metadata=_auth(dev_env)
        )
        assert (status.documents, status.within_30_days, status.renewed) == (1, 1, 0)
        [ending] = status.soonest
        assert ending.reason == "tsa-certificate"
        scraped = generate_latest(archive_server.metrics.registry).decode()
        assert 'kyso_archive_evidence_ending{within="30d"} 1.0' in scraped
        assert 'kyso_archive_evidence_ending{within="ended"} 0.0' in scraped
        assert ending.evidence_end.ToDatetime(tzinfo=UTC) == _short_tsa_end(dev_env)

        request = archive_pb2.ExtendDocumentRequest(
            ref=common_pb2.DocumentRef(ref=ref), level=archive_pb2.EXTEND_LEVEL_B_LTA
        )
        first = await archive.ExtendDocument(request, metadata=_auth(dev_env))
        again = await archive.ExtendDocument(request, metadata=_auth(dev_env))
        assert first.created
        assert not again.created
        assert first.current.ref == again.current.ref != ref

        # the renewal workers' time-stamps are counted (their TSA is not the signing one)
        scraped = generate_latest(archive_server.metrics.registry).decode()
        renewal_tsa = _value(scraped, "kyso_tsa_requests_total", url=dev_env.tsa_url, outcome="ok")
        assert renewal_tsa is not None
        assert renewal_tsa >= 1

        new = await _download(channel, dev_env, first.current.ref)
        assert new.startswith(old)  # every earlier revision, byte for byte
        assert await _download(channel, dev_env, ref) == old  # the old version untouched
        status = await archive.GetArchiveStatus(
            archive_pb2.GetArchiveStatusRequest(), metadata=_auth(dev_env)
        )
        assert (status.documents, status.within_365_days, status.renewed) == (1, 0, 1)
        versions = await archive.ListVersions(
            archive_pb2.ListVersionsRequest(ref=common_pb2.DocumentRef(ref=ref)),
            metadata=_auth(dev_env),
        )
        assert [v.ref for v in versions.versions] == [ref, first.current.ref]

    # the chain of versions in the ledger
    await archive_server.app.appender.drained_async([])
    renewed = [
        e.event
        for e in archive_server.app.ledger.entries()
        if e.event.type.value == "document.renewed"
    ]
    assert [(e.refs, e.details["previous"]) for e in renewed] == [((first.current.ref, ref), ref)]

    # after the short-lived TSA certificate has expired
    after = _short_tsa_end(dev_env) + timedelta(days=2)
    root = _root(dev_env)
    assert await asyncio.to_thread(_lta_passes, new, root, after)
    assert not await asyncio.to_thread(_lta_passes, old, root, after)  # what renewal saved
    (tmp_path / "new.pdf").write_bytes(new)
    verified = await asyncio.to_thread(_kyso_verify_at, tmp_path / "new.pdf", dev_env, after)
    assert verified["indication"] == "TOTAL-PASSED", verified


def _kyso_verify_at(path: Path, env: DevEnvironment, moment: datetime) -> dict[str, object]:
    """``kyso verify --json`` in a child process whose clock reads ``moment`` (libfaketime)."""
    # an absolute start ("@…", the clock then runs): right under an outer faketime too
    done = subprocess.run(
        [
            shutil.which("faketime") or "faketime",
            "-f",
            moment.astimezone(UTC).strftime("@%Y-%m-%d %H:%M:%S"),
            sys.executable,
            "-m",
            "kyso.cli.main",
            "verify",
            "--json",
            "--no-progress",
            "--jobs",
            "1",
            "--trust",
            str(env.root_certificate_path),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "TZ": "UTC"},
    )
    report: dict[str, object] = json.loads(done.stdout.splitlines()[0])
    return report


def _versions(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("SELECT old_ref, new_ref FROM catalogue_versions").fetchall()
        except sqlite3.OperationalError:  # the server has not created its tables yet
            return []


def _renewed_events(db: Path) -> list[tuple[tuple[str, ...], str]]:
    import sqlalchemy as sa

    import audit

    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        return [
            (entry.event.refs, entry.event.details["previous"])
            for entry in audit.Ledger(engine).entries()
            if entry.event.type is audit.EventType.DOCUMENT_RENEWED
        ]
    finally:
        engine.dispose()


@pytest.mark.slow
async def test_a_renewal_run_killed_midway_leaves_no_half_version_and_the_next_finishes(
    dev_env: DevEnvironment, tmp_path: Path
) -> None:
    count = 4

    def edit(text: str) -> str:
        return _archive_text(
            dev_env, text, rate_per_second=1.0, concurrency=1, interval_seconds=0.5
        )

    served: Served = await asyncio.to_thread(serve, dev_env, tmp_path, edit=edit)
    db = tmp_path / "kyso.db"
    try:
        async with grpc.aio.insecure_channel(served.address) as channel:
            originals = {await _seal(channel, dev_env) for _ in range(count)}
        deadline = time.monotonic() + 120
        while not _versions(db):  # the scheduled run has renewed its first document
            assert time.monotonic() < deadline, served.log.read_text()
            await asyncio.sleep(0.05)
        os.kill(served.process.pid, signal.SIGKILL)
        served.process.wait()
    finally:
        served.stop()
    linked = _versions(db)
    assert 1 <= len(linked) < count  # killed in the middle of the run
    with sqlite3.connect(db) as conn:
        for _, new in linked:  # each link came with its version's row, in one transaction
            assert conn.execute(
                "SELECT count(*) FROM catalogue_documents WHERE ref = ?", (new,)
            ).fetchone() == (1,)

    again: Served = await asyncio.to_thread(serve, dev_env, tmp_path, edit=edit)
    try:
        deadline = time.monotonic() + 180
        while {old for old, _ in _versions(db)} != originals or len(
            await asyncio.to_thread(_renewed_events, db)
        ) < count:
            assert time.monotonic() < deadline, again.log.read_text()
            await asyncio.sleep(0.2)
        status = await asyncio.to_thread(again.kyso, "archive", "status", "--json")
    finally:
        again.stop()
    linked = _versions(db)
    assert len(linked) == count  # one successor per original, none renewed twice
    events = await asyncio.to_thread(_renewed_events, db)
    assert sorted(events) == sorted(((new, old), old) for old, new in linked)
    report = json.loads(status.stdout)
    assert report["documents"] == count  # current versions only: no orphan counted
    assert report["renewed"] == count
    assert report["within_days"]["365"] == 0


def _signed_elsewhere(env: DevEnvironment, tsa_url: str) -> bytes:
    """A B-T PDF signed on the official's token (never opened by the server), time-stamped by
    ``tsa_url``: a document kyso did not sign."""
    from hsm import KeyRing, KeySpec, PinSource, Pkcs11Uri
    from signer import KeyProfile, Level, PdfSigningService, SignerSettings, SignRequest

    key = env.keys["official"]
    spec = KeySpec(
        alias="official",
        uri=Pkcs11Uri.parse(key.uri),
        pin=PinSource.from_file(key.pin_path),
        module_path=str(env.module_path),
        chain_files=(env.intermediate_certificate_path,),
    )
    with KeyRing([spec], workers=1) as ring:
        service = PdfSigningService(
            keyring=ring,
            keys={"official": KeyProfile(alias="official", organisation="UBND")},
            settings=SignerSettings(tsa_urls=(tsa_url,)),
        )
        request = SignRequest(pdf=make_pdf(), alias="official", level=Level.B_T)
        return asyncio.run(service.sign(request)).pdf


async def test_a_pdf_received_through_the_exchange_is_renewed(
    dev_env: DevEnvironment, tmp_path: Path
) -> None:
    from kyso.v1 import exchange_pb2, exchange_pb2_grpc

    pdf = await asyncio.to_thread(_signed_elsewhere, dev_env, dev_env.pki.short_tsa_url)
    revoked = await asyncio.to_thread(_signed_elsewhere, dev_env, dev_env.pki.revoked_tsa_url)
    text = render_config(dev_env, address="127.0.0.1:0", data_dir=tmp_path, metrics_address="")
    path = tmp_path / "kyso.toml"
    path.write_text(_archive_text(dev_env, text, renew=False))  # margin: the default 90 days
    config = load_config(path)
    app = Application.open(config)
    server = Server(config, app)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            request = exchange_pb2.SendRequest(
                from_unit="000.21.30.H49", to_units=["000.00.02.H49"]
            )
            request.fields.subject = "Kết quả giải quyết thủ tục hành chính"
            request.fields.attachments.add(
                name="kq.pdf", content_type="application/pdf", content=pdf
            )
            await exchange_pb2_grpc.ExchangeServiceStub(channel).Send(
                request, metadata=_auth(dev_env)
            )
            archive = archive_pb2_grpc.ArchiveServiceStub(channel)
            run = await archive.RunRenewal(archive_pb2.RunRenewalRequest(), metadata=_auth(dev_env))
            assert run.renewed == 1, run.errors

            # a B-B seal cannot be "B-LT" without a time-stamp: refused, nothing stored
            sealed = await signing_pb2_grpc.SigningServiceStub(channel).SignPdf(
                signing_pb2.SignPdfRequest(
                    document=common_pb2.DocumentInput(content=make_pdf()),
                    key_alias="seal",
                    level=signing_pb2.SIGNATURE_LEVEL_B_B,
                ),
                metadata=_auth(dev_env),
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await archive.ExtendDocument(
                    archive_pb2.ExtendDocumentRequest(
                        ref=sealed.document.ref, level=archive_pb2.EXTEND_LEVEL_B_LT
                    ),
                    metadata=_auth(dev_env),
                )
            assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert "B-LTA" in (refused.value.details() or "")

            # evidence ended by the TSA's revocation: counted as ended, its renewal fails
            # (the revoked chain no longer validates) and shows as failing
            await asyncio.to_thread(
                server.app.store.put, revoked, content_type="application/pdf", metadata={}
            )
            run = await archive.RunRenewal(archive_pb2.RunRenewalRequest(), metadata=_auth(dev_env))
            assert (run.renewed, run.failed) == (0, 1)
            status = await archive.GetArchiveStatus(
                archive_pb2.GetArchiveStatusRequest(), metadata=_auth(dev_env)
            )
            assert (status.ended, status.failing) == (1, 1)
            assert status.soonest[0].reason == "tsa-revoked"
        ref = f"sha256/{hashlib.sha256(pdf).hexdigest()}"
        chain = await asyncio.to_thread(server.operations.archive.versions_of, ref)
        assert len(chain) == 2  # the received attachment, then its renewed version
        new = await asyncio.to_thread(server.operations.documents.read_whole, chain[1])
    finally:
        await server.stop()
    assert new.startswith(pdf)
    after = _short_tsa_end(dev_env) + timedelta(days=2)
    assert await asyncio.to_thread(_lta_passes, new, _root(dev_env), after)
