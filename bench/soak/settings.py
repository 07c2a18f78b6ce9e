"""What the soak runs and for how long, from ``KYSO_SOAK_*`` environment variables.

``KYSO_SOAK_SECONDS`` (default 120) is the time under load: a quarter of it for the quiet phase
(legitimate clients alone: the baseline), the rest for the attack phase. Start-up (``kyso dev
init`` into ``KYSO_SOAK_HOME``, reused between runs) and the checks afterwards come on top;
the whole run takes about three minutes with the defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

__all__ = ["Settings"]

_REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Every knob of the soak; ``Settings.from_env()`` reads ``KYSO_SOAK_<NAME>`` for each."""

    seconds: float = 120.0
    """Time under load: the quiet phase takes ``quiet_share`` of it, the attack phase the rest."""
    quiet_share: float = 0.25
    home: Path = _REPO / "var" / "soak"
    """The development home (SoftHSM tokens, PKI): made once by ``kyso dev init``, then reused."""
    small_directory: bool = False
    """Import only the units the soak uses instead of the province's 718 (a faster first start)."""
    legit_clients: int = 1
    """Legitimate clients of each kind (sign, verify, documents, sender, receiver)."""
    legit_pace: float = 0.05
    """Seconds a legitimate client waits between its calls."""
    legit_deadline: float = 30.0
    max_document_bytes: int = 4 * 1024 * 1024
    """``signing.max_document_bytes`` of the soak's server (the oversized uploads exceed it)."""
    idle_streams: int = 48
    """More than the server's 32 I/O threads (``server.io_threads``), so that idle uploads
    holding one each would starve every call that needs one."""
    slow_readers: int = 8
    slow_pause: float = 35.0
    """Seconds a slow reader waits before taking each next message (longer than ``grace``)."""
    grace: float = 30.0
    """How long the server may leave an idle or stalled stream open before closing it: a stream
    still open at the end of the attack is a miss only when it is older than this."""
    oversize_interval: float = 1.0
    bomb_interval: float = 0.5
    zip_sends: int = 3
    bombs_per_send: int = 90
    flood_concurrency: int = 96
    """The flooder's calls in flight at once: more than ``[limits] calls_in_flight`` (64)."""
    attacker_nice: int = 19
    """CPU priority of the attackers' own process (``nice``). Attackers stand for other
    machines: on this one, their client-side work (building bombs, a flood's 96 calls in
    flight) would otherwise take cores from the server, which a remote attacker cannot do. The
    server's own work for every hostile call is still measured; 0 runs them as equals."""
    legit_nice: int = -5
    """CPU priority of the legitimate clients (this process, once the server has started; it
    needs root, else it stays as it was and the report says so). They too stand for other
    machines: on their own, the server's load would not delay their client-side work, so
    here it must not either, or their latency would measure this machine's scheduler as well
    as the server. The server keeps its own priority; 0 runs them as the server's equals."""
    rss_bound_mib: int = 1024
    """The stated bound on the server's memory (its processes' resident sets added up)."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for item in fields(cls):
            text = env.get(f"KYSO_SOAK_{item.name.upper()}")
            if text is None:
                continue
            default = getattr(cls(), item.name)
            if isinstance(default, Path):
                values[item.name] = Path(text)
            elif isinstance(default, bool):
                values[item.name] = text.strip().lower() in {"1", "true", "yes", "on"}
            elif isinstance(default, int):
                values[item.name] = int(text)
            else:
                values[item.name] = float(text)
        return replace(cls(), **values)  # type: ignore[arg-type]

    @property
    def quiet_seconds(self) -> float:
        return self.seconds * self.quiet_share

    @property
    def attack_seconds(self) -> float:
        return self.seconds - self.quiet_seconds
