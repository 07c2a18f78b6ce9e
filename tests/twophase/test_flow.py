"""The two-phase flow through the real server: prepare, the official's token signs the digest
(SoftHSM, token kyso-official), complete; at every PAdES level, verified by pyHanko and pdfsig."""

from __future__ import annotations

import hashlib
import io

import grpc
import pytest
from asn1crypto import pem, x509
from pyhanko.pdf_utils.reader import PdfFileReader

from kyso.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    common_pb2,
    documents_pb2,
    documents_pb2_grpc,
    signing_pb2,
)
from signer import Level
from tests.signer.checks import nss_db, pdfsig, validate
from tests.signer.pdfgen import make_pdf

from .conftest import auth, prepare

LEVELS = {
    Level.B_B: signing_pb2.SIGNATURE_LEVEL_B_B,
    Level.B_T: signing_pb2.SIGNATURE_LEVEL_B_T,
    Level.B_LT: signing_pb2.SIGNATURE_LEVEL_B_LT,
    Level.B_LTA: signing_pb2.SIGNATURE_LEVEL_B_LTA,
}


def root_certificate(dev_env) -> x509.Certificate:
    return x509.Certificate.load(pem.unarmor(dev_env.root_certificate_path.read_bytes())[2])


def download(server, ref: common_pb2.DocumentRef) -> bytes:
    with server.channel() as channel:
        docs = documents_pb2_grpc.DocumentServiceStub(channel)
        pieces = docs.Download(documents_pb2.DownloadRequest(ref=ref), metadata=auth(server.config))
        return b"".join(p.chunk for p in pieces)


@pytest.fixture(scope="module")
def nss(dev_env, tmp_path_factory):
    return nss_db(tmp_path_factory.mktemp("nss"), dev_env.root_certificate_path)


@pytest.mark.parametrize("level", list(LEVELS), ids=lambda level: level.value)
async def test_full_flow_at_each_level(server, stub, dev_env, token, nss, tmp_path, level):
    pdf = make_pdf()
    visible = level is Level.B_B
    prepared = prepare(
        stub,
        server.config,
        dev_env,
        pdf,
        level=LEVELS[level],
        appearance=signing_pb2.APPEARANCE_SEAL if visible else signing_pb2.APPEARANCE_NONE,
        placement=signing_pb2.Placement(
            rect=signing_pb2.PageRect(page=1, x1=300, y1=80, x2=560, y2=200)
        )
        if visible
        else None,
        reason="Phê duyệt kết quả",
    )
    assert prepared.sign_input == signing_pb2.SIGN_INPUT_DIGEST
    assert prepared.digest_algorithm == "sha256"
    assert prepared.signature_mechanism == "rsa_pkcs1v15"
    assert len(prepared.data_to_sign) == 32
    assert prepared.document_sha256 == hashlib.sha256(pdf).hexdigest()

    official = dev_env.keys["official"].certificate_path
    fingerprint = hashlib.sha256(pem.unarmor(official.read_bytes())[2]).hexdigest()
    listed = stub.ListPendingSignatures(
        signing_pb2.ListPendingSignaturesRequest(certificate_sha256=fingerprint),
        metadata=auth(server.config),
    )
    mine = [p for p in listed.pending if p.session_id == prepared.session_id]
    assert len(mine) == 1
    assert mine[0].title == "Quyết định cấp giấy phép"
    assert mine[0].data_to_sign == prepared.data_to_sign
    assert mine[0].requester == "dev"
    assert mine[0].unit_code == server.config.clients["dev"].unit

    value = token.sign(prepared.data_to_sign)
    done = stub.CompleteSignature(
        signing_pb2.CompleteSignatureRequest(session_id=prepared.session_id, signature_value=value),
        metadata=auth(server.config),
    )
    assert done.level == LEVELS[level]
    signed = download(server, done.document.ref)
    assert signed.startswith(pdf)  # the input is untouched: the signature is an update
    assert hashlib.sha256(signed).hexdigest() == done.document.sha256
    statuses = await validate(signed, root_certificate(dev_env), level=level)
    assert statuses[0].signing_cert.subject.native["common_name"] == "Nguyễn Văn A"
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    # pdfsig lists the official's signature first (and a B-LTA document time-stamp after it)
    first = pdfsig(path, nss)[0]
    assert first["Signer Certificate Common Name"] == "Nguyễn Văn A"
    assert first["Signature Validation"] == "Signature is Valid."

    # not pending any more; catalogued and ledgered
    listed = stub.ListPendingSignatures(
        signing_pb2.ListPendingSignaturesRequest(certificate_sha256=fingerprint),
        metadata=auth(server.config),
    )
    assert prepared.session_id not in {p.session_id for p in listed.pending}
    with server.channel() as channel:
        info = documents_pb2_grpc.DocumentServiceStub(channel).Stat(
            documents_pb2.StatRequest(ref=done.document.ref), metadata=auth(server.config)
        )
        assert info.signatures[0].signer == "Nguyễn Văn A"
        assert info.signatures[0].level == level.value
        event = audit_pb2_grpc.AuditServiceStub(channel).GetEvent(
            audit_pb2.GetEventRequest(index=done.ledger_index), metadata=auth(server.config)
        )
        assert event.event_type == "signature.completed"
        assert event.document_sha256 == done.document.sha256


