"""The token pulled from under a running service: SignPdf fails UNAVAILABLE, health turns
NOT_SERVING for the signing service (and the server), and both recover by themselves when the
token is back — no restart."""

from __future__ import annotations

import asyncio
import os
import shutil
import time

import grpc
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kyso.app import Application
from kyso.config import load_config
from kyso.server import Server
from kyso.v1 import common_pb2, signing_pb2, signing_pb2_grpc
from tests.hsm.test_faults import _token_dir
from tests.signer.pdfgen import make_pdf
from tests.support.tokens import KeyRequest, make_token, new_token_label

from .conftest import token

pytestmark = pytest.mark.slow

SIGNING = "kyso.v1.SigningService"


async def _status(channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    return reply.status


async def _sign_code(stub, request, auth) -> grpc.StatusCode:
    try:
        await stub.SignPdf(request, metadata=auth)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def _wait_for(channel, service: str, wanted: int, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while await _status(channel, service) != wanted:
        assert time.monotonic() < deadline, f"{service} never became {wanted}"
        await asyncio.sleep(0.1)


async def test_token_removed_and_restored_under_the_service(write_config, test_ca, tmp_path):
    device = make_token(
        label=new_token_label("svc"), keys=[KeyRequest(label="seal", kind="p256")], ca=test_ca
    )
    (tmp_path / "ca.pem").write_bytes(test_ca.certificate.public_bytes(Encoding.PEM))
    os.environ["KYSO_TEST_FAULT_PIN"] = device.user_pin
    config = load_config(
        write_config(
            f"""
[hsm]
module = "{device.module_path}"
workers = 1

[keys.seal]
uri = "{device.uri("seal")}"
pin_env = "KYSO_TEST_FAULT_PIN"
chain = ["ca.pem"]
unit = "000.00.21.H49"
organisation = "Đơn vị kiểm thử"
clients = ["workflow"]
"""
        )
    )
    app = Application.open(config)
    server = Server(config, app)
    await server.start()
    auth = [("authorization", f"Bearer {token(config, 'workflow')}")]
    request = signing_pb2.SignPdfRequest(
        document=common_pb2.DocumentInput(content=make_pdf()), key_alias="seal"
    )
    directory = _token_dir(device.label)
    unplugged = tmp_path / "unplugged"
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = signing_pb2_grpc.SigningServiceStub(channel)
            assert (await stub.SignPdf(request, metadata=auth)).document.ref.ref
            await _wait_for(channel, SIGNING, health_pb2.HealthCheckResponse.SERVING)

            shutil.move(directory, unplugged)
            codes = set()
            for _ in range(3):  # the first request may be the one that discovers it
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.SignPdf(request, metadata=auth)
                codes.add(err.value.code())
            assert codes == {grpc.StatusCode.UNAVAILABLE}, codes
            await _wait_for(channel, SIGNING, health_pb2.HealthCheckResponse.NOT_SERVING)
            assert await _status(channel, "") == health_pb2.HealthCheckResponse.NOT_SERVING
            # services that do not need the token keep serving
            assert (
                await _status(channel, "kyso.v1.DocumentService")
                == health_pb2.HealthCheckResponse.SERVING
            )

            shutil.move(unplugged, directory)
            await _wait_for(channel, SIGNING, health_pb2.HealthCheckResponse.SERVING)
            # The PDF signing processes hold rings of their own, which follow the token back
            # within a couple of seconds of the server's ring (health).
            deadline = time.monotonic() + 15
            while (code := await _sign_code(stub, request, auth)) is not grpc.StatusCode.OK:
                assert code is grpc.StatusCode.UNAVAILABLE, code
                assert time.monotonic() < deadline, "signing never recovered"
                await asyncio.sleep(0.2)
    finally:
        if unplugged.exists():
            shutil.move(unplugged, directory)
        await server.stop()
        del os.environ["KYSO_TEST_FAULT_PIN"]
