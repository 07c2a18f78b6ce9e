"""One agent session over an opened token key: list, check, show, choose, PIN, sign, summary."""

from __future__ import annotations

import asyncio
import hashlib
import json
import select
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

import grpc

import hsm
from kyso.cli.agent import rpc
from kyso.cli.agent.batch import EXIT_FAILED, BatchResult, TokenKey, sign_batch
from kyso.cli.agent.choice import ALL, NONE, VIEW, parse_answer
from kyso.cli.agent.pin import LoginFailed, log_in
from kyso.cli.agent.show import duplicates, placement_text, requester_text, show, summary_of
from kyso.cli.agent.show import unit_text as _unit_text
from kyso.cli.agent_check import Inspected, PreparedMismatch, inspect_prepared
from kyso.cli.common import ClientTarget, die
from kyso.cli.text import Language, format_time, say
from kyso.v1 import signing_pb2

__all__ = ["Selection", "run_agent"]


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


Chooser = Callable[[int], list[int] | None]


def run_agent(
    *,
    target: ClientTarget,
    key: TokenKey,
    pin: hsm.PinSource,
    assume_yes: bool,
    selection: Selection = Selection(),
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    choose: Chooser | None = None,
    lang: Language = "en",
    preview: bool = False,
    as_json: bool = False,
) -> int:
    """The whole agent session over an opened key; the process exit code.

    ``choose(count)`` returns the 0-based indexes to sign (None: none); the default asks on the
    terminal (and, with ``preview``, waits for the preview page's button as well). Not asked
    with ``assume_yes``, which needs an explicit ``selection``. A document whose prepared PDF
    does not match its digest to sign is refused (never shown as signable).
    """
    if assume_yes and not selection.explicit:
        die(say("agent.yes_needs_selection", lang))
    talk = err if as_json else out
    fingerprint = hashlib.sha256(key.certificate.dump()).hexdigest()
    print(say("agent.certificate", lang, subject=key.certificate.subject.human_friendly), file=talk)
    print(f"  SHA-256 {fingerprint}", file=talk)
    try:
        pending = asyncio.run(rpc.list_pending(target, fingerprint))
    except grpc.RpcError as exc:
        die(say("agent.cannot_list", lang, error=rpc.rpc_text(exc)))
    pending = [item for item in pending if selection.keeps(item)]
    if not pending:
        print(say("agent.nothing", lang), file=talk)
        if as_json:
            _print_json(out, BatchResult(chosen=0), [])
        return 0
    try:
        fetched = asyncio.run(rpc.fetch_prepared(target, pending))
        units = asyncio.run(rpc.unit_names(target, [i.unit_code for i in pending]))
    except grpc.RpcError as exc:
        die(say("agent.cannot_fetch", lang, error=rpc.rpc_text(exc)))
    refused: list[tuple[str, str]] = []
    checked: list[tuple[signing_pb2.PendingSignature, Inspected]] = []
    for item in pending:
        try:
            checked.append((item, _inspect(item, fetched[item.session_id])))
        except PreparedMismatch as exc:
            refused.append((item.title or item.session_id, str(exc)))
    for title, why in refused:
        print(say("agent.refused", lang, title=title, why=why), file=talk)
    if not checked:
        print(say("agent.nothing_signable", lang), file=talk)
        return EXIT_FAILED if refused else 0
    pending = [item for item, _ in checked]
    show(checked, talk, lang=lang, units=units)
    with _maybe_preview(checked, fetched, units, lang, enabled=preview and not assume_yes) as page:
        if page is not None:
            print(say("agent.preview_at", lang, url=page.url), file=talk, flush=True)
        if assume_yes:
            indexes: list[int] | None = list(range(len(pending)))
        elif choose is not None:
            indexes = choose(len(pending))
        else:
            indexes = _ask(len(pending), lang, talk, page)
    if not indexes:
        print(say("agent.none_chosen", lang), file=talk)
        if as_json:
            _print_json(out, BatchResult(chosen=0), [])
        return 0
    chosen = [pending[i] for i in indexes]
    print(say("agent.chosen", lang, numbers=", ".join(str(i + 1) for i in indexes)), file=talk)
    try:
        log_in(key, pin, lang=lang, err=err)
    except LoginFailed as exc:
        die(str(exc))
    print(say("agent.signing", lang, count=len(chosen)), file=talk, flush=True)
    progress = _Progress(len(chosen), err)
    stop = threading.Event()
    with _finish_on_ctrl_c(stop, lang, err):
        result = asyncio.run(
            sign_batch(target, key, chosen, progress=progress.update, lang=lang, stop=stop)
        )
    result.chosen += len(refused)
    result.failed.extend(refused)
    progress.done()
    _summary(result, talk, lang)
    if as_json:
        _print_json(out, result, [summary_of(i, s, units) for i, s in checked])
    return result.exit_code


def _inspect(item: signing_pb2.PendingSignature, pdf: bytes) -> Inspected:
    if not pdf:
        raise PreparedMismatch("the server gave no prepared PDF to check")
    return inspect_prepared(
        pdf,
        digest_algorithm=item.digest_algorithm,
        signed_attributes=item.signed_attributes,
        data_to_sign=item.data_to_sign,
        document_sha256=item.document_sha256 or None,
    )


