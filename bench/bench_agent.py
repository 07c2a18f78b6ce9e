"""``kyso agent`` batch signing: the agent's time per document beyond the token's own.

A development environment (SoftHSM token ``kyso-official``, dev PKI and responders) and a kyso
server run in this process; 50 documents are prepared for the official, then a child process
(the only one that loads SoftHSM, as the agent on a workstation) signs them with the agent's
batch code twice:

- SoftHSM at full speed: baseline = the same 50 raw token signatures, measured in that child;
- a simulated USB token that takes 0.5 s a signature: baseline = 50 × 0.5 s.

``agent_softhsm_server_cpu``: the server's CPU time (this process) per document of the fast
batch, against the token's own time per signature.

``ratio`` = baseline / batch time (1.0: the agent adds nothing to the token's time; the issue's
bound, at most 1.1 × the token's time, is a ratio of at least 0.91). ``overhead`` is the batch
time beyond the baseline, per document; its goal (issue 24) is at most 5 ms on the fast token,
and when missed the reason splits it into the server's and the agent's CPU per document.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from asn1crypto import pem

from bench.common import Result, at_most, judged, number

DOCUMENTS = 50
TOKEN_SECONDS = 0.5
OVERHEAD_GOAL = at_most(5, unit="ms/doc")
"""Issue 24: at most 5 ms of the agent's own per document on a fast token."""
REPO = Path(__file__).resolve().parents[1]


def run() -> dict[str, Result]:
    from kyso.dev.init import dev_init
    from kyso.dev.responders import free_port

    with tempfile.TemporaryDirectory(prefix="kyso-bench-agent-") as tmp:
        home = Path(tmp)
        env = dev_init(home / "dev", responders_port=free_port())
        with env.responders(), _Server(env, home / "server") as server:
            official = env.keys["official"]
            certificate = bytes(pem.unarmor(official.certificate_path.read_bytes())[2])
            child_args = {
                "address": server.address,
                "api_token": env.api_token_path.read_text().strip(),
                "module": str(env.module_path),
                "token": official.token_label,
                "pin_path": str(official.pin_path),
                "fingerprint": hashlib.sha256(certificate).hexdigest(),
                "count": DOCUMENTS,
            }
            child_env = env.child_env()
            server.prepare(certificate, DOCUMENTS)
            cpu = time.process_time()
            fast = _child({**child_args, "delay": 0.0}, child_env)
            # The server runs in this process: its CPU time for the fast batch, per document
            # (a measure that other load on the machine does not move).
            server_cpu = (time.process_time() - cpu) / DOCUMENTS * 1000
            server.prepare(certificate, DOCUMENTS)
            slow = _child({**child_args, "delay": TOKEN_SECONDS}, child_env)
    slow_baseline = DOCUMENTS * TOKEN_SECONDS
    overhead = _overhead(fast["batch"], fast["raw"])
    return {
        "agent_softhsm_batch_50": _batch(fast["batch"], fast["raw"]),
        "agent_softhsm_overhead": judged(
            overhead,
            OVERHEAD_GOAL,
            overhead_reason(
                overhead,
                server_cpu_ms=server_cpu,
                agent_cpu_ms=fast["cpu"] / DOCUMENTS * 1000,
                token_ms=fast["raw"] / DOCUMENTS * 1000,
            ),
        ),
        "agent_slow_token_batch_50": _batch(slow["batch"], slow_baseline),
        "agent_slow_token_overhead": _overhead(slow["batch"], slow_baseline),
        "agent_softhsm_server_cpu": {
            "value": server_cpu,
            "unit": "CPU-ms/doc",
            "baseline": fast["raw"] / DOCUMENTS * 1000,
            "ratio": fast["raw"] / DOCUMENTS * 1000 / server_cpu,
        },
    }


def overhead_reason(
    row: Result, *, server_cpu_ms: float, agent_cpu_ms: float, token_ms: float
) -> str:
    """Where the agent's time per document beyond the token went, from the CPU measured."""
    waiting = row["value"] - server_cpu_ms - max(agent_cpu_ms - token_ms, 0.0)
    return (
        f"needs ≤ {number(OVERHEAD_GOAL.target)} ms/doc beyond the token's {number(token_ms)};"
        f" measured {number(row['value'])} ms/doc: the server {number(server_cpu_ms)} CPU-ms/doc,"
        f" the agent process {number(agent_cpu_ms)} CPU-ms/doc (the token's"
        f" {number(token_ms)} ms included); the rest, {number(max(waiting, 0.0))} ms/doc, is"
        " time when neither was on a core (round trips, the time-stamp authority, load)"
    )


