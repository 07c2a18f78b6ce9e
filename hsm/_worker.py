"""A signing worker process: owns one module initialisation and one logged-in session per token.

Started by ``KeyRing`` as a fresh interpreter (``python -c … main(FD)``): no module state is
inherited from the parent, and the parent's ``__main__`` is not re-run. Protocol over one
duplex socket:

1. the parent sends a pickled ``WorkerConfig`` frame (with the PIN: a socket, never argv);
2. the worker answers a ``Ready`` or ``StartFailed`` frame;
3. then binary frames: ``REQUEST`` header + payload, each answered by a ``RESPONSE`` header +
   payload (the signature, or a UTF-8 message), in order.

Every frame starts with its length (``FRAME``). Under load both sides handle frames in batches:
the worker signs every request that arrived in one read and answers them with one write, and
the parent's reader completes every answer of one read at once. That keeps the per-signature
cost of the pipe small next to a fast EC signature.

When the token or module fails, the worker answers ``STATUS_UNAVAILABLE`` and exits: its module
state is stale (SoftHSM and real modules keep dead object handles), and only a fresh process
sees the token again. The parent restarts workers.
"""

from __future__ import annotations

import contextlib
import pickle
import signal
import socket
import struct
import time
from dataclasses import dataclass

from pkcs11 import exceptions as p11x

from hsm import _p11, errors
from hsm.errors import CertificateNotFound, HsmError, TokenUnavailable
from hsm.keys import KeyInfo
from hsm.schemes import DIGEST_ALGORITHMS, DigestAlgorithm, SignatureScheme
from hsm.uri import Pkcs11Uri

__all__ = [
    "ERROR_CLASSES",
    "FRAME",
    "OP_PING",
    "OP_SIGN",
    "OP_STOP",
    "REQUEST",
    "RESPONSE",
    "STATUS_OK",
    "STATUS_UNAVAILABLE",
    "Ready",
    "StartFailed",
    "WorkerConfig",
    "iter_frames",
    "main",
    "recv_object",
    "request",
    "response",
    "scheme_code",
    "send_object",
]

FRAME = struct.Struct("!I")
"""Length of the frame that follows."""
REQUEST = struct.Struct("!IIBHB")
"""Frame length, request id, op, key index, scheme code (digest | pss << 2 | hashed << 3)."""
RESPONSE = struct.Struct("!IIB")
"""Frame length, request id, status."""
_READ_SIZE = 1 << 18
# Answers wait at most this long to share one write: long enough to batch fast EC signatures,
# short enough that the parent turns answers around while this worker signs the next ones.
_FLUSH_AFTER_S = 0.0002

OP_SIGN = 1
OP_PING = 2
OP_STOP = 3

STATUS_OK = 0
STATUS_UNAVAILABLE = 1
# Other statuses index ERROR_CLASSES; the parent re-raises the class with the worker's message.
ERROR_CLASSES: dict[int, type[HsmError]] = {STATUS_UNAVAILABLE: TokenUnavailable}
ERROR_CLASSES.update(
    (2 + i, cls)
    for i, cls in enumerate(
        sorted(
            (c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, HsmError)),
            key=lambda c: c.__name__,
        )
    )
    if cls is not TokenUnavailable
)
_STATUS_OF = {cls: status for status, cls in ERROR_CLASSES.items()}


def status_of(exc: HsmError) -> int:
    for cls in type(exc).__mro__:
        if cls in _STATUS_OF:
            return _STATUS_OF[cls]
    return _STATUS_OF[HsmError]


def scheme_code(digest_algorithm: DigestAlgorithm, pss: bool, hashed: bool) -> int:
    return DIGEST_ALGORITHMS.index(digest_algorithm) | (pss << 2) | (hashed << 3)


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    module_path: str
    token_uri: Pkcs11Uri
    key_uris: tuple[Pkcs11Uri, ...]
    pin: str
    read_certificates: bool


@dataclass(frozen=True, kw_only=True)
class Ready:
    keys: tuple[KeyInfo, ...]
    certificates: tuple[bytes | None, ...]
    """Per key: the certificate stored beside it, or None."""
    chains: tuple[tuple[bytes, ...], ...]
    """Per key: issuer certificates found on the token."""


@dataclass(frozen=True, kw_only=True)
class StartFailed:
    status: int
    message: str


@dataclass
class _Key:
    handle: object
    key_type: str
    pin: str | None


def main(fd: int) -> None:
    """Entry point of a worker process: ``fd`` is its end of a socket pair with the parent."""
    # Ctrl-C goes to the whole process group: the parent shuts workers down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    try:
        config = recv_object(sock)
    except (EOFError, OSError):
        return
    assert isinstance(config, WorkerConfig)
    try:
        keys, ready = _start(config)
    except HsmError as exc:
        send_object(sock, StartFailed(status=status_of(exc), message=str(exc)))
        return
    send_object(sock, ready)
    _serve(sock, keys)


