"""The agent's own checks (issue 15, observation 5): it fetches each prepared PDF and signs only
when the digest to sign commits to exactly those bytes; it shows what it read from them; and
``--yes`` needs an explicit selection."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from kyso.cli.agent_check import PreparedMismatch, inspect_prepared
from kyso.v1 import common_pb2, documents_pb2, documents_pb2_grpc, signing_pb2
from tests.signer.pdfgen import make_pdf

from .conftest import REPO, auth, der, prepare


def _pending(server, stub, dev_env) -> dict[str, signing_pb2.PendingSignature]:
    fingerprint = hashlib.sha256(der(dev_env.keys["official"].certificate_path)).hexdigest()
    listed = stub.ListPendingSignatures(
        signing_pb2.ListPendingSignaturesRequest(certificate_sha256=fingerprint),
        metadata=auth(server.config),
    )
    return {p.session_id: p for p in listed.pending}


def _download(server, ref: str) -> bytes:
    with server.channel() as channel:
        pieces = documents_pb2_grpc.DocumentServiceStub(channel).Download(
            documents_pb2.DownloadRequest(ref=common_pb2.DocumentRef(ref=ref)),
            metadata=auth(server.config),
        )
        return b"".join(p.chunk for p in pieces)


def _check(pdf: bytes, item: signing_pb2.PendingSignature, **other):
    fields = {
        "digest_algorithm": item.digest_algorithm,
        "signed_attributes": item.signed_attributes,
        "data_to_sign": item.data_to_sign,
        **other,
    }
    return inspect_prepared(pdf, **fields)


def test_the_prepared_pdf_must_be_what_the_digest_commits_to(server, stub, dev_env) -> None:
    first = prepare(stub, server.config, dev_env, make_pdf(pages=2), title="Giấy phép số 1")
    second = prepare(stub, server.config, dev_env, make_pdf(), title="Giấy phép số 2")
    pending = _pending(server, stub, dev_env)
    one, two = pending[first.session_id], pending[second.session_id]
    pdf_one, pdf_two = _download(server, one.prepared_ref), _download(server, two.prepared_ref)

    seen = _check(pdf_one, one)
    assert seen.sha256 == hashlib.sha256(pdf_one).hexdigest()
    assert seen.pages == 2
    assert _check(pdf_two, two).pages == 1

    # another session's digest shown under this title: refused
    with pytest.raises(PreparedMismatch, match="not the digest of the signed attributes"):
        _check(pdf_one, one, data_to_sign=two.data_to_sign)
    # attributes that commit to the other document: refused
    with pytest.raises(PreparedMismatch, match="commit to another document"):
        _check(pdf_one, two)
    # one byte of the signed range changed: refused
    changed = bytearray(pdf_one)
    changed[20] ^= 0x01  # in the first range, before the signature's hole
    with pytest.raises(PreparedMismatch):
        _check(bytes(changed), one)
    # bytes appended after the signature's range: refused
    with pytest.raises(PreparedMismatch, match="does not cover the whole file"):
        _check(pdf_one + b"\n% more\n", one)
    with pytest.raises(PreparedMismatch, match="no signature placeholder"):
        _check(make_pdf(), one)


def test_yes_needs_an_explicit_selection(dev_env) -> None:
    key = dev_env.keys["official"]
    result = subprocess.run(
        [
            *(sys.executable, "-m", "kyso.cli.main", "agent", "--yes"),
            *("--module", str(dev_env.module_path), "--token", key.token_label, "--lang", "en"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dev_env.child_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "--yes signs without asking, so it needs an explicit selection" in result.stderr
