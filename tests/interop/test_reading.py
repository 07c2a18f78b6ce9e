"""What kyso reads in other tools' documents: tolerant reading, an unreadable update after the
signed revisions, revocation data carried in the signature, and the signature's format."""

from __future__ import annotations

import io
import json
from pathlib import Path

from asn1crypto import crl as asn1_crl
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.dss import DocumentSecurityStore

from signer.verify import (
    Indication,
    SubIndication,
    VerificationPolicy,
    render_text,
    verify_pdf,
)
from signer.verify.report import RevocationLocation, RevocationStatus
from tests.interop.corpus import Corpus
from tests.interop.pki import InteropPki
from tests.verify.test_cli import kyso_verify


def test_poppler_document_is_read_tolerantly_and_verified(
    corpus: Corpus, interop_policy: VerificationPolicy
) -> None:
    data = corpus.get("pdfsig-rsa-new-field")
    report = verify_pdf(data, policy=interop_policy)
    assert report.indication is Indication.TOTAL_PASSED
    tolerant = [f for f in report.findings if f.code == "TOLERANT_READING"]
    assert tolerant, report.findings
    assert "orphaned generation" in tolerant[0].detail
    (sig,) = report.signatures
    assert sig.covers_whole_document
    assert sig.byte_range[0] == 0
    assert sig.byte_range[2] + sig.byte_range[3] == len(data)


def test_flipped_byte_in_poppler_document_is_a_hash_failure(
    corpus: Corpus, interop_policy: VerificationPolicy
) -> None:
    report = verify_pdf(corpus.get("pdfsig-flipped-byte"), policy=interop_policy)
    (sig,) = report.signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.HASH_FAILURE,
    )
    assert not sig.intact


def test_unreadable_update_fails_with_the_signatures_shown(
    corpus: Corpus, interop_policy: VerificationPolicy, interop_pki: InteropPki, tmp_path: Path
) -> None:
    signed = corpus.get("pdfsig-rsa-new-field")
    data = corpus.get("pdfsig+unreadable-update")
    report = verify_pdf(data, policy=interop_policy)
    assert report.readable
    assert report.indication is Indication.TOTAL_FAILED
    assert report.sub_indication is SubIndication.FORBIDDEN_MODIFICATION
    (finding,) = [f for f in report.findings if f.code == "UNREADABLE_UPDATE"]
    assert finding.offset == len(signed)
    assert finding.length == len(data) - len(signed)
    assert "cannot be read" in finding.detail
    (sig,) = report.signatures
    assert sig.indication is Indication.TOTAL_PASSED  # the signature itself is genuine
    assert report.document_size == len(data)

    path = tmp_path / "modified.pdf"
    path.write_bytes(data)
    done = kyso_verify(str(path), "--json", "--trust", str(interop_pki.root_pem))
    assert done.returncode == 1, done.stderr
    printed = json.loads(done.stdout)
    assert printed["readable"] is True
    assert [s["field_name"] for s in printed["signatures"]] == ["PopplerSig"]
    text = kyso_verify(str(path), "--lang", "en", "--trust", str(interop_pki.root_pem))
    assert text.returncode == 1
    assert "the update that follows cannot be read" in text.stdout


def test_only_input_that_is_not_a_pdf_exits_3(tmp_path: Path, interop_pki: InteropPki) -> None:
    path = tmp_path / "not.pdf"
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    done = kyso_verify(str(path), "--json", "--trust", str(interop_pki.root_pem))
    assert done.returncode == 3, done.stdout
    assert json.loads(done.stdout)["readable"] is False


def test_crl_in_the_signed_attribute_settles_revocation(
    corpus: Corpus, interop_policy: VerificationPolicy
) -> None:
    report = verify_pdf(corpus.get("itext-cms-crl-in-signature"), policy=interop_policy)
    (sig,) = report.signatures
    assert sig.indication is Indication.TOTAL_PASSED
    assert sig.revocation.status is RevocationStatus.GOOD
    (item,) = sig.revocation.found
    assert item.kind == "crl"
    assert item.location is RevocationLocation.SIGNED_ATTRIBUTE
    assert item.about_signer
    assert "Interop Test Root" in item.issuer
    assert "adbe-revocationInfoArchival" in render_text(report, lang="en")


