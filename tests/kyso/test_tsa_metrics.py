"""TSA failures and the TSA certificate's expiry reach the metrics from the signing workers:
a real `kyso serve` whose first TSA is a closed port signs at B-T through the second, and
`/metrics` shows the failure of the first, the success of the second and the expiry of the
certificate that signed the time-stamp."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
from asn1crypto import pem, x509

from kyso.dev.init import DevEnvironment
from tests.kyso.served import free_port, serve
from tests.signer.pdfgen import make_pdf

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _metrics(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        return str(response.read().decode())


def _value(text: str, name: str, **labels: str) -> float | None:
    """The sample of ``name`` with exactly ``labels`` (in any order), or None."""
    for match in re.finditer(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", text, re.M):
        if dict(re.findall(r'(\w+)="([^"]*)"', match.group(1))) == labels:
            return float(match.group(2))
    return None


def test_a_dead_tsa_is_counted_and_the_live_ones_certificate_expiry_shown(
    dev_env: DevEnvironment, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/tsa"  # nothing listens there
    live = dev_env.tsa_url
    metrics_address = f"127.0.0.1:{free_port()}"

    def edit(text: str) -> str:
        assert f'tsa_urls = ["{live}"]' in text
        assert 'metrics_address = ""' in text
        text = text.replace(f'tsa_urls = ["{live}"]', f'tsa_urls = ["{dead}", "{live}"]')
        return text.replace('metrics_address = ""', f'metrics_address = "{metrics_address}"')

    served = serve(dev_env, tmp_path / "served", edit=edit)
    try:
        before = _metrics(metrics_address)
        assert _value(before, "kyso_tsa_requests_total", url=dead, outcome="failed") is None
        source = tmp_path / "in.pdf"
        source.write_bytes(make_pdf())
        for _ in range(2):
            result = served.kyso(
                "sign", str(source), "-o", str(tmp_path / "out.pdf"), "--key", "seal",
                "--level", "B-T",
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
        text = _metrics(metrics_address)
    finally:
        assert served.stop() == 0

    assert "# TYPE kyso_tsa_requests_total counter" in text
    failed = _value(text, "kyso_tsa_requests_total", url=dead, outcome="failed")
    ok = _value(text, "kyso_tsa_requests_total", url=live, outcome="ok")
    assert failed is not None
    assert failed >= 2  # at least once per signature
    assert ok is not None
    assert ok >= 2
    assert _value(text, "kyso_tsa_requests_total", url=live, outcome="failed") is None
    assert _value(text, "kyso_tsa_requests_total", url=dead, outcome="ok") is None

    tsa = x509.Certificate.load(pem.unarmor(dev_env.pki.tsa_certificate_path.read_bytes())[2])
    expiry = _value(text, "kyso_tsa_certificate_expiry_timestamp_seconds", url=live)
    assert expiry == tsa.not_valid_after.timestamp()
    assert _value(text, "kyso_tsa_certificate_expiry_timestamp_seconds", url=dead) is None
