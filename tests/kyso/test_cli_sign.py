"""`kyso sign` against a running `kyso serve` on the development token, every level and
appearance, checked by pyHanko's validator (bottom line and level) and by poppler's pdfsig."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from asn1crypto import pem, x509

from signer import Level
from tests.kyso.served import Served, serve
from tests.signer.checks import nss_db, validate
from tests.signer.pdfgen import make_pdf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(dev_env, tmp_path_factory) -> Iterator[Served]:
    running = serve(dev_env, tmp_path_factory.mktemp("served"))
    try:
        yield running
    finally:
        assert running.stop() == 0


@pytest.fixture(scope="module")
def root(dev_env) -> x509.Certificate:
    return x509.Certificate.load(pem.unarmor(dev_env.root_certificate_path.read_bytes())[2])


@pytest.mark.parametrize("level", ["B-B", "B-T", "B-LT", "B-LTA"])
@pytest.mark.parametrize("appearance", ["seal", "text", "none"])
async def test_sign_every_level_and_appearance(served, root, tmp_path, level, appearance):
    source = tmp_path / "in.pdf"
    source.write_bytes(make_pdf())
    out = tmp_path / "out.pdf"
    result = served.kyso(
        "sign",
        str(source),
        "-o",
        str(out),
        "--key",
        "seal",
        "--level",
        level,
        "--appearance",
        appearance,
        "--reason",
        "Kết quả giải quyết TTHC",
    )
    assert result.returncode == 0, result.stderr
    assert f"at {level}" in result.stdout
    await validate(out.read_bytes(), root, level=Level(level))


def test_sign_then_seal_again_and_pdfsig(served, dev_env, tmp_path):
    source = tmp_path / "in.pdf"
    source.write_bytes(make_pdf())
    first, second = tmp_path / "first.pdf", tmp_path / "second.pdf"
    assert served.kyso("sign", str(source), "-o", str(first), "--key", "seal-ec").returncode == 0
    result = served.kyso(
        "sign", str(first), "-o", str(second), "--key", "seal", "--appearance", "seal"
    )
    assert result.returncode == 0, result.stderr
    report = subprocess.run(
        ["pdfsig", str(second)], capture_output=True, text=True, check=False
    ).stdout
    assert report.count("Signature Validation: Signature is Valid.") == 2, report


def test_sign_errors_are_one_line(served, tmp_path):
    bogus = tmp_path / "not.pdf"
    bogus.write_bytes(b"hello")
    result = served.kyso("sign", str(bogus), "-o", str(tmp_path / "o.pdf"), "--key", "seal")
    assert result.returncode == 1
    assert result.stderr.startswith("kyso: signing failed: INVALID_ARGUMENT: ")
    assert not (tmp_path / "o.pdf").exists()
    result = served.kyso("sign", str(bogus), "-o", str(tmp_path / "o.pdf"), "--key", "nope")
    assert "NOT_FOUND" in result.stderr


def test_pdfsig_trusts_kyso_signatures(served, dev_env, tmp_path):
    source = tmp_path / "in.pdf"
    source.write_bytes(make_pdf())
    out = tmp_path / "out.pdf"
    assert served.kyso("sign", str(source), "-o", str(out), "--key", "seal").returncode == 0
    db = nss_db(tmp_path / "nss", dev_env.root_certificate_path)
    report = subprocess.run(
        ["pdfsig", "-nssdir", f"sql:{db}", str(out)], capture_output=True, text=True, check=False
    ).stdout
    assert "Signature Validation: Signature is Valid." in report
    assert "Certificate Validation: Certificate is Trusted." in report, report


def test_a_large_pdf_is_uploaded_and_signed_by_ref(served, tmp_path):
    source = tmp_path / "big.pdf"
    source.write_bytes(make_pdf(size=5 * 1024 * 1024))
    out = tmp_path / "big-signed.pdf"
    result = served.kyso("sign", str(source), "-o", str(out), "--key", "seal")
    assert result.returncode == 0, result.stderr
    report = subprocess.run(
        ["pdfsig", str(out)], capture_output=True, text=True, check=False
    ).stdout
    assert "Signature Validation: Signature is Valid." in report