async def test_official_then_seal_both_valid(server, stub, dev_env, token, nss, tmp_path):
    pdf = make_pdf()
    prepared = prepare(
        stub,
        server.config,
        dev_env,
        pdf,
        appearance=signing_pb2.APPEARANCE_SEAL,
        placement=signing_pb2.Placement(
            rect=signing_pb2.PageRect(page=1, x1=40, y1=80, x2=290, y2=200)
        ),
    )
    done = stub.CompleteSignature(
        signing_pb2.CompleteSignatureRequest(
            session_id=prepared.session_id, signature_value=token.sign(prepared.data_to_sign)
        ),
        metadata=auth(server.config),
    )
    sealed = stub.SignPdf(
        signing_pb2.SignPdfRequest(
            document=common_pb2.DocumentInput(ref=done.document.ref),
            key_alias="seal",
            appearance=signing_pb2.APPEARANCE_SEAL,
            placement=signing_pb2.Placement(
                rect=signing_pb2.PageRect(page=1, x1=300, y1=80, x2=560, y2=200)
            ),
        ),
        metadata=auth(server.config),
    )
    both = download(server, sealed.document.ref)
    statuses = await validate(both, root_certificate(dev_env), level=Level.B_B)
    names = [s.signing_cert.subject.native["common_name"] for s in statuses]
    assert names == ["Nguyễn Văn A", dev_env.organisation.name]
    path = tmp_path / "both.pdf"
    path.write_bytes(both)
    report = pdfsig(path, nss)
    assert len(report) == 2
    assert all(sig.get("Signature Validation") == "Signature is Valid." for sig in report), report


def _complete(stub, config, session_id, value):
    return stub.CompleteSignature(
        signing_pb2.CompleteSignatureRequest(session_id=session_id, signature_value=value),
        metadata=auth(config),
    )


def _flip(value: bytes) -> bytes:
    return value[:10] + bytes([value[10] ^ 0x01]) + value[11:]


@pytest.mark.parametrize("wrong", ["another key", "corrupted bytes", "truncated"])
def test_wrong_value_is_rejected_and_the_session_stays_open(server, stub, dev_env, token, wrong):
    from .conftest import objects

    prepared = prepare(stub, server.config, dev_env, make_pdf())
    good = token.sign(prepared.data_to_sign)
    value = {
        "another key": token.sign(prepared.data_to_sign, alias="seal"),
        "corrupted bytes": _flip(good),
        "truncated": good[:-1],
    }[wrong]
    before = objects(server.config)
    with pytest.raises(grpc.RpcError) as err:
        _complete(stub, server.config, prepared.session_id, value)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "does not verify" in err.value.details()
    assert "session stays open" in err.value.details()
    assert objects(server.config) == before  # nothing embedded, nothing stored
    done = _complete(stub, server.config, prepared.session_id, good)
    assert done.document.sha256


