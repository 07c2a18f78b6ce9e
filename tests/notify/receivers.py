"""A webhook receiver that verifies every delivery with the Standard Webhooks reference library
(PyPI ``standardwebhooks``), and can be taken down, answer a chosen status, or hold secrets."""

from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Received:
    id: str
    type: str
    data: dict[str, Any]
    signatures: int
    at: float = 0.0
    """``time.perf_counter()`` when it arrived, verified."""


@dataclass
class Receiver:
    """``secrets``: whom it accepts (any of them); ``status``: what it answers."""

    secrets: list[str] = field(default_factory=list)
    status: int = 204
    retry_after: str | None = None
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    port: int = 0
    _server: http.server.ThreadingHTTPServer | None = None
    condition: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/kyso"

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = dict(self.headers.items())
                verified = None
                for secret in receiver.secrets:
                    try:
                        verified = Webhook(secret).verify(body, headers)
                        break
                    except WebhookVerificationError:
                        continue
                if verified is None:
                    receiver.rejected.append(headers.get("webhook-id", ""))
                    self.send_response(401)
                    self.end_headers()
                    return
                if receiver.status // 100 == 2:
                    receiver.received.append(
                        Received(
                            id=headers["webhook-id"],
                            type=verified["type"],
                            data=verified["data"],
                            signatures=len(headers["webhook-signature"].split()),
                            at=time.perf_counter(),
                        )
                    )
                    with receiver.condition:
                        receiver.condition.notify_all()
                self.send_response(receiver.status)
                if receiver.retry_after:
                    self.send_header("retry-after", receiver.retry_after)
                self.send_header("content-length", "0")
                self.end_headers()

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

    def wait_for(self, count: int, timeout: float) -> bool:
        """True once ``count`` deliveries arrived (False at ``timeout``)."""
        with self.condition:
            return self.condition.wait_for(lambda: len(self.received) >= count, timeout)

    def ids(self) -> list[str]:
        return [r.id for r in self.received]


def body_of(received: Received) -> str:
    return json.dumps(received.data, sort_keys=True)
