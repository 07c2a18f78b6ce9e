"""``KeyRing``: the server's signing service over PKCS#11 keys, safe under concurrency.

Design (why): python-pkcs11 initialises modules without locking, and SoftHSM then crashes when
threads use separate sessions. So the ring never signs in its own process. Per token it runs a
``workers.WorkerPool`` of signing worker *processes* (``hsm._worker``: each loads the module
itself, opens one session and logs in once; the PIN travels over the pool's socket, never argv).
Any number of threads and asyncio tasks may call the ring at once: each request goes to the least
busy worker of the key's token, in batches, and waits on a future that the pool's reader thread
completes. Workers sign in parallel on separate cores.

Start-up: worker 0 of a token logs in first (a wrong PIN is tried once, never by several
workers), then the rest start; every key's policy is checked (no exportable keys unless
allowed) and every key signs a probe that is verified against its certificate. A token that is
momentarily unavailable is tried again with backoff until ``start_timeout``.

Faults: a token's workers share its fate (``restart="pool"``): they share one view of the token
(key facts, certificates, probes), so when a worker reports the token gone, dies, or misses the
request timeout (the pool's watchdog kills it), the token is marked DOWN — requests fail fast
with ``TokenUnavailable``, ``health()`` says why — and all its workers are stopped (their module
state is suspect). The pool restarts them with bounded exponential backoff until the token is
back, then probes again; it pings serving workers so that a removed token is noticed without
traffic. A refused or locked PIN is never retried: the token stays FAILED until an operator
restarts the service with a correct PIN.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
from collections.abc import Sequence

from asn1crypto import x509

from hsm._worker import OP_PING, OP_SIGN, Ready, WorkerConfig, scheme_code
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
from workers import (
    Call,
    Heartbeat,
    PoolSpec,
    PoolState,
    PoolUnavailable,
    StartCheck,
    WorkerLost,
    WorkerPool,
    WorkerStartFailed,
    WorkerTimedOut,
    WorkerUnavailable,
)

__all__ = ["KeyRing", "TokenState"]

_log = logging.getLogger(__name__)

# Data up to this size goes to the token for a hashed mechanism; larger data is hashed here so
# that big documents do not travel through the pipe.
_MAX_HASHED_INPUT = 64 * 1024
# Schemes are immutable: build each once (a dataclass per signature is measurable on EC).
_SCHEMES: dict[tuple[str, str, bool], SignatureScheme] = {}
# Errors that an operator must fix; retrying them would lock a token or hide a bad config.
_PERMANENT = (PinIncorrect, PinLocked, PinSourceError, KeyPolicyViolation)
# Start failures worth another try until start_timeout: the token is not there yet, or a
# worker process did not come up.
_RETRY_START = (TokenUnavailable, WorkerStartFailed, WorkerLost, WorkerTimedOut)
_STOP_GRACE_S = 2.0

TokenState = PoolState
"""A token's state is its worker pool's: STARTING, SERVING, DOWN (being retried with backoff),
FAILED (needs an operator: wrong or locked PIN, key policy; never retried), CLOSED."""


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
        self._tokens: list[_Token] = []
        self._by_alias: dict[str, tuple[_Token, int]] = {}
        grouped: dict[tuple[str, tuple[tuple[str, str], ...]], list[KeySpec]] = {}
        for spec in specs:
            token_key = tuple(sorted(spec.uri.token_attributes.items()))
            grouped.setdefault((spec.module_path, token_key), []).append(spec)
        count = max(1, workers if workers is not None else (os.cpu_count() or 1))
        try:
            for group in grouped.values():
                try:
                    token = _Token(
                        group,
                        workers=count,
                        start_timeout=start_timeout,
                        request_timeout=request_timeout,
                        backoff=backoff,
                        health_interval=health_interval,
                    )
                except HsmError as exc:
                    exc.aliases = exc.aliases or tuple(s.alias for s in group)
                    raise
                self._tokens.append(token)
                for index, spec in enumerate(group):
                    self._by_alias[spec.alias] = (token, index)
        except BaseException:
            self.close()
            raise

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
        token, call = self._submit_data(alias, data, digest_algorithm, pss)
        return token.wait(call)

    def sign_digest(
        self,
        alias: str,
        digest: bytes,
        *,
        digest_algorithm: DigestAlgorithm,
        pss: bool = False,
    ) -> bytes:
        """Sign a precomputed ``digest`` (e.g. of CMS signed attributes) with key ``alias``."""
        token, call = self._submit_digest(alias, digest, digest_algorithm, pss)
        return token.wait(call)

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
        loop = asyncio.get_running_loop()
        token, call = self._submit_data(alias, data, digest_algorithm, pss, loop)
        try:
            return (await call.wait_async())[0]
        except WorkerUnavailable as exc:
            raise token.error(exc) from exc

    async def async_sign_digest(
        self,
        alias: str,
        digest: bytes,
        *,
        digest_algorithm: DigestAlgorithm,
        pss: bool = False,
    ) -> bytes:
        """``sign_digest`` for asyncio."""
        loop = asyncio.get_running_loop()
        token, call = self._submit_digest(alias, digest, digest_algorithm, pss, loop)
        try:
            return (await call.wait_async())[0]
        except WorkerUnavailable as exc:
            raise token.error(exc) from exc

    # -- facts --------------------------------------------------------------------------------

    def aliases(self) -> tuple[str, ...]:
        return tuple(self._by_alias)

    def certificate(self, alias: str) -> x509.Certificate:
        """The key's certificate (from the token, or the configured file)."""
        token, index = self._lookup(alias)
        return token.certificates[index]

    def chain(self, alias: str) -> tuple[x509.Certificate, ...]:
        """Issuer certificates, nearest first (from the configured files, else the token)."""
        token, index = self._lookup(alias)
        return token.chains[index]

    def key_info(self, alias: str) -> KeyInfo:
        """Algorithm, size, protection attributes and URI of the key, as the token reports."""
        token, index = self._lookup(alias)
        return token.infos[index]

    def health(self) -> dict[str, bool | str]:
        """Per token: ``True`` when serving, else a string saying why not (never ``False``).

        Keys are the tokens' descriptions (``token='kyso-dev'``). Test with ``is True``.
        """
        return {token.name: token.health() for token in self._tokens}

    def token_states(self) -> dict[str, TokenState]:
        return {token.name: token.pool.state for token in self._tokens}

    def worker_pids(self) -> dict[str, tuple[int | None, ...]]:
        """Per token: its signing workers' process ids (None for one being restarted)."""
        return {token.name: token.pool.pids() for token in self._tokens}

    @property
    def serving(self) -> bool:
        """True when every token is serving."""
        return all(token.pool.state is TokenState.SERVING for token in self._tokens)

    # -- life ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every worker; pending requests fail with TokenUnavailable."""
        for token in self._tokens:
            token.pool.close()

    def __enter__(self) -> KeyRing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _lookup(self, alias: str) -> tuple[_Token, int]:
        try:
            return self._by_alias[alias]
        except KeyError:
            raise KeyNotFound(
                f"no key is configured under alias {alias!r} (configured: "
                f"{', '.join(self._by_alias)})"
            ) from None

    def _scheme(self, alias: str, digest_algorithm: DigestAlgorithm, pss: bool) -> SignatureScheme:
        token, index = self._lookup(alias)
        key_type = token.infos[index].key_type
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
    ) -> tuple[_Token, Call]:
        scheme = self._scheme(alias, digest_algorithm, pss)
        token, index = self._lookup(alias)
        offered = token.infos[index].mechanisms
        if len(data) <= _MAX_HASHED_INPUT and scheme.hashed_mechanism in offered:
            code = scheme_code(digest_algorithm, pss, True)
            return token, token.submit(index, code, data, loop)
        return self._submit_digest(alias, scheme.hash(data), digest_algorithm, pss, loop)

    def _submit_digest(
        self,
        alias: str,
        digest: bytes,
        digest_algorithm: DigestAlgorithm,
        pss: bool,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> tuple[_Token, Call]:
        scheme = self._scheme(alias, digest_algorithm, pss)
        if len(digest) != scheme.digest_size:
            raise HsmError(
                f"a {digest_algorithm} digest has {scheme.digest_size} bytes, got {len(digest)}"
            )
        token, index = self._lookup(alias)
        if scheme.raw_mechanism not in token.infos[index].mechanisms:
            raise MechanismUnsupported(
                f"key {alias!r}: the token cannot sign a precomputed digest for this scheme"
            )
        code = scheme_code(digest_algorithm, pss, False)
        return token, token.submit(index, code, digest, loop)


class _Token:
    """The keys of one token, what the token says about them, and its pool of workers."""

    def __init__(
        self,
        specs: list[KeySpec],
        *,
        workers: int,
        start_timeout: float,
        request_timeout: float,
        backoff: tuple[float, float],
        health_interval: float,
    ) -> None:
        first = specs[0]
        for spec in specs[1:]:
            if spec.pin != first.pin:
                error = PinSourceError(
                    f"keys {first.alias!r} and {spec.alias!r} are on the same token but have"
                    " different PIN sources; a token has one user PIN: use one source"
                )
                error.aliases = (first.alias, spec.alias)
                raise error
        self.specs = specs
        uri = first.uri
        self.name = uri.describe_token()
        self.request_timeout = request_timeout
        self.infos: list[KeyInfo] = []
        self.certificates: list[x509.Certificate] = []
        self.chains: list[tuple[x509.Certificate, ...]] = []
        self.file_certificates = [
            load_certificate_file(s.certificate_file) if s.certificate_file else None for s in specs
        ]
        self.file_chains = [tuple(load_certificate_files(s.chain_files)) for s in specs]
        config = WorkerConfig(
            module_path=first.module_path,
            token_uri=Pkcs11Uri(
                token=uri.token, serial=uri.serial, manufacturer=uri.manufacturer, model=uri.model
            ),
            key_uris=tuple(s.uri for s in specs),
            pin=first.pin.read(),
        )
        try:
            self.pool = WorkerPool(
                PoolSpec(
                    name=self.name,
                    entry="hsm._worker:serve",
                    config=config,
                    workers=workers,
                    start_timeout=start_timeout,
                    request_timeout=request_timeout,
                    stop_grace=_STOP_GRACE_S,
                    backoff=backoff,
                    restart="pool",
                    first_alone=True,  # one login attempt before any other
                    heartbeat=Heartbeat(kind=OP_PING, interval=health_interval),
                    retry_start=_RETRY_START,
                    permanent=_PERMANENT,
                    expected_errors=(HsmError,),
                ),
                on_start=self._check,
            )
        except WorkerUnavailable as exc:
            raise self.error(exc) from exc
        _log.info("token %s serving with %d signing workers", self.name, workers)

    # -- serving -------------------------------------------------------------------------------

    def submit(
        self, index: int, code: int, payload: bytes, loop: asyncio.AbstractEventLoop | None
    ) -> Call:
        try:
            return self.pool.submit(kind=OP_SIGN, arg=index << 8 | code, payload=payload, loop=loop)
        except WorkerUnavailable as exc:
            raise self.error(exc) from exc

    def wait(self, call: Call) -> bytes:
        try:
            return call.wait()[0]
        except WorkerUnavailable as exc:
            raise self.error(exc) from exc

    def error(self, exc: WorkerUnavailable) -> HsmError:
        """The ring's error for what the pool saw."""
        if isinstance(exc, WorkerTimedOut):
            return TokenUnavailable(
                f"token {self.name} did not answer within {exc.timeout:g} s; it is being reset"
            )
        if isinstance(exc, PoolUnavailable):
            if isinstance(exc.failure, HsmError):
                # The permanent error's class, so callers can tell a PIN problem from an outage.
                error = type(exc.failure)(f"token {self.name}: {self.pool.reason}")
                error.aliases = exc.failure.aliases
                return error
            return TokenUnavailable(f"token {self.name} is unavailable: {exc}")
        return TokenUnavailable(f"token {self.name} became unavailable; retry shortly ({exc})")

    def health(self) -> bool | str:
        state = self.pool.state
        if state is TokenState.SERVING:
            return True
        return f"{state.value}: {self.pool.reason}"

    # -- start and recovery (on_start of every start of the pool) -------------------------------

    def _check(self, check: StartCheck) -> None:
        ready = check.ready[0]
        assert isinstance(ready, Ready)
        self._adopt(ready)
        self._probe_all(check)

    def _adopt(self, ready: Ready) -> None:
        infos: list[KeyInfo] = []
        certs: list[x509.Certificate] = []
        chains: list[tuple[x509.Certificate, ...]] = []
        for i, spec in enumerate(self.specs):
            info = ready.keys[i]
            if info.exportable and not spec.allow_exportable:
                policy = KeyPolicyViolation(
                    f"key {spec.alias!r} ({spec.uri}) can leave the token (extractable="
                    f"{info.extractable}, sensitive={info.sensitive}); kyso refuses to sign with"
                    " it. Generate a non-extractable, sensitive key, or set allow_exportable"
                    " (development only)."
                )
                policy.aliases = (spec.alias,)
                raise policy
            if info.exportable:
                _log.warning("key %s is exportable; allowed by configuration", spec.alias)
            cert = self.file_certificates[i]
            if cert is None:
                der = ready.certificates[i]
                if der is None:
                    missing = CertificateNotFound(
                        f"key {spec.alias!r} ({spec.uri}) has no certificate on the token; store"
                        " one with the key's CKA_ID or configure a certificate file"
                    )
                    missing.aliases = (spec.alias,)
                    raise missing
                cert = x509.Certificate.load(der)
            infos.append(info)
            certs.append(cert)
            chain = self.file_chains[i] or tuple(x509.Certificate.load(d) for d in ready.chains[i])
            chains.append(chain)
        self.infos, self.certificates, self.chains = infos, certs, chains

    def _probe_all(self, check: StartCheck) -> None:
        for index, spec in enumerate(self.specs):
            scheme = SignatureScheme(key_type=self.infos[index].key_type)
            digest = hashlib.sha256(b"kyso key probe " + secrets.token_bytes(16)).digest()
            code = scheme_code("sha256", False, False)
            signature = check.call(kind=OP_SIGN, arg=index << 8 | code, payload=digest)
            if not verify_signature(self.certificates[index], scheme, digest, signature):
                subject = self.certificates[index].subject.human_friendly
                mismatch = ProbeFailed(
                    f"key {spec.alias!r} ({spec.uri}): a probe signature does not verify against"
                    f" the certificate '{subject}'. The certificate belongs to another key: store"
                    " the right certificate (same CKA_ID) or fix the URI."
                )
                mismatch.aliases = (spec.alias,)
                raise mismatch