def test_a_client_cannot_change_the_document(server, stub, dev_env, token):
    """The client signs what it would like the document to be (another session's signed
    attributes over a forged document): the server checks the value against what *it* holds,
    so nothing is embedded, and the real document still completes unchanged."""
    from .conftest import objects

    original = make_pdf(title="Giay phep so 1")
    forged = make_pdf(title="Giay phep so 999")
    real = prepare(stub, server.config, dev_env, original)
    attacker = prepare(stub, server.config, dev_env, forged)
    forged_value = token.sign(attacker.data_to_sign)
    before = objects(server.config)
    with pytest.raises(grpc.RpcError) as err:
        _complete(stub, server.config, real.session_id, forged_value)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert objects(server.config) == before
    done = _complete(stub, server.config, real.session_id, token.sign(real.data_to_sign))
    signed = download(server, done.document.ref)
    assert signed.startswith(original)
    reader = PdfFileReader(io.BytesIO(signed))
    assert len(reader.embedded_signatures) == 1


def test_complete_twice_and_cancel(server, stub, dev_env, token):
    config = server.config
    first = prepare(stub, config, dev_env, make_pdf())
    value = token.sign(first.data_to_sign)
    _complete(stub, config, first.session_id, value)
    with pytest.raises(grpc.RpcError) as err:
        _complete(stub, config, first.session_id, value)
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "already completed" in err.value.details()

    second = prepare(stub, config, dev_env, make_pdf())
    stub.CancelSignature(
        signing_pb2.CancelSignatureRequest(session_id=second.session_id, reason="nhầm hồ sơ"),
        metadata=auth(config),
    )
    for call in (
        lambda: _complete(stub, config, second.session_id, token.sign(second.data_to_sign)),
        lambda: stub.CancelSignature(
            signing_pb2.CancelSignatureRequest(session_id=second.session_id),
            metadata=auth(config),
        ),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "cancelled" in err.value.details()

    with pytest.raises(grpc.RpcError) as err:
        _complete(stub, config, "0" * 32, value)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND


async def test_concurrent_completions_exactly_one_wins(server, dev_env, token):
    from kyso.v1 import signing_pb2_grpc

    from .conftest import der

    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        prepared = await stub.PrepareSignature(
            signing_pb2.PrepareSignatureRequest(
                document=common_pb2.DocumentInput(content=make_pdf()),
                certificate=der(dev_env.keys["official"].certificate_path),
            ),
            metadata=auth(server.config),
        )
        value = token.sign(prepared.data_to_sign)

        async def attempt():
            try:
                await stub.CompleteSignature(
                    signing_pb2.CompleteSignatureRequest(
                        session_id=prepared.session_id, signature_value=value
                    ),
                    metadata=auth(server.config),
                )
            except grpc.aio.AioRpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

        import asyncio

        codes = await asyncio.gather(*(attempt() for _ in range(8)))
    assert codes.count(grpc.StatusCode.OK) == 1, codes
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION}


def test_request_signature_cli_reports_a_refusal(server, dev_env, tmp_path, capsys):
    from kyso.cli.main import main as kyso_main
    from kyso.dev.pki import TestCertificate

    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(make_pdf())
    expired = dev_env.test_keys[TestCertificate.EXPIRED].certificate_path
    argv = ["request-signature", str(pdf), "--official", str(expired)]
    argv += ["--config", str(server.config.source), "--server", server.address]
    with pytest.raises(SystemExit) as exit_info:
        kyso_main(argv)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "FAILED_PRECONDITION" in err
    assert "expired" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", [0]), ("1,3-4", [0, 2, 3]), ("2-2,2", [1])],
)
def test_agent_choice_parsing(text, expected):
    from kyso.cli.agent_cmd import _parse_choice

    assert _parse_choice(text, 4) == expected


