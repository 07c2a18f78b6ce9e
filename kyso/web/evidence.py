"""The evidence bundle: one ZIP per document that an auditor can check with no server.

Contents (schema ``kyso.evidence/1``)::

    manifest.json           schema, document_sha256, created_at, and {file: sha256} of every
                            other file (the ZIP holds nothing else)
    document.pdf            the document as verified
    report.json             kyso's verification report (schema kyso.verification/1)
    report.pdf              the same report as a PDF sealed by kyso (absent when no report key)
    ledger/entries.jsonl    the ledger entries about the document, canonical bytes, one a line
    ledger/proofs.json      for each entry: index, tree_size, leaf_hash, audit_path (hex)
    ledger/tree-head.json   the signed tree head the proofs lead to (size, root, time,
                            algorithm, signed data, signature; hex)
    certificates/ledger.der the certificate that signed the tree head

``verify_bundle`` checks, in this order, and names the first fault: the ZIP and its manifest;
every file against its hash (and no file unlisted); the document against the manifest and the
report; the tree head's signature (against its certificate, or a trusted set when given); each
entry's canonical form, that it is about the document, its leaf hash, and its inclusion proof
against the head's root; that at least one entry is there; the sealed report's signature
(intact, valid, covering the whole file) when present.

Invariant: this module imports nothing of the web stack, so ``kyso evidence verify`` runs with
kyso's core dependencies only.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import audit
from audit.heads import TrustedCertificates
from audit.index import SHA256, keys_of

__all__ = [
    "SCHEMA",
    "BundleCheck",
    "EntryProof",
    "build_bundle",
    "head_from_json",
    "head_to_json",
    "verify_bundle",
]

SCHEMA = "kyso.evidence/1"
# A bundle is bounded like an upload: a document, two reports, metadata.
MAX_BUNDLE_BYTES = 256 * 1024 * 1024
MAX_FILES = 16


@dataclass(frozen=True, slots=True)
class EntryProof:
    """A ledger entry's canonical bytes with its inclusion proof."""

    entry: bytes
    proof: audit.InclusionProof


@dataclass(slots=True)
class BundleCheck:
    """What ``verify_bundle`` found: ``fault`` is the first problem (None: consistent)."""

    fault: str | None = None
    checked: list[str] = field(default_factory=list)
    document_sha256: str = ""
    tree_size: int = 0
    entries: int = 0

    @property
    def consistent(self) -> bool:
        return self.fault is None


class _Fault(Exception):
    pass


def head_to_json(head: audit.SignedTreeHead) -> dict[str, object]:
    return {
        "tree_size": head.tree_size,
        "root_hash": head.root_hash.hex(),
        "time": audit.entry.format_time(head.time),
        "algorithm": head.algorithm.value,
        "signature": head.signature.hex(),
        "signed_data": head.signed_data.hex(),
    }


def head_from_json(raw: object, certificate: bytes) -> audit.SignedTreeHead:
    """The head in ``raw`` (as ``head_to_json`` wrote it); raises ValueError/KeyError/TypeError."""
    if not isinstance(raw, dict):
        raise TypeError("the tree head is not a JSON object")
    head = audit.SignedTreeHead(
        tree_size=int(raw["tree_size"]),
        root_hash=bytes.fromhex(raw["root_hash"]),
        time=audit.entry.parse_time(raw["time"]),
        algorithm=audit.SignatureAlgorithm(raw["algorithm"]),
        signature=bytes.fromhex(raw["signature"]),
        certificate=certificate,
    )
    if "signed_data" in raw and bytes.fromhex(raw["signed_data"]) != head.signed_data:
        raise ValueError("its signed data does not encode its size, root and time")
    return head