def test_crl_in_the_cms_crls_field_settles_revocation(
    corpus: Corpus, interop_policy: VerificationPolicy
) -> None:
    (sig,) = verify_pdf(corpus.get("pdfbox-cms-crl-in-cms"), policy=interop_policy).signatures
    assert sig.indication is Indication.TOTAL_PASSED
    assert sig.revocation.status is RevocationStatus.GOOD
    assert [(i.kind, i.location, i.about_signer) for i in sig.revocation.found] == [
        ("crl", RevocationLocation.CMS, True)
    ]


def test_annotation_permitted_by_p3_is_informational(
    corpus: Corpus, interop_policy: VerificationPolicy
) -> None:
    report = verify_pdf(corpus.get("itext-certify3+annotation"), policy=interop_policy)
    assert report.indication is Indication.TOTAL_PASSED
    (update,) = [f for f in report.findings if f.code == "UNSIGNED_UPDATE"]
    assert update.modification_level is not None
    assert update.modification_level.value == "annotations"
    assert "DocMDP P=3" in update.detail


def test_without_the_crl_the_same_signer_is_indeterminate(
    corpus: Corpus, interop_policy: VerificationPolicy
) -> None:
    data = corpus.tools.itext_sign(corpus.get("base"), "crl", "ITextSig")
    (sig,) = verify_pdf(data, policy=interop_policy).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.TRY_LATER,
    )
    assert sig.revocation.status is RevocationStatus.UNKNOWN
    assert sig.revocation.found == ()


def test_no_revocation_data_is_never_reported_as_not_revoked(
    corpus: Corpus, interop_policy: VerificationPolicy
) -> None:
    report = verify_pdf(corpus.get("pdfbox-cms-rsa-invisible"), policy=interop_policy)
    (sig,) = report.signatures
    assert sig.indication is Indication.TOTAL_PASSED
    assert sig.revocation.status is RevocationStatus.NO_DATA
    assert sig.revocation.found == ()
    english = render_text(report, lang="en")
    assert "not revoked" not in english
    assert "names no revocation source" in english


def test_cades_without_signing_certificate_is_not_b_b(
    corpus: Corpus, interop_policy: VerificationPolicy
) -> None:
    (sig,) = verify_pdf(
        corpus.get("pdfbox-cades-no-signing-cert"), policy=interop_policy
    ).signatures
    assert sig.sub_filter == "ETSI.CAdES.detached"
    assert sig.signature_format == "cades-without-signing-certificate"
    assert sig.level_reached.value == "none"
    (cades,) = verify_pdf(corpus.get("pdfbox-cades-ec-invisible"), policy=interop_policy).signatures
    assert cades.signature_format == "cades"
    assert cades.level_reached.value == "B-B"
    (cms,) = verify_pdf(corpus.get("pdfbox-cms-rsa-invisible"), policy=interop_policy).signatures
    assert cms.signature_format == "cms"
    assert cms.level_reached.value == "none"


def test_form_filling_permitted_by_the_certification_is_informational(
    corpus: Corpus, interop_policy: VerificationPolicy
) -> None:
    report = verify_pdf(corpus.get("itext-certify2+fill"), policy=interop_policy)
    assert report.indication is Indication.TOTAL_PASSED
    (update,) = [f for f in report.findings if f.code == "UNSIGNED_UPDATE"]
    assert update.modification_level is not None
    assert update.modification_level.value == "form-filling"
    assert update.severity.value == "info"
    assert "DocMDP P=2" in update.detail


def test_crl_added_to_the_dss_and_its_vri_later(
    corpus: Corpus, interop_policy: VerificationPolicy, interop_pki: InteropPki
) -> None:
    """A CRL added after signing in the DSS (and the signature's /VRI entry), as LTV tools do."""
    signed = corpus.tools.pdfbox_sign(corpus.get("base"), "crl", "BoxSig")
    (sig,) = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    DocumentSecurityStore.supply_dss_in_writer(
        writer,
        sig.sig_object["/Contents"],
        crls=[asn1_crl.CertificateList.load(interop_pki.crl_der.read_bytes())],
    )
    out = io.BytesIO()
    writer.write(out)
    report = verify_pdf(out.getvalue(), policy=interop_policy)
    assert report.indication is Indication.TOTAL_PASSED
    (checked,) = report.signatures
    assert checked.revocation.status is RevocationStatus.GOOD
    assert {(i.kind, i.location, i.about_signer) for i in checked.revocation.found} == {
        ("crl", RevocationLocation.DSS, True),
        ("crl", RevocationLocation.VRI, True),
    }
