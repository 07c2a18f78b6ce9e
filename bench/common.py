"""Helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypedDict

__all__ = ["Result", "rate", "result"]


class Result(TypedDict):
    value: float
    unit: str
    baseline: float
    ratio: float


def result(value: float, baseline: float, unit: str) -> Result:
    return {"value": value, "unit": unit, "baseline": baseline, "ratio": value / baseline}


def rate(fn: Callable[[], object], *, seconds: float = 2.0) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (after one warm-up call)."""
    fn()
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        fn()
        count += 1
    return count / elapsed