@contextmanager
def _maybe_preview(
    checked: Sequence[tuple[signing_pb2.PendingSignature, Inspected]],
    fetched: dict[str, bytes],
    units: dict[str, str],
    lang: Language,
    *,
    enabled: bool,
) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from kyso.cli.agent.preview import Preview, PreviewDocument

    twins = duplicates([item for item, _ in checked])
    documents = []
    for index, (item, seen) in enumerate(checked):
        rect = None
        if item.HasField("rect"):
            rect = (item.rect.x1, item.rect.y1, item.rect.x2, item.rect.y2)
        details = [
            (say("agent.file", lang, name="").rstrip(": "), item.filename or "—"),
            (
                say("agent.pages", lang, pages="").strip() or "pages",
                str(seen.pages) if seen.pages is not None else "?",
            ),
            (say("agent.requester", lang, who="").rstrip(": "), requester_text(item)),
            (say("agent.unit", lang, unit="").rstrip(": "), _unit_text(item.unit_code, units)),
            (say("agent.reason", lang, reason="").rstrip(": "), item.reason or "—"),
            ("PAdES", say("agent.level", lang, level=_level(item))),
            ("", placement_text(item, lang)),
            (
                "",
                say("agent.times", lang, created=_t(item.created_at), expires=_t(item.expires_at)),
            ),
            ("SHA-256", seen.sha256),
        ]
        documents.append(
            PreviewDocument(
                number=index + 1,
                details=details,
                title=item.title or item.session_id,
                session_id=item.session_id,
                pdf=fetched[item.session_id],
                page=item.rect.page if item.HasField("rect") else None,
                rect=rect,
                duplicates=[n + 1 for n in twins.get(index, [])],
            )
        )
    try:
        page = Preview(documents, lang=lang)
    except OSError as exc:
        print(say("agent.preview_unavailable", lang, error=exc), file=sys.stderr)
        yield None
        return
    with page:
        yield page


def _level(item: signing_pb2.PendingSignature) -> str:
    from kyso.cli.agent.show import level_name

    return level_name(item)


def _t(stamp: Any) -> str:
    from datetime import UTC

    return format_time(stamp.ToDatetime(tzinfo=UTC))


def _ask(count: int, lang: Language, out: TextIO, page: Any) -> list[int] | None:
    """Ask which documents to sign (see ``kyso.cli.agent.choice``); with a preview page, its
    button answers too."""
    while True:
        hint = say("agent.ask_preview", lang) if page is not None else ""
        print(say("agent.ask", lang, count=count, preview=hint), end="", file=out, flush=True)
        line = _read_line(page)
        if line is None:
            return None
        if isinstance(line, list):
            print(file=out)
            return line
        try:
            answer = parse_answer(line, count, lang)
        except ValueError as exc:
            print(exc, file=out)
            continue
        if answer == ALL:
            return list(range(count))
        if answer == NONE:
            return None
        if answer == VIEW:
            if page is not None:
                print(say("agent.preview_at", lang, url=page.url), file=out)
            continue
        assert isinstance(answer, list)
        return answer


def _read_line(page: Any) -> str | list[int] | None:
    """A typed line (None at end of input), or the preview page's choice."""
    if page is None:
        try:
            return input()
        except EOFError:
            return None
    while True:
        if not page.choices.empty():
            return list(page.choices.get_nowait())
        readable, _w, _x = select.select([sys.stdin], [], [], 0.2)
        if readable:
            line = sys.stdin.readline()
            return line.rstrip("\n") if line else None


@contextmanager
def _finish_on_ctrl_c(stop: threading.Event, lang: Language, err: TextIO) -> Iterator[None]:
    """The first Ctrl-C sets ``stop`` (the batch finishes the document in hand and stops); a
    second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print(f"\n{say('agent.interrupt_seen', lang)}", file=err, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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


def _summary(result: BatchResult, out: TextIO, lang: Language) -> None:
    for title, ref in result.signed:
        print(say("agent.signed", lang, title=title, ref=ref), file=out)
    for title, why in result.failed:
        print(say("agent.failed", lang, title=title, why=why), file=out)
    if result.interrupted:
        print(say("agent.stopped", lang, why=say("agent.interrupted", lang)), file=out)
    elif result.stopped is not None:
        print(say("agent.stopped", lang, why=result.stopped), file=out)
    if result.interrupted or result.stopped is not None:
        for title in result.left_titles:
            print(say("agent.left_item", lang, title=title), file=out)
    print(
        say(
            "agent.totals",
            lang,
            signed=len(result.signed),
            failed=len(result.failed),
            left=result.left,
        ),
        file=out,
    )
    if result.left:
        print(say("agent.run_again", lang), file=out)


def _print_json(out: TextIO, result: BatchResult, documents: list[dict[str, object]]) -> None:
    report = {
        "documents": documents,
        "signed": [{"title": t, "ref": r} for t, r in result.signed],
        "failed": [{"title": t, "reason": r} for t, r in result.failed],
        "left": result.left,
        "stopped": result.stopped,
        "interrupted": result.interrupted,
        "exit_code": result.exit_code,
    }
    print(json.dumps(report, ensure_ascii=False, indent=2), file=out)
