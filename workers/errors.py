"""The workers package's exceptions: one root, ``WorkerError``.

These say what the framework itself saw happen to a worker process: it could not start, it was
lost (died, or was stopped), it missed its deadline and was killed, or no worker can take a
request. An exception raised by a worker's own code crosses the process boundary as itself
(class, message and attributes), never wrapped in one of these. Owners of a pool translate these
into their own package's errors at their boundary (``raise TokenUnavailable(…) from exc``).
"""

from __future__ import annotations

__all__ = [
    "PoolUnavailable",
    "RemoteError",
    "WorkerError",
    "WorkerLost",
    "WorkerStartFailed",
    "WorkerTimedOut",
    "WorkerUnavailable",
]


class WorkerError(Exception):
    """Root of every error raised by the workers package."""


class WorkerUnavailable(WorkerError):
    """No worker carried the request out: owners map this to their "unavailable, try again"
    error (the subclasses say why)."""


class WorkerStartFailed(WorkerUnavailable):
    """A worker process could not start: its interpreter did not launch, it exited while
    starting, or it did not report ready within the start timeout.

    A failure of the worker's own set-up (a wrong PIN, a missing key) arrives as that exception
    instead, so that the owner can tell a configuration error from a process that did not run.
    """


class WorkerLost(WorkerUnavailable):
    """The worker holding the request is gone (it exited, was killed, or was stopped because
    another worker of its pool failed); the request may or may not have been carried out."""

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class WorkerTimedOut(WorkerUnavailable):
    """The worker did not answer the request within its deadline; it was killed and is being
    replaced."""

    def __init__(self, message: str, *, timeout: float) -> None:
        super().__init__(message)
        self.timeout = timeout


class PoolUnavailable(WorkerUnavailable):
    """No worker can take the request: the pool is restarting, down, failed or closed.

    ``failure`` is the error that made the pool fail for good (never retried), if that is why;
    ``closed`` tells a closed pool from one that will come back.
    """

    def __init__(
        self, message: str, *, failure: BaseException | None = None, closed: bool = False
    ) -> None:
        super().__init__(message)
        self.failure = failure
        self.closed = closed


class RemoteError(WorkerError):
    """A worker's code raised an exception that cannot cross the boundary (it does not survive
    pickling); this carries its type name and message instead."""
