"""OCSP and CRL fetches reach the metrics from the signing and verification workers, by
responder and outcome.

A real `kyso serve` signs at B-LT, or verifies a B-B signature with `VerifyPdf` online: with the
development responders running, `/metrics` shows the OCSP fetches that succeeded; with a PKI
whose responders are not running (its certificates name an OCSP URL where nothing listens), it
shows the failed fetches of that URL. A verifier whose fetch rules do not allow the responder's
loopback address counts the fetch it refused as blocked. The tally that carries the counts from
a worker to the server is checked on its own too."""

from __future__ import annotations

import pickle
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from asn1crypto import pem, x509
from prometheus_client import generate_latest

from kyso.dev.init import DevEnvironment, dev_init
from kyso.metrics import Metrics
from kyso.v1 import common_pb2, verification_pb2, verification_pb2_grpc
from signer.fetches import FetchCounts, FetchTally, from_note
from signer.verify import FetchRules, TrustProfile, VerificationPolicy, verify_pdf
from tests.kyso.served import free_port, serve
from tests.kyso.test_tsa_metrics import _value
from tests.signer.pdfgen import make_pdf


def _metrics(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        return str(response.read().decode())


def _signer_ocsp_url(env: DevEnvironment) -> str:
    """The OCSP responder named by the certificate of the development key ``seal``."""
    der = pem.unarmor(env.keys["seal"].certificate_path.read_bytes())[2]
    urls = x509.Certificate.load(der).ocsp_urls
    assert urls, "the development seal certificate names an OCSP responder"
    return str(urls[0])


def _sign_b_lt(served, tmp_path: Path):  # type: ignore[no-untyped-def]
    source = tmp_path / "in.pdf"
    source.write_bytes(make_pdf())
    return served.kyso(
        "sign", str(source), "-o", str(tmp_path / "out.pdf"), "--key", "seal", "--level", "B-LT"
    )


def _signed_b_b(served, tmp_path: Path) -> bytes:  # type: ignore[no-untyped-def]
    """A PDF signed by ``seal`` at B-B: no revocation data in it, so verifying it online
    fetches the OCSP answer for the seal's certificate."""
    source, signed = tmp_path / "in.pdf", tmp_path / "b-b.pdf"
    source.write_bytes(make_pdf())
    result = served.kyso("sign", str(source), "-o", str(signed), "--key", "seal", "--level", "B-B")
    assert result.returncode == 0, result.stderr
    return signed.read_bytes()


def _verify_online(served, env: DevEnvironment, pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    """``VerifyPdf`` with online fetching, over gRPC as the development client."""
    token = env.api_token_path.read_text().strip()
    with grpc.insecure_channel(served.address) as channel:
        verification_pb2_grpc.VerificationServiceStub(channel).VerifyPdf(
            verification_pb2.VerifyPdfRequest(
                document=common_pb2.DocumentInput(content=pdf, filename="b-b.pdf"), online=True
            ),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=120,
        )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_good_ocsp_fetch_is_counted_ok(dev_env: DevEnvironment, tmp_path: Path) -> None:
    metrics_address = f"127.0.0.1:{free_port()}"
    served = serve(
        dev_env,
        tmp_path / "served",
        edit=lambda text: text.replace(
            'metrics_address = ""', f'metrics_address = "{metrics_address}"'
        ),
    )
    try:
        result = _sign_b_lt(served, tmp_path)
        assert result.returncode == 0, result.stderr
        text = _metrics(metrics_address)
    finally:
        assert served.stop() == 0

    assert "# TYPE kyso_revocation_requests_total counter" in text
    url = _signer_ocsp_url(dev_env)
    ok = _value(text, "kyso_revocation_requests_total", kind="ocsp", url=url, outcome="ok")
    assert ok is not None
    assert ok >= 1
    assert (
        _value(text, "kyso_revocation_requests_total", kind="ocsp", url=url, outcome="failed")
        is None
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_online_verification_counts_its_ocsp_fetches(
    dev_env: DevEnvironment, tmp_path: Path
) -> None:
    metrics_address = f"127.0.0.1:{free_port()}"
    served = serve(
        dev_env,
        tmp_path / "served",
        edit=lambda text: text.replace(
            'metrics_address = ""', f'metrics_address = "{metrics_address}"'
        ),
    )
    url = _signer_ocsp_url(dev_env)
    try:
        pdf = _signed_b_b(served, tmp_path)
        before = _metrics(metrics_address)
        _verify_online(served, dev_env, pdf)
        after = _metrics(metrics_address)
    finally:
        assert served.stop() == 0

    label = {"kind": "ocsp", "url": url}
    assert _value(before, "kyso_revocation_requests_total", **label, outcome="ok") is None
    ok = _value(after, "kyso_revocation_requests_total", **label, outcome="ok")
    assert ok is not None
    assert ok >= 1
    for outcome in ("failed", "refused", "blocked"):
        assert _value(after, "kyso_revocation_requests_total", **label, outcome=outcome) is None

    # The same document, verified where the rules list nothing: the development responders'
    # loopback address is refused before any connection, and the refusal is counted as blocked.
    tally = FetchTally()
    verify_pdf(
        pdf,
        policy=VerificationPolicy(
            trust=(
                TrustProfile.from_sources(name="dev", pem_files=[dev_env.root_certificate_path]),
            ),
            online=True,
            fetching=FetchRules(()),
        ),
        tally=tally,
    )
    counted = tally.totals().revocation_requests
    # The path is checked from the top: the issuing CA's status, from the root's CRL, is the
    # first fetch, and with it refused the validation ends there.
    assert counted == {("crl", dev_env.pki.crl_url("root"), "blocked"): 1}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_unreachable_ocsp_responder_is_counted_failed(
    dev_env: DevEnvironment, tmp_path: Path
) -> None:
    # A PKI of its own whose responders are never started: its certificates name an OCSP
    # responder on a port where nothing listens. The TSA is the running development one.
    dead = dev_init(tmp_path / "dead-dev", responders_port=free_port())
    metrics_address = f"127.0.0.1:{free_port()}"

    def edit(text: str) -> str:
        assert f'tsa_urls = ["{dead.tsa_url}"]' in text
        text = text.replace(f'tsa_urls = ["{dead.tsa_url}"]', f'tsa_urls = ["{dev_env.tsa_url}"]')
        return text.replace('metrics_address = ""', f'metrics_address = "{metrics_address}"')

    served = serve(
        dead, tmp_path / "served", edit=edit, env={"SOFTHSM2_CONF": str(dead.softhsm_conf)}
    )
    try:
        for _ in range(2):
            result = _sign_b_lt(served, tmp_path)
            assert result.returncode != 0
            assert "revocation" in result.stderr.lower(), result.stderr
        text = _metrics(metrics_address)
        # Online verification of a B-B signature asks the same dead responders.
        _verify_online(served, dead, _signed_b_b(served, tmp_path))
        verified = _metrics(metrics_address)
    finally:
        assert served.stop() == 0

    url = _signer_ocsp_url(dead)
    failed = _value(text, "kyso_revocation_requests_total", kind="ocsp", url=url, outcome="failed")
    assert failed is not None
    assert failed >= 2  # once per signature: a failure is never cached
    assert (
        _value(text, "kyso_revocation_requests_total", kind="ocsp", url=url, outcome="ok") is None
    )
    # Verification checks the path from the top: the issuing CA's status, from the root's CRL
    # at the same dead address, is the first fetch, and its failure ends the validation.
    crl_url = dead.pki.crl_url("root")
    assert (
        _value(text, "kyso_revocation_requests_total", kind="crl", url=crl_url, outcome="failed")
        is None
    )
    assert (
        _value(
            verified, "kyso_revocation_requests_total", kind="crl", url=crl_url, outcome="failed"
        )
        == 1
    )


def test_a_workers_counts_merge_into_the_servers_totals() -> None:
    noted: list[FetchCounts] = []
    worker = FetchTally(forward=noted.append)  # a worker keeps nothing: each record goes on
    later = datetime(2030, 1, 1, tzinfo=UTC)
    worker.tsa("http://tsa/", "failed")
    worker.tsa("http://tsa/", "ok", not_after=later)
    worker.revocation("ocsp", "http://ocsp/", "failed")
    worker.revocation("ocsp", "http://ocsp/", "failed")
    worker.revocation("crl", "http://crl/", "ok")
    assert worker.totals() == FetchCounts()
    assert len(noted) == 5

    server = FetchTally()
    server.revocation("ocsp", "http://ocsp/", "refused")  # the two-phase signer, in-process
    for counts in noted:  # as notes: pickled over the socket and back
        server.add(from_note(pickle.dumps(counts)))
    totals = server.totals()
    assert totals.tsa_requests == {("http://tsa/", "failed"): 1, ("http://tsa/", "ok"): 1}
    assert totals.tsa_certificate_not_after == {"http://tsa/": later}
    assert totals.revocation_requests == {
        ("ocsp", "http://ocsp/", "failed"): 2,
        ("ocsp", "http://ocsp/", "refused"): 1,
        ("crl", "http://crl/", "ok"): 1,
    }
    totals.revocation_requests.clear()  # a copy: the server's totals are untouched
    assert server.totals().revocation_requests[("crl", "http://crl/", "ok")] == 1

    metrics = Metrics()
    metrics.watch_fetches(server.totals)
    text = generate_latest(metrics.registry).decode()
    assert (
        _value(
            text,
            "kyso_revocation_requests_total",
            kind="ocsp",
            url="http://ocsp/",
            outcome="failed",
        )
        == 2
    )
    assert _value(text, "kyso_tsa_requests_total", url="http://tsa/", outcome="ok") == 1
    assert (
        _value(text, "kyso_tsa_certificate_expiry_timestamp_seconds", url="http://tsa/")
        == later.timestamp()
    )
