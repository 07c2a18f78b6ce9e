"""PAdES B-B signing: PDFs signed per second through kyso's gRPC API against stock pyHanko.

kyso: a development environment (``kyso dev init`` into a temporary home with its own SoftHSM2
token directory), a kyso ``Server`` in this process, and ``CONCURRENCY`` SignPdf calls in flight
with key ``seal`` (SoftHSM RSA-2048). The 100 KB PDF goes inline; the 10 MB one is over the API's
inline limit, so it is uploaded once and signed by reference. Every signature is also stored,
catalogued and ledgered. The signer runs in its worker processes (``signer.pool``), one per core.

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
from pathlib import Path
from typing import Any

from bench.common import Result, result

SECONDS = 4.0
"""How long each kyso case runs (the baseline runs until BASELINE_SECONDS and 3 documents)."""
BASELINE_SECONDS = 2.5
CONCURRENCY = 8
SIZES = {"100k": 100_000, "10m": 10_000_000}
SEAL_RECT = (300, 650, 560, 740)
_ROOT = Path(__file__).resolve().parent.parent
_INLINE_LIMIT = 4 * 1024 * 1024 - 64 * 1024  # the server's (kyso.operations.documents)
_CHUNK = 1024 * 1024


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
    return {
        f"signer_{name}_{kind}_vs_stock": result(
            kyso[f"{name}_{kind}"], baseline[f"{name}_{kind}"], "PDFs/s"
        )
        for name in SIZES
        for kind in ("invisible", "seal")
    }


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


async def _kyso_rates(env: Any, home: Path, pdf_paths: dict[str, Path]) -> dict[str, float]:
    import grpc

    from kyso.app import Application
    from kyso.config import load_config
    from kyso.dev.setup import render_config
    from kyso.server import Server
    from kyso.v1 import documents_pb2_grpc, signing_pb2_grpc

    config_path = home / "kyso.toml"
    config_path.write_text(
        render_config(env, address="127.0.0.1:0", data_dir=home, metrics_address="")
    )
    config = load_config(config_path)
    app = await asyncio.to_thread(Application.open, config)
    server = Server(config, app)
    await server.start()
    token = env.api_token_path.read_text().strip()
    metadata = [("authorization", f"Bearer {token}")]
    limit = 64 * 1024 * 1024
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    rates: dict[str, float] = {}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=options) as ch:
            stub = signing_pb2_grpc.SigningServiceStub(ch)
            docs = documents_pb2_grpc.DocumentServiceStub(ch)
            for name, path in pdf_paths.items():
                document = await _document_input(docs, path.read_bytes(), metadata)
                for kind in ("invisible", "seal"):
                    rates[f"{name}_{kind}"] = await _throughput(
                        stub, document, kind == "seal", metadata
                    )
    finally:
        await server.stop()
    return rates


async def _document_input(docs: Any, pdf: bytes, metadata: list[tuple[str, str]]) -> Any:
    """Inline content when the API takes it inline (up to 4 MiB), else uploaded once, by ref."""
    from kyso.v1 import common_pb2, documents_pb2

    if len(pdf) <= _INLINE_LIMIT:
        return common_pb2.DocumentInput(content=pdf, filename="bench.pdf")

    def chunks() -> Iterator[Any]:
        yield documents_pb2.UploadRequest(
            metadata=documents_pb2.UploadMetadata(
                filename="bench.pdf", content_type="application/pdf"
            )
        )
        for offset in range(0, len(pdf), _CHUNK):
            yield documents_pb2.UploadRequest(chunk=pdf[offset : offset + _CHUNK])

    stored = await docs.Upload(chunks(), metadata=metadata)
    return common_pb2.DocumentInput(ref=stored.ref)


async def _throughput(
    stub: Any, document: Any, stamped: bool, metadata: list[tuple[str, str]]
) -> float:
    from kyso.v1 import signing_pb2

    x1, y1, x2, y2 = SEAL_RECT
    placement = signing_pb2.Placement(rect=signing_pb2.PageRect(page=1, x1=x1, y1=y1, x2=x2, y2=y2))
    numbers = iter(range(1 << 62))

    async def call() -> None:
        # A different reason each time: every signed PDF is new bytes, so the content-addressed
        # store writes each one (identical outputs would be written once).
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
    count = 0
    deadline = time.perf_counter() + SECONDS

    async def client() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await call()
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return count / (time.perf_counter() - started)


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
            count, started = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - started) < BASELINE_SECONDS or count < 3:
                sign(pdf, stamped)
                count += 1
            rates[f"{name}_{kind}"] = count / elapsed
    session.close()
    print(json.dumps(rates))
