"""A LOCAL STAND-IN for a VNPT SmartCA-style asynchronous signing gateway (not the real one).

Built from the request/answer shapes of VNPT SmartCA's public service-provider integration
samples (``/v1/credentials/get_certificate``, ``/v1/signatures/sign``,
``/v1/signatures/sign/{id}/status``; see ``signer.remote.smartca``). What the samples do not show
(how a refusal or a lapse is told) follows the driver's documented assumption
(``data.transaction_status``). It is served over real HTTP (uvicorn on loopback); the "phone"
is the test, which calls :meth:`approve` / :meth:`reject` / :meth:`expire`. Approving signs the
hashes with the official's key on a SoftHSM token (``kyso-official``), through ``hsm.KeyRing``.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import hsm


@dataclass
class Pending:
    user: str
    hashes: list[bytes]
    state: str = "pending"
    signatures: list[bytes] = field(default_factory=list)


class SmartCaStandIn:
    def __init__(
        self,
        *,
        keyring: hsm.KeyRing,
        alias: str,
        user: str,
        sp_id: str,
        sp_password: str,
        chain: list[bytes],
    ) -> None:
        self.keyring, self.alias, self.user = keyring, alias, user
        self.sp_id, self.sp_password = sp_id, sp_password
        self.chain = chain
        self.transactions: dict[str, Pending] = {}
        self.sign_requests = 0
        self.status_requests = 0
        self.drop_one = False  # answer one signature too few (a count mismatch)
        self.seen_bodies: list[str] = []
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        app = Starlette(
            routes=[
                Route("/v1/credentials/get_certificate", self._certificate, methods=["POST"]),
                Route("/v1/signatures/sign", self._sign, methods=["POST"]),
                Route("/v1/signatures/sign/{tid}/status", self._status, methods=["POST"]),
            ]
        )
        self._server = uvicorn.Server(
            uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        )
        self._server.capture_signals = _no_signals  # type: ignore[method-assign]
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with suppress(asyncio.CancelledError):
                await self._task

    # -- the phone ----------------------------------------------------------------------------

    def only(self) -> str:
        [tid] = [t for t, p in self.transactions.items() if p.state == "pending"]
        return tid

    async def approve(self, tid: str) -> None:
        pending = self.transactions[tid]
        pending.signatures = [
            await self.keyring.async_sign_digest(self.alias, h, digest_algorithm="sha256")
            for h in pending.hashes
        ]
        pending.state = "approved"

    def reject(self, tid: str) -> None:
        self.transactions[tid].state = "rejected"

    def expire(self, tid: str) -> None:
        self.transactions[tid].state = "expired"

    # -- the gateway --------------------------------------------------------------------------

    async def _body(self, request: Request) -> dict[str, Any] | JSONResponse:
        raw = await request.body()
        self.seen_bodies.append(raw.decode())
        body = await request.json() if raw else {}
        if "sp_id" in body and (
            body.get("sp_id") != self.sp_id or body.get("sp_password") != self.sp_password
        ):
            return JSONResponse({"status_code": 401, "message": "sp_id/sp_password", "data": None})
        return dict(body)

    async def _certificate(self, request: Request) -> JSONResponse:
        body = await self._body(request)
        if isinstance(body, JSONResponse):
            return body
        if body.get("user_id") != self.user:
            return JSONResponse(
                {"status_code": 200, "message": "", "data": {"user_certificates": []}}
            )
        certificate = self.keyring.certificate(self.alias)
        return JSONResponse(
            {
                "status_code": 200,
                "message": "success",
                "data": {
                    "user_certificates": [
                        {
                            "service_type": "SMARTCA",
                            "cert_status": "active",
                            "serial_number": format(certificate.serial_number, "x"),
                            "cert_data": base64.b64encode(certificate.dump()).decode(),
                            "chain_data": {
                                "ca_cert": base64.b64encode(self.chain[0]).decode(),
                                "root_cert": None,
                            },
                        }
                    ]
                },
            }
        )

    async def _sign(self, request: Request) -> JSONResponse:
        body = await self._body(request)
        if isinstance(body, JSONResponse):
            return body
        self.sign_requests += 1
        files = sorted(body["sign_files"], key=lambda f: int(f["doc_id"]))
        tid = uuid.uuid4().hex
        self.transactions[tid] = Pending(
            user=body["user_id"], hashes=[bytes.fromhex(f["data_to_be_signed"]) for f in files]
        )
        return JSONResponse(
            {"status_code": 200, "message": "", "data": {"transaction_id": tid, "tran_code": "X"}}
        )

    async def _status(self, request: Request) -> JSONResponse:
        tid = request.path_params["tid"]
        self.status_requests += 1
        pending = self.transactions.get(tid)
        if pending is None:
            return JSONResponse({"status_code": 404, "message": "no transaction", "data": None})
        signatures = None
        if pending.state == "approved":
            values = pending.signatures[:-1] if self.drop_one else pending.signatures
            signatures = [
                {
                    "doc_id": str(i),
                    "signature_value": base64.b64encode(v).decode(),
                    "timestamp_signature": None,
                }
                for i, v in enumerate(values)
            ]
        return JSONResponse(
            {
                "status_code": 200,
                "message": "",
                "data": {
                    "transaction_id": tid,
                    "transaction_status": pending.state,
                    "signatures": signatures,
                },
            }
        )


def _no_signals() -> Any:
    from contextlib import nullcontext

    return nullcontext()
