"""Both directions between kyso and the other tools.

- kyso seals a document another tool signed first: both signatures verify, each to its anchor;
- kyso's own documents, at every level and appearance, are accepted by poppler's pdfsig (NSS;
  it leaves document time-stamps unchecked),
  by PDFBox with BouncyCastle (the checks of PDFBox's examples) and by iText 5's own
  ``PdfPKCS7.verify`` with its certificate verification. iText 5 cannot check
  ``ecdsa-with-SHA256`` signature values, so the P-256 seal is checked by pdfsig and PDFBox only.
"""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from asn1crypto import cms
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields

from kyso.dev.init import DevEnvironment
from signer import AppearanceKind, Level
from signer.verify import Indication, VerificationPolicy, verify_pdf
from tests.interop.corpus import Corpus
from tests.interop.tools import Tools
from tests.verify.conftest import OFFICIAL_RECT, SEAL_RECT, Signed

# (name, key alias, level, appearance, certify)
KYSO_DOCUMENTS = (
    ("seal-b-b-invisible", "seal", Level.B_B, AppearanceKind.NONE, False),
    ("seal-b-t-seal", "seal", Level.B_T, AppearanceKind.SEAL, False),
    ("seal-b-lt-text", "seal", Level.B_LT, AppearanceKind.TEXT, False),
    ("seal-b-lta-seal", "seal", Level.B_LTA, AppearanceKind.SEAL, False),
    ("seal-certified-b-lt", "seal", Level.B_LT, AppearanceKind.SEAL, True),
    ("official-b-lt-seal", "official", Level.B_LT, AppearanceKind.SEAL, False),
    ("seal-ec-b-lt-seal", "seal-ec", Level.B_LT, AppearanceKind.SEAL, False),
)


def test_kyso_seals_after_another_tool(
    corpus: Corpus,
    kyso_seal: Callable[[bytes], bytes],
    both_policy: VerificationPolicy,
) -> None:
    corpus.kyso_seal = kyso_seal
    report = verify_pdf(corpus.get("itext+kyso"), policy=both_policy)
    assert report.indication is Indication.TOTAL_PASSED, [
        (s.field_name, s.problems) for s in report.signatures
    ]
    anchors = [s.trust_anchor or "" for s in report.signatures if s.kind.value == "signature"]
    assert len(anchors) == 2
    assert "Interop Test Root" in anchors[0]
    assert "Interop Test Root" not in anchors[1]
    sealed = [s for s in report.signatures if s.kind.value == "signature"][1]
    assert sealed.revocation.status.value == "good"
    assert any(i.about_signer and i.location.value == "dss" for i in sealed.revocation.found)


@pytest.fixture(scope="module")
def kyso_documents(signed: Signed) -> dict[str, bytes]:
    documents = {}
    for name, alias, level, appearance, certify in KYSO_DOCUMENTS:
        rect = None if appearance is AppearanceKind.NONE else SEAL_RECT
        documents[name] = signed.sign(
            signed.base, alias, level, appearance=appearance, rect=rect, certify=certify
        )
    documents["official-then-seal-b-lta"] = signed.sign(
        signed.sign(
            signed.base, "official", Level.B_LTA, appearance=AppearanceKind.SEAL, rect=OFFICIAL_RECT
        ),
        "seal",
        Level.B_LTA,
        appearance=AppearanceKind.SEAL,
        rect=SEAL_RECT,
    )
    return documents


@pytest.fixture(scope="module")
def dev_nss(tmp_path_factory: pytest.TempPathFactory, dev_env: DevEnvironment) -> Path:
    """An NSS database that trusts kyso's development root, as an auditor would set it up."""
    directory = tmp_path_factory.mktemp("nss-dev")
    for args in (
        ["certutil", "-N", "-d", f"sql:{directory}", "--empty-password"],
        [
            "certutil",
            "-A",
            "-d",
            f"sql:{directory}",
            "-n",
            "kyso-dev-root",
            "-t",
            "CT,C,C",
            "-i",
            str(dev_env.root_certificate_path),
        ],
    ):
        subprocess.run(args, check=True, capture_output=True, timeout=60)
    return directory


