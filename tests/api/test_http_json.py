"""The same services over HTTP/JSON (Connect protocol, ``[server] http_address``), driven by
curl as docs/api.md shows: the flows of the Node client, with the same authentication,
authorisation, limits and errors as gRPC — the same interceptor instance serves both."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from kyso.app import Application
from kyso.certificates import read_certificates
from kyso.config import load_config
from kyso.errors import ConfigError
from kyso.server import Server
from kyso.v1 import directory_pb2, directory_pb2_grpc
from tests.api.conftest import NODE_DIR, ROOT, token, write_api_config
from tests.api.connect import Reply, call, call_sync
from tests.hubs.topology import TlsPki
from tests.kyso.served import free_port
from tests.signer.pdfgen import make_pdf

SENDER = "000.00.21.H49"
RECIPIENT = "000.00.02.H49"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_sign_verify_upload_download_over_http_json(api_server: Server, api_config) -> None:
    base, t = api_server.http.url, token(api_config)  # type: ignore[union-attr]
    pdf = make_pdf()
    signed = await call(
        base,
        "kyso.v1.SigningService/SignPdf",
        {
            "document": {"content": b64(pdf), "filename": "qd.pdf"},
            "keyAlias": "seal",
            "level": "SIGNATURE_LEVEL_B_LT",
        },
        token=t,
    )
    assert signed.status == 200, signed.body
    assert signed.headers["kyso-request-id"]
    assert signed.body["level"] == "SIGNATURE_LEVEL_B_LT"
    assert isinstance(signed.body["ledgerIndex"], str)  # int64 travel as strings in JSON
    content = base64.b64decode(signed.body["content"])
    assert signed.body["document"]["sha256"] == hashlib.sha256(content).hexdigest()
    # the proto's own field names are accepted too
    report = await call(
        base,
        "kyso.v1.VerificationService/VerifyPdf",
        {"document": {"ref": signed.body["document"]["ref"]}, "language": "en"},
        token=t,
    )
    assert report.status == 200, report.body
    assert report.body["indication"] == "INDICATION_TOTAL_PASSED"

    uploaded = await call(
        base,
        "kyso.v1.DocumentService/Upload",
        [
            {"metadata": {"filename": "a.pdf", "sha256": hashlib.sha256(pdf).hexdigest()}},
            {"chunk": b64(pdf[:5000])},
            {"chunk": b64(pdf[5000:])},
        ],
        token=t,
        streaming=True,
    )
    assert uploaded.status == 200
    assert "error" not in uploaded.end, uploaded.end
    (stored,) = uploaded.messages
    assert stored["ref"]["ref"] == f"sha256/{hashlib.sha256(pdf).hexdigest()}"
    downloaded = await call(
        base, "kyso.v1.DocumentService/Download", {"ref": stored["ref"]}, token=t, streaming=True
    )
    assert "error" not in downloaded.end, downloaded.end
    assert downloaded.end["metadata"]["kyso-request-id"][0]  # the id an operator looks up
    assert b"".join(base64.b64decode(m["chunk"]) for m in downloaded.messages) == pdf
    info = await call(base, "kyso.v1.DocumentService/Stat", {"ref": stored["ref"]}, token=t)
    assert info.body["filename"] == "a.pdf"


async def test_two_phase_and_exchange_over_http_json(
    api_server: Server, api_config, dev_env
) -> None:
    base, t = api_server.http.url, token(api_config)  # type: ignore[union-attr]
    official = read_certificates([dev_env.keys["official"].certificate_path])[0].dump()
    prepared = await call(
        base,
        "kyso.v1.SigningService/PrepareSignature",
        {"document": {"content": b64(make_pdf())}, "certificate": b64(official), "title": "HTTP"},
        token=t,
    )
    assert prepared.status == 200, prepared.body
    assert prepared.body["signInput"] == "SIGN_INPUT_DIGEST"
    session = prepared.body["sessionId"]
    pending = await call(
        base,
        "kyso.v1.SigningService/ListPendingSignatures",
        {"certificateSha256": hashlib.sha256(official).hexdigest()},
        token=t,
    )
    assert session in [p["sessionId"] for p in pending.body["pending"]]
    cancelled = await call(
        base, "kyso.v1.SigningService/CancelSignature", {"sessionId": session}, token=t
    )
    assert (cancelled.status, cancelled.body) == (200, {})
    complete = await call(
        base,
        "kyso.v1.SigningService/CompleteSignature",
        {"sessionId": session, "signatureValue": b64(bytes(256))},
        token=t,
    )
    assert complete.status == 400
    assert complete.error["code"] == "failed_precondition"

    sent = await call(
        base,
        "kyso.v1.ExchangeService/Send",
        {
            "fromUnit": SENDER,
            "toUnits": [RECIPIENT],
            "fields": {"subject": "Về việc thử nghiệm HTTP", "codeNumber": "42"},
        },
        token=t,
    )
    assert sent.status == 200, sent.body
    document_id = sent.body["documentId"]
    received = await call(
        base,
        "kyso.v1.ExchangeService/Receive",
        {"unitCode": RECIPIENT, "maxDeliveries": 1},
        token=t,
        streaming=True,
    )
    assert "error" not in received.end, received.end
    (delivery,) = received.messages
    assert (delivery["documentId"], delivery["subject"]) == (document_id, "Về việc thử nghiệm HTTP")
    acked = await call(
        base,
        "kyso.v1.ExchangeService/Ack",
        {"unitCode": RECIPIENT, "deliveryIds": [delivery["deliveryId"]]},
        token=t,
    )
    assert acked.body == {"acknowledged": 1}
    status = await call(
        base,
        "kyso.v1.ExchangeService/UpdateStatus",
        {"documentId": document_id, "fromUnit": SENDER, "unitCode": RECIPIENT, "statusCode": "03"},
        token=t,
    )
    assert status.status == 200, status.body
    tracked = await call(
        base,
        "kyso.v1.ExchangeService/Track",
        {"documentId": document_id, "fromUnit": SENDER},
        token=t,
    )
    (recipient,) = tracked.body["recipients"]
    assert (recipient["unitCode"], recipient["state"], recipient["statusCode"]) == (
        RECIPIENT,
        "DELIVERY_STATE_ACKNOWLEDGED",
        "03",
    )


async def test_errors_over_http_json_are_the_grpc_ones(api_server: Server, api_config) -> None:
    base, t = api_server.http.url, token(api_config)  # type: ignore[union-attr]
    unit = {"code": SENDER}
    no_token = await call(base, "kyso.v1.DirectoryService/GetUnit", unit)
    assert (no_token.status, no_token.error["code"]) == (401, "unauthenticated")
    bad_token = await call(base, "kyso.v1.DirectoryService/GetUnit", unit, token="nope")
    assert (bad_token.status, bad_token.error["code"]) == (401, "unauthenticated")
    # the web client is an auditor and clerk: completing an official's signature is not its role
    denied = await call(
        base,
        "kyso.v1.SigningService/CompleteSignature",
        {"sessionId": "x"},
        token=token(api_config, "web"),
    )
    assert (denied.status, denied.error["code"]) == (403, "permission_denied")
    unknown_key = await call(
        base,
        "kyso.v1.SigningService/SignPdf",
        {"document": {"content": b64(make_pdf())}, "keyAlias": "no-such-key"},
        token=t,
    )
    assert (unknown_key.status, unknown_key.error["code"]) == (404, "not_found")
    missing_page = await call(
        base,
        "kyso.v1.SigningService/SignPdf",
        {
            "document": {"content": b64(make_pdf())},
            "keyAlias": "seal",
            "appearance": "APPEARANCE_TEXT",
            "placement": {"rect": {"page": 9, "x1": 10, "y1": 10, "x2": 200, "y2": 80}},
        },
        token=t,
    )
    assert (missing_page.status, missing_page.error["code"]) == (400, "invalid_argument")
    assert missing_page.fields()  # google.rpc.BadRequest, with its JSON form under "debug"
    assert missing_page.headers["kyso-request-id"]
    typo = await call(base, "kyso.v1.DirectoryService/GetUnit", {"cod": SENDER}, token=t)
    assert (typo.status, typo.error["code"]) == (400, "invalid_argument")
    assert "cod" in typo.error["message"]
    # a streaming call's error comes in its end message, with the same code
    unknown_ref = await call(
        base,
        "kyso.v1.DocumentService/Download",
        {"ref": {"ref": "sha256/" + "0" * 64}},
        token=t,
        streaming=True,
    )
    assert unknown_ref.error["code"] == "not_found"
    assert unknown_ref.messages == []
    missing = await call(base, "kyso.v1.NoSuchService/Call", unit, token=t)
    assert missing.status == 404


async def test_one_share_of_limits_for_both_protocols(dev_env, tmp_path: Path) -> None:
    """A client's rate and message size are the same over gRPC and HTTP/JSON: calls over gRPC
    use up the share that an HTTP call then finds empty (here the client's own rate, set in its
    ``[clients.NAME]``)."""
    config = write_api_config(dev_env, tmp_path, dev_rate="calls_per_second = 0.001\nburst = 2")
    app = Application.open(config)
    server = Server(config, app)
    await server.start()
    try:
        assert server.http is not None
        t = token(config)
        too_big = await call(
            server.http.url,
            "kyso.v1.VerificationService/VerifyPdf",
            {"document": {"content": b64(bytes(config.server.max_message_bytes))}},
            token=t,
        )
        assert too_big.error["code"] == "resource_exhausted"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = directory_pb2_grpc.DirectoryServiceStub(channel)
            for _ in range(2):
                await stub.GetUnit(
                    directory_pb2.GetUnitRequest(code=SENDER),
                    metadata=[("authorization", f"Bearer {t}")],
                )
        refused = await call(
            server.http.url, "kyso.v1.DirectoryService/GetUnit", {"code": SENDER}, token=t
        )
        assert (refused.status, refused.error["code"]) == (429, "resource_exhausted")
        assert "[clients.dev] calls_per_second" in refused.error["message"]
        assert int(refused.headers["retry-after"]) >= 1
        (retry,) = [d for d in refused.error["details"] if d["type"] == "google.rpc.RetryInfo"]
        assert retry["debug"]["retryDelay"].endswith("s")
    finally:
        await server.stop()


def test_http_json_over_mutual_tls_from_kyso_serve(tmp_path: Path) -> None:
    """`kyso serve` starts the HTTP/JSON listener; over [tls] with client_ca, the client
    certificate is the identity as on gRPC, an unknown one is refused, none at all fails TLS."""
    pki = TlsPki(tmp_path / "tls")
    server_cert, server_key, _ = pki.issue("server", server=True)
    client_cert, client_key, fingerprint = pki.issue("clerk", server=False)
    stranger_cert, stranger_key, _ = pki.issue("stranger", server=False)
    port, http_port = free_port(), free_port()
    config = tmp_path / "kyso.toml"
    config.write_text(
        f"""
