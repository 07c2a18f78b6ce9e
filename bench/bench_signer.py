"""PAdES B-B signing: PDFs signed per second through kyso's gRPC API against stock pyHanko.

kyso: a development environment (``kyso dev init`` into a temporary home with its own SoftHSM2
token directory), a kyso ``Server`` in this process, and a client in a child process (as a real
client is: in the server's process it would take the server's interpreter lock) with
``CONCURRENCY`` SignPdf calls in flight with key ``seal`` (SoftHSM RSA-2048). The 100 KB PDF goes
inline; the 10 MB one is over the API's inline limit, so it is uploaded once and signed by
reference. Every signature is also stored, catalogued and ledgered. The signer runs in its
worker processes (``signer.pool``), one per core.

Goals (issue 24), kyso / stock: ≥ 8× at 100 KB invisible, ≥ 40× with the seal, ≥ 2× at 10 MB
invisible, ≥ 10× with the seal. Over each timed window the CPU time of the server (this
process), of its child processes (the signing workers, from /proc) and of the client is read;
a missed goal's reason gives each one's CPU-ms per PDF and the rate it caps at on its cores.

Baseline, measured in the same run: the loop a straightforward integration writes, sequential
in one process (a child, so that its PKCS#11 module reads this run's token directory): per
document ``PdfSigner`` + ``pyhanko.sign.pkcs11.PKCS11Signer`` on the same key, and for the
stamped case a ``TextStampStyle`` with the seal PNG as background and Noto Sans text, built for
each document. Same PDFs (about 100 KB and 10 MB), same level (B-B).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    Result,
    Stage,
    at_least,
    ceiling_reason,
    cpu_seconds,
    descendants,
    judged,
    number,
    result,
)

SECONDS = 4.0
"""How long each kyso case runs (the baseline runs until BASELINE_SECONDS and 3 documents)."""
BASELINE_SECONDS = 2.5
CONCURRENCY = 8
SIZES = {"100k": 100_000, "10m": 10_000_000}
SEAL_RECT = (300, 650, 560, 740)
_ROOT = Path(__file__).resolve().parent.parent
_INLINE_LIMIT = 4 * 1024 * 1024 - 64 * 1024  # the server's (kyso.operations.documents)
_CHUNK = 1024 * 1024
GOALS = {
    "100k_invisible": at_least(8),
    "100k_seal": at_least(40),
    "10m_invisible": at_least(2),
    "10m_seal": at_least(10),
}
"""Issue 24's goals, kyso / stock; the keys are the cases (size_kind) in row order."""


def run() -> dict[str, Result]:
    with tempfile.TemporaryDirectory(prefix="kyso-bench-signer-") as tmp, _softhsm(Path(tmp)):
        from kyso.dev.init import dev_init
        from kyso.dev.responders import free_port
        from tests.signer.pdfgen import make_pdf

        home = Path(tmp)
        env = dev_init(
            home / "dev",
            responders_port=free_port(),
            softhsm_conf_path=Path(os.environ["SOFTHSM2_CONF"]),
        )
        pdf_paths = {}
        for name, size in SIZES.items():
            pdf_paths[name] = home / f"{name}.pdf"
            pdf_paths[name].write_bytes(make_pdf(size=size))
        baseline = _stock_rates(env, pdf_paths)
        kyso = asyncio.run(_kyso_rates(env, home, pdf_paths))
    rows: dict[str, Result] = {}
    for case, goal in GOALS.items():
        row = result(kyso[case].rate, baseline[case], "PDFs/s")
        rows[f"signer_{case}_vs_stock"] = judged(row, goal, kyso[case].reason(goal.needed(row)))
    # The same runs counted in CPU time (the server, its signing workers and the client; the
    # stock loop's process), as documents per CPU-second: a measure that other load on the
    # machine does not move, where the rates above move with it.
    for case in GOALS:
        rows[f"signer_{case}_per_cpu_second_vs_stock"] = result(
            kyso[case].per_cpu_second, baseline[f"{case}_cpu"], "PDFs/CPU-s"
        )
    return rows


@contextmanager
def _softhsm(home: Path) -> Iterator[None]:
    """This run's own SoftHSM2 token directory, for this process's children."""
    tokens = home / "softhsm" / "tokens"
    tokens.mkdir(parents=True)
    conf = home / "softhsm" / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    saved = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = saved


