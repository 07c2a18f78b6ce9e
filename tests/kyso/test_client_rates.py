"""A client's own rate (``[clients.NAME] calls_per_second`` and ``burst``) replaces ``[limits]``'s
for that client alone; every other client keeps the default share (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kyso.admission import Admission, Rate, client_rates
from kyso.config import ClientConfig, LimitsConfig, load_config
from kyso.errors import ConfigError, OverShare


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _admitted(admission: Admission, client: str, calls: int) -> int:
    """How many of ``calls`` made at once are admitted (each released at once)."""
    done = 0
    for _ in range(calls):
        try:
            admission.admit(client, streaming=False).release()
        except OverShare:
            break
        done += 1
    return done


def test_a_named_client_has_its_own_bucket_and_the_others_the_default() -> None:
    limits = LimitsConfig(calls_per_second=5.0, burst=10)
    clients = {
        "peer-hub": ClientConfig(roles=("hub",), calls_per_second=400.0, burst=800),
        "workflow": ClientConfig(roles=("workflow",)),
    }
    clock = _Clock()
    admission = Admission(limits, rates=client_rates(clients, limits), clock=clock)
    assert _admitted(admission, "peer-hub", 1000) == 800
    assert _admitted(admission, "workflow", 1000) == 10
    clock.now += 1.0
    assert _admitted(admission, "peer-hub", 1000) == 400
    assert _admitted(admission, "workflow", 1000) == 5


def test_the_refusal_names_the_setting_that_sets_the_rate() -> None:
    limits = LimitsConfig(calls_per_second=5.0, burst=1)
    clients = {"batch": ClientConfig(roles=("workflow",), calls_per_second=2.0)}
    admission = Admission(limits, rates=client_rates(clients, limits), clock=_Clock())
    admission.admit("batch", streaming=False).release()
    with pytest.raises(OverShare, match=r"rate of 2 calls per second \(\[clients\.batch\]"):
        admission.admit("batch", streaming=False)
    admission.admit("other", streaming=False).release()
    with pytest.raises(OverShare, match=r"rate of 5 calls per second \(\[limits\]"):
        admission.admit("other", streaming=False)


def test_a_client_setting_only_its_burst_keeps_the_default_rate() -> None:
    limits = LimitsConfig(calls_per_second=5.0, burst=10)
    rates = client_rates({"bursty": ClientConfig(roles=("workflow",), burst=50)}, limits)
    assert rates == {"bursty": Rate(5.0, 50, key="[limits] calls_per_second")}
    assert client_rates({"plain": ClientConfig(roles=("workflow",))}, limits) == {}


def test_the_keys_are_read_from_the_configuration(write_config) -> None:
    path: Path = write_config(
        '\n[clients.peer]\nroles = ["hub"]\ntoken_sha256 = "'
        + "a" * 64
        + '"\ncalls_per_second = 300\nburst = 600\n'
    )
    config = load_config(path)
    assert config.clients["peer"].calls_per_second == 300.0
    assert config.clients["peer"].burst == 600
    assert config.clients["workflow"].calls_per_second is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("calls_per_second = 0", "clients.peer.calls_per_second: must be more than 0"),
        ("burst = 0", "clients.peer.burst: must be at least 1"),
    ],
)
def test_a_bad_client_rate_names_its_key(write_config, line: str, message: str) -> None:
    path: Path = write_config(
        f'\n[clients.peer]\nroles = ["hub"]\ntoken_sha256 = "{"a" * 64}"\n{line}\n'
    )
    with pytest.raises(ConfigError, match=message):
        load_config(path)


async def test_held_refusals_wait_a_random_share_of_the_delay(monkeypatch) -> None:
    """Refusals held alike would all come back at once: each waits between half and all of
    ``refusal_delay_seconds``, drawn apart."""
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr("kyso.admission.asyncio.sleep", sleep)
    limits = LimitsConfig(calls_per_second=1.0, burst=1, refusal_delay_seconds=10.0)
    admission = Admission(limits, clock=_Clock())
    admission.admit("flood", streaming=False).release()
    for _ in range(200):
        with pytest.raises(OverShare) as refused:
            admission.admit("flood", streaming=False)
        await admission.hold_refusal(refused.value, remaining=None)
    assert len(waited) == 200
    assert all(5.0 <= seconds <= 10.0 for seconds in waited)
    assert max(waited) - min(waited) > 2.0  # spread, not one delay
    # never past the call's deadline (less the margin that lets the answer travel)
    waited.clear()
    with pytest.raises(OverShare) as refused:
        admission.admit("flood", streaming=False)
    await admission.hold_refusal(refused.value, remaining=2.0)
    assert len(waited) == 1
    assert waited[0] <= 1.5
