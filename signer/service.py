"""``PdfSigningService``: sign PDFs at PAdES B-B, B-T, B-LT or B-LTA, with stamps.

Two ways to run, chosen at construction:
- ``key_specs`` given: signing worker processes (``signer.pool``), ``workers`` of them (default:
  one per core). Each has its own PKCS#11 key ring over the same keys, so signatures use every
  core and the caller's event loop only waits. This is how the server runs.
- ``keyring`` alone: in this process (``signer.engine``), on the caller's event loop. For tools,
  tests and embedding.
Both produce the same documents (the same engine signs in both) and raise the same errors.

Invariant: ``sign`` returns a complete signed document or raises a ``SigningError`` (or, for a
failure of the key's token, the ``hsm`` error wrapped as ``KeyUnavailable``); it never returns a
partial result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from hsm import KeyRing, KeySpec
from signer.engine import (
    KeyProfile,
    Level,
    SignedDocument,
    SignerSettings,
    SigningEngine,
    SignRequest,
)
from signer.errors import SignerUnavailable
from signer.fetches import FetchTally
from signer.pool import SigningPool
from storage import ObjectStore, StagedFile

__all__ = [
    "KeyProfile",
    "Level",
    "PdfSigningService",
    "SignRequest",
    "SignedDocument",
    "SignerSettings",
    "SignerUnavailable",
]


class PdfSigningService:
    """Signs PDFs with the keys described by ``keys`` (alias → profile).

    ``key_specs``: the ``hsm.KeySpec`` of every alias in ``keys`` (more are ignored); with them
    the service starts ``workers`` signing processes (``None``: ``os.cpu_count()``) and returns
    once every one has probed its keys and prepared its stamps, or raises the precise error (a
    PIN source, a token, a stamp image). Without them it signs in this process with ``keyring``.
    ``tally``: where the TSA requests and revocation fetches are counted (``signer.fetches``;
    the workers send each count as it is made). Call ``close`` (or use ``with``) to stop the
    workers.
    """

    def __init__(
        self,
        *,
        keyring: KeyRing | None = None,
        keys: Mapping[str, KeyProfile],
        settings: SignerSettings,
        key_specs: Sequence[KeySpec] = (),
        workers: int | None = None,
        store: Callable[[], ObjectStore] | None = None,
        tally: FetchTally | None = None,
    ) -> None:
        self._engine: SigningEngine | None = None
        self._pool: SigningPool | None = None
        self.tally = tally if tally is not None else FetchTally()
        """The TSA requests and revocation fetches of this service's signatures (in the
        workers or in this process), since start."""
        if key_specs:
            self._pool = SigningPool(
                key_specs=key_specs,
                profiles=keys,
                settings=settings,
                workers=workers if workers is not None else (os.cpu_count() or 1),
                store=store,
                tally=self.tally,
            )
        elif keyring is not None:
            self._engine = SigningEngine(
                keyring=keyring, keys=keys, settings=settings, tally=self.tally
            )
        else:
            raise ValueError(
                "give key_specs (sign in worker processes) or a keyring (sign in this process)"
            )

    @property
    def workers(self) -> int:
        """Number of signing worker processes (0: signing happens in this process)."""
        return self._pool.size if self._pool is not None else 0

    def worker_pids(self) -> tuple[int | None, ...]:
        """Process ids of the signing workers (None for one being restarted); for operators."""
        return self._pool.pids() if self._pool is not None else ()

    def warm_up(self) -> None:
        """Prepare every key's stamps now, not on the first request.

        Workers warm up as they start; in-process, this prepares the stamps and freezes them
        for the garbage collector.
        """
        if self._engine is not None:
            self._engine.warm_up()

    async def sign(self, request: SignRequest) -> SignedDocument:
        """Sign ``request.pdf``; see the module docstring for the guarantees."""
        if self._pool is not None:
            return await self._pool.sign(request)
        assert self._engine is not None
        return await self._engine.sign(request)

    @property
    def reads_store(self) -> bool:
        """Whether ``sign_stored`` is available: workers that open the store themselves
        (``store`` given with ``key_specs``)."""
        return self._pool is not None and self._pool.reads_store

    async def sign_stored(
        self, request: SignRequest, ref: str, *, stage: bool = False
    ) -> tuple[SignedDocument, StagedFile | None]:
        """Sign the stored document ``ref``, read by the worker from the store itself (only
        when ``reads_store``); ``request.pdf`` is ignored. See ``SigningPool.sign_stored`` for
        ``stage``."""
        if self._pool is None or not self._pool.reads_store:
            raise ValueError("this signer has no workers that read the store")
        return await self._pool.sign_stored(request, ref, stage=stage)

    def close(self) -> None:
        """Stop the signing workers (nothing to do in-process). Idempotent."""
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> PdfSigningService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
