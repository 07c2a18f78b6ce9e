"""Batch verification: ``kyso verify DIR`` over 1,000 small B-LT PDFs against a sequential stock
pyHanko validation loop over the same files, measured in the same run.

Documents: ``DISTINCT`` one-page PDFs (~2 KB before signing), each signed at PAdES B-LT by the
development ``seal`` key (SoftHSM RSA-2048, the PKI made by ``kyso dev init`` in a temporary home
with its own token directory), each written ``COUNT / DISTINCT`` times under its own name:
``COUNT`` files (signing 1,000 B-LT documents through the test responders would take longer
than the measurement; neither side keeps results between documents, so a repeated file costs
each side what a new one would). The responders are stopped before anything is verified, so
both sides work offline from the documents' DSS.

- kyso: ``python -m kyso.cli.main verify DIR --json --trust ROOT`` as a child process, timed from
  its start to its exit (interpreter and worker start-up included); every one of the JSON lines
  must say TOTAL-PASSED;
- baseline: the loop a straightforward integration writes, in this process, sequentially (its
  imports already paid): read the file, ``PdfFileReader``,
  ``DocumentSecurityStore.read_dss(...).as_validation_context`` and ``validate_pdf_signature``,
  gating on ``bottom_line``.
Result: documents per second of each; goal kyso / baseline ≥ 3 (on 2 cores).

Run alone: ``python -m bench verify_batch`` (writes bench/results.json).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Result, result

__all__ = ["run"]

COUNT = int(os.environ.get("KYSO_BENCH_BATCH_COUNT", "1000"))
DISTINCT = min(COUNT, 100)
_ROOT = Path(__file__).resolve().parents[1]


def run() -> dict[str, Result]:
    from bench.bench_verify import _softhsm, _stock_validator

    with tempfile.TemporaryDirectory(prefix="kyso-bench-batch-") as tmp:
        home = Path(tmp)
        with _softhsm(home):
            root_pem = _sign_documents(home, home / "docs")
        files = sorted((home / "docs").glob("*.pdf"))
        assert len(files) == COUNT

        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "kyso.cli.main",
                "verify",
                str(home / "docs"),
                "--json",
                "--no-progress",
                "--trust",
                str(root_pem),
            ],
            capture_output=True,
            text=True,
            cwd=_ROOT,
            env={**os.environ, "KYSO_CONFIG": "/nonexistent/kyso.toml"},
            check=False,
        )
        kyso_seconds = time.perf_counter() - started
        reports = [json.loads(line) for line in done.stdout.splitlines()]
        assert done.returncode == 0, done.stderr[-2000:]
        assert len(reports) == COUNT
        assert all(r["indication"] == "TOTAL-PASSED" for r in reports)

        from asn1crypto import pem

        check = _stock_validator(pem.unarmor(root_pem.read_bytes())[2])
        started = time.perf_counter()
        for path in files:
            check(path.read_bytes())
        stock_seconds = time.perf_counter() - started
    return {
        "verify_batch_1000_blt_cli_vs_stock_loop": result(
            COUNT / kyso_seconds, COUNT / stock_seconds, "PDFs/s"
        )
    }


def _sign_documents(home: Path, out: Path) -> Path:
    """``COUNT`` B-LT documents (``DISTINCT`` different ones) in ``out``; returns the root
    certificate's PEM path."""
    from asn1crypto import pem, x509

    from hsm import KeyRing, KeySpec, PinSource, Pkcs11Uri
    from kyso.dev.init import dev_init
    from kyso.dev.responders import free_port
    from signer import KeyProfile, Level, PdfSigningService, SignerSettings, SignRequest
    from tests.signer.pdfgen import make_pdf

    env = dev_init(
        home / "dev",
        responders_port=free_port(),
        softhsm_conf_path=Path(os.environ["SOFTHSM2_CONF"]),
    )
    key = env.keys["seal"]
    spec = KeySpec(
        alias="seal",
        uri=Pkcs11Uri.parse(key.uri),
        pin=PinSource.from_file(key.pin_path),
        module_path=str(env.module_path),
        chain_files=(env.intermediate_certificate_path,),
    )
    root = x509.Certificate.load(pem.unarmor(env.root_certificate_path.read_bytes())[2])
    out.mkdir()
    with env.responders(), KeyRing([spec], workers=1) as ring:
        service = PdfSigningService(
            keyring=ring,
            keys={"seal": KeyProfile(alias="seal", organisation=env.organisation.name)},
            settings=SignerSettings(
                # The test responders answer one request at a time: patience on a busy machine.
                tsa_urls=(env.tsa_url,),
                tsa_timeout=30.0,
                revocation_timeout=30.0,
                trust_roots=(root,),
            ),
        )

        async def sign_all() -> None:
            semaphore = asyncio.Semaphore(2)

            async def one(index: int) -> None:
                async with semaphore:
                    pdf = make_pdf(title=f"Quyet dinh so {index}/QD-UBND")
                    signed = await service.sign(
                        SignRequest(pdf=pdf, alias="seal", level=Level.B_LT)
                    )
                    for copy in range(index, COUNT, DISTINCT):
                        (out / f"qd-{copy:05d}.pdf").write_bytes(signed.pdf)

            await asyncio.gather(*(one(i) for i in range(DISTINCT)))

        asyncio.run(sign_all())
    return env.root_certificate_path


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(run(), indent=2))
