"""AuditService reads the ledger: events as their canonical entries, signed tree heads (a fresh
one only for an operator, and only with a ledger key), and proofs that check against the heads;
each refusal keeps its code and message."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC
from pathlib import Path

import grpc
import pytest

import audit
from audit.heads import TrustedCertificates
from kyso.app import Application
from kyso.config import Config, load_config
from kyso.server import Server
from kyso.v1 import audit_pb2, audit_pb2_grpc, documents_pb2, documents_pb2_grpc
from tests.audit.conftest import SoftwareHeadSigner
from tests.kyso.conftest import token
from tests.support.statuses import bad_request_field

OPERATOR = """
[clients.operator]
roles = ["operator"]
token_file = "operator.token"
"""


@pytest.fixture
def audit_config(write_config: Callable[[str], Path], tmp_path: Path) -> Config:
    (tmp_path / "operator.token").write_text("token-of-the-operator")
    return load_config(write_config(OPERATOR))


@contextlib.asynccontextmanager
async def _serving(
    config: Config, head_signer: audit.HeadSigner | None = None
) -> AsyncIterator[grpc.aio.Channel]:
    app = Application.open(config)
    app.head_signer = head_signer
    srv = Server(config, app)
    await srv.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            yield channel
    finally:
        await srv.stop()


def _auth(config: Config, client: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token(config, client)}")]


async def _refused(call, request, metadata) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request, metadata=metadata)
    return caught.value


async def test_refusals_keep_their_codes_and_messages(audit_config: Config) -> None:
    auditor = _auth(audit_config, "auditor")
    async with _serving(audit_config) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        fresh = audit_pb2.GetTreeHeadRequest(fresh=True)
        denied = await _refused(stub.GetTreeHead, fresh, auditor)
        assert denied.code() is grpc.StatusCode.PERMISSION_DENIED
        assert denied.details() == "only an operator may ask for a freshly signed tree head"
        keyless = await _refused(stub.GetTreeHead, fresh, _auth(audit_config, "operator"))
        assert keyless.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert keyless.details() == "no ledger key is configured ([ledger] key)"
        none = await _refused(stub.GetTreeHead, audit_pb2.GetTreeHeadRequest(), auditor)
        assert none.code() is grpc.StatusCode.NOT_FOUND
        assert none.details() == "no tree head has been signed yet; sign one first"
        sized = await _refused(stub.GetTreeHead, audit_pb2.GetTreeHeadRequest(tree_size=3), auditor)
        assert sized.code() is grpc.StatusCode.NOT_FOUND
        assert sized.details() == "no tree head was signed for size 3"
        missing = await _refused(stub.GetEvent, audit_pb2.GetEventRequest(index=7), auditor)
        assert missing.code() is grpc.StatusCode.NOT_FOUND
        assert missing.details().startswith("the ledger has no entry 7")
        beyond = await _refused(
            stub.GetInclusionProof,
            audit_pb2.GetInclusionProofRequest(index=0, tree_size=5),
            auditor,
        )
        assert beyond.code() is grpc.StatusCode.INVALID_ARGUMENT
        inconsistent = await _refused(
            stub.GetConsistencyProof,
            audit_pb2.GetConsistencyProofRequest(first_size=1, second_size=5),
            auditor,
        )
        assert inconsistent.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_events_heads_and_proofs(audit_config: Config) -> None:
    signer = SoftwareHeadSigner.create()
    auditor = _auth(audit_config, "auditor")
    async with _serving(audit_config, signer) as channel:
        documents = documents_pb2_grpc.DocumentServiceStub(channel)
        stored = []
        for n in range(3):
            meta = documents_pb2.UploadRequest(
                metadata=documents_pb2.UploadMetadata(filename=f"d{n}.txt")
            )
            chunk = documents_pb2.UploadRequest(chunk=f"document {n}".encode())
            stored.append(
                await documents.Upload(
                    iter([meta, chunk]), metadata=_auth(audit_config, "workflow")
                )
            )
        stub = audit_pb2_grpc.AuditServiceStub(channel)

        event = await stub.GetEvent(audit_pb2.GetEventRequest(index=1), metadata=auditor)
        entry = audit.decode_entry(event.entry)
        assert (event.index, entry.index) == (1, 1)
        assert event.leaf_hash == audit.merkle.leaf_hash(event.entry)
        assert (event.event_type, event.actor, event.unit_code) == (
            "document.stored",
            "workflow",
            "000.00.21.H49",
        )
        assert event.document_sha256 == stored[1].sha256
        assert list(event.refs) == [stored[1].ref.ref]
        assert (event.key, dict(event.details)) == ("", {})
        assert event.time.ToDatetime(tzinfo=UTC) == entry.event.time

        head = await stub.GetTreeHead(
            audit_pb2.GetTreeHeadRequest(fresh=True), metadata=_auth(audit_config, "operator")
        )
        assert head.tree_size == 3
        assert head.certificate == signer.certificate
        assert head.signature_algorithm == signer.algorithm.value
        signed = audit.SignedTreeHead(
            tree_size=head.tree_size,
            root_hash=head.root_hash,
            time=head.time.ToDatetime(tzinfo=UTC),
            algorithm=audit.SignatureAlgorithm(head.signature_algorithm),
            signature=head.signature,
            certificate=head.certificate,
        )
        assert signed.signed_data == head.signed_data
        audit.verify_head(signed, trusted=TrustedCertificates([signer.certificate]))
        for request in (audit_pb2.GetTreeHeadRequest(), audit_pb2.GetTreeHeadRequest(tree_size=3)):
            assert await stub.GetTreeHead(request, metadata=auditor) == head

        proof = await stub.GetInclusionProof(
            audit_pb2.GetInclusionProofRequest(index=1, tree_size=3), metadata=auditor
        )
        assert (proof.index, proof.tree_size, proof.leaf_hash) == (1, 3, event.leaf_hash)
        audit.InclusionProof(
            index=1, tree_size=3, leaf_hash=proof.leaf_hash, path=tuple(proof.audit_path)
        ).verify(root_hash=head.root_hash)

        consistency = await stub.GetConsistencyProof(
            audit_pb2.GetConsistencyProofRequest(first_size=1, second_size=3), metadata=auditor
        )
        assert (consistency.first_size, consistency.second_size) == (1, 3)
        first_root = audit.merkle.leaf_hash(
            (await stub.GetEvent(audit_pb2.GetEventRequest(index=0), metadata=auditor)).entry
        )
        audit.ConsistencyProof(old_size=1, new_size=3, path=tuple(consistency.proof)).verify(
            old_root=first_root, new_root=head.root_hash
        )


async def test_a_documents_history_comes_with_proofs_in_the_latest_head(
    audit_config: Config,
) -> None:
    signer = SoftwareHeadSigner.create()
    auditor = _auth(audit_config, "auditor")
    async with _serving(audit_config, signer) as channel:
        documents = documents_pb2_grpc.DocumentServiceStub(channel)
        stub = audit_pb2_grpc.AuditServiceStub(channel)

        async def upload(text: str) -> documents_pb2.UploadResponse:
            meta = documents_pb2.UploadRequest(
                metadata=documents_pb2.UploadMetadata(filename="d.txt")
            )
            chunk = documents_pb2.UploadRequest(chunk=text.encode())
            return await documents.Upload(
                iter([meta, chunk]), metadata=_auth(audit_config, "workflow")
            )

        first = await upload("văn bản một")
        await upload("văn bản hai")
        history = await stub.GetDocumentHistory(
            audit_pb2.GetDocumentHistoryRequest(document_sha256=first.sha256), metadata=auditor
        )
        # The head signed at start (if any) is older than the event: no proof yet.
        assert history.tree_head.tree_size == 0
        assert [e.event.index for e in history.events] == [0]
        assert not history.events[0].HasField("inclusion_proof")

        await stub.GetTreeHead(
            audit_pb2.GetTreeHeadRequest(fresh=True), metadata=_auth(audit_config, "operator")
        )
        again = await upload("văn bản một")  # the same bytes stored again: a second event
        assert again.sha256 == first.sha256
        history = await stub.GetDocumentHistory(
            audit_pb2.GetDocumentHistoryRequest(document_sha256=first.sha256.upper()),
            metadata=auditor,
        )
        assert history.tree_head.tree_size == 2
        assert not history.truncated
        assert [e.event.index for e in history.events] == [0, 2]
        proven, later = history.events
        assert proven.event.document_sha256 == first.sha256
        assert proven.event.leaf_hash == audit.merkle.leaf_hash(proven.event.entry)
        proof = proven.inclusion_proof
        assert (proof.index, proof.tree_size, proof.leaf_hash) == (0, 2, proven.event.leaf_hash)
        audit.InclusionProof(
            index=0, tree_size=2, leaf_hash=proof.leaf_hash, path=tuple(proof.audit_path)
        ).verify(root_hash=history.tree_head.root_hash)
        assert not later.HasField("inclusion_proof")  # appended after the head was signed

        one = await stub.GetDocumentHistory(
            audit_pb2.GetDocumentHistoryRequest(document_sha256=first.sha256, page_size=1),
            metadata=auditor,
        )
        assert [e.event.index for e in one.events] == [0]
        assert one.truncated

        for request, field in [
            (audit_pb2.GetDocumentHistoryRequest(), "document_sha256"),
            (audit_pb2.GetDocumentHistoryRequest(document_sha256="12ab"), "document_sha256"),
            (audit_pb2.GetDocumentHistoryRequest(document_id="x" * 256), "document_id"),
            (
                audit_pb2.GetDocumentHistoryRequest(document_id="a", page_size=-1),
                "page_size",
            ),
        ]:
            refused = await _refused(stub.GetDocumentHistory, request, auditor)
            assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert bad_request_field(refused) == field
        workflow = await _refused(
            stub.GetDocumentHistory,
            audit_pb2.GetDocumentHistoryRequest(document_sha256=first.sha256),
            _auth(audit_config, "workflow"),
        )
        assert workflow.code() is grpc.StatusCode.PERMISSION_DENIED
