"""The ledger end to end: events appear as documents are signed and stored, a fresh head is
signed on the HSM key, `kyso audit verify` passes offline and names tampering."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import grpc
import pytest

from kyso.v1 import audit_pb2, audit_pb2_grpc
from tests.kyso.served import Served, serve
from tests.signer.pdfgen import make_pdf

pytestmark = pytest.mark.slow


@pytest.fixture
def served(dev_env, tmp_path) -> Iterator[Served]:
    running = serve(dev_env, tmp_path / "served")
    try:
        yield running
    finally:
        running.stop()


def _token(served: Served) -> str:
    text = served.config.read_text()
    path = text.split("[client]")[1].split("token_file = ")[1].split("\n")[0].strip('"')
    with open(path) as handle:
        return handle.read().strip()


def test_events_heads_verify_export_and_tampering(served, tmp_path):
    pdf = tmp_path / "in.pdf"
    pdf.write_bytes(make_pdf())
    for i in range(3):
        out = tmp_path / f"out{i}.pdf"
        assert served.kyso("sign", str(pdf), "-o", str(out), "--key", "seal").returncode == 0
    upload = served.kyso("upload", str(pdf))
    assert upload.returncode == 0, upload.stderr

    with grpc.insecure_channel(served.address) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        auth = [("authorization", f"Bearer {_token(served)}")]
        head = stub.GetTreeHead(audit_pb2.GetTreeHeadRequest(fresh=True), metadata=auth)
        assert head.tree_size == 4
        kinds = [
            stub.GetEvent(audit_pb2.GetEventRequest(index=i), metadata=auth).event_type
            for i in range(4)
        ]
        assert kinds == ["signature.sealed"] * 3 + ["document.stored"]
        proof = stub.GetInclusionProof(
            audit_pb2.GetInclusionProofRequest(index=1, tree_size=4), metadata=auth
        )
        assert len(proof.audit_path) == 2
    assert served.stop() == 0

    verified = served.kyso("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ledger OK (the database): 4 entries, " in verified.stdout
    assert " signed tree heads, root " in verified.stdout

    export_dir = tmp_path / "export"
    exported = served.kyso("audit", "export", str(export_dir))
    assert exported.returncode == 0, exported.stderr
    from_export = served.kyso("audit", "verify", "--from-export", str(export_dir))
    assert from_export.returncode == 0, from_export.stdout

    database = tmp_path / "served" / "kyso.db"
    with sqlite3.connect(database) as conn:
        (entry,) = conn.execute("SELECT entry FROM audit_entries WHERE idx = 2").fetchone()
        conn.execute(
            "UPDATE audit_entries SET entry = ? WHERE idx = 2",
            (entry.replace(b'"seal"', b'"sea1"'),),
        )
    tampered = served.kyso("audit", "verify")
    assert tampered.returncode == 1
    assert "ledger INCONSISTENT (the database)" in tampered.stdout
    assert "at entry 2" in tampered.stdout


def test_verify_without_trusted_certificate_refuses(tmp_path, served):
    result = served.kyso("audit", "verify", "--from-export", str(tmp_path / "nothing"))
    # the config's [ledger] certificates are trusted; a missing export is reported, not a crash
    assert result.returncode == 1
    assert "INCONSISTENT" in result.stdout
