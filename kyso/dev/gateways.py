"""Local stand-ins for the citizens' gateways, for development and tests.

The real gateways cannot be reached from development machines, so these answer on loopback in
the shape the providers document:

- Zalo ZNS, ``POST /message/template`` (as ``https://business.openapi.zalo.me/message/template``):
  header ``access_token``; JSON ``{"phone": "84…", "template_id", "template_data": {…},
  "tracking_id"}``. Success: ``{"error": 0, "message": "Success", "data": {"msg_id",
  "sent_time", "quota": {…}}}``. Errors (HTTP 200, negative ``error``): -124 access token
  invalid, -108 phone number invalid, -1124 template data invalid, -32 rate limit exceeded.
- eSMS.vn, ``POST /MainService.svc/json/SendMultipleMessage_V4_post_json/``: JSON ``{"ApiKey",
  "SecretKey", "Phone", "Content", "Brandname", "SmsType", "IsUnicode", "RequestId"}``.
  Success: ``{"CodeResult": "100", "SMSID": …}``; errors: 101 authorisation failed, 104
  brandname unknown, 99 content invalid (non-ASCII or over 160 characters with ``IsUnicode``
  0), HTTP 429 over the rate limit.

``fail_zns`` / ``fail_sms`` make the next requests fail as the provider would (``"rate"``, an
error code, or ``"slow"``: answer after ``slow_seconds``, for timeouts). Every request is kept
in ``requests`` (with the monotonic time it arrived) for tests to read.
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GatewayRequest", "StandInGateways"]

ZNS_PATH = "/message/template"
SMS_PATH = "/MainService.svc/json/SendMultipleMessage_V4_post_json/"


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    channel: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class StandInGateways:
    """Both stand-ins on one loopback port (``zns_url``, ``sms_url``)."""

    access_token: str = field(default_factory=lambda: secrets.token_hex(16))
    template_id: str = "250001"
    api_key: str = field(default_factory=lambda: secrets.token_hex(8))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(8))
    brandname: str = "KYSO"
    per_second: int = 50
    fail_zns: str = ""
    fail_sms: str = ""
    slow_seconds: float = 30.0
    requests: list[GatewayRequest] = field(default_factory=list)
    port: int = 0
    arrived: threading.Condition = field(default_factory=threading.Condition)
    _server: http.server.ThreadingHTTPServer | None = None
    _window: list[float] = field(default_factory=list)

    @property
    def zns_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{ZNS_PATH}"

    @property
    def sms_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{SMS_PATH}"

    def start(self) -> None:
        gateways = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._answer(400, {"error": -201, "message": "Invalid JSON"})
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path == ZNS_PATH:
                    status, answer = gateways._zns(body, headers)
                elif self.path == SMS_PATH:
                    status, answer = gateways._sms(body, headers)
                else:
                    status, answer = 404, {"error": -404, "message": "Not found"}
                self._answer(status, answer)

            def _answer(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float) -> list[GatewayRequest]:
        """The requests once there are ``count`` of them (or all there are at ``timeout``)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    def _record(self, channel: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self.arrived:
            self.requests.append(GatewayRequest(channel, body, headers, time.monotonic()))
            self.arrived.notify_all()

    def _limited(self) -> bool:
        now = time.monotonic()
        self._window = [t for t in self._window if now - t < 1.0]
        if len(self._window) >= self.per_second:
            return True
        self._window.append(now)
        return False

    def _zns(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self._record("zns", body, headers)
        if self.fail_zns == "slow":
            time.sleep(self.slow_seconds)
        if self.fail_zns == "rate" or self._limited():
            return 200, {"error": -32, "message": "Exceed rate limit"}
        if self.fail_zns:
            return 200, {"error": int(self.fail_zns), "message": "Failure (stand-in)"}
        if headers.get("access_token") != self.access_token:
            return 200, {"error": -124, "message": "Access token is invalid"}
        phone = str(body.get("phone", ""))
        if not (phone.isdigit() and phone.startswith("84") and len(phone) == 11):
            return 200, {"error": -108, "message": "Phone number is invalid"}
        if body.get("template_id") != self.template_id or not isinstance(
            body.get("template_data"), dict
        ):
            return 200, {"error": -1124, "message": "Template data is invalid"}
        return 200, {
            "error": 0,
            "message": "Success",
            "data": {
                "msg_id": secrets.token_hex(16),
                "sent_time": str(int(time.time() * 1000)),
                "quota": {"dailyQuota": "500", "remainingQuota": "499"},
            },
        }

    def _sms(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self._record("sms", body, headers)
        if self.fail_sms == "slow":
            time.sleep(self.slow_seconds)
        if self.fail_sms == "rate" or self._limited():
            return 429, {"CodeResult": "99", "ErrorMessage": "Too many requests"}
        if self.fail_sms:
            return 200, {"CodeResult": self.fail_sms, "ErrorMessage": "Failure (stand-in)"}
        if body.get("ApiKey") != self.api_key or body.get("SecretKey") != self.secret_key:
            return 200, {"CodeResult": "101", "ErrorMessage": "Authorize Failed"}
        if body.get("Brandname") != self.brandname:
            return 200, {"CodeResult": "104", "ErrorMessage": "Brandname khong ton tai"}
        content = str(body.get("Content", ""))
        if body.get("IsUnicode", "0") == "0" and (not content.isascii() or len(content) > 160):
            return 200, {"CodeResult": "99", "ErrorMessage": "Content invalid"}
        return 200, {"CodeResult": "100", "CountRegenerate": 0, "SMSID": secrets.token_hex(16)}
