"""A child process that appends to a ledger (used by the multi-process test)."""

from __future__ import annotations

import sys

from audit import GroupCommitAppender, Ledger
from kyso.db import create_engine
from tests.audit.conftest import make_event


def main(url: str, worker: int, count: int) -> None:
    engine = create_engine(url)
    ledger = Ledger(engine)
    with GroupCommitAppender(ledger, max_batch=7) as appender:
        futures = [appender.submit(make_event(worker * 100_000 + n)) for n in range(count // 2)]
        indexes = [future.result() for future in futures]
    indexes += [ledger.append(make_event(worker * 100_000 + n)) for n in range(count // 2, count)]
    print(" ".join(map(str, indexes)))
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
