"""The fast /Contents reader gives exactly pyHanko's results; byte-level scans; trust inputs."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfReadError

from signer import Level
from signer.verify import TrustAnchorInvalid, TrustProfile, VerificationPolicy, verify_pdf
from signer.verify.report import report_to_dict
from signer.verify.structure import (
    install_fast_hex_reader,
    read_hex_string_fast,
    scan,
    uninstall_fast_hex_reader,
)
from signer.verify.trust import normalise_fingerprint
from tests.verify import attacks

STOCK = generic.read_hex_string_from_stream


@pytest.mark.parametrize(
    "raw",
    [
        b"<4142>",
        b"<41 42\n43\t>",
        b"<414>",
        b"<>",
        b"< 4 1 4 2 >rest",
        b"<41 % a comment > here\n42>",
        b"<" + b"ab" * 20000 + b">",
    ],
)
def test_fast_reader_matches_stock(raw):
    fast_stream, stock_stream = io.BytesIO(raw), io.BytesIO(raw)
    assert read_hex_string_fast(fast_stream) == STOCK(stock_stream)
    assert fast_stream.tell() == stock_stream.tell()


@pytest.mark.parametrize("raw", [b"<41 4G>", b"<4142"])
def test_fast_reader_fails_like_stock(raw):
    with pytest.raises(PdfReadError) as stock_error:
        STOCK(io.BytesIO(raw))
    with pytest.raises(PdfReadError) as fast_error:
        read_hex_string_fast(io.BytesIO(raw))
    assert type(fast_error.value) is type(stock_error.value)
    assert str(fast_error.value) == str(stock_error.value)


def test_reports_are_identical_with_either_reader(signed, policy):
    fixed = VerificationPolicy(
        trust=policy.trust, validation_time=datetime.now(UTC), limits=policy.limits
    )
    documents = [
        signed.get("seal", Level.B_LT),
        signed.get("seal", Level.B_LTA),
        signed.official_then_seal(),
        attacks.contents_emptied(signed.get("seal", Level.B_LT)),
        attacks.huge_signature_contents(20_000),
    ]
    try:
        stock = [report_to_dict(verify_pdf(d, policy=fixed)) for d in documents]
        assert install_fast_hex_reader()
        fast = [report_to_dict(verify_pdf(d, policy=fixed)) for d in documents]
    finally:
        uninstall_fast_hex_reader()
    assert fast == stock


def test_scan_counts_objects_and_finds_the_header():
    assert scan(b"garbage").header_offset is None
    result = scan(b"junk\n%PDF-1.7\n1 0 obj\nnull\nendobj\n2 0 obj null endobj 12 0 obj")
    assert result.header_offset == 5
    assert result.object_headers == 3


def test_fingerprints_are_normalised():
    hex64 = "AB" * 32
    assert normalise_fingerprint(":".join([hex64[i : i + 2] for i in range(0, 64, 2)])) == (
        "ab" * 32
    )
    assert normalise_fingerprint("sha256:" + hex64) == "ab" * 32
    with pytest.raises(TrustAnchorInvalid, match="64 hex digits"):
        normalise_fingerprint("abcd")


def test_trust_files_are_checked(tmp_path, dev_env):
    with pytest.raises(TrustAnchorInvalid, match="cannot read"):
        TrustProfile.from_sources(name="x", pem_files=[tmp_path / "missing.pem"])
    empty = tmp_path / "key.pem"
    empty.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(TrustAnchorInvalid, match="no CERTIFICATE block"):
        TrustProfile.from_sources(name="x", pem_files=[empty])
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(
        dev_env.root_certificate_path.read_bytes()
        + dev_env.intermediate_certificate_path.read_bytes()
    )
    assert len(TrustProfile.from_sources(name="x", pem_files=[bundle]).certificates) == 2
