"""While the server is busy, the client calling most gives way (kyso.admission)."""

from __future__ import annotations

import pytest

from kyso.admission import Admission
from kyso.config import LimitsConfig
from kyso.errors import OverShare


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _calls(admission: Admission, clock: _Clock, per_second: dict[str, int], seconds: int) -> dict:
    """Admit each client's calls spread over ``seconds``; count the refusals of each."""
    refused = dict.fromkeys(per_second, 0)
    owed = dict.fromkeys(per_second, 0.0)
    steps = 100
    for _ in range(seconds * steps):
        clock.now += 1 / steps
        for client, rate in per_second.items():
            owed[client] += rate / steps
            while owed[client] >= 1:
                owed[client] -= 1
                try:
                    admission.admit(client, streaming=False).release()
                except OverShare:
                    refused[client] += 1
    return refused


def _admission(**limits: float) -> tuple[Admission, _Clock]:
    clock = _Clock()
    config = LimitsConfig(calls_per_second=1000.0, burst=1000, **limits)  # type: ignore[arg-type]
    return Admission(config, clock=clock), clock


def test_a_heavy_client_is_admitted_while_the_server_is_not_busy() -> None:
    admission, clock = _admission()
    refused = _calls(admission, clock, {"flood": 200, "clerk": 10, "seal": 10}, seconds=3)
    assert refused == {"flood": 0, "clerk": 0, "seal": 0}


def test_while_busy_the_client_far_over_its_share_gives_way_and_the_others_do_not() -> None:
    admission, clock = _admission()
    _calls(admission, clock, {"flood": 200, "clerk": 10, "seal": 10}, seconds=2)
    admission.note_lag(0.2)  # the event loop ran a timer 200 ms late
    assert admission.busy
    refused = _calls(admission, clock, {"flood": 200, "clerk": 10, "seal": 10}, seconds=1)
    assert refused["flood"] > 100
    assert refused["clerk"] == 0
    assert refused["seal"] == 0


def test_a_client_under_the_floor_is_never_refused_for_its_share() -> None:
    admission, clock = _admission(fair_floor_calls_per_second=20.0)
    _calls(admission, clock, {"steady": 15, "idle": 1}, seconds=2)
    admission.note_lag(0.2)
    refused = _calls(admission, clock, {"steady": 15, "idle": 1}, seconds=1)
    assert refused == {"steady": 0, "idle": 0}


def test_a_short_lag_is_not_busy_and_busy_ends_after_a_second() -> None:
    admission, clock = _admission(busy_lag_seconds=0.05)
    admission.note_lag(0.01)
    assert not admission.busy
    admission.note_lag(0.06)
    assert admission.busy
    clock.now += 1.5
    assert not admission.busy


def test_the_refusal_says_the_server_is_busy_and_names_the_share() -> None:
    admission, clock = _admission()
    _calls(admission, clock, {"flood": 300, "clerk": 5}, seconds=2)
    admission.note_lag(1.0)
    with pytest.raises(OverShare, match="the server is busy and client flood") as caught:
        admission.admit("flood", streaming=False)
    assert caught.value.retry_after == 1.0
    assert caught.value.client == "flood"


def test_a_client_alone_is_never_refused_for_its_share() -> None:
    admission, clock = _admission()
    _calls(admission, clock, {"batch": 300}, seconds=2)
    admission.note_lag(0.5)
    refused = _calls(admission, clock, {"batch": 300}, seconds=1)
    assert refused == {"batch": 0}