@pytest.mark.parametrize("text", ["0", "5", "2-1", "x"])
def test_agent_choice_parsing_refuses(text):
    from kyso.cli.agent_cmd import _parse_choice

    with pytest.raises(ValueError):
        _parse_choice(text, 4)


async def test_an_ec_key_signs_two_phase(server, stub, dev_env, token):
    """A P-256 certificate: ECDSA over the digest, DER ECDSA-Sig-Value back from the token."""
    from .conftest import der

    prepared = prepare(
        stub,
        server.config,
        dev_env,
        make_pdf(),
        certificate=der(dev_env.keys["seal-ec"].certificate_path),
        level=signing_pb2.SIGNATURE_LEVEL_B_T,
    )
    assert prepared.signature_mechanism == "ecdsa"
    assert prepared.digest_algorithm == "sha256"
    value = token.sign(prepared.data_to_sign, alias="seal-ec")
    done = _complete(stub, server.config, prepared.session_id, value)
    signed = download(server, done.document.ref)
    await validate(signed, root_certificate(dev_env), level=Level.B_T)


def test_a_batch_completes_each_item_and_fails_the_bad_ones_alone(server, stub, dev_env, token):
    """CompleteSignatures: good items are completed (stored, ledgered), a wrong value and a
    closed session fail alone with the status CompleteSignature would give, in order."""
    from .conftest import objects

    config = server.config
    sessions = [prepare(stub, config, dev_env, make_pdf()) for _ in range(4)]
    values = [token.sign(s.data_to_sign) for s in sessions]
    _complete(stub, config, sessions[3].session_id, values[3])  # closed before the batch
    before = objects(config)
    reply = stub.CompleteSignatures(
        signing_pb2.CompleteSignaturesRequest(
            items=[
                signing_pb2.CompleteSignatureRequest(session_id=s.session_id, signature_value=v)
                for s, v in zip(sessions[:2], values[:2], strict=True)
            ]
            + [
                signing_pb2.CompleteSignatureRequest(
                    session_id=sessions[2].session_id, signature_value=_flip(values[2])
                ),
                signing_pb2.CompleteSignatureRequest(
                    session_id=sessions[3].session_id, signature_value=values[3]
                ),
            ]
        ),
        metadata=auth(config),
    )
    ids = [r.session_id for r in reply.results]
    assert ids == [s.session_id for s in sessions]
    good = [r.completed for r in reply.results[:2]]
    assert all(r.WhichOneof("outcome") == "completed" for r in reply.results[:2])
    assert len({g.ledger_index for g in good}) == 2
    for done in good:
        signed = download(server, done.document.ref)
        assert len(PdfFileReader(io.BytesIO(signed)).embedded_signatures) == 1
    wrong, closed = reply.results[2].error, reply.results[3].error
    assert wrong.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "does not verify" in wrong.message
    assert wrong.field == "signature_value"
    assert closed.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "already completed" in closed.message
    assert len(objects(config)) == len(before) + 2  # the bad items stored nothing
    # the wrong value left its session open: it still completes
    assert _complete(stub, config, sessions[2].session_id, values[2]).document.sha256


def test_an_empty_or_oversized_batch_is_refused(server, stub):
    for count in (0, 101):
        request = signing_pb2.CompleteSignaturesRequest(
            items=[signing_pb2.CompleteSignatureRequest(session_id="0" * 32, signature_value=b"x")]
            * count
        )
        with pytest.raises(grpc.RpcError) as err:
            stub.CompleteSignatures(request, metadata=auth(server.config))
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "item" in err.value.details()
