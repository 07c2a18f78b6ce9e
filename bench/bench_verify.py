"""PDF verification: documents verified per second through ``signer.verify.Verifier`` against a
sequential stock pyHanko validation loop, measured in the same run.

Document: a 100 KB PDF with one PAdES B-LT signature (key ``seal``, SoftHSM RSA-2048, the
development PKI made by ``kyso dev init`` in a temporary home with its own token directory),
verified offline (the DSS carries the revocation data; the responders are stopped first).

- kyso: a ``Verifier`` with one worker per core, fed by ``CALLERS`` threads; each verification is
  the full report (integrity, chain, revocation at the time-stamp's time, difference analysis,
  PAdES level, document rules) and must come out TOTAL-PASSED;
- kyso, one process: ``verify_pdf`` in a sequential loop here, with the fast ``/Contents``
  reader installed (what one worker does);
- baseline: the loop a straightforward integration writes, in this process, sequentially:
  ``PdfFileReader``, ``DocumentSecurityStore.read_dss(...).as_validation_context`` and
  ``validate_pdf_signature`` per document, gating on ``bottom_line``.
Goal (issue 24): pool / baseline ≥ 6; when missed, the reason sets the pool against one
process's rate times the cores (``pool_reason``).
"""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench.common import Result, at_least, cpu_seconds, judged, number, rate, result

__all__ = ["run"]

SECONDS = 4.0
CALLERS = 4
SIZE = 100_000
POOL_GOAL = at_least(6)
"""Issue 24: verification through the pool ≥ 6× the stock loop."""


def run() -> dict[str, Result]:
    with tempfile.TemporaryDirectory(prefix="kyso-bench-verify-") as tmp, _softhsm(Path(tmp)):
        document, root_der = _signed_document(Path(tmp))
    from signer.verify import Indication, TrustProfile, VerificationPolicy, Verifier, verify_pdf
    from signer.verify.structure import install_fast_hex_reader, uninstall_fast_hex_reader

    policy = VerificationPolicy(trust=(TrustProfile(name="kyso-dev", certificates=(root_der,)),))
    stock_check = _stock_validator(root_der)
    baseline = rate(lambda: stock_check(document), seconds=SECONDS)

    def one() -> None:
        report = verify_pdf(document, policy=policy)
        assert report.indication is Indication.TOTAL_PASSED, report

    install_fast_hex_reader()
    try:
        single = rate(one, seconds=SECONDS)
    finally:
        uninstall_fast_hex_reader()
    with Verifier() as verifier:
        pids = verifier.worker_pids()
        pooled, cpu = _pool_rate(
            lambda: verifier.verify(document, policy).indication is Indication.TOTAL_PASSED,
            pids,
        )
    pool_row = result(pooled, baseline, "PDFs/s")
    reason = pool_reason(pool_row, single, len(pids), os.cpu_count() or 1, cpu)
    return {
        "verify_100k_blt_pool_vs_stock": judged(pool_row, POOL_GOAL, reason),
        "verify_100k_blt_one_process_vs_stock": result(single, baseline, "PDFs/s"),
    }


def pool_reason(
    row: Result, single: float, workers: int, cores: int, cpu: tuple[float, float]
) -> str:
    """Why the pool missed: one process's rate (measured here) times the cores it can use, and
    the CPU per PDF of the pool's workers and of this process (``cpu``, ms) in the pool run."""
    ceiling = single * min(workers, cores)
    return (
        f"needs {number(POOL_GOAL.needed(row))} PDFs/s ({number(POOL_GOAL.target)} × stock"
        f" {number(row['baseline'])}/s); one process verifies {number(single)}/s"
        f" ({number(1000 / single)} CPU-ms/PDF), × {min(workers, cores)} (workers {workers},"
        f" cores {cores}) = ceiling {number(ceiling)}/s; the pool reached {number(row['value'])}/s"
        f" ({row['value'] / ceiling:.0%} of that ceiling), its workers using"
        f" {number(cpu[0])} CPU-ms/PDF and this process (callers, pickling) {number(cpu[1])}"
    )


def _pool_rate(call: Callable[[], bool], pids: Sequence[int]) -> tuple[float, tuple[float, float]]:
    """PDFs/s through the pool, and the CPU-ms per PDF of its workers (``pids``) and of this
    process over the same time."""
    for _ in range(2 * CALLERS):  # warm every worker up
        assert call()
    count = 0
    lock = threading.Lock()
    deadline = time.perf_counter() + SECONDS

    def caller() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            assert call()
            with lock:
                count += 1

    workers_cpu, own_cpu = cpu_seconds(pids), time.process_time()
    started = time.perf_counter()
    threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    workers_cpu, own_cpu = cpu_seconds(pids) - workers_cpu, time.process_time() - own_cpu
    return count / elapsed, (workers_cpu / count * 1000, own_cpu / count * 1000)


def _stock_validator(root_der: bytes) -> Callable[[bytes], None]:
    from asn1crypto import x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    root = x509.Certificate.load(root_der)

    def check(document: bytes) -> None:
        reader = PdfFileReader(io.BytesIO(document))
        for signature in reader.embedded_regular_signatures:
            context = DocumentSecurityStore.read_dss(reader).as_validation_context(
                {"trust_roots": [root], "allow_fetching": False, "revocation_mode": "hard-fail"}
            )
            status = validate_pdf_signature(signature, context)
            assert status.bottom_line

    return check


def _signed_document(home: Path) -> tuple[bytes, bytes]:
    """A ~100 KB PDF signed at B-LT with the dev ``seal`` key (responders up only for this)."""
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
    with env.responders(), KeyRing([spec], workers=1) as ring:
        service = PdfSigningService(
            keyring=ring,
            keys={"seal": KeyProfile(alias="seal", organisation=env.organisation.name)},
            settings=SignerSettings(tsa_urls=(env.tsa_url,), trust_roots=(root,)),
        )
        signed = asyncio.run(
            service.sign(SignRequest(pdf=make_pdf(size=SIZE), alias="seal", level=Level.B_LT))
        )
    return signed.pdf, root.dump()


@contextmanager
def _softhsm(home: Path) -> Iterator[None]:
    """This run's own SoftHSM2 token directory (read by the module when it first loads)."""
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


if __name__ == "__main__":
    import json
    import logging

    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(run(), indent=2))