def _batch(batch: float, baseline: float) -> Result:
    """Seconds for the batch; ratio = the token's own seconds / the batch's (1.0 at best)."""
    return {"value": batch, "unit": "s/50 docs", "baseline": baseline, "ratio": baseline / batch}


def _overhead(batch: float, baseline: float) -> Result:
    """ms per document beyond the token; ratio = the token's ms per document / that."""
    per_doc = max(batch - baseline, 1e-6) / DOCUMENTS * 1000
    token = baseline / DOCUMENTS * 1000
    return {"value": per_doc, "unit": "ms/doc", "baseline": token, "ratio": token / per_doc}


def _child(args: dict[str, Any], env: dict[str, str]) -> dict[str, float]:
    """The agent's batch in a child; its ``raw`` token seconds, ``batch`` seconds and ``cpu``."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_agent", "--child"],
        input=json.dumps(args),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
        check=True,
    )
    answer: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    if answer["signed"] != args["count"]:
        raise RuntimeError(f"the agent signed {answer['signed']} of {args['count']}: {answer}")
    return answer


class _Server:
    """A kyso server over the dev environment, on its own loop in a thread."""

    def __init__(self, env: Any, directory: Path) -> None:
        from kyso.config import load_config
        from kyso.dev.setup import render_config

        directory.mkdir(parents=True)
        path = directory / "kyso.toml"
        path.write_text(
            render_config(
                env,
                address="127.0.0.1:0",
                data_dir=directory,
                metrics_address="",
            )
        )
        self.config = load_config(path)
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> _Server:
        self._thread.start()
        if not self._ready.wait(120) or not self.port:
            raise RuntimeError("the kyso server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    async def _main(self) -> None:
        from kyso.app import Application
        from kyso.server import Server

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            server = Server(self.config, Application.open(self.config))
            await server.start()
            self.port = server.port
        finally:
            self._ready.set()
        await self._stop.wait()
        await server.stop()

    def prepare(self, certificate: bytes, count: int) -> None:
        from kyso.v1 import common_pb2, signing_pb2, signing_pb2_grpc

        token_file = self.config.client.token_file
        assert token_file is not None
        metadata = [("authorization", f"Bearer {token_file.read_text().strip()}")]
        with grpc.insecure_channel(self.address) as channel:
            stub = signing_pb2_grpc.SigningServiceStub(channel)
            for number in range(count):
                stub.PrepareSignature(
                    signing_pb2.PrepareSignatureRequest(
                        document=common_pb2.DocumentInput(content=_pdf(number)),
                        certificate=certificate,
                        title=f"Kết quả số {number}",
                    ),
                    metadata=metadata,
                )


def _pdf(number: int) -> bytes:
    """A one-page PDF whose text carries ``number`` (so every document is different)."""
    text = b"BT /F1 14 Tf 72 700 Td (Ket qua so %d) Tj ET" % number
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for index, body in enumerate(bodies, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (index, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(bodies) + 1,
        xref,
    )
    return bytes(out)


# -- the child: the official's workstation ----------------------------------------------------


class _SlowKey:
    """A token that takes ``delay`` seconds before each signature (a USB token's pace)."""

    def __init__(self, key: Any, delay: float) -> None:
        self._key = key
        self._delay = delay
        self.certificate = key.certificate

    def login(self, pin: str) -> None:
        self._key.login(pin)

    def sign_digest(self, digest: bytes, digest_algorithm: Any, pss: bool = False) -> bytes:
        time.sleep(self._delay)
        return bytes(self._key.sign_digest(digest, digest_algorithm, pss))

    def close(self) -> None:
        self._key.close()


def _child_main() -> None:
    import hsm
    from kyso.cli.agent_cmd import list_pending, sign_batch
    from kyso.cli.common import ClientTarget

    args = json.loads(sys.stdin.read())
    target = ClientTarget(address=args["address"], token=args["api_token"], ca_pem=None)
    key = hsm.open_token_key(args["module"], args["token"])
    try:
        key.login(Path(args["pin_path"]).read_text().strip())
        items = asyncio.run(list_pending(target, args["fingerprint"]))[: args["count"]]
        started = time.perf_counter()
        for item in items:  # the token's own time for these signatures
            key.sign_digest(item.data_to_sign, "sha256")
        raw = time.perf_counter() - started
        signer = _SlowKey(key, args["delay"]) if args["delay"] else key
        started, cpu = time.perf_counter(), time.process_time()
        batch = asyncio.run(sign_batch(target, signer, items))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        key.close()
    answer = {"raw": raw, "batch": elapsed, "cpu": cpu, "signed": len(batch.signed)}
    print(json.dumps(answer))


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        _child_main()
