"""Logging set-up for the entry points: text or one JSON object per line.

Only entry points call :func:`configure`. Records carry structured fields through ``extra``
(request_id, identity, rpc, code, duration_ms …); never PINs, secrets or document bytes.

With JSON chosen, *every* line on standard error is JSON: what does not come through Python
logging — gRPC C-core's own log lines (``E1207 03:04:06.317 … file.cc:123] text``), output of
the worker processes, anything printed — is written to file descriptor 2, which
:func:`configure` turns into a pipe read by a thread that logs each line through the logger
``native`` (gRPC's severity letter becomes the level). Uncaught exceptions, in any thread, are
logged with their traceback inside the JSON object.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["configure"]

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            text += " " + " ".join(f"{k}={v}" for k, v in sorted(extras.items()))
        return text


def configure(*, level: str = "INFO", fmt: str = "text", capture_native: bool = True) -> None:
    """Log to standard error as ``fmt`` at ``level``. With JSON and ``capture_native``, lines
    written to file descriptor 2 by anything else are wrapped as JSON (see the module doc)."""
    stream = sys.stderr
    if fmt == "json" and capture_native:
        stream = _capture_native_stderr()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if fmt == "json":
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_thread_uncaught


# gRPC C-core / absl: severity letter, date, time, thread id, source:line] text
_NATIVE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([^\]]+)\] ?(.*)$")
_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}
_native_log = logging.getLogger("native")


def _capture_native_stderr() -> TextIO:
    """Point file descriptor 2 at a pipe read by a logging thread; return a stream on the
    original standard error for the log handler."""
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    out = os.fdopen(original, "w", buffering=1, encoding="utf-8", errors="replace")
    thread = threading.Thread(
        target=_pump_native, args=(read_end,), name="native-stderr", daemon=True
    )
    thread.start()

    def restore() -> None:
        # Give the reader what is still buffered, then stop it: fd 2 back to the terminal.
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
            os.dup2(out.fileno(), 2)
            sys.stderr.close()
        thread.join(timeout=1.0)

    atexit.register(restore)
    return out


def _pump_native(read_end: int) -> None:
    with os.fdopen(read_end, "r", encoding="utf-8", errors="replace") as pipe:
        for raw in pipe:
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            match = _NATIVE.match(line)
            if match:
                letter, source, text = match.groups()
                _native_log.log(_LEVELS[letter], text, extra={"source": source})
            else:
                _native_log.warning(line)


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    logging.getLogger("uncaught").critical("uncaught exception", exc_info=(kind, value, tb))


def _log_thread_uncaught(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("uncaught").critical(
        "uncaught exception in a thread",
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        extra={"thread": args.thread.name if args.thread else ""},
    )
