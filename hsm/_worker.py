"""A signing worker: one module initialisation and one logged-in session per token, in a worker
process of ``workers`` (entry ``hsm._worker:serve``, started by ``KeyRing``'s pool).

The worker is a fresh interpreter: no module state is inherited from the parent, and the
parent's ``__main__`` is not re-run. Its ``WorkerConfig`` (with the PIN) arrives over the
pool's socket, never in argv. Requests:

- ``OP_SIGN``: ``arg`` = key index << 8 | scheme code (``scheme_code``), payload = the data for a
  hashed mechanism or the digest for a raw one; answer = the signature (X.509/CMS form);
- ``OP_PING``: reads every key's handle; answer = empty.

Failures are raised as the ``hsm`` error a caller can act on, prefixed with the token. When the
token or module fails (``TokenUnavailable``), the worker answers and exits: its module state is
stale (SoftHSM and real modules keep dead object handles), and only a fresh process sees the
token again; the ring's pool restarts its workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pkcs11
from pkcs11 import exceptions as p11x

from hsm import _p11
from hsm.errors import CertificateNotFound, HsmError, TokenNotFound, TokenUnavailable
from hsm.keys import KeyInfo
from hsm.schemes import DIGEST_ALGORITHMS, DigestAlgorithm, SignatureScheme
from hsm.uri import Pkcs11Uri
from workers import WorkerSetup

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as pkcs11_lib

__all__ = ["OP_PING", "OP_SIGN", "Ready", "WorkerConfig", "scheme_code", "serve"]

OP_SIGN = 1
OP_PING = 2


def scheme_code(digest_algorithm: DigestAlgorithm, pss: bool, hashed: bool) -> int:
    """digest index | pss << 2 | hashed << 3."""
    return DIGEST_ALGORITHMS.index(digest_algorithm) | (pss << 2) | (hashed << 3)


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    module_path: str
    token_uri: Pkcs11Uri
    key_uris: tuple[Pkcs11Uri, ...]
    pin: str


@dataclass(frozen=True, kw_only=True)
class Ready:
    keys: tuple[KeyInfo, ...]
    certificates: tuple[bytes | None, ...]
    """Per key: the certificate stored beside it, or None."""
    chains: tuple[tuple[bytes, ...], ...]
    """Per key: issuer certificates found on the token."""


@dataclass
class _Key:
    handle: object
    key_type: str
    pin: str | None


def serve(config: WorkerConfig) -> WorkerSetup:
    """Entry point in the worker process: load the module, log in, find the keys."""
    keys, ready = _start(config)
    token = config.token_uri.describe_token()
    schemes = {
        (key_type, code): SignatureScheme(
            key_type=key_type,
            digest_algorithm=DIGEST_ALGORITHMS[code & 3],
            pss=bool(code & 4),
        )
        for key_type in ("rsa", "ec")
        for code in range(8)
        if code & 3 < len(DIGEST_ALGORITHMS) and not (key_type == "ec" and code & 4)
    }

    def handle(kind: int, arg: int, payload: bytes, data: bytes | None) -> bytes:
        try:
            if kind == OP_PING:
                for key in keys:
                    # Reading an attribute fails once the token's objects are gone.
                    _ = key.handle.id  # type: ignore[attr-defined]
                return b""
            key = keys[arg >> 8]
            code = arg & 0xFF
            scheme = schemes[(key.key_type, code & 7)]
            mechanism = scheme.hashed_mechanism if code & 8 else scheme.raw_mechanism
            return _p11.sign(
                key.handle,  # type: ignore[arg-type]
                scheme,
                mechanism,
                payload,
                pin=key.pin,
            )
        except p11x.PKCS11Error as exc:
            error = _p11.translate(exc, "signing")
        except HsmError as exc:
            error = exc
        except (ValueError, KeyError, IndexError) as exc:
            error = HsmError(f"bad request ({type(exc).__name__})")
        raise type(error)(f"token {token}: {error}")

    return WorkerSetup(handle=handle, ready=ready, fatal=(TokenUnavailable,))


_START_SCANS = 4
"""How many times a starting worker looks for its token before it gives up."""


def _find_at_start(lib: pkcs11_lib, uri: Pkcs11Uri) -> pkcs11.Token:
    """The worker's token. A module lists its tokens when it is initialised, and SoftHSM then
    reads each token's file: one that another process is rewriting at that moment is left out.
    So a token not found is looked for again, the module initialised anew each time (safe
    here: this fresh worker process has no session yet), before the start fails."""
    for attempt in range(1, _START_SCANS + 1):
        try:
            return _p11.find_token(lib, uri)
        except TokenNotFound:
            if attempt == _START_SCANS:
                raise
            time.sleep(0.25 * attempt)
            lib.reinitialize()
    raise AssertionError("unreachable")


def _start(config: WorkerConfig) -> tuple[list[_Key], Ready]:
    lib = _p11.load_module(config.module_path)
    token = _find_at_start(lib, config.token_uri)
    session = _p11.login(token, config.pin)
    mechanisms = _p11.signing_mechanisms(token)
    keys: list[_Key] = []
    infos: list[KeyInfo] = []
    certs: list[bytes | None] = []
    chains: list[tuple[bytes, ...]] = []
    for uri in config.key_uris:
        key = _p11.find_private_key(session, uri)
        info = _p11.describe_key(key, token, mechanisms)
        keys.append(
            _Key(
                handle=key,
                key_type=info.key_type,
                pin=config.pin if info.always_authenticate else None,
            )
        )
        infos.append(info)
        cert: bytes | None = None
        chain: tuple[bytes, ...] = ()
        try:
            cert = _p11.find_certificate(session, label=info.label, key_id=info.id)
        except CertificateNotFound:
            cert = None
        if cert is not None:
            chain = tuple(_p11.certificate_chain_from_token(session, cert))
        certs.append(cert)
        chains.append(chain)
    return keys, Ready(keys=tuple(infos), certificates=tuple(certs), chains=tuple(chains))
