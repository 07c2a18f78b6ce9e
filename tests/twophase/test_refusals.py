"""Prepare refuses certificates that may not sign, with the reason; expiry closes sessions."""

from __future__ import annotations

import hashlib
import time

import grpc
import pytest

from kyso.dev.pki import TestCertificate
from kyso.v1 import common_pb2, signing_pb2, signing_pb2_grpc
from tests.signer.pdfgen import make_pdf

from .conftest import RunningServer, auth, der, objects, prepare, render


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        (TestCertificate.EXPIRED, "expired"),
        (TestCertificate.NOT_YET_VALID, "not valid before"),
        (TestCertificate.REVOKED, "revoked"),
        (TestCertificate.NO_SIGNING_USAGE, "does not allow signing"),
    ],
    ids=lambda v: v.value if isinstance(v, TestCertificate) else None,
)
def test_bad_certificate_is_refused_at_prepare(server, stub, dev_env, kind, needle):
    certificate = der(dev_env.test_keys[kind].certificate_path)
    before = objects(server.config)
    with pytest.raises(grpc.RpcError) as err:
        prepare(stub, server.config, dev_env, make_pdf(), certificate=certificate)
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
    assert needle in err.value.details()
    assert objects(server.config) == before
    listed = stub.ListPendingSignatures(
        signing_pb2.ListPendingSignaturesRequest(
            certificate_sha256=hashlib.sha256(certificate).hexdigest()
        ),
        metadata=auth(server.config),
    )
    assert list(listed.pending) == []


def test_a_certificate_from_another_pki_is_refused(server, stub, dev_env):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.support.tokens import TestCa

    ca = TestCa.create()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(grpc.RpcError) as err:
        prepare(stub, server.config, dev_env, make_pdf(), certificate=ca.issue(spki, "Người lạ"))
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "does not chain to a trusted root" in err.value.details()


@pytest.mark.parametrize(
    ("certificate", "code"),
    [(b"", "INVALID_ARGUMENT"), (b"not a certificate", "INVALID_ARGUMENT")],
)
def test_malformed_certificate(server, stub, dev_env, certificate, code):
    with pytest.raises(grpc.RpcError) as err:
        stub.PrepareSignature(
            signing_pb2.PrepareSignatureRequest(
                document=common_pb2.DocumentInput(content=make_pdf()), certificate=certificate
            ),
            metadata=auth(server.config),
        )
    assert err.value.code().name == code


def test_not_a_pdf(server, stub, dev_env):
    with pytest.raises(grpc.RpcError) as err:
        prepare(stub, server.config, dev_env, b"hello")
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_expired_session_cannot_complete(dev_env, token, tmp_path):
    config = render(dev_env, tmp_path / "short", session_hours=1.5 / 3600)
    with RunningServer(config) as running, running.channel() as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        prepared = prepare(stub, config, dev_env, make_pdf())
        value = token.sign(prepared.data_to_sign)
        fingerprint = hashlib.sha256(der(dev_env.keys["official"].certificate_path)).hexdigest()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and prepared.expires_at.ToDatetime() > _utcnow():
            time.sleep(0.2)
        listed = stub.ListPendingSignatures(
            signing_pb2.ListPendingSignaturesRequest(certificate_sha256=fingerprint),
            metadata=auth(config),
        )
        assert list(listed.pending) == []
        for _ in range(2):  # the second time the session is already marked expired
            with pytest.raises(grpc.RpcError) as err:
                stub.CompleteSignature(
                    signing_pb2.CompleteSignatureRequest(
                        session_id=prepared.session_id, signature_value=value
                    ),
                    metadata=auth(config),
                )
            assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert "expired" in err.value.details()


def _utcnow():
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(tzinfo=None)


