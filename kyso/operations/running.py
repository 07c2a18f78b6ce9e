"""Where an operation's blocking work runs: a bounded pool of threads, owned by the application.

Why not ``asyncio.to_thread``: it shares the loop's default pool (cores + 4 threads) with every
library that uses it, so a few slow calls can starve all the others. Operations run their
database, object-store and XML work here instead; CPU-heavy PDF work goes to the signer's and
the verifier's worker processes. The pool's size is ``[server] io_threads``.

Invariant: a call runs with the caller's context variables (the request id for logs).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["Blocking"]

P = ParamSpec("P")
T = TypeVar("T")


class Blocking:
    """A bounded thread pool for blocking calls from coroutines."""

    def __init__(self, *, threads: int) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kyso-io")

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` in the pool and await its result."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        """Let running calls finish; refuse new ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)
