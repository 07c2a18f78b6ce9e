"""Signing worker processes: the PDF work of the server on every core.

Why: pyHanko's work (parsing, stamping, serialising, hashing) is CPU-bound Python, so one
process signs on one core. ``SigningPool`` runs a ``workers.WorkerPool`` of ``workers``
processes (fresh interpreters, see ``workers``). Each builds its own ``hsm.KeyRing(workers=1)``
over the same ``KeySpec`` list (PKCS#11 state never crosses a process boundary) and its own
``SigningEngine`` with every stamp prepared, then freezes the garbage collector's view of
those long-lived objects.

With ``store`` (a picklable function that opens the object store), ``sign_stored`` signs a
stored document that the worker reads itself, and in a filesystem store it stages the signed PDF
there for the parent to adopt (``FilesystemStore.stage``): a large document never crosses the
socket. The store's credentials travel in the boot configuration, never in argv.

Messages (``workers.wire``): the worker configuration once at start (key specs, profiles,
settings; PIN *sources*, never PINs); per request a pickled header (the ``SignRequest`` fields
but the PDF) with the PDF as the message's own data frame (the document is never pickled); per
answer the ``SignedDocument`` fields but the PDF, pickled, with the signed PDF as data. Each TSA
request and revocation fetch is sent to the parent as a note as soon as it ends
(``signer.fetches``), so the counts survive a worker that fails or is killed before it answers.

Errors keep their class and message across the boundary (``SigningError`` subclasses carry their
``field``; ``hsm`` errors their class); an exception that cannot be pickled arrives as
``workers.RemoteError`` naming its type. A worker that dies, or has not finished a request
within ``request_timeout`` (the pool's watchdog kills it: a TSA or a token that never answers),
fails the requests it held with ``SignerUnavailable`` and is replaced with bounded exponential
backoff; the other workers keep serving.

Invariants: the parent never blocks its event loop (the pool's threads write and read the
documents); a request is answered exactly once; ``close`` stops every worker and its key ring.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hsm import HsmError, KeyRing, KeySpec
from signer.engine import (
    KeyProfile,
    SignedDocument,
    SignerSettings,
    SigningEngine,
    SignRequest,
    unknown_alias,
)
from signer.errors import DocumentTooLarge, SignerUnavailable, SigningError
from signer.fetches import FetchTally, from_note, to_parent
from storage import FilesystemStore, ObjectStore, StagedFile, StorageError
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

__all__ = ["DEFAULT_REQUEST_TIMEOUT", "SignerUnavailable", "SigningPool", "serve_worker"]

DEFAULT_REQUEST_TIMEOUT = 120.0
"""How long a worker may work on one document before the watchdog replaces it. Above the
engine's own network timeouts (two time-stamps and the revocation data of a B-LTA signature at
the default settings), so that only a worker that hangs trips it."""

_SIGN = 1
_SIGN_STORED = 2
_BACKOFF = (1.0, 30.0)
_STOP_GRACE = 10.0
_REQUEST_FIELDS = tuple(f.name for f in dataclasses.fields(SignRequest) if f.name != "pdf")
_RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(SignedDocument) if f.name != "pdf")


@dataclass(frozen=True, kw_only=True)
class _WorkerConfig:
    """What a worker process needs to build its engine (pickled to the child; no PIN inside)."""

    key_specs: tuple[KeySpec, ...]
    profiles: Mapping[str, KeyProfile]
    settings: SignerSettings
    store: Callable[[], ObjectStore] | None = None


class SigningPool:
    """``workers`` signing processes over ``key_specs``; see the module docstring.

    The constructor returns when every worker has started its key ring (each key signed a probe)
    and prepared its stamps; it raises the first worker's error otherwise (for instance
    ``hsm.PinSourceError``), after stopping what it started.
    """

    def __init__(
        self,
        *,
        key_specs: Sequence[KeySpec],
        profiles: Mapping[str, KeyProfile],
        settings: SignerSettings,
        workers: int,
        start_timeout: float = 120.0,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        store: Callable[[], ObjectStore] | None = None,
        tally: FetchTally | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"a signing pool needs at least one worker, not {workers}")
        by_alias = {spec.alias: spec for spec in key_specs}
        missing = sorted(set(profiles) - set(by_alias))
        if missing:
            raise ValueError(f"signing keys without a key spec: {', '.join(missing)}")
        prompts = [a for a in profiles if by_alias[a].pin.kind == "prompt"]
        if prompts:
            raise ValueError(
                f"keys {', '.join(prompts)} read their PIN from a prompt; signing workers run "
                "without a terminal: use an env: or file: PIN source"
            )
        config = _WorkerConfig(
            key_specs=tuple(by_alias[alias] for alias in profiles),
            profiles=dict(profiles),
            settings=settings,
            store=store,
        )
        self._reads_store = store is not None
        self._aliases = frozenset(profiles)
        self._max_size = settings.max_document_size
        self.tally = tally if tally is not None else FetchTally()
        """The workers' TSA requests and revocation fetches, each counted when a worker's note
        about it arrives (right after the fetch, before the answer)."""
        try:
            self._pool = WorkerPool(
                PoolSpec(
                    name="signing",
                    entry="signer.pool:serve_worker",
                    config=config,
                    workers=workers,
                    start_timeout=start_timeout,
                    request_timeout=request_timeout,
                    stop_grace=_STOP_GRACE,
                    backoff=_BACKOFF,
                    expected_errors=(SigningError, HsmError, StorageError),
                    on_note=self._noted,
                )
            )
        except WorkerUnavailable as exc:
            raise SignerUnavailable(
                f"the signing workers could not start ({exc}); check the token and the logs"
            ) from exc

    def _noted(self, payload: bytes) -> None:
        self.tally.add(from_note(payload))

    @property
    def size(self) -> int:
        return self._pool.size

    def pids(self) -> tuple[int | None, ...]:
        """Process ids of the workers (None for a worker being restarted)."""
        return self._pool.pids()

    async def sign(self, request: SignRequest) -> SignedDocument:
        """Sign ``request`` in the least busy worker; raise its error, or SignerUnavailable."""
        if request.alias not in self._aliases:
            raise unknown_alias(request.alias, self._aliases)
        if len(request.pdf) > self._max_size:
            # Checked here too, so an oversized document is not copied to a worker at all.
            raise DocumentTooLarge(
                f"the document is {len(request.pdf):,} bytes; the limit is "
                f"{self._max_size:,} bytes. Split it or ask the operator to raise the limit."
            )
        header = pickle.dumps(
            {name: getattr(request, name) for name in _REQUEST_FIELDS},
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        try:
            call = self._pool.submit(
                kind=_SIGN, payload=header, data=request.pdf, loop=asyncio.get_running_loop()
            )
            payload, pdf = await call.wait_async()
        except WorkerUnavailable as exc:
            raise _unavailable(exc) from exc
        assert pdf is not None
        return SignedDocument(pdf=pdf, **_loads(payload))

    @property
    def reads_store(self) -> bool:
        """Whether the workers open the object store themselves (``sign_stored``)."""
        return self._reads_store

    async def sign_stored(
        self, request: SignRequest, ref: str, *, stage: bool = False
    ) -> tuple[SignedDocument, StagedFile | None]:
        """Sign the stored document ``ref`` (``request.pdf`` is ignored): the worker reads it
        from the store itself, verified against its address, so the document never crosses the
        socket to the worker. With ``stage`` and a filesystem store, the worker also writes the
        signed PDF to a staging file of the store (``FilesystemStore.stage``) and answers that
        instead of the bytes (the returned document's ``pdf`` is then empty): the caller puts it
        (adopted without a copy) and discards it. Raises the store's errors
        (``storage.ObjectNotFound``, ``storage.IntegrityError``, …) as they are, and
        ``DocumentTooLarge`` over the size limit."""
        if not self._reads_store:
            raise ValueError("this signing pool was started without a store to read")
        if request.alias not in self._aliases:
            raise unknown_alias(request.alias, self._aliases)
        fields = {name: getattr(request, name) for name in _REQUEST_FIELDS}
        fields["ref"] = ref
        fields["stage"] = stage
        header = pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            call = self._pool.submit(
                kind=_SIGN_STORED, payload=header, loop=asyncio.get_running_loop()
            )
            payload, pdf = await call.wait_async()
        except WorkerUnavailable as exc:
            raise _unavailable(exc) from exc
        result = _loads(payload)
        staged: StagedFile | None = result.pop("staged", None)
        return SignedDocument(pdf=pdf or b"", **result), staged

    def close(self) -> None:
        """Stop every worker (each closes its key ring); pending requests fail."""
        self._pool.close()

    def __enter__(self) -> SigningPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unavailable(exc: WorkerUnavailable) -> SignerUnavailable:
    if isinstance(exc, WorkerTimedOut):
        return SignerUnavailable(
            f"the signing worker did not finish within {exc.timeout:g} s and was replaced; "
            "nothing was signed, send the request again"
        )
    if isinstance(exc, WorkerLost):
        return SignerUnavailable(
            "the signing worker processing this request died; nothing was signed, "
            "send the request again"
        )
    if isinstance(exc, PoolUnavailable) and exc.closed:
        return SignerUnavailable("the signing workers were stopped; nothing was signed")
    return SignerUnavailable(
        "no signing worker is running (they are being restarted); nothing was signed, "
        "try again shortly"
    )


# -- the worker process ----------------------------------------------------------------------


def serve_worker(config: _WorkerConfig) -> WorkerSetup:
    """Entry point in a worker process (``workers``): build the engine, then sign requests."""
    # A short backoff and health interval: this ring follows a token that comes back within
    # about two seconds of the server's own ring, which is what health reports.
    keyring = KeyRing(config.key_specs, workers=1, backoff=(0.2, 2.0), health_interval=1.0)
    loop = asyncio.new_event_loop()

    def close() -> None:
        loop.close()
        keyring.close()

    try:
        engine = SigningEngine(
            keyring=keyring,
            keys=config.profiles,
            settings=config.settings,
            tally=FetchTally(forward=to_parent),  # each fetch told to the parent as it ends
        )
        engine.warm_up()
    except BaseException:
        close()
        raise

    max_size = config.settings.max_document_size
    opened: list[ObjectStore] = []

    def open_store() -> ObjectStore:
        # Opened at the first request that needs it: a store that is down when the workers
        # start fails those requests (the store's own error), never the signing pool's start.
        assert config.store is not None
        if not opened:
            opened.append(config.store())
        return opened[0]

    def handle(kind: int, arg: int, payload: bytes, data: bytes | None) -> Reply:
        fields = _loads(payload)
        stage = False
        input_digest = None
        store: ObjectStore | None = None
        if kind == _SIGN_STORED:
            store = open_store()
            data, input_digest = _read_stored(store, fields.pop("ref"), max_size)
            stage = fields.pop("stage") and isinstance(store, FilesystemStore)
        assert data is not None
        signed = loop.run_until_complete(
            engine.sign(SignRequest(pdf=data, **fields), input_digest=input_digest)
        )
        result = {name: getattr(signed, name) for name in _RESULT_FIELDS}
        if stage:
            assert isinstance(store, FilesystemStore)
            # The parent adopts this file into the store: the signed PDF never crosses back.
            result["staged"] = store.stage(signed.pdf, sha256=signed.sha256)
            return Reply(payload=pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        return Reply(
            payload=pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL), data=signed.pdf
        )

    return WorkerSetup(handle=handle, close=close)


def _read_stored(store: ObjectStore, ref: str, max_size: int) -> tuple[bytes, Any]:
    """A stored document's bytes, verified against its address, within ``max_size``; with the
    SHA-256 object that hashed them when the store gives it (a filesystem store: one read, one
    hash), else None."""
    size = store.stat(ref).size
    if size > max_size:
        raise DocumentTooLarge(
            f"the document is {size:,} bytes; the limit is {max_size:,} bytes. "
            "Split it or ask the operator to raise the limit."
        )
    if isinstance(store, FilesystemStore):
        return store.read_verified(ref)
    with store.open(ref) as reader:
        data: bytes = reader.read()
    return data, None


def _loads(data: bytes) -> Any:
    # Only ever bytes from the other end of a private socket between this package's own parent
    # and worker processes, never from a client: unpickling them is safe.
    return pickle.loads(data)  # noqa: S301
