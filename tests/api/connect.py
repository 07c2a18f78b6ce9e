"""The Connect protocol as curl speaks it (docs/api.md, "HTTP/JSON"): a unary call is one JSON
POST; a streaming call sends and receives envelopes (a flags byte, a 4-byte big-endian length,
a JSON message), the last answer envelope (flags 0x02) carrying the error, if any, and the
trailers."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
from dataclasses import dataclass, field
from typing import Any

END_STREAM = 0x02


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] = field(default_factory=dict)

    @property
    def error(self) -> dict[str, Any]:
        """The Connect error: the body of a failed unary call, or a stream's end message's."""
        if (
            self.messages
            or self.end
            or self.headers.get("content-type", "").startswith("application/connect")
        ):
            return dict(self.end.get("error", {}))
        return dict(self.body or {})

    def fields(self) -> list[str]:
        """The BadRequest field paths, from the details' ``debug`` form."""
        paths: list[str] = []
        for detail in self.error.get("details", []):
            if detail.get("type") == "google.rpc.BadRequest":
                paths += [v["field"] for v in detail["debug"].get("fieldViolations", [])]
        return paths


def envelope(message: dict[str, Any], flags: int = 0) -> bytes:
    data = json.dumps(message).encode()
    return struct.pack(">BI", flags, len(data)) + data


def unenvelope(data: bytes) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    end: dict[str, Any] = {}
    while data:
        flags, length = struct.unpack(">BI", data[:5])
        payload = json.loads(data[5 : 5 + length] or b"{}")
        data = data[5 + length :]
        if flags & END_STREAM:
            end = payload
        else:
            messages.append(payload)
    return messages, end


def _argv(url: str, token: str | None, content_type: str, extra: tuple[str, ...]) -> list[str]:
    argv = ["curl", "-sS", "-i", "--max-time", "120", "-X", "POST", *extra]
    argv += ["-H", f"Content-Type: {content_type}", "--data-binary", "@-"]
    if token is not None:
        argv += ["-H", f"Authorization: Bearer {token}"]
    return [*argv, url]


def _parse(raw: bytes, *, streaming: bool) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    while head.split(b" ", 2)[1:2] == [b"100"]:  # curl's Expect: 100-continue, then the answer
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if streaming and headers.get("content-type", "").startswith("application/connect"):
        messages, end = unenvelope(body)
        return Reply(status, headers, messages=messages, end=end)
    return Reply(status, headers, body=json.loads(body) if body else None)


def _request(
    base: str,
    method: str,
    message: dict[str, Any] | list[dict[str, Any]],
    streaming: bool,
    token: str | None,
    extra: tuple[str, ...],
) -> tuple[list[str], bytes]:
    url = f"{base}/{method}"
    if streaming:
        messages = message if isinstance(message, list) else [message]
        data = b"".join(envelope(m) for m in messages)
        return _argv(url, token, "application/connect+json", extra), data
    return _argv(url, token, "application/json", extra), json.dumps(message).encode()


async def call(
    base: str,
    method: str,
    message: dict[str, Any] | list[dict[str, Any]],
    *,
    token: str | None = None,
    streaming: bool = False,
    extra: tuple[str, ...] = (),
) -> Reply:
    """POST ``message`` to ``base/method`` with curl (``streaming``: as Connect envelopes, for
    Upload, Download and Receive), without blocking the event loop the server may run in."""
    argv, data = _request(base, method, message, streaming, token, extra)
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(data), timeout=150)
    assert process.returncode == 0, err.decode()
    return _parse(out, streaming=streaming)


def call_sync(
    base: str,
    method: str,
    message: dict[str, Any] | list[dict[str, Any]],
    *,
    token: str | None = None,
    streaming: bool = False,
    extra: tuple[str, ...] = (),
) -> Reply | subprocess.CompletedProcess[bytes]:
    """:func:`call` for a server in another process; a transport failure (TLS refused) returns
    curl's completed process instead of a reply."""
    argv, data = _request(base, method, message, streaming, token, extra)
    done = subprocess.run(argv, input=data, capture_output=True, timeout=150, check=False)
    if done.returncode != 0:
        return done
    return _parse(done.stdout, streaming=streaming)