# -- kyso through gRPC -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Run:
    """One kyso case: its rate and the CPU per document of each process on the path."""

    rate: float
    server_ms: float
    """This process (the server: gRPC, storage, catalogue, ledger), CPU-ms per document."""
    workers_ms: float
    """The server's child processes (the signing workers), CPU-ms per document, together."""
    workers: int
    client_ms: float
    """The client process, CPU-ms per document."""

    @property
    def per_cpu_second(self) -> float:
        return 1000 / (self.server_ms + self.workers_ms + self.client_ms)

    def reason(self, needed: float) -> str:
        cores = os.cpu_count() or 1
        stages = [
            Stage("server process", self.server_ms),
            Stage(
                f"the server's {self.workers} child processes (signing workers)",
                self.workers_ms,
                min(self.workers, cores),
            ),
            Stage("client process", self.client_ms),
        ]
        return f"reached {number(self.rate)} PDFs/s; " + ceiling_reason(
            stages, needed=needed, unit="PDFs/s", cores=cores
        )


async def _kyso_rates(env: Any, home: Path, pdf_paths: dict[str, Path]) -> dict[str, _Run]:
    from kyso.app import Application
    from kyso.config import load_config
    from kyso.dev.setup import render_config
    from kyso.server import Server

    config_path = home / "kyso.toml"
    config_path.write_text(
        render_config(env, address="127.0.0.1:0", data_dir=home, metrics_address="")
    )
    config = load_config(config_path)
    app = await asyncio.to_thread(Application.open, config)
    server = Server(config, app)
    await server.start()
    token = env.api_token_path.read_text().strip()
    runs: dict[str, _Run] = {}
    try:
        for name, path in pdf_paths.items():
            document = await asyncio.to_thread(_document_input, server.port, token, path)
            for kind in ("invisible", "seal"):
                job = {"port": server.port, "token": token, "stamped": kind == "seal", **document}
                runs[f"{name}_{kind}"] = await _throughput(job)
    finally:
        await server.stop()
    return runs


def _document_input(port: int, token: str, path: Path) -> dict[str, str]:
    """Inline content when the API takes it inline (up to 4 MiB), else uploaded once, by ref."""
    import grpc

    from kyso.v1 import documents_pb2, documents_pb2_grpc

    if path.stat().st_size <= _INLINE_LIMIT:
        return {"path": str(path)}
    pdf = path.read_bytes()

    def chunks() -> Iterator[Any]:
        yield documents_pb2.UploadRequest(
            metadata=documents_pb2.UploadMetadata(
                filename="bench.pdf", content_type="application/pdf"
            )
        )
        for offset in range(0, len(pdf), _CHUNK):
            yield documents_pb2.UploadRequest(chunk=pdf[offset : offset + _CHUNK])

    metadata = [("authorization", f"Bearer {token}")]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stored = documents_pb2_grpc.DocumentServiceStub(channel).Upload(chunks(), metadata=metadata)
    return {"ref": str(stored.ref.ref)}


