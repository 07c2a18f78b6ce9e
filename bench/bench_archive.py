"""Archive renewal: renewals per second through the service against a sequential loop of
pyHanko's LTA update on the same documents, measured in the same run.

Documents: ``COUNT`` one-page PDFs signed at PAdES B-LTA by the development ``seal`` key with
the development TSA whose certificate ends in about a week (``kyso.dev.pki.SHORT_TSA_DAYS``), so
every one is due for renewal (margin 90 days). The PKI, tokens and responders are made by
``kyso dev init`` in a temporary home with its own token directory.

- kyso: a server in this process (``kyso.server.Server`` over the development configuration,
  ``[archive] workers = 2``, ``concurrency = 6``, the rate bound lifted); the documents are
  uploaded with ``DocumentService.Upload`` before the clock starts; timed: one
  ``ArchiveService.RunRenewal`` call (it scans the new objects, reads their evidence, renews
  every due one into a new stored version with its catalogue row and ledger event), which must
  report ``COUNT`` renewals and no failure;
- baseline: what a straightforward integration writes, in this process, sequentially: per
  document ``PdfTimeStamper(HTTPTimeStamper(TSA)).async_update_archival_timestamp_chain`` with a
  fetching ``ValidationContext`` over the same trust root (the output kept in memory: nothing
  stored, catalogued or ledgered).
Result: renewals per second of each; goal kyso / baseline ≥ 3.

Run alone: ``python -m bench archive`` (writes bench/results.json).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Result, result

__all__ = ["run"]

COUNT = int(os.environ.get("KYSO_BENCH_ARCHIVE_COUNT", "40"))


def run() -> dict[str, Result]:
    from bench.bench_verify import _softhsm

    logging.getLogger("pyhanko").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="kyso-bench-archive-") as tmp:
        home = Path(tmp)
        with _softhsm(home):
            return asyncio.run(_measure(home))


async def _measure(home: Path) -> dict[str, Result]:
    from asn1crypto import pem, x509

    from kyso.dev.init import dev_init
    from kyso.dev.responders import free_port

    env = dev_init(
        home / "dev",
        responders_port=free_port(),
        softhsm_conf_path=Path(os.environ["SOFTHSM2_CONF"]),
    )
    root = x509.Certificate.load(pem.unarmor(env.root_certificate_path.read_bytes())[2])
    with env.responders():
        documents = await _sign(env, root)
        service = await _service(env, home / "data", documents)
        baseline = await _baseline(env, root, documents)
    return {"archive_renewal_service_vs_pyhanko_lta_loop": result(service, baseline, "renewals/s")}


async def _sign(env: Any, root: Any) -> list[bytes]:
    from hsm import KeyRing, KeySpec, PinSource, Pkcs11Uri
    from signer import KeyProfile, Level, PdfSigningService, SignerSettings, SignRequest
    from tests.signer.pdfgen import make_pdf

    key = env.keys["seal"]
    spec = KeySpec(
        alias="seal",
        uri=Pkcs11Uri.parse(key.uri),
        pin=PinSource.from_file(key.pin_path),
        module_path=str(env.module_path),
        chain_files=(env.intermediate_certificate_path,),
    )
    with KeyRing([spec], workers=1) as ring:
        signing = PdfSigningService(
            keyring=ring,
            keys={"seal": KeyProfile(alias="seal", organisation=env.organisation.name)},
            settings=SignerSettings(
                tsa_urls=(env.pki.short_tsa_url,),
                tsa_timeout=30.0,
                revocation_timeout=30.0,
                trust_roots=(root,),
            ),
        )
        return [
            (
                await signing.sign(
                    SignRequest(
                        pdf=make_pdf(title=f"Quyet dinh so {i}/QD-UBND"),
                        alias="seal",
                        level=Level.B_LTA,
                    )
                )
            ).pdf
            for i in range(COUNT)
        ]


async def _service(env: Any, data: Path, documents: list[bytes]) -> float:
    import grpc

    from kyso.app import Application
    from kyso.config import load_config
    from kyso.dev.setup import render_config
    from kyso.server import Server
    from kyso.v1 import archive_pb2, archive_pb2_grpc, documents_pb2, documents_pb2_grpc

    data.mkdir()
    text = render_config(env, address="127.0.0.1:0", data_dir=data, metrics_address="")
    text += "\n[archive]\nrenew = false\nworkers = 2\nconcurrency = 6\nrate_per_second = 1000.0\n"
    path = data / "kyso.toml"
    path.write_text(text)
    config = load_config(path)
    auth = (("authorization", f"Bearer {env.api_token_path.read_text().strip()}"),)
    server = Server(config, Application.open(config))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            upload = documents_pb2_grpc.DocumentServiceStub(channel).Upload
            for number, pdf in enumerate(documents):
                meta = documents_pb2.UploadMetadata(
                    filename=f"qd-{number}.pdf", content_type="application/pdf"
                )
                await upload(
                    iter(
                        [
                            documents_pb2.UploadRequest(metadata=meta),
                            documents_pb2.UploadRequest(chunk=pdf),
                        ]
                    ),
                    metadata=auth,
                )
            archive = archive_pb2_grpc.ArchiveServiceStub(channel)
            pool = await asyncio.to_thread(server.app.renewal_pool)
            await pool.facts(documents[0])  # the workers started: not timed
            started = time.perf_counter()
            run = await archive.RunRenewal(archive_pb2.RunRenewalRequest(), metadata=auth)
            seconds = time.perf_counter() - started
        assert run.failed == 0, list(run.errors)
        assert run.renewed == len(documents), run
    finally:
        await server.stop()
    return len(documents) / seconds


async def _baseline(env: Any, root: Any, documents: list[bytes]) -> float:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
    from pyhanko.sign.timestamps import HTTPTimeStamper
    from pyhanko_certvalidator import ValidationContext

    started = time.perf_counter()
    for pdf in documents:
        stamper = PdfTimeStamper(HTTPTimeStamper(env.tsa_url))
        context = ValidationContext(trust_roots=[root], allow_fetching=True)
        out = await stamper.async_update_archival_timestamp_chain(
            PdfFileReader(io.BytesIO(pdf)), context, in_place=False
        )
        assert out.getvalue().startswith(pdf)
    return len(documents) / (time.perf_counter() - started)


if __name__ == "__main__":
    import json

    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(run(), indent=2))
