"""OCSP and CRL fetches reach the metrics from the signing workers, by responder and outcome.

A real `kyso serve` signs at B-LT: with the development responders running, `/metrics` shows
the OCSP fetches that succeeded; with a PKI whose responders are not running (its certificates
name an OCSP URL where nothing listens), it shows the failed fetch of that URL. The tally that
carries the counts from a worker to the server is checked on its own too."""

from __future__ import annotations

import pickle
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import pem, x509
from prometheus_client import generate_latest

from kyso.dev.init import DevEnvironment, dev_init
from kyso.metrics import Metrics
from signer.fetches import FetchCounts, FetchTally, from_note
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
    finally:
        assert served.stop() == 0

    url = _signer_ocsp_url(dead)
    failed = _value(text, "kyso_revocation_requests_total", kind="ocsp", url=url, outcome="failed")
    assert failed is not None
    assert failed >= 2  # once per signature: a failure is never cached
    assert (
        _value(text, "kyso_revocation_requests_total", kind="ocsp", url=url, outcome="ok") is None
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
