"""``KeyRing``: the server's signing service over PKCS#11 keys, safe under concurrency.

Design (why): python-pkcs11 initialises modules without locking, and SoftHSM then crashes when
threads use separate sessions. So the ring never signs in its own process. Per token it runs a
pool of signing worker *processes* (fresh interpreters: each loads the module itself, opens
one session and logs in once) and talks to them over pipes. Any number of threads and asyncio tasks
may call the ring at once: each request goes to the least busy worker of the key's token and
waits on a future that a reader thread completes. Workers sign in parallel on separate cores.

Start-up: worker 0 of a token logs in first (a wrong PIN is tried once, never by several
workers), then the rest start; every key's policy is checked (no exportable keys unless
allowed) and every key signs a probe that is verified against its certificate.

Faults: when a worker reports the token gone, dies, or times out, the token's pool is marked
DOWN (requests fail fast with ``TokenUnavailable``; ``health()`` reports why) and all its
workers are stopped (their module state is stale). A supervisor thread restarts the pool with
bounded exponential backoff until the token is back, then probes again; it also pings serving
pools so that a removed token is noticed without traffic. A refused or locked PIN is never
retried: the pool stays FAILED until an operator restarts the service with a correct PIN.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Sequence
from enum import Enum

from asn1crypto import x509

from hsm import _worker as proto
from hsm._channel import WATCHDOG_PERIOD, Call, WorkerChannel
from hsm.errors import (
    CertificateNotFound,
    HsmError,
    KeyNotFound,
    KeyPolicyViolation,
    MechanismUnsupported,
    PinIncorrect,
    PinLocked,
    PinSourceError,
    ProbeFailed,
    TokenUnavailable,
)
from hsm.keys import KeyInfo, KeySpec
from hsm.schemes import DigestAlgorithm, SignatureScheme
from hsm.uri import Pkcs11Uri
from hsm.verify import load_certificate_file, load_certificate_files, verify_signature

__all__ = ["KeyRing", "TokenState"]

_log = logging.getLogger(__name__)

# Data up to this size goes to the token for a hashed mechanism; larger data is hashed here so
# that big documents do not travel through the pipe.
_MAX_HASHED_INPUT = 64 * 1024
# Schemes are immutable: build each once (a dataclass per signature is measurable on EC).
_SCHEMES: dict[tuple[str, str, bool], SignatureScheme] = {}
# Errors that an operator must fix; retrying them would lock a token or hide a bad config.
_PERMANENT = (PinIncorrect, PinLocked, PinSourceError, KeyPolicyViolation)


class TokenState(Enum):
    STARTING = "starting"
    SERVING = "serving"
    DOWN = "down"
    """Token or module unavailable; being retried with backoff."""
    FAILED = "failed"
    """Needs an operator (wrong or locked PIN, key policy); never retried."""
    CLOSED = "closed"


class KeyRing:
    """Signing service over configured PKCS#11 keys (see module docstring for the design).

    ``KeyRing(specs, workers=2)`` starts a pool of ``workers`` processes per token and returns
    when every key has passed its probe; it raises the precise ``HsmError`` otherwise (after
    stopping what it started). PINs are read from their sources once, here, and kept in memory
    to restart workers. Thread-safe and asyncio-friendly; ``close()`` (or ``with``) stops it.
    """

    def __init__(
        self,
        specs: Sequence[KeySpec],
        *,
        workers: int | None = None,
        request_timeout: float = 30.0,
        start_timeout: float = 60.0,
        backoff: tuple[float, float] = (0.5, 30.0),
        health_interval: float = 5.0,
    ) -> None:
        if not specs:
            raise HsmError("a key ring needs at least one key")
        aliases = [s.alias for s in specs]
        if len(set(aliases)) != len(aliases):
            raise HsmError(f"key aliases must be unique: {aliases}")
        self._request_timeout = request_timeout
        self._health_interval = health_interval
        self._closed = False
        self._wake = threading.Condition()
        self._pools: list[_Pool] = []
        self._by_alias: dict[str, tuple[_Pool, int]] = {}
        grouped: dict[tuple[str, tuple[tuple[str, str], ...]], list[KeySpec]] = {}
        for spec in specs:
            token_key = tuple(sorted(spec.uri.token_attributes.items()))
            grouped.setdefault((spec.module_path, token_key), []).append(spec)
        count = workers if workers is not None else (os.cpu_count() or 1)
        try:
            for group in grouped.values():
                pool = _Pool(
                    group,
                    workers=max(1, count),
                    start_timeout=start_timeout,
                    request_timeout=request_timeout,
                    backoff=backoff,
                    on_down=self._poke,
                )
                self._pools.append(pool)
                for index, spec in enumerate(group):
                    self._by_alias[spec.alias] = (pool, index)
                pool.start()
        except BaseException:
            self.close()
            raise
        self._supervisor = threading.Thread(
            target=self._supervise, name="hsm-keyring-supervisor", daemon=True
        )
        self._supervisor.start()

    # -- signing ------------------------------------------------------------------------------

    def sign(
        self,
        alias: str,
        data: bytes,
        *,
        digest_algorithm: DigestAlgorithm = "sha256",
        pss: bool = False,
    ) -> bytes:
        """Sign ``data`` (hashed with ``digest_algorithm``) with key ``alias``.

        Returns the signature in X.509/CMS form (DER ECDSA-Sig-Value for EC keys).
        """
        return self._submit_data(alias, data, digest_algorithm, pss).wait(self._request_timeout)

    def sign_digest(
        self,
        alias: str,
        digest: bytes,
        *,
        digest_algorithm: DigestAlgorithm,
        pss: bool = False,
    ) -> bytes:
        """Sign a precomputed ``digest`` (e.g. of CMS signed attributes) with key ``alias``."""
        call = self._submit_digest(alias, digest, digest_algorithm, pss)
        return call.wait(self._request_timeout)

    async def async_sign(
        self,
        alias: str,
        data: bytes,
        *,
        digest_algorithm: DigestAlgorithm = "sha256",
        pss: bool = False,
    ) -> bytes:
        """``sign`` for asyncio: the loop is never blocked (large data is hashed in a thread)."""
        if len(data) > _MAX_HASHED_INPUT:
            scheme = self._scheme(alias, digest_algorithm, pss)
            digest = await asyncio.to_thread(scheme.hash, data)
            return await self.async_sign_digest(
                alias, digest, digest_algorithm=digest_algorithm, pss=pss
            )
        call = self._submit_data(alias, data, digest_algorithm, pss, asyncio.get_running_loop())
        return await call.wait_async()

    async def async_sign_digest(
        self,
        alias: str,
        digest: bytes,
        *,
        digest_algorithm: DigestAlgorithm,
        pss: bool = False,
    ) -> bytes:
        """``sign_digest`` for asyncio."""
        call = self._submit_digest(alias, digest, digest_algorithm, pss, asyncio.get_running_loop())
        return await call.wait_async()

    # -- facts --------------------------------------------------------------------------------

    def aliases(self) -> tuple[str, ...]:
        return tuple(self._by_alias)

    def certificate(self, alias: str) -> x509.Certificate:
        """The key's certificate (from the token, or the configured file)."""
        pool, index = self._lookup(alias)
        return pool.certificates[index]

    def chain(self, alias: str) -> tuple[x509.Certificate, ...]:
        """Issuer certificates, nearest first (from the configured files, else the token)."""
        pool, index = self._lookup(alias)
        return pool.chains[index]

    def key_info(self, alias: str) -> KeyInfo:
        """Algorithm, size, protection attributes and URI of the key, as the token reports."""
        pool, index = self._lookup(alias)
        return pool.infos[index]

    def health(self) -> dict[str, bool | str]:
        """Per token: ``True`` when serving, else a string saying why not (never ``False``).

        Keys are the tokens' descriptions (``token='kyso-dev'``). Test with ``is True``.
        """
        return {pool.name: pool.health() for pool in self._pools}

    def token_states(self) -> dict[str, TokenState]:
        return {pool.name: pool.state for pool in self._pools}

    @property
    def serving(self) -> bool:
        """True when every token is serving."""
        return all(pool.state is TokenState.SERVING for pool in self._pools)

    # -- life ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the supervisor and every worker; pending requests fail with TokenUnavailable."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        for pool in self._pools:
            pool.close()

    def __enter__(self) -> KeyRing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _lookup(self, alias: str) -> tuple[_Pool, int]:
        try:
            return self._by_alias[alias]
        except KeyError:
            raise KeyNotFound(
                f"no key is configured under alias {alias!r} (configured: "
                f"{', '.join(self._by_alias)})"
            ) from None

    def _scheme(self, alias: str, digest_algorithm: DigestAlgorithm, pss: bool) -> SignatureScheme:
        pool, index = self._lookup(alias)
        key_type = pool.infos[index].key_type
        try:
            return _SCHEMES[(key_type, digest_algorithm, pss)]
        except KeyError:
            pass
        try:
            scheme = SignatureScheme(key_type=key_type, digest_algorithm=digest_algorithm, pss=pss)
        except ValueError as exc:
            raise MechanismUnsupported(f"key {alias!r}: {exc}") from exc
        _SCHEMES[(key_type, digest_algorithm, pss)] = scheme
        return scheme

    def _submit_data(
        self,
        alias: str,
        data: bytes,
        digest_algorithm: DigestAlgorithm,
        pss: bool,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Call:
        scheme = self._scheme(alias, digest_algorithm, pss)
        pool, index = self._lookup(alias)
        offered = pool.infos[index].mechanisms
        if len(data) <= _MAX_HASHED_INPUT and scheme.hashed_mechanism in offered:
            code = proto.scheme_code(digest_algorithm, pss, True)
            return pool.submit(index, code, data, loop)
        return self._submit_digest(alias, scheme.hash(data), digest_algorithm, pss, loop)

    def _submit_digest(
        self,
        alias: str,
        digest: bytes,
        digest_algorithm: DigestAlgorithm,
        pss: bool,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Call:
        scheme = self._scheme(alias, digest_algorithm, pss)
        if len(digest) != scheme.digest_size:
            raise HsmError(
                f"a {digest_algorithm} digest has {scheme.digest_size} bytes, got {len(digest)}"
            )
        pool, index = self._lookup(alias)
        if scheme.raw_mechanism not in pool.infos[index].mechanisms:
            raise MechanismUnsupported(
                f"key {alias!r}: the token cannot sign a precomputed digest for this scheme"
            )
        return pool.submit(index, proto.scheme_code(digest_algorithm, pss, False), digest, loop)

    def _poke(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def _supervise(self) -> None:
        next_ping = time.monotonic() + self._health_interval
        next_watch = time.monotonic() + WATCHDOG_PERIOD
        while True:
            with self._wake:
                if self._closed:
                    return
                now = time.monotonic()
                due = [p.next_attempt for p in self._pools if p.state is TokenState.DOWN]
                wait = min([next_ping, next_watch, *due]) - now
                if wait > 0:
                    self._wake.wait(wait)
                if self._closed:
                    return
            now = time.monotonic()
            if now >= next_watch:
                next_watch = now + WATCHDOG_PERIOD
                for pool in self._pools:
                    pool.fail_overdue(now - self._request_timeout)
            for pool in self._pools:
                if pool.state is TokenState.DOWN and now >= pool.next_attempt:
                    pool.recover()
            if now >= next_ping:
                next_ping = now + self._health_interval
                for pool in self._pools:
                    if pool.state is TokenState.SERVING:
                        pool.ping()


class _Pool:
    """The workers serving the keys of one token, and the token's state."""

    def __init__(
        self,
        specs: list[KeySpec],
        *,
        workers: int,
        start_timeout: float,
        request_timeout: float,
        backoff: tuple[float, float],
        on_down: object,
    ) -> None:
        first = specs[0]
        for spec in specs[1:]:
            if spec.pin != first.pin:
                raise PinSourceError(
                    f"keys {first.alias!r} and {spec.alias!r} are on the same token but have"
                    " different PIN sources; a token has one user PIN: use one source"
                )
        self.specs = specs
        self.module_path = first.module_path
        uri = first.uri
        self.token_uri = Pkcs11Uri(
            token=uri.token, serial=uri.serial, manufacturer=uri.manufacturer, model=uri.model
        )
        self.name = first.uri.describe_token()
        self.size = workers
        self.start_timeout = start_timeout
        self.request_timeout = request_timeout
        self.backoff_min, self.backoff_max = backoff
        self.backoff = self.backoff_min
        self.on_down = on_down
        self.lock = threading.RLock()
        self.state = TokenState.STARTING
        self.reason = "starting"
        self.failure: HsmError | None = None
        self.next_attempt = 0.0
        self.workers: list[WorkerChannel] = []
        self.infos: list[KeyInfo] = []
        self.certificates: list[x509.Certificate] = []
        self.chains: list[tuple[x509.Certificate, ...]] = []
        self.pin = first.pin.read()
        self.file_certificates = [
            load_certificate_file(s.certificate_file) if s.certificate_file else None for s in specs
        ]
        self.file_chains = [tuple(load_certificate_files(s.chain_files)) for s in specs]

    # -- start and recovery -------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers and probe every key; raise the precise error on failure.

        A token that is unavailable at this moment (the module answers GeneralError while
        another process rewrites the token's files, a device being plugged in) is tried again
        with backoff until ``start_timeout``; every other failure (wrong PIN, missing key,
        policy) is final at once — a PIN is never retried.
        """
        deadline = time.monotonic() + self.start_timeout
        delay = 0.1
        while True:
            try:
                self._start_once()
                break
            except TokenUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise
                _log.warning("token %s not available yet (%s); retrying", self.name, exc)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _start_once(self) -> None:
        workers: list[WorkerChannel] = []
        try:
            first = WorkerChannel(self, 0)
            workers.append(first)
            ready = first.start(self._config())  # one login attempt before any other
            others = [WorkerChannel(self, i) for i in range(1, self.size)]
            workers.extend(others)
            config = self._config()
            for worker in others:
                worker.launch(config)
            for worker in others:
                worker.await_ready()
            self._adopt(ready)
            with self.lock:
                self.workers = workers
            self._probe_all(first)
        except BaseException:
            for worker in workers:
                worker.stop()
            with self.lock:
                self.workers = []
            raise
        with self.lock:
            self.state = TokenState.SERVING
            self.reason = ""
            self.backoff = self.backoff_min
        _log.info("token %s serving with %d signing workers", self.name, len(workers))

    def recover(self) -> None:
        try:
            self.start()
        except _PERMANENT as exc:
            with self.lock:
                self.state = TokenState.FAILED
                self.reason = str(exc)
                self.failure = exc
            _log.error("token %s failed and will not be retried: %s", self.name, exc)
        except HsmError as exc:
            with self.lock:
                self.state = TokenState.DOWN
                self.reason = str(exc)
                self.next_attempt = time.monotonic() + self.backoff
                self.backoff = min(self.backoff * 2, self.backoff_max)
            _log.warning("token %s still unavailable: %s", self.name, exc)

    def _config(self) -> proto.WorkerConfig:
        return proto.WorkerConfig(
            module_path=self.module_path,
            token_uri=self.token_uri,
            key_uris=tuple(s.uri for s in self.specs),
            pin=self.pin,
            read_certificates=True,
        )

    def _adopt(self, ready: proto.Ready) -> None:
        infos: list[KeyInfo] = []
        certs: list[x509.Certificate] = []
        chains: list[tuple[x509.Certificate, ...]] = []
        for i, spec in enumerate(self.specs):
            info = ready.keys[i]
            if info.exportable and not spec.allow_exportable:
                raise KeyPolicyViolation(
                    f"key {spec.alias!r} ({spec.uri}) can leave the token (extractable="
                    f"{info.extractable}, sensitive={info.sensitive}); kyso refuses to sign with"
                    " it. Generate a non-extractable, sensitive key, or set allow_exportable"
                    " (development only)."
                )
            if info.exportable:
                _log.warning("key %s is exportable; allowed by configuration", spec.alias)
            cert = self.file_certificates[i]
            if cert is None:
                der = ready.certificates[i]
                if der is None:
                    raise CertificateNotFound(
                        f"key {spec.alias!r} ({spec.uri}) has no certificate on the token; store"
                        " one with the key's CKA_ID or configure a certificate file"
                    )
                cert = x509.Certificate.load(der)
            infos.append(info)
            certs.append(cert)
            chain = self.file_chains[i] or tuple(x509.Certificate.load(d) for d in ready.chains[i])
            chains.append(chain)
        self.infos, self.certificates, self.chains = infos, certs, chains

    def _probe_all(self, worker: WorkerChannel) -> None:
        for index, spec in enumerate(self.specs):
            scheme = SignatureScheme(key_type=self.infos[index].key_type)
            digest = hashlib.sha256(b"kyso key probe " + secrets.token_bytes(16)).digest()
            call = worker.submit(index, proto.scheme_code("sha256", False, False), digest)
            signature = call.wait(self.request_timeout)
            if not verify_signature(self.certificates[index], scheme, digest, signature):
                subject = self.certificates[index].subject.human_friendly
                raise ProbeFailed(
                    f"key {spec.alias!r} ({spec.uri}): a probe signature does not verify against"
                    f" the certificate '{subject}'. The certificate belongs to another key: store"
                    " the right certificate (same CKA_ID) or fix the URI."
                )

    # -- serving -------------------------------------------------------------------------------

    def submit(
        self,
        index: int,
        code: int,
        payload: bytes,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Call:
        with self.lock:
            state = self.state
            workers = self.workers
        if state is not TokenState.SERVING or not workers:
            raise self._not_serving(state)
        worker = min(workers, key=lambda w: len(w.pending))
        return worker.submit(index, code, payload, loop=loop)

    def _not_serving(self, state: TokenState) -> HsmError:
        if state is TokenState.FAILED and self.failure is not None:
            # The permanent error's class, so callers can tell a PIN problem from an outage.
            return type(self.failure)(f"token {self.name}: {self.reason}")
        return TokenUnavailable(f"token {self.name} is unavailable: {self.reason}")

    def mark_down(self, reason: str) -> None:
        """Stop every worker; the supervisor restarts them with backoff."""
        with self.lock:
            if self.state is not TokenState.SERVING:
                return
            self.state = TokenState.DOWN
            self.reason = reason
            self.next_attempt = time.monotonic() + self.backoff
            workers, self.workers = self.workers, []
        _log.warning("token %s unavailable: %s", self.name, reason)
        for worker in workers:
            worker.stop()
        self.on_down()  # type: ignore[operator]

    def fail_overdue(self, deadline: float) -> None:
        """Reset the pool if a request submitted before ``deadline`` is still unanswered."""
        with self.lock:
            workers = list(self.workers) if self.state is TokenState.SERVING else []
        for worker in workers:
            oldest = worker.oldest_started()
            if oldest is not None and oldest < deadline:
                self.mark_down(f"a request took longer than {self.request_timeout:g} s")
                return

    def ping(self) -> None:
        with self.lock:
            workers = list(self.workers)
        for worker in workers:
            try:
                worker.submit(0, 0, b"", op=proto.OP_PING).wait(self.request_timeout)
            except HsmError:
                return  # the reader (or the timeout) marked the pool down

    def health(self) -> bool | str:
        with self.lock:
            if self.state is TokenState.SERVING:
                return True
            return f"{self.state.value}: {self.reason}"

    def close(self) -> None:
        with self.lock:
            self.state = TokenState.CLOSED
            self.reason = "closed"
            workers, self.workers = self.workers, []
        for worker in workers:
            worker.stop()
