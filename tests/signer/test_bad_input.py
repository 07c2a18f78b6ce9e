"""Each bad input raises its precise error, and nothing half-signed is returned."""

from __future__ import annotations

import io
import subprocess

import pytest
from asn1crypto import cms
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.general import as_signing_certificate_v2

from kyso.dev.responders import free_port
from signer import (
    AppearanceKind,
    DocumentTooLarge,
    FieldNotFound,
    Level,
    NotAPdf,
    PageNotFound,
    PdfCorrupt,
    PdfEncrypted,
    RectangleInvalid,
    SignRequest,
    TimestampUnavailable,
    UnknownKeyAlias,
)
from signer.appearance import AppearanceKind as Kind
from signer.appearance import KysoStampStyle, PreparedStamp, StampIdentity
from tests.signer.conftest import make_service
from tests.signer.pdfgen import encrypted_pdf, make_pdf, pdf_with_empty_field


@pytest.mark.parametrize(
    ("pdf", "error"),
    [
        (b"hello, this is not a PDF", NotAPdf),
        (make_pdf()[:200], PdfCorrupt),
        (make_pdf().replace(b"/Pages", b"/Pagez"), PdfCorrupt),
        (encrypted_pdf(), PdfEncrypted),
    ],
    ids=["not-a-pdf", "truncated", "corrupt", "encrypted"],
)
async def test_bad_documents(service, pdf, error):
    with pytest.raises(error) as caught:
        await service.sign(SignRequest(pdf=pdf, alias="seal"))
    assert caught.value.field == "document"


async def test_a_document_over_the_limit(dev_env, keyring):
    small = make_service(dev_env, keyring, max_document_size=10_000)
    with pytest.raises(DocumentTooLarge, match="limit"):
        await small.sign(SignRequest(pdf=make_pdf(size=20_000), alias="seal"))


async def test_unknown_alias(service):
    with pytest.raises(UnknownKeyAlias, match="nope"):
        await service.sign(SignRequest(pdf=make_pdf(), alias="nope"))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"page": 3, "rect": (10.0, 10.0, 100.0, 60.0)}, PageNotFound),
        ({"page": 1, "rect": (500.0, 10.0, 700.0, 60.0)}, RectangleInvalid),
        ({"page": 1, "rect": (100.0, 60.0, 50.0, 10.0)}, RectangleInvalid),
        ({"page": 1, "rect": (10.0, 10.0, 40.0, 20.0), "appearance": Kind.SEAL}, RectangleInvalid),
        ({"field_name": "Missing"}, FieldNotFound),
    ],
    # (a seal without a rect takes its default place: tests/kyso/test_contract.py)
    ids=["page", "outside", "inverted", "too-small", "field"],
)
async def test_bad_placements(service, kwargs, error):
    with pytest.raises(error):
        await service.sign(SignRequest(pdf=make_pdf(pages=2), alias="seal", **kwargs))


async def test_an_existing_empty_field_is_used(service):
    pdf = pdf_with_empty_field("KyTen", (300, 600, 560, 690))
    signed = await service.sign(
        SignRequest(pdf=pdf, alias="seal", field_name="KyTen", appearance=AppearanceKind.SEAL)
    )
    assert signed.field_name == "KyTen"
    with pytest.raises(FieldNotFound, match="already signed"):
        await service.sign(SignRequest(pdf=signed.pdf, alias="seal", field_name="KyTen"))


@pytest.mark.parametrize("level", [Level.B_T, Level.B_LT, Level.B_LTA])
async def test_an_unreachable_tsa_fails_the_whole_signature(dev_env, keyring, level):
    dead = f"http://127.0.0.1:{free_port()}/tsa"
    offline = make_service(dev_env, keyring, tsa_urls=(dead,), tsa_timeout=2.0)
    with pytest.raises(TimestampUnavailable, match="no time-stamping authority"):
        await offline.sign(SignRequest(pdf=make_pdf(), alias="seal", level=level))


async def test_tsa_failover_uses_the_next_one(dev_env, keyring):
    dead = f"http://127.0.0.1:{free_port()}/tsa"
    service = make_service(dev_env, keyring, tsa_urls=(dead, dev_env.tsa_url), tsa_timeout=2.0)
    signed = await service.sign(SignRequest(pdf=make_pdf(), alias="seal", level=Level.B_T))
    assert PdfFileReader(io.BytesIO(signed.pdf)).embedded_signatures


async def test_the_cached_signing_certificate_attribute_is_pyhankos(service, keyring):
    signed = await service.sign(SignRequest(pdf=make_pdf(), alias="seal"))
    sig = PdfFileReader(io.BytesIO(signed.pdf)).embedded_signatures[0]
    attrs = {a["type"].native: a for a in sig.signer_info["signed_attrs"]}
    expected = as_signing_certificate_v2(keyring.certificate("seal"))
    assert attrs["signing_certificate_v2"]["values"][0].dump() == expected.dump()
    assert isinstance(sig.signed_data, cms.SignedData)


def _render(pdf: bytes, tmp_path, name: str) -> bytes:
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "100", "-png", "-singlefile", str(path), str(tmp_path / name)],
        check=True,
    )
    image: bytes = (tmp_path / f"{name}.png").read_bytes()
    return image


def test_a_reused_stamp_renders_like_a_fresh_one(dev_env, tmp_path):
    """The fast path (stamp prepared once, reused) draws exactly what a fresh stamp draws."""
    from datetime import datetime

    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.layout import BoxConstraints

    from signer.appearance import VIETNAM_TIME

    identity = StampIdentity(
        signer_name="Nguyễn Văn A", organisation=dev_env.organisation.name, email="a@b.test"
    )

    def prepare() -> PreparedStamp:
        return PreparedStamp.prepare(
            kind=Kind.SEAL,
            identity=identity,
            signer_image=dev_env.signature_image,
            seal_image=dev_env.seal_image,
        )

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=VIETNAM_TIME)
    reused = prepare()

    def stamped(stamp: PreparedStamp) -> bytes:
        writer = IncrementalPdfFileWriter(io.BytesIO(make_pdf()))
        style = KysoStampStyle(stamp=stamp, placed=stamp.layout(260, 90, when))
        style.create_stamp(writer, BoxConstraints(width=260, height=90), {}).apply(0, 300, 650)
        out = io.BytesIO()
        writer.write(out)  # type: ignore[no-untyped-call]
        return out.getvalue()

    reused_first = stamped(reused)  # warm: the first use of the prepared stamp
    images = [
        _render(stamped(reused), tmp_path, "reused"),
        _render(stamped(prepare()), tmp_path, "fresh"),
        _render(reused_first, tmp_path, "first"),
    ]
    assert images[0] == images[1] == images[2]
    assert _render(make_pdf(), tmp_path, "blank") != images[0]
