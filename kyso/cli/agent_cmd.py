"""``kyso agent``: the official's workstation signs what waits for them, with one PIN entry.

Reads the certificate on the token (no PIN needed), lists the sessions pending for it, fetches
each prepared PDF and checks that the digest to sign commits to exactly those bytes
(``kyso.cli.agent_check``: a mismatch is refused, never signed), shows each (title, number,
requester, unit, page count and SHA-256 read from the PDF itself), asks which to sign, asks the
PIN once, signs the chosen ones in one batch and prints ``signed / failed / left``. ``--yes``
signs without asking, and only with an explicit selection: ``--session ID`` (repeatable) or
``--requester NAME``.

Pipelining: the token is the slow part (0.5–2 s a signature on a USB token), so it is never kept
waiting. Every document's ``data_to_sign`` arrives with the list, one thread feeds the token
back to back, and the values are completed in ``CompleteSignatures`` calls on the event loop
(``kyso.cli.agent_batch``: what the token signed during one call goes in the next) while the
token already signs the next document.

Stopping: when the token fails (pulled out, module error) or the server cannot be reached, no
further document is signed, the completions in flight are awaited, and the summary says how many
are left. A session is completed server-side exactly once and otherwise stays pending, so running
the agent again finishes the rest.

The PIN comes from ``--pin-file``, ``KYSO_TOKEN_PIN`` or a prompt; never argv, never printed,
never written anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Protocol, TextIO, cast

import grpc
from asn1crypto import x509

import hsm
import workers
from kyso.cli.agent_batch import CompletionBatcher, ItemError
from kyso.cli.agent_check import Inspected, PreparedMismatch, inspect_prepared
from kyso.cli.common import ClientTarget, add_client_arguments, client_target, die
from kyso.v1 import common_pb2, documents_pb2, documents_pb2_grpc, signing_pb2, signing_pb2_grpc

__all__ = [
    "EXIT_FAILED",
    "EXIT_STOPPED",
    "PIN_ENV",
    "BatchResult",
    "Selection",
    "TokenKey",
    "list_pending",
    "register",
    "run_agent",
    "sign_batch",
]

PIN_ENV = "KYSO_TOKEN_PIN"
EXIT_FAILED = 1
"""Some chosen documents were refused by the server (the summary lists why)."""
EXIT_STOPPED = 3
"""The batch stopped early (token or network); the rest are still pending."""

# Completions in flight while the token signs: enough to hide a slow network round trip,
# few enough not to flood the server from one desk.
_IN_FLIGHT = 8
_RPC_TIMEOUT = 120.0
_MECHANISMS = {"rsa_pkcs1v15", "ecdsa"}
# Server answers that mean "this document, not the batch": count it failed, go on.
_PER_DOCUMENT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
}


class TokenKey(Protocol):
    """What the agent needs of a token key (``hsm.LocalKey``; tests wrap it)."""

    certificate: x509.Certificate

    def login(self, pin: str) -> None: ...

    def sign_digest(
        self, digest: bytes, digest_algorithm: hsm.DigestAlgorithm, pss: bool = False
    ) -> bytes: ...

    def close(self) -> None: ...


@dataclass
class BatchResult:
    """How a batch ended. ``stopped`` says why it ended early (None: it ran to the end)."""

    chosen: int
    signed: list[tuple[str, str]] = field(default_factory=list)
    """(title, ref of the signed document)"""
    failed: list[tuple[str, str]] = field(default_factory=list)
    stopped: str | None = None

    @property
    def left(self) -> int:
        return self.chosen - len(self.signed) - len(self.failed)

    @property
    def exit_code(self) -> int:
        if self.stopped is not None:
            return EXIT_STOPPED
        return EXIT_FAILED if self.failed else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = subparsers.add_parser(
        "agent",
        help="sign the documents waiting for the official whose token is plugged in",
        description=(
            "List what waits for the certificate on the token, ask the PIN once and sign the "
            f"chosen documents in one batch. PIN: --pin-file, ${PIN_ENV}, or a prompt."
        ),
    )
    add_client_arguments(agent)
    agent.add_argument("--module", required=True, help="the token vendor's PKCS#11 library")
    agent.add_argument("--token", help="token label (needed when several tokens are present)")
    agent.add_argument("--key", help="key/certificate label (needed when the token has several)")
    agent.add_argument(
        "--yes",
        action="store_true",
        help="sign the selected documents without asking (needs --session or --requester)",
    )
    agent.add_argument(
        "--session",
        action="append",
        default=[],
        metavar="ID",
        help="only this session (repeatable)",
    )
    agent.add_argument("--requester", help="only the documents this client requested")
    agent.add_argument("--pin-file", help="read the PIN from this file (mode 0600)")
    agent.add_argument(
        "--follow",
        action="store_true",
        help="then wait for new documents on the live stream and sign each batch (Ctrl-C stops)",
    )
    agent.add_argument(
        "--batches", type=int, default=0, help="with --follow: stop after this many batches"
    )
    agent.set_defaults(func=_agent)


def _agent(args: argparse.Namespace) -> int:
    if args.yes and not (args.session or args.requester):
        die(
            "--yes signs without asking, so it needs an explicit selection: --session ID"
            " (repeatable) or --requester NAME"
        )
    target = client_target(args)
    workers.forbid_core_dumps()  # this process will hold the token's PIN
    pin = _pin_source(args.pin_file)
    try:
        key = hsm.open_token_key(args.module, args.token, args.key)
    except hsm.HsmError as exc:
        die(f"cannot use the token: {exc}")
    selection = Selection(sessions=tuple(args.session), requester=args.requester)
    with key:
        if args.follow:  # the loop lives in kyso.cli.agent_follow
            from kyso.cli.agent_follow import follow

            def round_(**kw: Any) -> int:
                return run_agent(target=target, assume_yes=args.yes, selection=selection, **kw)

            return follow(run_round=round_, target=target, key=key, pin=pin, batches=args.batches)
        return run_agent(target=target, key=key, pin=pin, assume_yes=args.yes, selection=selection)


def _pin_source(pin_file: str | None) -> hsm.PinSource:
    if pin_file:
        return hsm.PinSource.from_file(pin_file)
    if os.environ.get(PIN_ENV):
        return hsm.PinSource.from_env(PIN_ENV)
    return hsm.PinSource.prompt("PIN of the token: ")


@dataclass(frozen=True, slots=True)
class Selection:
    """Which pending documents the agent considers: these sessions and/or this requester's
    (empty: all of them, to choose from interactively)."""

    sessions: tuple[str, ...] = ()
    requester: str | None = None

    @property
    def explicit(self) -> bool:
        return bool(self.sessions) or self.requester is not None

    def keeps(self, item: signing_pb2.PendingSignature) -> bool:
        if self.sessions and item.session_id not in self.sessions:
            return False
        return self.requester is None or item.requester == self.requester


def run_agent(
    *,
    target: ClientTarget,
    key: TokenKey,
    pin: hsm.PinSource,
    assume_yes: bool,
    selection: Selection = Selection(),
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    choose: Callable[[int], list[int] | None] | None = None,
) -> int:
    """The whole agent session over an opened key; the process exit code.

    ``choose(count)`` returns the 0-based indexes to sign (None: none); the default asks on the
    terminal. Not asked with ``assume_yes``, which needs an explicit ``selection``. A document
    whose prepared PDF does not match its digest to sign is refused (never shown as signable).
    """
    if assume_yes and not selection.explicit:
        die("--yes needs an explicit selection: --session ID or --requester NAME")
    fingerprint = hashlib.sha256(key.certificate.dump()).hexdigest()
    print(f"Token certificate: {key.certificate.subject.human_friendly}", file=out)
    print(f"  SHA-256 {fingerprint}", file=out)
    try:
        pending = asyncio.run(list_pending(target, fingerprint))
    except grpc.RpcError as exc:
        die(f"cannot list pending signatures: {_rpc_text(exc)}")
    pending = [item for item in pending if selection.keeps(item)]
    if not pending:
        print("Nothing waits for this certificate.", file=out)
        return 0
    try:
        fetched = asyncio.run(fetch_prepared(target, pending))
    except grpc.RpcError as exc:
        die(f"cannot fetch the prepared documents: {_rpc_text(exc)}")
    refused: list[tuple[str, str]] = []
    checked: list[tuple[signing_pb2.PendingSignature, Inspected]] = []
    for item in pending:
        try:
            checked.append((item, _inspect(item, fetched[item.session_id])))
        except PreparedMismatch as exc:
            refused.append((item.title or item.session_id, f"refused, not signed: {exc}"))
    for title, why in refused:
        print(f"refused: {title}: {why}", file=out)
    if not checked:
        print("Nothing can be signed.", file=out)
        return EXIT_FAILED if refused else 0
    pending = [item for item, _ in checked]
    _show(checked, out)
    if assume_yes:
        indexes: list[int] | None = list(range(len(pending)))
    else:
        indexes = (choose or _ask)(len(pending))
    if not indexes:
        print("Nothing chosen; nothing signed.", file=out)
        return 0
    chosen = [pending[i] for i in indexes]
    try:
        key.login(pin.read())
    except hsm.HsmError as exc:
        die(f"the token did not accept the login: {exc}")
    progress = _Progress(len(chosen), err)
    result = asyncio.run(sign_batch(target, key, chosen, progress=progress.update))
    result.chosen += len(refused)
    result.failed.extend(refused)
    progress.done()
    _summary(result, out)
    return result.exit_code


async def sign_batch(
    target: ClientTarget,
    key: TokenKey,
    items: Sequence[signing_pb2.PendingSignature],
    *,
    progress: Callable[[BatchResult], None] = lambda _r: None,
) -> BatchResult:
    """Sign ``items`` on the token (one thread) while their completions run concurrently."""
    result = BatchResult(chosen=len(items))
    token_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kyso-token")
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(_IN_FLIGHT)
    async with _channel(target) as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        metadata = _metadata(target)

        def outcome(
            item: signing_pb2.PendingSignature,
            reply: signing_pb2.CompleteSignatureResponse | None,
            error: ItemError | None,
        ) -> None:
            slots.release()
            if reply is not None:
                result.signed.append((item.title or item.session_id, reply.document.ref.ref))
            elif error is not None and error.per_document:
                result.failed.append((item.title or item.session_id, error.message))
            elif error is not None and result.stopped is None:
                result.stopped = f"the server could not be reached ({error.message})"
            progress(result)

        # Completions go in CompleteSignatures calls: what the token signed while one call was
        # in flight goes in the next (kyso.cli.agent_batch).
        batcher = CompletionBatcher(
            stub,
            metadata=metadata,
            timeout=_RPC_TIMEOUT,
            on_outcome=outcome,
            per_document=frozenset(_PER_DOCUMENT),
        )

        try:
            for item in items:
                if result.stopped is not None:
                    break
                if item.signature_mechanism not in _MECHANISMS:
                    result.failed.append(
                        (item.title, f"mechanism {item.signature_mechanism!r} is not supported")
                    )
                    continue
                await slots.acquire()
                try:
                    value = await loop.run_in_executor(
                        token_thread,
                        key.sign_digest,
                        item.data_to_sign,
                        cast(hsm.DigestAlgorithm, item.digest_algorithm),
                    )
                except hsm.HsmError as exc:
                    slots.release()
                    result.stopped = f"the token stopped signing ({exc})"
                    break
                batcher.add(item, value)
        finally:
            # Completions already sent are finished, never abandoned: the server may be
            # embedding them right now.
            await batcher.drain()
            token_thread.shutdown(wait=True)
    return result


async def list_pending(
    target: ClientTarget, fingerprint: str
) -> list[signing_pb2.PendingSignature]:
    """Every session pending for the certificate with SHA-256 ``fingerprint`` (all pages)."""
    pending: list[signing_pb2.PendingSignature] = []
    async with _channel(target) as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        token = ""
        while True:
            page = await stub.ListPendingSignatures(
                signing_pb2.ListPendingSignaturesRequest(
                    certificate_sha256=fingerprint, page_size=500, page_token=token
                ),
                metadata=_metadata(target),
                timeout=_RPC_TIMEOUT,
            )
            pending.extend(page.pending)
            token = page.next_page_token
            if not token:
                return pending


async def fetch_prepared(
    target: ClientTarget, items: Sequence[signing_pb2.PendingSignature]
) -> dict[str, bytes]:
    """Each session's prepared PDF, fetched from the server (by ``prepared_ref``)."""
    fetched: dict[str, bytes] = {}
    async with _channel(target) as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        for item in items:
            request = documents_pb2.DownloadRequest(
                ref=common_pb2.DocumentRef(ref=item.prepared_ref)
            )
            if not item.prepared_ref:
                fetched[item.session_id] = b""
                continue
            pieces = stub.Download(request, metadata=_metadata(target), timeout=_RPC_TIMEOUT)
            fetched[item.session_id] = b"".join([piece.chunk async for piece in pieces])
    return fetched