def build_bundle(
    *,
    pdf: bytes,
    report_json: str,
    sealed_report: bytes | None,
    head: audit.SignedTreeHead,
    entries: Sequence[EntryProof],
    created_at: datetime | None = None,
) -> bytes:
    """The ZIP described in the module docstring (deterministic for the same inputs)."""
    files: dict[str, bytes] = {
        "document.pdf": pdf,
        "report.json": report_json.encode("utf-8"),
        "ledger/entries.jsonl": b"".join(item.entry + b"\n" for item in entries),
        "ledger/proofs.json": _dump(
            [
                {
                    "index": item.proof.index,
                    "tree_size": item.proof.tree_size,
                    "leaf_hash": item.proof.leaf_hash.hex(),
                    "audit_path": [node.hex() for node in item.proof.path],
                }
                for item in entries
            ]
        ),
        "ledger/tree-head.json": _dump(head_to_json(head)),
        "certificates/ledger.der": head.certificate,
    }
    if sealed_report is not None:
        files["report.pdf"] = sealed_report
    manifest = {
        "schema": SCHEMA,
        "document_sha256": hashlib.sha256(pdf).hexdigest(),
        "created_at": audit.entry.format_time(created_at or datetime.now(UTC)),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_info("manifest.json"), _dump(manifest))
        for name, data in sorted(files.items()):
            archive.writestr(_info(name), data)
    return out.getvalue()


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _dump(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")


def verify_bundle(data: bytes, *, trusted: Sequence[bytes] = ()) -> BundleCheck:
    """Check a bundle offline (see the module docstring); never raises for bad input."""
    result = BundleCheck()
    try:
        _verify(data, trusted, result)
    except _Fault as fault:
        result.fault = str(fault)
    return result


def _read_files(data: bytes) -> dict[str, bytes]:
    if len(data) > MAX_BUNDLE_BYTES:
        raise _Fault(f"the bundle is over {MAX_BUNDLE_BYTES} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
        if len(infos) > MAX_FILES:
            raise _Fault(f"the bundle holds {len(infos)} files; a bundle has at most {MAX_FILES}")
        if sum(info.file_size for info in infos) > MAX_BUNDLE_BYTES:
            raise _Fault("the bundle's files are too large once decompressed")
        return {info.filename: archive.read(info) for info in infos}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise _Fault(f"the bundle is not a readable ZIP file ({exc})") from exc


def _json(files: dict[str, bytes], name: str) -> object:
    try:
        return json.loads(files[name])
    except (KeyError, ValueError) as exc:
        raise _Fault(f"{name} is missing or is not JSON") from exc


def _verify(data: bytes, trusted: Sequence[bytes], result: BundleCheck) -> None:
    files = _read_files(data)
    manifest = _json(files, "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise _Fault(f"manifest.json does not declare schema {SCHEMA}")
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        raise _Fault("manifest.json lists no files")
    unlisted = sorted(set(files) - set(listed) - {"manifest.json"})
    if unlisted:
        raise _Fault(f"{unlisted[0]} is in the bundle but not in the manifest")
    for name, digest in sorted(listed.items()):
        if name not in files:
            raise _Fault(f"{name} is listed in the manifest but missing")
        if hashlib.sha256(files[name]).hexdigest() != digest:
            raise _Fault(f"{name} does not match its SHA-256 in the manifest: it was changed")
    result.checked.append("manifest")

    for required in ("document.pdf", "report.json", "ledger/tree-head.json"):
        if required not in files:
            raise _Fault(f"{required} is missing")
    document_sha256 = hashlib.sha256(files["document.pdf"]).hexdigest()
    result.document_sha256 = document_sha256
    if manifest.get("document_sha256") != document_sha256:
        raise _Fault("document.pdf is not the document the manifest names")
    report = _json(files, "report.json")
    if not isinstance(report, dict) or report.get("document_sha256") != document_sha256:
        raise _Fault("report.json is a report about another document")
    result.checked.append("document")

    certificate = files.get("certificates/ledger.der")
    if certificate is None:
        raise _Fault("certificates/ledger.der (the tree head's signer) is missing")
    try:
        head = head_from_json(_json(files, "ledger/tree-head.json"), certificate)
    except (KeyError, ValueError, TypeError) as exc:
        raise _Fault(f"ledger/tree-head.json is not a signed tree head ({exc})") from exc
    try:
        audit.verify_head(head, trusted=TrustedCertificates(trusted or [certificate]))
    except audit.AuditError as exc:
        raise _Fault(f"the tree head's signature does not hold: {exc}") from exc
    result.tree_size = head.tree_size
    result.checked.append("tree head")

    _verify_entries(files, head, document_sha256, result)
    if "report.pdf" in files:
        problem = _sealed_report_problem(files["report.pdf"])
        if problem:
            raise _Fault(f"report.pdf: {problem}")
        result.checked.append("sealed report")


def _verify_entries(
    files: dict[str, bytes], head: audit.SignedTreeHead, document_sha256: str, result: BundleCheck
) -> None:
    lines = files.get("ledger/entries.jsonl", b"").splitlines()
    proofs = _json(files, "ledger/proofs.json")
    if not isinstance(proofs, list) or len(proofs) != len(lines):
        raise _Fault("ledger/proofs.json does not hold one proof per ledger entry")
    if not lines:
        raise _Fault("the bundle holds no ledger entry about the document")
    for number, (line, raw) in enumerate(zip(lines, proofs, strict=True), start=1):
        try:
            entry = audit.decode_entry(line)
        except audit.AuditError as exc:
            raise _Fault(f"ledger entry {number} is not a canonical ledger entry ({exc})") from exc
        if (SHA256, document_sha256) not in keys_of(line):
            raise _Fault(f"ledger entry {entry.index} is not about this document")
        try:
            proof = audit.InclusionProof(
                index=int(raw["index"]),
                tree_size=int(raw["tree_size"]),
                leaf_hash=bytes.fromhex(raw["leaf_hash"]),
                path=tuple(bytes.fromhex(node) for node in raw["audit_path"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise _Fault(f"the proof of ledger entry {entry.index} is malformed ({exc})") from exc
        if proof.index != entry.index or proof.tree_size != head.tree_size:
            raise _Fault(f"the proof of ledger entry {entry.index} is for another place or tree")
        if proof.leaf_hash != audit.merkle.leaf_hash(line):
            raise _Fault(f"ledger entry {entry.index} does not match its leaf hash: it was changed")
        try:
            proof.verify(root_hash=head.root_hash)
        except audit.ProofInvalid as exc:
            raise _Fault(
                f"ledger entry {entry.index} is not in the signed tree of size {head.tree_size}"
            ) from exc
        result.entries += 1
    result.checked.append("ledger entries")


def _sealed_report_problem(pdf: bytes) -> str | None:
    """Why the sealed report's signature does not hold (None: it does). Offline: integrity
    and the signature value, not the signer's trust (which needs the trust anchors)."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = reader.embedded_signatures
        if not signatures:
            return "it carries no signature"
        last = signatures[-1]
        status = validate_pdf_signature(
            last, ValidationContext(allow_fetching=False), skip_diff=True
        )
    except Exception as exc:  # a hostile PDF: any parser failure is a fault, not a crash
        return f"it cannot be read as a signed PDF ({type(exc).__name__})"
    if not (status.intact and status.valid):
        return "its seal does not verify: the report was changed after kyso sealed it"
    if status.coverage is None or status.coverage.name != "ENTIRE_FILE":
        return "its seal does not cover the whole file: something was appended"
    return None
