"""Test-only worker entry points for the workers framework's tests (never used in production).

``serve`` answers request kinds that make a worker echo, fail, crash, retire, hang forever (so
that a test can see the watchdog at work), send notes forever without answering, or wait on a
FIFO the test opens (a request that stays in flight exactly as long as the test wants, without
sleeping).
"""

from __future__ import annotations

import os
import threading

from workers import Reply, WorkerSetup, send_note

__all__ = [
    "CRASH",
    "ECHO",
    "FAIL",
    "FATAL",
    "GATE",
    "HANG",
    "MEMORY",
    "NOTES",
    "PID",
    "RETIRE",
    "UNPICKLABLE",
    "Fatal",
    "Refused",
    "serve",
]

ECHO = 1
HANG = 2
GATE = 3
FAIL = 4
CRASH = 5
RETIRE = 6
FATAL = 7
PID = 8
MEMORY = 9
UNPICKLABLE = 10
NOTES = 11


class Refused(Exception):
    """An owner's error with an attribute that must cross the boundary."""

    def __init__(self, message: str, *, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class Fatal(Exception):
    """Leaves the worker unusable (declared in ``WorkerSetup.fatal``)."""


class _Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("not picklable")


def serve(config: dict[str, object]) -> WorkerSetup:
    if config.get("refuse_start"):
        raise Refused(str(config["refuse_start"]), code=7)
    flag = config.get("refuse_start_if")
    if flag and os.path.exists(str(flag)):
        raise Refused("refused to start: the flag file exists", code=8)

    def handle(kind: int, arg: int, payload: bytes, data: bytes | None) -> bytes | Reply:
        if kind == ECHO:
            return payload if data is None else Reply(payload=payload, data=data)
        if kind == PID:
            return str(os.getpid()).encode()
        if kind == HANG:
            threading.Event().wait()
        if kind == NOTES:  # the payload as a first note, then numbered ones, never an answer
            send_note(payload)
            for number in range(1, 1_000_000):
                threading.Event().wait(0.05)
                send_note(b"%d" % number)
        if kind == GATE:
            with open(payload, "rb") as fifo:  # blocks until the test opens it for writing
                return fifo.read(1)
        if kind == FAIL:
            raise Refused(payload.decode(), code=arg)
        if kind == UNPICKLABLE:
            raise _Unpicklable("cannot travel")
        if kind == CRASH:
            os._exit(3)
        if kind == RETIRE:
            return Reply(payload=b"bye", retire=True)
        if kind == FATAL:
            raise Fatal("the resource is gone")
        if kind == MEMORY:
            try:
                bytearray(arg * 1024 * 1024)
            except MemoryError:
                return b"refused"
            return b"allocated"
        raise ValueError(f"unknown kind {kind}")

    return WorkerSetup(handle=handle, ready={"pid": os.getpid()}, fatal=(Fatal,))