def test_other_units_see_nothing_and_cannot_cancel(dev_env, token, tmp_path):
    """Listing is scoped to the caller's unit; cancelling needs the requester or its unit;
    completing needs only a value that verifies (the proof of the official's key)."""
    import dataclasses

    from kyso.config import ClientConfig

    config = render(dev_env, tmp_path / "units")
    secret = "token-of-another-unit"
    other = ClientConfig(
        roles=("workflow", "official"),
        unit="000.00.99.H49",
        token_sha256=hashlib.sha256(secret.encode()).hexdigest(),
    )
    config = dataclasses.replace(config, clients={**config.clients, "other": other})
    as_other = [("authorization", f"Bearer {secret}")]
    with RunningServer(config) as running, running.channel() as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        prepared = prepare(stub, config, dev_env, make_pdf())
        fingerprint = hashlib.sha256(der(dev_env.keys["official"].certificate_path)).hexdigest()
        request = signing_pb2.ListPendingSignaturesRequest(certificate_sha256=fingerprint)
        assert len(stub.ListPendingSignatures(request, metadata=auth(config)).pending) == 1
        assert list(stub.ListPendingSignatures(request, metadata=as_other).pending) == []
        with pytest.raises(grpc.RpcError) as err:
            stub.CancelSignature(
                signing_pb2.CancelSignatureRequest(session_id=prepared.session_id),
                metadata=as_other,
            )
        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
        done = stub.CompleteSignature(
            signing_pb2.CompleteSignatureRequest(
                session_id=prepared.session_id, signature_value=token.sign(prepared.data_to_sign)
            ),
            metadata=as_other,
        )
        assert done.document.sha256


def _claim(stub, config, session_id):
    return stub.ClaimSignature(
        signing_pb2.ClaimSignatureRequest(session_id=session_id), metadata=auth(config)
    ).pending


def test_claim_prepares_again_and_a_value_over_the_old_digest_is_refused(
    server, stub, dev_env, token
):
    prepared = prepare(
        stub,
        server.config,
        dev_env,
        make_pdf(),
        appearance=signing_pb2.APPEARANCE_SEAL,
        placement=signing_pb2.Placement(
            rect=signing_pb2.PageRect(page=1, x1=300, y1=80, x2=560, y2=200)
        ),
        reason="Phê duyệt",
    )
    stale = token.sign(prepared.data_to_sign)
    time.sleep(1.1)  # whole seconds are signed: the new preparation is a later second
    fresh = _claim(stub, server.config, prepared.session_id)
    assert fresh.session_id == prepared.session_id
    assert fresh.data_to_sign != prepared.data_to_sign
    assert (fresh.reason, fresh.appearance, fresh.rect.page) == (
        "Phê duyệt",
        signing_pb2.APPEARANCE_SEAL,
        1,
    )
    assert fresh.document_sha256 == prepared.document_sha256
    with pytest.raises(grpc.RpcError) as err:
        stub.CompleteSignature(
            signing_pb2.CompleteSignatureRequest(
                session_id=prepared.session_id, signature_value=stale
            ),
            metadata=auth(server.config),
        )
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    done = stub.CompleteSignature(
        signing_pb2.CompleteSignatureRequest(
            session_id=prepared.session_id, signature_value=token.sign(fresh.data_to_sign)
        ),
        metadata=auth(server.config),
    )
    assert done.document.ref.ref
    # a completed session is not prepared again
    with pytest.raises(grpc.RpcError) as err:
        _claim(stub, server.config, prepared.session_id)
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION


def test_claim_and_get_of_unknown_or_cancelled_sessions(server, stub, dev_env):
    prepared = prepare(stub, server.config, dev_env, make_pdf())
    state = stub.GetSignature(
        signing_pb2.GetSignatureRequest(session_id=prepared.session_id),
        metadata=auth(server.config),
    )
    assert state.state == "open"
    stub.CancelSignature(
        signing_pb2.CancelSignatureRequest(session_id=prepared.session_id),
        metadata=auth(server.config),
    )
    with pytest.raises(grpc.RpcError) as err:
        _claim(stub, server.config, prepared.session_id)
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    state = stub.GetSignature(
        signing_pb2.GetSignatureRequest(session_id=prepared.session_id),
        metadata=auth(server.config),
    )
    assert (state.state, state.closed_by) == ("cancelled", "dev")
    for call in (stub.ClaimSignature, stub.GetSignature):
        request_type = (
            signing_pb2.ClaimSignatureRequest
            if call is stub.ClaimSignature
            else signing_pb2.GetSignatureRequest
        )
        with pytest.raises(grpc.RpcError) as err:
            call(request_type(session_id="0" * 32), metadata=auth(server.config))
        assert err.value.code() is grpc.StatusCode.NOT_FOUND
