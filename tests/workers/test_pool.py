"""The worker-process framework on its own: dispatch, errors, the watchdog, supervision."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from tests.workers import _entries as e
from workers import (
    Heartbeat,
    PoolSpec,
    PoolState,
    PoolUnavailable,
    RemoteError,
    WorkerLost,
    WorkerPool,
    WorkerTimedOut,
)


def _spec(**overrides) -> PoolSpec:
    fields = {
        "name": "test pool",
        "entry": "tests.workers._entries:serve",
        "config": {},
        "workers": 2,
        "start_timeout": 60.0,
        "backoff": (0.05, 0.2),
        "expected_errors": (e.Refused, e.Fatal),
    }
    fields.update(overrides)
    return PoolSpec(**fields)


def _wait_until(condition, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.02)


def _gate(tmp_path: Path, name: str = "gate") -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


def _open(gate: Path) -> None:
    with gate.open("wb") as fifo:  # the worker holding the request reads one byte and answers
        fifo.write(b"x")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_fresh_processes_answer_sync_async_and_data():
    with WorkerPool(_spec()) as pool:
        pids = pool.pids()
        assert len(set(pids)) == 2
        assert os.getpid() not in pids
        assert pool.submit(kind=e.ECHO, payload=b"hello").wait() == (b"hello", None)
        document = os.urandom(8 * 1024 * 1024)
        payload, data = pool.submit(kind=e.ECHO, payload=b"doc", data=document).wait()
        assert (payload, data) == (b"doc", document)

        async def many() -> list[bytes]:
            loop = asyncio.get_running_loop()
            calls = [pool.submit(kind=e.ECHO, payload=b"%d" % i, loop=loop) for i in range(2000)]
            return [(await call.wait_async())[0] for call in calls]

        assert asyncio.run(many()) == [b"%d" % i for i in range(2000)]


def test_errors_cross_as_themselves():
    with WorkerPool(_spec(workers=1)) as pool:
        with pytest.raises(e.Refused, match="not today") as caught:
            pool.submit(kind=e.FAIL, arg=42, payload=b"not today").wait()
        assert caught.value.code == 42
        with pytest.raises(RemoteError, match="_Unpicklable: cannot travel"):
            pool.submit(kind=e.UNPICKLABLE).wait()
        assert pool.submit(kind=e.ECHO, payload=b"still here").wait()[0] == b"still here"


def test_a_start_failure_is_the_workers_own_error():
    with pytest.raises(e.Refused, match="no such key") as caught:
        WorkerPool(_spec(config={"refuse_start": "no such key"}))
    assert caught.value.code == 7


def test_a_hung_worker_is_killed_and_replaced_and_only_its_requests_fail(tmp_path):
    gate = _gate(tmp_path)
    with WorkerPool(_spec()) as pool:
        first, second = pool.pids()
        hung = pool.submit(kind=e.HANG, timeout=0.5)  # both idle: worker 0
        held = pool.submit(kind=e.GATE, payload=bytes(gate))  # the least busy: worker 1
        behind = pool.submit(kind=e.ECHO, payload=b"queued")  # a tie: worker 0, behind the hang
        with pytest.raises(WorkerTimedOut, match="did not answer within 0.5 s") as caught:
            hung.wait()
        assert caught.value.timeout == 0.5
        with pytest.raises(WorkerLost, match="took longer than 0.5 s"):
            behind.wait()
        _open(gate)  # worker 1's request was in flight all along and completes
        assert held.wait() == (b"x", None)
        _wait_until(lambda: pool.pids()[0] not in (None, first), "worker 0 replaced")
        assert pool.pids()[1] == second
        assert _gone(first)
        assert pool.submit(kind=e.PID).wait()[0] in {str(p).encode() for p in pool.pids()}


def test_notes_reach_the_owner_before_a_kill_and_do_not_move_the_deadline():
    notes: list[bytes] = []
    heard = threading.Event()

    def on_note(payload: bytes) -> None:
        notes.append(payload)
        heard.set()

    with WorkerPool(_spec(workers=1, on_note=on_note)) as pool:
        # The worker notes forever and never answers: notes are no answers, so the watchdog
        # still kills it at its deadline, and what it noted before is with the owner.
        call = pool.submit(kind=e.NOTES, payload=b"first attempt", timeout=0.5)
        with pytest.raises(WorkerTimedOut):
            call.wait()
        _wait_until(heard.is_set, "the note sent before the kill")
        assert notes[0] == b"first attempt"


def test_a_crash_fails_its_requests_and_the_worker_is_replaced(tmp_path):
    gate = _gate(tmp_path)
    with WorkerPool(_spec()) as pool:
        first, second = pool.pids()
        crash = pool.submit(kind=e.CRASH)  # worker 0
        held = pool.submit(kind=e.GATE, payload=bytes(gate))  # worker 1
        with pytest.raises(WorkerLost, match="exit code 3") as caught:
            crash.wait()
        assert caught.value.exit_code == 3
        _open(gate)
        assert held.wait()[0] == b"x"
        _wait_until(lambda: pool.pids()[0] not in (None, first), "worker 0 replaced")
        assert pool.pids()[1] == second


def test_a_retiring_worker_answers_then_is_replaced():
    with WorkerPool(_spec(workers=1)) as pool:
        (pid,) = pool.pids()
        assert pool.submit(kind=e.RETIRE).wait() == (b"bye", None)
        _wait_until(lambda: pool.pids()[0] not in (None, pid), "retired worker replaced")
        assert pool.submit(kind=e.ECHO, payload=b"next").wait()[0] == b"next"


def test_a_bounded_pool_queues_and_caps_memory():
    with WorkerPool(_spec(workers=1, max_in_flight=1, memory_bytes=768 * 1024 * 1024)) as pool:
        assert pool.submit(kind=e.MEMORY, arg=2048).wait()[0] == b"refused"
        assert pool.submit(kind=e.MEMORY, arg=16).wait()[0] == b"allocated"
        # One request at a time: those behind a crash wait in the pool, not on the worker.
        crash = pool.submit(kind=e.CRASH)
        waiting = [pool.submit(kind=e.ECHO, payload=b"%d" % i) for i in range(5)]
        with pytest.raises(WorkerLost):
            crash.wait()
        assert [call.wait()[0] for call in waiting] == [b"%d" % i for i in range(5)]
        results: list[bytes] = []

        def caller() -> None:
            results.append(pool.submit(kind=e.ECHO, payload=b"t").wait()[0])

        threads = [threading.Thread(target=caller) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [b"t"] * 8


def test_a_shared_fate_pool_goes_down_and_comes_back_together(tmp_path):
    gate = _gate(tmp_path)
    with WorkerPool(_spec(restart="pool")) as pool:
        before = set(pool.pids())
        held = pool.submit(kind=e.GATE, payload=bytes(gate))  # worker 0 shares the fate
        fatal = pool.submit(kind=e.FATAL)  # worker 1
        with pytest.raises(e.Fatal, match="the resource is gone"):
            fatal.wait()
        with pytest.raises(WorkerLost, match="became unavailable"):
            held.wait()
        _wait_until(lambda: pool.state is PoolState.SERVING, "pool back")
        assert not before & set(pool.pids())
        assert pool.submit(kind=e.ECHO, payload=b"back").wait()[0] == b"back"


def test_a_permanent_restart_error_fails_the_pool(tmp_path):
    flag = tmp_path / "refuse"
    spec = _spec(
        restart="pool", config={"refuse_start_if": str(flag)}, permanent=(e.Refused,), workers=1
    )
    with WorkerPool(spec) as pool:
        flag.write_text("now")
        with pytest.raises(e.Fatal):
            pool.submit(kind=e.FATAL).wait()
        _wait_until(lambda: pool.state is PoolState.FAILED, "pool failed")
        assert "refused to start" in pool.reason
        with pytest.raises(PoolUnavailable) as caught:
            pool.submit(kind=e.ECHO)
        assert isinstance(caught.value.failure, e.Refused)


def test_a_heartbeat_notices_a_lost_resource_without_traffic():
    spec = _spec(restart="pool", heartbeat=Heartbeat(kind=e.FATAL, interval=0.05), workers=1)
    with WorkerPool(spec) as pool:
        _wait_until(lambda: "the resource is gone" in pool.reason, "heartbeat noticed")


def test_close_fails_what_is_in_flight_and_leaves_no_process(tmp_path):
    gate = _gate(tmp_path)
    pool = WorkerPool(_spec(stop_grace=0.2))
    pids = pool.pids()
    held = pool.submit(kind=e.GATE, payload=bytes(gate))  # never opened: killed after the grace
    pool.close()
    with pytest.raises(PoolUnavailable, match="closed") as caught:
        held.wait()
    assert caught.value.closed
    assert all(_gone(pid) for pid in pids if pid is not None)
    with pytest.raises(PoolUnavailable, match="closed"):
        pool.submit(kind=e.ECHO)
