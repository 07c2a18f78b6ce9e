"""Test-only worker entry: reports what a worker process holds (never used in production).

Its ready value is the worker's core-file limit, whether it is dumpable
(``prctl(PR_GET_DUMPABLE)``) and the names of its environment variables.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource

from workers import Reply, WorkerSetup

__all__ = ["serve"]

_PR_GET_DUMPABLE = 3


def serve(config: object) -> WorkerSetup:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    ready = {
        "core": resource.getrlimit(resource.RLIMIT_CORE),
        "dumpable": libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0),
        "environment": sorted(os.environ),
    }

    def handle(kind: int, arg: int, payload: bytes, data: bytes | None) -> Reply:
        return Reply(payload=payload)

    return WorkerSetup(handle=handle, ready=ready)