def send_object(sock: socket.socket, obj: object) -> None:
    """Send one pickled frame (start-up messages only; requests use ``REQUEST``)."""
    data = pickle.dumps(obj)
    sock.sendall(FRAME.pack(len(data)) + data)


def recv_object(sock: socket.socket) -> object:
    """Receive one pickled frame from the other end (a trusted process of ours)."""
    (length,) = FRAME.unpack(_recv_exact(sock, FRAME.size))
    return pickle.loads(_recv_exact(sock, length))  # noqa: S301  # our own peer process


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise EOFError("the peer closed the connection")
        chunks += chunk
    return bytes(chunks)


def iter_frames(buffer: bytearray) -> tuple[list[bytes], int]:
    """Complete frames (without their length) at the start of ``buffer``; bytes consumed."""
    frames: list[bytes] = []
    offset = 0
    available = len(buffer)
    while available - offset >= FRAME.size:
        (length,) = FRAME.unpack_from(buffer, offset)
        end = offset + FRAME.size + length
        if end > available:
            break
        frames.append(bytes(buffer[offset:end]))
        offset = end
    return frames, offset


def response(request_id: int, status: int, payload: bytes) -> bytes:
    return RESPONSE.pack(RESPONSE.size - FRAME.size + len(payload), request_id, status) + payload


def request(request_id: int, op: int, key_index: int, code: int, payload: bytes) -> bytes:
    return (
        REQUEST.pack(REQUEST.size - FRAME.size + len(payload), request_id, op, key_index, code)
        + payload
    )


def _start(config: WorkerConfig) -> tuple[list[_Key], Ready]:
    lib = _p11.load_module(config.module_path)
    token = _p11.find_token(lib, config.token_uri)
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
        if config.read_certificates:
            try:
                cert = _p11.find_certificate(session, label=info.label, key_id=info.id)
            except CertificateNotFound:
                cert = None
            if cert is not None:
                chain = tuple(_p11.certificate_chain_from_token(session, cert))
        certs.append(cert)
        chains.append(chain)
    return keys, Ready(keys=tuple(infos), certificates=tuple(certs), chains=tuple(chains))


def _serve(sock: socket.socket, keys: list[_Key]) -> None:
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
    buffer = bytearray()
    while True:
        try:
            chunk = sock.recv(_READ_SIZE)
        except OSError:
            return
        if not chunk:
            return  # the parent is gone or closed the socket
        buffer += chunk
        frames, consumed = iter_frames(buffer)
        del buffer[:consumed]
        out: list[bytes] = []
        first_unsent = 0.0
        for frame in frames:
            _, request_id, op, key_index, code = REQUEST.unpack_from(frame)
            if op == OP_STOP:
                _flush(sock, out)
                return
            status, reply = _handle(keys, schemes, op, key_index, code, frame[REQUEST.size :])
            if not out:
                first_unsent = time.perf_counter()
            out.append(response(request_id, status, reply))
            if status == STATUS_UNAVAILABLE:
                # Module state is stale now: answer what we have and let the parent restart us.
                _flush(sock, out)
                return
            if time.perf_counter() - first_unsent >= _FLUSH_AFTER_S:
                _flush(sock, out)
        _flush(sock, out)


def _flush(sock: socket.socket, out: list[bytes]) -> None:
    if out:
        with contextlib.suppress(OSError):  # the parent is gone; the next recv ends the loop
            sock.sendall(b"".join(out))
        out.clear()


def _handle(
    keys: list[_Key],
    schemes: dict[tuple[str, int], SignatureScheme],
    op: int,
    key_index: int,
    code: int,
    payload: bytes,
) -> tuple[int, bytes]:
    try:
        if op == OP_PING:
            for key in keys:
                # Reading an attribute fails once the token's objects are gone.
                _ = key.handle.id  # type: ignore[attr-defined]
            return STATUS_OK, b""
        key = keys[key_index]
        scheme = schemes[(key.key_type, code & 7)]
        mechanism = scheme.hashed_mechanism if code & 8 else scheme.raw_mechanism
        signature = _p11.sign(
            key.handle,  # type: ignore[arg-type]
            scheme,
            mechanism,
            payload,
            pin=key.pin,
        )
        return STATUS_OK, signature
    except p11x.PKCS11Error as exc:
        error = _p11.translate(exc, "signing")
        return status_of(error), str(error).encode()
    except HsmError as exc:
        return status_of(exc), str(exc).encode()
    except (ValueError, KeyError, IndexError) as exc:
        return status_of(HsmError()), f"bad request ({type(exc).__name__})".encode()
