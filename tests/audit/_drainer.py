"""A child process that stages events and drains the outbox (used by the multi-process test)."""

from __future__ import annotations

import sys

from audit import GroupCommitAppender, Ledger
from audit.outbox import stage
from kyso.db import create_engine
from tests.audit.conftest import make_event


def main(url: str, worker: int, count: int) -> None:
    engine = create_engine(url)
    ledger = Ledger(engine)
    staged: list[int] = []
    with GroupCommitAppender(ledger, max_batch=5, poll_interval=0.05) as appender:
        for n in range(count):
            with engine.begin() as conn:
                staged += stage(conn, [make_event(worker * 100_000 + n)])
            if n % 4 == 0:
                appender.wake()
        indexes = appender.drained(staged).result(timeout=120)
    print(" ".join(f"{o}:{i}" for o, i in zip(staged, indexes, strict=True)))
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