def _pdfsig(path: Path, nss: Path) -> list[tuple[str, str, str, str]]:
    """(field, sub-filter, signature validation, certificate validation) per signature, as
    pdfsig says."""
    done = subprocess.run(
        ["pdfsig", "-nssdir", f"sql:{nss}", "-no-ocsp", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    blocks = re.split(r"^Signature #\d+:$", done.stdout, flags=re.MULTILINE)[1:]
    found = []
    for block in blocks:
        field = re.search(r"Signature Field Name: (.*)", block)
        kind = re.search(r"Signature Type: (.*)", block)
        sig = re.search(r"Signature Validation: (.*)", block)
        cert = re.search(r"Certificate Validation: (.*)", block)
        found.append(
            (
                field.group(1) if field else "?",
                kind.group(1) if kind else "?",
                sig.group(1) if sig else "?",
                cert.group(1) if cert else "?",
            )
        )
    assert found, done.stdout + done.stderr
    return found


def _timestamp_fields(data: bytes) -> set[str]:
    """Names of the document time-stamp fields (pyHanko's reading of the form)."""
    reader = PdfFileReader(io.BytesIO(data))
    return {
        str(name)
        for name, value, _ in enumerate_sig_fields(reader, filled_status=True)
        if value is not None and value.get_object().get("/Type") == "/DocTimeStamp"
    }


def _vfychain(path: Path, number: int, nss: Path, scratch: Path) -> str:
    """NSS's ``vfychain`` on signature ``number``'s chain (dumped by ``pdfsig -dump``)."""
    dump = scratch / f"dump-{path.stem}"
    dump.mkdir(exist_ok=True)
    subprocess.run(
        ["pdfsig", "-nssdir", f"sql:{nss}", "-dump", str(path)],
        cwd=dump,
        capture_output=True,
        timeout=120,
        check=False,
    )
    (cms_file,) = dump.glob(f"*.sig{number - 1}") or dump.glob(f"*sig{number}*")
    signed_data = cms.ContentInfo.load(cms_file.read_bytes())["content"]
    sid = signed_data["signer_infos"][0]["sid"].chosen
    certs = [c.chosen for c in signed_data["certificates"] if c.name == "certificate"]
    ordered = sorted(
        certs,
        key=lambda c: 0 if c.serial_number == sid["serial_number"].native else 1,
    )
    files = []
    for index, cert in enumerate(ordered):
        der = dump / f"cert-{number}-{index}.der"
        der.write_bytes(cert.dump())
        files.append(str(der))
    done = subprocess.run(
        ["vfychain", "-d", f"sql:{nss}", "-u", "4", *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode == 0 and "Chain is good!" in done.stdout + done.stderr:
        return "Certificate is Trusted."
    return f"vfychain: {done.stdout.strip()} {done.stderr.strip()}"


@pytest.mark.parametrize(
    "name",
    [d[0] for d in KYSO_DOCUMENTS] + ["official-then-seal-b-lta"],
)
def test_kyso_documents_accepted_by_other_tools(
    name: str,
    kyso_documents: dict[str, bytes],
    interop_tools: Tools,
    dev_nss: Path,
    dev_env: DevEnvironment,
    tmp_path: Path,
) -> None:
    data = kyso_documents[name]
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(data)
    checked = _pdfsig(path, dev_nss)
    stamps = _timestamp_fields(data)
    assert any(field not in stamps for field, _, _, _ in checked)
    for number, (field, kind, signature, certificate) in enumerate(checked, start=1):
        if field in stamps or "RFC3161" in kind:
            # pdfsig 22.12 does not check document time-stamps ("not yet been verified");
            # PDFBox and iText below do.
            continue
        assert signature == "Signature is Valid.", (field, signature)
        if certificate.startswith("Unknown issue"):
            # pdfsig 22.12 reports a stale NSS error after a good chain: NSS's own chain
            # validator decides (TOOLCHAIN.md).
            certificate = _vfychain(path, number, dev_nss, tmp_path)
        assert certificate == "Certificate is Trusted.", (field, certificate)
    root = dev_env.root_certificate_path
    box = interop_tools.pdfbox_verify(data, root)
    assert box, "PDFBox found no signature"
    for line in box:
        field, ok, _, chain = line.split(" ", 3)
        assert ok == "ok", f"PDFBox: {line}"
        assert chain == "chain-ok", f"PDFBox: {line}"
    if "seal-ec" in name:
        return  # iText 5 cannot check ecdsa-with-SHA256 values (see the module docstring)
    itext = interop_tools.itext_verify(data, root)
    assert itext, "iText found no signature"
    for line in itext:
        field, ok, _, chain = line.split(" ", 3)
        assert ok == "ok", f"iText: {line}"
        assert chain == "chain-ok", f"iText: {line}"