def _inspect(item: signing_pb2.PendingSignature, pdf: bytes) -> Inspected:
    if not pdf:
        raise PreparedMismatch("the server gave no prepared PDF to check")
    return inspect_prepared(
        pdf,
        digest_algorithm=item.digest_algorithm,
        signed_attributes=item.signed_attributes,
        data_to_sign=item.data_to_sign,
    )


def _channel(target: ClientTarget) -> grpc.aio.Channel:
    from kyso.cli.channel import grpc_target

    address, balancing = grpc_target(target.address)  # replicas: round robin
    options: list[tuple[str, int | str]] = [
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        *balancing,
    ]
    if target.ca_pem is not None:
        credentials = grpc.ssl_channel_credentials(root_certificates=target.ca_pem)
        return grpc.aio.secure_channel(address, credentials, options=options)
    return grpc.aio.insecure_channel(address, options=options)


def _metadata(target: ClientTarget) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {target.token}"),) if target.token else ()


def _show(checked: Sequence[tuple[signing_pb2.PendingSignature, Inspected]], out: TextIO) -> None:
    print(f"{len(checked)} document(s) wait for this certificate:", file=out)
    for number, (item, seen) in enumerate(checked, start=1):
        created = item.created_at.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M UTC")
        pages = f"{seen.pages} page(s)" if seen.pages is not None else "pages unknown"
        print(f"{number:>4}. {item.title or '(untitled)'}", file=out)
        print(f"      number {number} · session {item.session_id} · {pages}", file=out)
        print(
            f"      unit {item.unit_code or '-'} · requested by {item.requester} · {created}",
            file=out,
        )
        print(f"      SHA-256 {seen.sha256} (the prepared PDF, as checked)", file=out)