[server]
address = "127.0.0.1:{port}"
http_address = "127.0.0.1:{http_port}"
metrics_address = ""

[tls]
enabled = true
certificate = "{server_cert}"
private_key = "{server_key}"
client_ca = "{pki.ca}"

[database]
url = "sqlite:///{tmp_path / "kyso.db"}"

[storage]
path = "{tmp_path / "objects"}"

[clients.clerk]
roles = ["clerk"]
unit = "000.00.21.H49"
certificate_sha256 = "{fingerprint}"
"""
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"https://127.0.0.1:{http_port}"
    tls = ("--cacert", str(pki.ca))
    mine = (*tls, "--cert", str(client_cert), "--key", str(client_key))
    try:
        deadline = time.monotonic() + 60
        while b"serving HTTP/JSON" not in log.read_bytes():
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        data = "văn bản".encode()
        uploaded = call_sync(
            base,
            "kyso.v1.DocumentService/Upload",
            [{"metadata": {"filename": "a.txt"}}, {"chunk": b64(data)}],
            streaming=True,
            extra=mine,
        )
        assert isinstance(uploaded, Reply), uploaded
        assert uploaded.messages[0]["ref"]["ref"] == f"sha256/{hashlib.sha256(data).hexdigest()}"
        stranger = call_sync(
            base,
            "kyso.v1.DocumentService/Stat",
            {"ref": uploaded.messages[0]["ref"]},
            extra=(*tls, "--cert", str(stranger_cert), "--key", str(stranger_key)),
        )
        assert isinstance(stranger, Reply), stranger
        assert (stranger.status, stranger.error["code"]) == (401, "unauthenticated")
        assert "is not a configured client" in stranger.error["message"]
        anonymous = call_sync(base, "kyso.v1.DocumentService/Stat", {"ref": {}}, extra=tls)
        assert isinstance(anonymous, subprocess.CompletedProcess)  # the handshake fails
        plain = call_sync(
            f"http://127.0.0.1:{http_port}", "kyso.v1.DocumentService/Stat", {"ref": {}}
        )
        assert not isinstance(plain, Reply) or plain.status >= 400
        # the same identity over gRPC from Node, as docs/api.md shows it
        for cert, key, expected in (
            (client_cert, client_key, "a.txt"),
            (stranger_cert, stranger_key, "UNAUTHENTICATED"),
        ):
            done = subprocess.run(
                ["node", str(NODE_DIR / "mtls.js")],
                cwd=NODE_DIR,
                env={
                    **os.environ,
                    "KYSO_ADDRESS": f"127.0.0.1:{port}",
                    "KYSO_PROTOS": str(ROOT / "protos"),
                    "KYSO_CA": str(pki.ca),
                    "KYSO_CERT": str(cert),
                    "KYSO_KEY": str(key),
                    "KYSO_REF": uploaded.messages[0]["ref"]["ref"],
                },
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            answer = json.loads(done.stdout)
            assert expected in (answer.get("filename"), answer.get("code")), answer
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("address", ["0.0.0.0:8080", "192.0.2.1:8080"])
def test_plain_http_json_on_a_network_address_is_refused(tmp_path: Path, address: str) -> None:
    path = tmp_path / "kyso.toml"
    path.write_text(
        f'[server]\naddress = "127.0.0.1:0"\nhttp_address = "{address}"\nmetrics_address = ""\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "kyso.db"}"\n'
        f'[storage]\npath = "{tmp_path / "objects"}"\n'
        f'[clients.a]\nroles = ["workflow"]\ntoken_sha256 = "{"ab" * 32}"\n'
    )
    with pytest.raises(ConfigError, match=r"server\.http_address: .* TLS is off"):
        load_config(path)


async def test_a_followed_receive_streams_heartbeats_over_http_json(
    api_server: Server, api_config
) -> None:
    """Server streams go out message by message: an idle followed Receive sends its heartbeats,
    and the client's deadline (Connect-Timeout-Ms) ends it with deadline_exceeded."""
    base, t = api_server.http.url, token(api_config)  # type: ignore[union-attr]
    followed = await call(
        base,
        "kyso.v1.ExchangeService/Receive",
        {"unitCode": RECIPIENT, "follow": True, "heartbeatSeconds": 5},
        token=t,
        streaming=True,
        extra=("-H", "Connect-Timeout-Ms: 8000"),
    )
    assert followed.messages, followed.end
    assert all(m["heartbeat"] is True and m["deliveryId"] == "" for m in followed.messages)
    assert followed.error["code"] == "deadline_exceeded"