async def _throughput(job: dict[str, Any]) -> _Run:
    """Run the client (a child process) against this process's server; measure the CPU of the
    server, of its worker processes and of the client over the client's timed window."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from bench.bench_signer import client_main; client_main()",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=_ROOT,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write(json.dumps(job).encode() + b"\n")
    await child.stdin.drain()
    if (await child.stdout.readline()).strip() != b"warm":
        await child.wait()
        raise RuntimeError(f"the signing client failed (exit {child.returncode})")
    workers = [pid for pid in descendants(os.getpid()) if pid != child.pid]
    server_cpu, workers_cpu = time.process_time(), cpu_seconds(workers)
    child.stdin.write(b"go\n")
    await child.stdin.drain()
    answer = json.loads(await child.stdout.readline())
    server_cpu, workers_cpu = time.process_time() - server_cpu, cpu_seconds(workers) - workers_cpu
    await child.wait()
    count = answer["count"]
    return _Run(
        rate=count / answer["seconds"],
        server_ms=server_cpu / count * 1000,
        workers_ms=workers_cpu / count * 1000,
        workers=len(workers),
        client_ms=answer["cpu"] / count * 1000,
    )


def client_main() -> None:
    """The client's child: read the job (JSON line) on stdin, warm every worker, print
    ``warm``, wait for ``go``, then sign for SECONDS with CONCURRENCY calls in flight and print
    ``{count, seconds, cpu}`` (JSON)."""
    asyncio.run(_client(json.loads(sys.stdin.readline())))


async def _client(job: dict[str, Any]) -> None:
    import grpc

    from kyso.v1 import common_pb2, signing_pb2, signing_pb2_grpc

    if "path" in job:
        document = common_pb2.DocumentInput(
            content=Path(job["path"]).read_bytes(), filename="bench.pdf"
        )
    else:
        document = common_pb2.DocumentInput(ref=common_pb2.DocumentRef(ref=job["ref"]))
    metadata = [("authorization", f"Bearer {job['token']}")]
    x1, y1, x2, y2 = SEAL_RECT
    placement = signing_pb2.Placement(rect=signing_pb2.PageRect(page=1, x1=x1, y1=y1, x2=x2, y2=y2))
    stamped = job["stamped"]
    numbers = iter(range(1 << 62))
    limit = 64 * 1024 * 1024
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{job['port']}", options=options) as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)

        async def call() -> None:
            # A different reason each time: every signed PDF is new bytes, so the
            # content-addressed store writes each one (identical outputs would be written once).
            request = signing_pb2.SignPdfRequest(
                document=document,
                key_alias="seal",
                level=signing_pb2.SIGNATURE_LEVEL_B_B,
                appearance=signing_pb2.APPEARANCE_SEAL if stamped else signing_pb2.APPEARANCE_NONE,
                placement=placement if stamped else None,
                reason=f"Đóng dấu, lần {next(numbers)}",
            )
            reply = await stub.SignPdf(request, metadata=metadata)
            assert reply.document.ref.ref

        await asyncio.gather(*(call() for _ in range(CONCURRENCY)))  # warm every worker
        print("warm", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        count = 0
        deadline = time.perf_counter() + SECONDS

        async def client() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                await call()
                count += 1

        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"count": count, "seconds": seconds, "cpu": cpu}), flush=True)


# -- the stock baseline (in a child process) ---------------------------------------------------


def _stock_rates(env: Any, pdf_paths: dict[str, Path]) -> dict[str, float]:
    job = {
        "module": str(env.module_path),
        "token": env.keys["seal"].token_label,
        "pin_path": str(env.keys["seal"].pin_path),
        "intermediate": str(env.intermediate_certificate_path),
        "seal_image": str(env.seal_image),
        "pdfs": {name: str(path) for name, path in pdf_paths.items()},
    }
    done = subprocess.run(
        [sys.executable, "-c", "from bench.bench_signer import stock_main; stock_main()"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
        cwd=_ROOT,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the stock pyHanko baseline failed:\n{done.stderr}")
    rates: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return rates


def stock_main() -> None:
    """The baseline's child: read the job (JSON) on stdin, print the rates (JSON) on stdout."""
    from asn1crypto import pem, x509
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
    from pyhanko.pdf_utils.images import PdfImage
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.text import TextBoxStyle
    from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter
    from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session
    from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner
    from pyhanko.stamp import TextStampStyle

    job = json.loads(sys.stdin.read())
    pin = Path(job["pin_path"]).read_text().strip()
    session = open_pkcs11_session(
        job["module"], token_criteria=TokenCriteria(label=job["token"]), user_pin=pin
    )
    intermediate = x509.Certificate.load(pem.unarmor(Path(job["intermediate"]).read_bytes())[2])
    key_signer = PKCS11Signer(
        session,
        cert_label="seal",
        key_label="seal",
        ca_chain=[intermediate],
        other_certs_to_pull=(),
    )
    font = "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf"

    def sign(pdf: bytes, stamped: bool) -> bytes:
        meta = PdfSignatureMetadata(
            field_name="Signature1", md_algorithm="sha256", subfilter=SigSeedSubFilter.PADES
        )
        if not stamped:
            pdf_signer = PdfSigner(meta, signer=key_signer)
        else:
            style = TextStampStyle(
                stamp_text="Ký bởi: %(signer)s\nThời gian ký: %(ts)s",
                text_box_style=TextBoxStyle(font=GlyphAccumulatorFactory(font)),
                background=PdfImage(job["seal_image"]),
                border_width=0,
            )
            pdf_signer = PdfSigner(
                meta,
                signer=key_signer,
                stamp_style=style,
                new_field_spec=SigFieldSpec("Signature1", on_page=0, box=SEAL_RECT),
            )
        out = pdf_signer.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)))
        return out.getvalue()  # type: ignore[no-any-return]

    rates = {}
    for name, path in job["pdfs"].items():
        pdf = Path(path).read_bytes()
        for kind in ("invisible", "seal"):
            stamped = kind == "seal"
            sign(pdf, stamped)  # warm-up
            count, started, cpu = 0, time.perf_counter(), time.process_time()
            while (elapsed := time.perf_counter() - started) < BASELINE_SECONDS or count < 3:
                sign(pdf, stamped)
                count += 1
            rates[f"{name}_{kind}"] = count / elapsed
            rates[f"{name}_{kind}_cpu"] = count / (time.process_time() - cpu)
    session.close()
    print(json.dumps(rates))
