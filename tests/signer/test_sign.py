"""Signing at every level, with each appearance; checked by pyHanko, pdfsig and pdftotext."""

from __future__ import annotations

import io
import subprocess

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from signer import AppearanceKind, Level, SignRequest
from signer.appearance import format_signing_time
from tests.signer.checks import nss_db, pdfsig, validate
from tests.signer.conftest import load_cert
from tests.signer.pdfgen import make_pdf

SEAL_RECT = (300.0, 650.0, 560.0, 740.0)


@pytest.fixture(scope="module")
def nss(tmp_path_factory, dev_env):
    return nss_db(tmp_path_factory.mktemp("nss") / "db", dev_env.root_certificate_path)


def _request(alias: str, level: Level, appearance: AppearanceKind, pdf: bytes) -> SignRequest:
    visible = appearance is AppearanceKind.SEAL
    return SignRequest(
        pdf=pdf,
        alias=alias,
        level=level,
        appearance=appearance,
        page=1 if visible else None,
        rect=SEAL_RECT if visible else None,
        reason="Đóng dấu văn bản",
        location="Hạ Long, Quảng Ninh",
        contact="vanthu@dev.kyso.test",
    )


@pytest.mark.parametrize("level", list(Level))
@pytest.mark.parametrize("appearance", [AppearanceKind.SEAL, AppearanceKind.NONE])
async def test_each_level_validates(service, dev_env, nss, tmp_path, level, appearance):
    pdf = make_pdf()
    signed = await service.sign(_request("seal", level, appearance, pdf))
    assert signed.pdf.startswith(pdf)  # an incremental update: the original bytes are intact
    root = load_cert(dev_env.root_certificate_path)
    (status,) = await validate(signed.pdf, root, level=level)
    assert status.signing_cert.subject.native["common_name"] == dev_env.organisation.name
    out = tmp_path / "signed.pdf"
    out.write_bytes(signed.pdf)
    first = pdfsig(out, nss)[0]
    assert first["Signature Validation"] == "Signature is Valid."


async def test_pdfsig_trusts_the_chain(service, nss, tmp_path):
    """pdfsig (NSS) trusts the dev chain: the signer's OCSP responder answers are readable to NSS.

    Also run without ``-no-ocsp`` on purpose: poppler 22.12 with ``-no-ocsp`` reports every
    chain as "Unknown issue" (a stale SEC_ERROR_EXTENSION_NOT_FOUND), whatever the PKI.
    """
    signed = await service.sign(_request("seal", Level.B_B, AppearanceKind.NONE, make_pdf()))
    out = tmp_path / "signed.pdf"
    out.write_bytes(signed.pdf)
    assert pdfsig(out, nss)[0]["Certificate Validation"] == "Certificate is Trusted."


async def test_ec_key_signs(service, dev_env):
    signed = await service.sign(_request("seal-ec", Level.B_T, AppearanceKind.NONE, make_pdf()))
    await validate(signed.pdf, load_cert(dev_env.root_certificate_path), level=Level.B_T)


async def test_reason_location_contact_are_recorded(service):
    signed = await service.sign(_request("seal", Level.B_B, AppearanceKind.NONE, make_pdf()))
    sig = PdfFileReader(io.BytesIO(signed.pdf)).embedded_signatures[0].sig_object
    assert sig["/Reason"] == "Đóng dấu văn bản"
    assert sig["/Location"] == "Hạ Long, Quảng Ninh"
    assert sig["/ContactInfo"] == "vanthu@dev.kyso.test"


def _text_in(pdf: bytes, rect, tmp_path) -> str:
    """The text pdftotext finds inside ``rect`` on page 1 (A4), whitespace collapsed."""
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    x1, y1, x2, y2 = (round(v) for v in rect)
    crop = ["-x", str(x1), "-y", str(842 - y2), "-W", str(x2 - x1), "-H", str(y2 - y1)]
    done = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", "-r", "72", *crop, str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return " ".join(done.stdout.split())


def _rect(pdf: bytes) -> tuple[float, ...]:
    field = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0].sig_field
    annot = field["/Kids"][0].get_object() if "/Kids" in field else field
    return tuple(float(v) for v in annot["/Rect"])


async def test_the_seal_text_block_extracts_exactly(service, dev_env, tmp_path):
    signed = await service.sign(_request("seal", Level.B_B, AppearanceKind.SEAL, make_pdf()))
    flat = _text_in(signed.pdf, SEAL_RECT, tmp_path)
    when = format_signing_time(signed.signing_time)
    assert when.endswith(" +07:00")
    org = dev_env.organisation.name
    assert f"Ký bởi: {org}" in flat
    assert "Email: vanthu@dev.kyso.test" in flat
    assert f"Cơ quan: {org}" in flat
    assert f"Thời gian ký: {when}" in flat


async def test_the_text_form_sits_top_right_of_page_one(service, dev_env, tmp_path):
    pdf = make_pdf(pages=2)
    signed = await service.sign(_request("official", Level.B_B, AppearanceKind.TEXT, pdf))
    rect = _rect(signed.pdf)
    x1, _y1, x2, y2 = rect
    assert x1 > 250  # the top right corner of an A4 page
    assert x2 > 500
    assert y2 > 780
    flat = _text_in(signed.pdf, rect, tmp_path)
    assert "Ký bởi: Nguyễn Văn A" in flat
    assert f"Thời gian ký: {format_signing_time(signed.signing_time)}" in flat


async def test_leader_then_organisation_both_stay_valid(service, dev_env, nss, tmp_path):
    leader = await service.sign(
        SignRequest(
            pdf=make_pdf(),
            alias="official",
            level=Level.B_T,
            appearance=AppearanceKind.SEAL,
            page=1,
            rect=(300.0, 600.0, 560.0, 690.0),
            field_name="LanhDao",
        )
    )
    sealed = await service.sign(
        SignRequest(
            pdf=leader.pdf,
            alias="seal",
            level=Level.B_LT,
            appearance=AppearanceKind.SEAL,
            page=1,
            rect=(300.0, 500.0, 560.0, 590.0),
            field_name="VanThu",
        )
    )
    assert sealed.pdf.startswith(leader.pdf)
    statuses = await validate(sealed.pdf, load_cert(dev_env.root_certificate_path), level=Level.B_T)
    assert [s.signing_cert.subject.native["common_name"] for s in statuses] == [
        "Nguyễn Văn A",
        dev_env.organisation.name,
    ]
    out = tmp_path / "two.pdf"
    out.write_bytes(sealed.pdf)
    report = pdfsig(out, nss)
    assert [r["Signature Validation"] for r in report] == ["Signature is Valid."] * 2


async def test_certification_then_nothing_more(service):
    from signer import CertificationForbidsSigning

    certified = await service.sign(SignRequest(pdf=make_pdf(), alias="seal", certify=True))
    reader = PdfFileReader(io.BytesIO(certified.pdf))
    assert "/DocMDP" in reader.root["/Perms"]
    with pytest.raises(CertificationForbidsSigning):
        await service.sign(SignRequest(pdf=certified.pdf, alias="official"))
