"""``Verifier``: verification in worker processes with a memory cap and a per-document timeout.

One bad document must not take the service down. The Verifier runs a ``workers.WorkerPool``:
fresh interpreters (nothing inherited from the server, and the caller's ``__main__`` is not run
again), each with ``RLIMIT_AS`` set before it reads any document, each verifying one document at
a time (``max_in_flight=1``: other callers wait in the pool for a free worker, so a document is
never queued behind a hostile one). The pool's watchdog gives each document at most
``policy.limits.timeout_seconds``: past that, or when the worker dies (a parser crash, the
kernel's OOM killer), the worker is killed and replaced and the caller gets a report
(INDETERMINATE / RESOURCE_LIMIT or VERIFIER_CRASHED) instead of an exception. A worker that hit a
limit retires after its report and is replaced too, so a near-exhausted heap does not carry over
to the next document.

Messages (``workers.wire``): the policy, pickled, with the document as the message's own data
frame; the report, pickled, back. Each OCSP request and CRL download of online verification is
sent to the parent as a note as soon as it ends (``signer.fetches``) and counted in the
Verifier's ``tally``, so a worker killed mid-document has already told what it fetched.

Thread-safe: ``verify`` may be called from several threads (``verify_async`` runs it in one);
at most ``workers`` documents are verified at a time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import pickle
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from signer.fetches import FetchTally, from_note, to_parent
from signer.verify.engine import crash_report, limit_report, verify_pdf
from signer.verify.errors import VerificationError, VerifierClosed
from signer.verify.policy import VerificationPolicy
from signer.verify.report import SubIndication, VerificationReport
from signer.verify.structure import install_fast_hex_reader
from workers import (
    PoolSpec,
    PoolUnavailable,
    Reply,
    WorkerLost,
    WorkerPool,
    WorkerSetup,
    WorkerTimedOut,
    WorkerUnavailable,
)

__all__ = ["DEFAULT_MEMORY_BYTES", "Verifier", "serve_worker"]

_log = logging.getLogger(__name__)

DEFAULT_MEMORY_BYTES = 1536 * 1024 * 1024
"""Address-space cap of a worker: pyHanko and its libraries need ~300 MiB of it at rest."""

_VERIFY = 1
_STOP_GRACE_S = 5.0
_START_TIMEOUT_S = 60.0
# Replacing a worker is routine here (every limit hit, every timeout): at once when a document
# caused it, and a worker that dies on its own is not restarted in a tight loop.
_BACKOFF = (0.1, 5.0)


@dataclass(frozen=True, kw_only=True)
class _WorkerConfig:
    fast_locator: bool


class Verifier:
    """Owns ``workers`` verification processes; see the module docstring.

    ``fast_locator``: install :func:`~signer.verify.structure.install_fast_hex_reader` in the
    workers (identical results, less time spent reading ``/Contents``). ``tally``: where the
    workers' OCSP and CRL requests are counted (one of its own when not given). The constructor
    returns once every worker is ready; it raises :class:`VerificationError` when they cannot
    start.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        fast_locator: bool = True,
        tally: FetchTally | None = None,
    ) -> None:
        self._count = workers or os.cpu_count() or 1
        self.tally = tally if tally is not None else FetchTally()
        try:
            self._pool = WorkerPool(
                PoolSpec(
                    name="verification",
                    entry="signer.verify.pool:serve_worker",
                    config=_WorkerConfig(fast_locator=fast_locator),
                    workers=self._count,
                    start_timeout=_START_TIMEOUT_S,
                    stop_grace=_STOP_GRACE_S,
                    backoff=_BACKOFF,
                    max_in_flight=1,
                    memory_bytes=memory_bytes,
                    # it parses untrusted PDFs and needs no secret: no PIN variable reaches it
                    environment="minimal",
                    on_note=self._noted,
                )
            )
        except WorkerUnavailable as exc:
            raise VerificationError(f"the verification workers could not start: {exc}") from exc

    def _noted(self, payload: bytes) -> None:
        self.tally.add(from_note(payload))

    @property
    def workers(self) -> int:
        return self._count

    def worker_pids(self) -> tuple[int, ...]:
        """Process ids of the live workers (for monitoring; they change when one is replaced)."""
        return tuple(pid for pid in self._pool.pids() if pid is not None)

    def verify(self, data: bytes, policy: VerificationPolicy) -> VerificationReport:
        """Verify ``data`` in a worker; returns a report for every input, raises only
        :class:`VerifierClosed`."""
        timeout = policy.limits.timeout_seconds
        try:
            call = self._pool.submit(
                kind=_VERIFY,
                payload=pickle.dumps(policy, protocol=pickle.HIGHEST_PROTOCOL),
                data=data,
                timeout=timeout,
            )
            payload, _ = call.wait()
        except WorkerTimedOut:
            return limit_report(
                data, policy=policy, detail=f"verification took longer than {timeout:g} s"
            )
        except WorkerLost as exc:
            _log.warning("verification worker died (exit code %s)", exc.exit_code)
            return crash_report(
                data, policy=policy, detail=f"worker process ended (exit code {exc.exit_code})"
            )
        except PoolUnavailable as exc:
            if exc.closed:
                raise VerifierClosed("the verifier was closed; create a new Verifier") from exc
            return crash_report(data, policy=policy, detail=str(exc))
        report = _loads(payload)
        assert isinstance(report, VerificationReport)
        return report

    async def verify_async(self, data: bytes, policy: VerificationPolicy) -> VerificationReport:
        """:meth:`verify` without blocking the event loop."""
        return await asyncio.to_thread(self.verify, data, policy)

    def close(self) -> None:
        """Stop every worker; idempotent. Calls after this raise :class:`VerifierClosed`."""
        self._pool.close()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- the worker process ----------------------------------------------------------------------


def serve_worker(config: _WorkerConfig) -> WorkerSetup:
    """Entry point in a worker process (``workers``): receive a policy and a document, answer
    a report; retire after a report that hit a limit."""
    # pyHanko logs every validation failure with a traceback; the report carries the reason.
    for name in ("pyhanko", "pyhanko_certvalidator", "signer.verify"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if config.fast_locator:
        install_fast_hex_reader()
    gc.collect()
    gc.freeze()  # the imported modules are long-lived: keep them out of every collection
    tally = FetchTally(forward=to_parent)  # each fetch told to the parent as it ends

    def handle(kind: int, arg: int, payload: bytes, data: bytes | None) -> Reply:
        assert data is not None
        report = verify_pdf(data, policy=_loads(payload), tally=tally)
        return Reply(
            payload=pickle.dumps(report, protocol=pickle.HIGHEST_PROTOCOL),
            retire=report.sub_indication is SubIndication.RESOURCE_LIMIT,
        )

    return WorkerSetup(handle=handle)


def _loads(data: bytes) -> Any:
    # Only ever bytes from the other end of a private socket between this module's parent and
    # worker processes, never from a client: unpickling them is safe.
    return pickle.loads(data)  # noqa: S301
