"""`kyso evidence verify` checks a bundle offline: a consistent bundle passes (exit 0) and
every kind of tampering is caught with the first fault named (exit 1). Bundles are built from
a real ledger (SQLite) with a signed tree head, and a PDF sealed by the development key."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from audit import Event, EventType, Ledger, encode_entry
from audit.heads import sign_tree_head
from kyso.db import upgrade
from kyso.web.evidence import EntryProof, build_bundle, verify_bundle
from tests.audit.conftest import AUDIT, SoftwareHeadSigner

PDF = b"%PDF-1.7\n% a document standing for the signed one\n%%EOF\n"
SHA = hashlib.sha256(PDF).hexdigest()
OTHER = "f" * 64


def _event(kind: EventType, digest: str, **extra: object) -> Event:
    return Event(
        time=datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
        actor="CN=Văn thư",
        unit="000.00.21.H49",
        type=kind,
        document_sha256=digest,
        refs=(f"sha256/{digest}",),
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def bundle(tmp_path: Path) -> Callable[..., bytes]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(engine, [AUDIT])
    ledger = Ledger(engine)
    ledger.append_batch(
        [
            _event(EventType.DOCUMENT_STORED, OTHER),
            _event(EventType.SIGNATURE_SEALED, SHA, key="seal"),
            _event(EventType.PACKAGE_SENT, SHA, details={"document_id": "15/QĐ-UBND"}),
            _event(EventType.DOCUMENT_STORED, OTHER),
        ]
    )
    signer = SoftwareHeadSigner.create("Sổ cái kiểm toán")
    head = ledger.sign_head(signer)
    found, _ = ledger.find(sha256=SHA)
    entries = [
        EntryProof(
            entry=_encoded(ledger, e.index),
            proof=ledger.inclusion_proof(index=e.index, tree_size=head.tree_size),
        )
        for e in found
    ]
    report = json.dumps({"schema": "kyso.verification/1", "document_sha256": SHA})

    def make(**changes: object) -> bytes:
        values: dict[str, object] = {
            "pdf": PDF,
            "report_json": report,
            "sealed_report": None,
            "head": head,
            "entries": entries,
        }
        values.update(changes)
        return build_bundle(**values)  # type: ignore[arg-type]

    make.head = head  # type: ignore[attr-defined]
    make.signer = signer  # type: ignore[attr-defined]
    make.other_entry = EntryProof(  # type: ignore[attr-defined]
        entry=_encoded(ledger, 0), proof=ledger.inclusion_proof(index=0, tree_size=head.tree_size)
    )
    return make


def _encoded(ledger: Ledger, index: int) -> bytes:
    return encode_entry(ledger.get_entry(index))


def _rewrite(data: bytes, name: str, change: Callable[[bytes], bytes], *, rehash: bool) -> bytes:
    """``data`` with file ``name`` changed; ``rehash``: the manifest updated to match (a
    forger who knows the format), so the deeper checks must catch it."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        files = {n: source.read(n) for n in source.namelist()}
    files[name] = change(files[name])
    if rehash:
        manifest = json.loads(files["manifest.json"])
        manifest["files"][name] = hashlib.sha256(files[name]).hexdigest()
        files["manifest.json"] = json.dumps(manifest).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for n, d in files.items():
            target.writestr(n, d)
    return out.getvalue()


def test_a_consistent_bundle_passes(bundle) -> None:
    result = verify_bundle(bundle())
    assert result.fault is None
    assert result.consistent
    assert result.entries == 2
    assert result.document_sha256 == SHA
    assert result.checked == ["manifest", "document", "tree head", "ledger entries"]


def _flip_pdf(data: bytes) -> bytes:
    return data.replace(b"standing", b"Standing")


@pytest.mark.parametrize(
    ("name", "change", "rehash", "fault"),
    [
        ("document.pdf", _flip_pdf, False, "document.pdf does not match its SHA-256"),
        ("document.pdf", _flip_pdf, True, "document.pdf is not the document the manifest names"),
        (
            "ledger/entries.jsonl",
            lambda d: d.replace(b'"key":"seal"', b'"key":"seal-ec"'),
            True,
            "does not match its leaf hash: it was changed",
        ),
        (
            "ledger/tree-head.json",
            lambda d: d.replace(b'"tree_size": 4', b'"tree_size": 3'),
            True,
            "ledger/tree-head.json is not a signed tree head",
        ),
        (
            "ledger/proofs.json",
            lambda d: json.dumps(
                [{**p, "audit_path": list(reversed(p["audit_path"]))} for p in json.loads(d)]
            ).encode(),
            True,
            "is not in the signed tree of size 4",
        ),
        (
            "report.json",
            lambda d: d.replace(SHA.encode(), OTHER.encode()),
            True,
            "report.json is a report about another document",
        ),
    ],
)
def test_tampering_is_named(bundle, name, change, rehash, fault) -> None:
    result = verify_bundle(_rewrite(bundle(), name, change, rehash=rehash))
    assert not result.consistent
    assert fault in (result.fault or "")


def test_a_re_signed_head_from_another_key_is_refused_when_the_key_is_pinned(bundle) -> None:
    head = bundle.head
    stranger = SoftwareHeadSigner.create("Kẻ giả mạo")

    forged = sign_tree_head(
        stranger, tree_size=head.tree_size, root_hash=head.root_hash, time=head.time
    )
    data = bundle(head=forged)
    assert verify_bundle(data).consistent  # self-consistent…
    pinned = verify_bundle(data, trusted=[bundle.signer.certificate])
    assert "not among the trusted head-signing certificates" in (pinned.fault or "")


def test_entries_about_another_document_or_none_at_all(bundle) -> None:
    stranger = verify_bundle(bundle(entries=[bundle.other_entry]))
    assert stranger.fault == "ledger entry 0 is not about this document"
    empty = verify_bundle(bundle(entries=[]))
    assert empty.fault == "the bundle holds no ledger entry about the document"


def test_unlisted_files_and_broken_zips(bundle) -> None:
    data = bundle()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
        target.writestr("extra.txt", b"slipped in")
    assert (
        verify_bundle(out.getvalue()).fault == "extra.txt is in the bundle but not in the manifest"
    )
    assert verify_bundle(data[: len(data) // 2]).fault.startswith(
        "the bundle is not a readable ZIP"
    )
    assert verify_bundle(b"").fault.startswith("the bundle is not a readable ZIP")


def test_the_command_exits_0_or_1_and_names_the_fault(bundle, tmp_path: Path) -> None:
    good = tmp_path / "good.zip"
    good.write_bytes(bundle())
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_rewrite(bundle(), "document.pdf", _flip_pdf, rehash=False))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kyso.cli.main", "evidence", "verify", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    ok = run(str(good))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"consistent: document {SHA}, 2 ledger entries")
    refused = run(str(bad), "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["fault"].startswith("document.pdf does not match")
    missing = run(str(tmp_path / "absent.zip"))
    assert missing.returncode == 2
    assert run("--help").returncode == 0