def _ask(count: int) -> list[int] | None:
    """Ask which documents to sign: ``all``, numbers and ranges (``1,3-5``), or nothing."""
    while True:
        try:
            answer = input(f"Sign which? [all / 1,3-5 / none] (1–{count}): ").strip().lower()
        except EOFError:
            return None
        if answer in ("", "none", "n", "q"):
            return None
        if answer in ("all", "a"):
            return list(range(count))
        try:
            return _parse_choice(answer, count)
        except ValueError as exc:
            print(exc, file=sys.stderr)


def _parse_choice(text: str, count: int) -> list[int]:
    chosen: list[int] = []
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        low, high = int(first), int(last or first)
        if not 1 <= low <= high <= count:
            raise ValueError(f"{part}: choose numbers from 1 to {count}")
        chosen.extend(i - 1 for i in range(low, high + 1) if i - 1 not in chosen)
    return chosen


class _Progress:
    """A bar on a terminal; one line per finished document otherwise (logs, tests)."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self._total = total
        self._stream = stream
        self._tty = stream.isatty()

    def update(self, result: BatchResult) -> None:
        finished = len(result.signed) + len(result.failed)
        if self._tty:
            width = 30
            filled = width * finished // max(self._total, 1)
            bar = "#" * filled + "." * (width - filled)
            self._stream.write(f"\r[{bar}] {finished}/{self._total}")
        else:
            self._stream.write(f"progress {finished}/{self._total}\n")
        self._stream.flush()

    def done(self) -> None:
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()


def _summary(result: BatchResult, out: TextIO) -> None:
    for title, ref in result.signed:
        print(f"signed: {title} -> {ref}", file=out)
    for title, why in result.failed:
        print(f"failed: {title}: {why}", file=out)
    if result.stopped is not None:
        print(f"stopped: {result.stopped}", file=out)
    print(
        f"signed {len(result.signed)}, failed {len(result.failed)}, left {result.left}",
        file=out,
    )
    if result.left:
        print("Run the agent again to sign what is left.", file=out)


def _rpc_text(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return f"{code.name if code else 'ERROR'}: {details}"
