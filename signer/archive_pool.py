"""Renewal worker processes: archive renewal beside signing, never in its way.

``RenewalPool`` runs ``workers`` processes (``workers.WorkerPool``), each with one
:class:`~signer.archive.Renewer` (its own TSA client and revocation cache). They hold no key and
no PKCS#11 session: renewal adds validation data and a TSA's time-stamp, nothing signed by kyso.
They are apart from the signing workers, so a renewal run takes no core, token or thread that
signing waits for; the caller bounds how many renewals are in flight.

Messages: per request the document as data and, for ``extend``, the level; per answer the
evidence facts pickled and, for ``extend``, the renewed document as data; a note to the parent
after each TSA request and revocation fetch (``signer.fetches``). Errors keep their class
(``SigningError`` subclasses); a worker that dies or hangs fails only what it held with
``SignerUnavailable`` and is replaced.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from typing import Any

from signer.archive import ArchiveSettings, EvidenceFacts, Extended, Renewer
from signer.errors import SignerUnavailable, SigningError
from signer.fetches import FetchTally, from_note, to_parent
from signer.levels import Level
from signer.verify.structure import install_fast_hex_reader
from workers import PoolSpec, Reply, WorkerPool, WorkerSetup, WorkerUnavailable

__all__ = ["RenewalPool", "serve_worker"]

_FACTS = 1
_EXTEND = 2
_LEVELS = {1: Level.B_LT, 2: Level.B_LTA}


class RenewalPool:
    """``workers`` renewal processes; see the module docstring."""

    def __init__(
        self,
        *,
        settings: ArchiveSettings,
        workers: int,
        request_timeout: float = 120.0,
        tally: FetchTally | None = None,
    ) -> None:
        """``tally``: where the workers' TSA requests and revocation fetches are counted (as
        each worker's note about one arrives)."""
        self.tally = tally if tally is not None else FetchTally()
        try:
            self._pool = WorkerPool(
                PoolSpec(
                    name="renewal",
                    entry="signer.archive_pool:serve_worker",
                    config=settings,
                    workers=workers,
                    request_timeout=request_timeout,
                    backoff=(1.0, 30.0),
                    expected_errors=(SigningError,),
                    on_note=self._noted,
                )
            )
        except WorkerUnavailable as exc:
            raise SignerUnavailable(f"the renewal workers could not start ({exc})") from exc

    def _noted(self, payload: bytes) -> None:
        self.tally.add(from_note(payload))

    @property
    def size(self) -> int:
        return self._pool.size

    async def facts(self, pdf: bytes) -> EvidenceFacts:
        """The evidence facts of ``pdf`` (its last TSA's revocation status fetched)."""
        payload, _ = await self._call(_FACTS, 0, pdf)
        facts: EvidenceFacts = _loads(payload)
        return facts

    async def extend(self, pdf: bytes, *, level: Level) -> Extended:
        """``pdf`` raised to ``level`` (B-LT, or B-LTA with a new document time-stamp)."""
        arg = {Level.B_LT: 1, Level.B_LTA: 2}.get(level, 0)
        payload, data = await self._call(_EXTEND, arg, pdf)
        assert data is not None
        return Extended(pdf=data, level=level, facts=_loads(payload))

    async def _call(self, kind: int, arg: int, pdf: bytes) -> tuple[bytes, bytes | None]:
        try:
            call = self._pool.submit(kind=kind, arg=arg, data=pdf, loop=asyncio.get_running_loop())
            return await call.wait_async()
        except WorkerUnavailable as exc:
            raise SignerUnavailable(
                f"the renewal worker did not finish ({type(exc).__name__}); nothing was "
                "stored, the renewal is tried again"
            ) from exc

    def close(self) -> None:
        self._pool.close()


def serve_worker(settings: ArchiveSettings) -> WorkerSetup:
    """Entry point in a renewal worker process."""
    # pyHanko warns for every offline validation context that embeds data: by design here
    logging.getLogger("pyhanko.sign.signers.pdf_signer").setLevel(logging.ERROR)
    # the verifier workers' one-pass reader of signatures' hex /Contents (pinned to pyHanko's
    # series; same results and errors as pyHanko's): parsing is most of a renewal's CPU
    install_fast_hex_reader()
    renewer = Renewer(settings, tally=FetchTally(forward=to_parent))
    loop = asyncio.new_event_loop()

    def handle(kind: int, arg: int, payload: bytes, data: bytes | None) -> Reply:
        assert data is not None
        if kind == _FACTS:
            facts = loop.run_until_complete(renewer.facts(data))
            return Reply(payload=pickle.dumps(facts, protocol=pickle.HIGHEST_PROTOCOL))
        level = _LEVELS.get(arg, Level.B_B)
        extended = loop.run_until_complete(renewer.extend(data, level=level))
        return Reply(
            payload=pickle.dumps(extended.facts, protocol=pickle.HIGHEST_PROTOCOL),
            data=extended.pdf,
        )

    return WorkerSetup(handle=handle, close=loop.close)


def _loads(data: bytes) -> Any:
    # Only bytes from this package's own worker over a private socket, never a client's.
    return pickle.loads(data)  # noqa: S301
