"""The soak's server: ``kyso serve`` as a real child process over the development set-up
(SQLite, filesystem store, SoftHSM keys), with one API token per soak client, and a sampler of
its memory (the server and every process under it).

Clients (each its own identity, so that per-client limits can tell them apart):
``soak-signer`` (may use the ``seal`` key), ``soak-verifier``, ``soak-documents``,
``soak-sender`` (unit :data:`SENDER_UNIT`), ``soak-receiver`` (unit :data:`RECEIVER_UNIT`) are
the legitimate ones; ``soak-hostile`` (unit :data:`HOSTILE_UNIT` and below) and ``soak-flood``
are the attackers.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kyso.dev.init import DevEnvironment
from kyso.dev.responders import free_port
from kyso.dev.setup import DEV_DIRECTORY, render_config

__all__ = [
    "CLIENTS",
    "HOSTILE_UNIT",
    "RECEIVER_UNIT",
    "SENDER_UNIT",
    "MemorySampler",
    "SoakServer",
]

SENDER_UNIT = "000.00.02.H49"  # Sở Nội vụ
RECEIVER_UNIT = "000.00.03.H49"  # Sở Tư pháp
HOSTILE_UNIT = "000.00.04.H49"  # Sở Kế hoạch và Đầu tư, whose sub-units the attackers use

CLIENTS: dict[str, tuple[str, str]] = {
    "soak-signer": ('["workflow", "clerk"]', "000.00.21.H49"),
    "soak-verifier": ('["auditor"]', ""),
    "soak-documents": ('["workflow"]', "000.00.21.H49"),  # a unit: it reads what it stored
    "soak-sender": ('["workflow"]', SENDER_UNIT),
    "soak-receiver": ('["workflow"]', RECEIVER_UNIT),
    "soak-hostile": ('["workflow", "auditor"]', HOSTILE_UNIT),
    "soak-flood": ('["workflow", "auditor"]', ""),
}
"""Client name → (roles as TOML, unit)."""


def _small_directory(path: Path) -> Path:
    """The development directory cut down to the units the soak uses (and the units above them):
    a first start imports it in a moment instead of the whole province's 718 units."""
    lines = DEV_DIRECTORY.read_text(encoding="utf-8").splitlines()
    wanted = {"000.00.00.H49", "000.00.21.H49", SENDER_UNIT, RECEIVER_UNIT, HOSTILE_UNIT}
    kept = [lines[0]]
    kept += [line for line in lines[1:] if line.split(",")[0] in wanted or HOSTILE_UNIT in line]
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return path


def _config_text(
    env: DevEnvironment, data: Path, port: int, *, max_document_bytes: int, small: bool
) -> str:
    text = render_config(env, address=f"127.0.0.1:{port}", data_dir=data, metrics_address="")
    if small:
        directory = f'directory = "{DEV_DIRECTORY}"'
        if directory not in text:
            raise RuntimeError("the development configuration no longer names its directory")
        text = text.replace(directory, f'directory = "{_small_directory(data / "units.csv")}"')
    key_clients = 'clients = ["dev"]'
    if key_clients not in text:
        raise RuntimeError("the development configuration no longer lists its key clients")
    # The seal is also the hub's exchange key: clients that Send packages built from fields
    # must be on its list (docs/api.md, "Exchange: who may act for a unit").
    text = text.replace(
        key_clients, 'clients = ["dev", "soak-signer", "soak-sender", "soak-hostile"]'
    )
    text = text.replace("[signing]\n", f"[signing]\nmax_document_bytes = {max_document_bytes}\n")
    for name, (roles, unit) in CLIENTS.items():
        text += f'\n[clients.{name}]\nroles = {roles}\ntoken_file = "tokens/{name}"\n'
        if unit:
            text += f'unit = "{unit}"\n'
        if name == "soak-verifier":
            # The check afterwards reads every document back as fast as it can: a bulk reader
            # given its own rate, as an operator would name one (docs/operations.md, "Limits").
            text += "calls_per_second = 5000\nburst = 10000\n"
    # The check afterwards reads every document, whoever stored it, as an auditor may when
    # the operator allows it (docs/api.md, "Who reads a stored document").
    text += "\n[documents]\nauditors_download = true\n"
    return text


def _descendants(root: int) -> list[int]:
    """``root`` and every process under it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """Processor time (user + system) ``pid`` has used so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _status_kib(pid: int, name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class MemorySampler:
    """Samples the resident set of a process tree every ``interval`` seconds, in a thread.

    ``samples``: (monotonic time, KiB of VmRSS added over the tree); ``hwm``: per process, the
    highest VmHWM (its own peak resident set) seen — so a worker that exits still counts;
    ``cpu``: (monotonic time, processor seconds the tree's live processes have used, those of
    the server process itself).
    """

    root: int
    interval: float = 0.25
    samples: list[tuple[float, int]] = field(default_factory=list)
    hwm: dict[int, int] = field(default_factory=dict)
    cpu: list[tuple[float, float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="soak-rss", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        total, used = 0, 0.0
        for pid in _descendants(self.root):
            total += _status_kib(pid, "VmRSS")
            used += _cpu_seconds(pid)
            self.hwm[pid] = max(self.hwm.get(pid, 0), _status_kib(pid, "VmHWM"))
        now = time.monotonic()
        self.samples.append((now, total))
        self.cpu.append((now, used, _cpu_seconds(self.root)))

    def cores_used(self, start: float, end: float, *, server_only: bool = False) -> float:
        """The processor time between ``start`` and ``end`` over that time: how many cores
        the server's processes (``server_only``: the server process itself, one interpreter)
        kept busy on average (a worker restarted in between counts from its start only)."""
        column = 2 if server_only else 1
        inside = [(sample[0], sample[column]) for sample in self.cpu if start <= sample[0] <= end]
        if len(inside) < 2:
            return 0.0
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return max(c1 - c0, 0.0) / max(t1 - t0, 1e-9)

    def peak_mib(self, start: float, end: float) -> float:
        """The highest tree resident set sampled between ``start`` and ``end`` (MiB)."""
        values = [kib for t, kib in self.samples if start <= t <= end]
        return max(values, default=0) / 1024

    def hwm_total_mib(self) -> float:
        """Every process's own peak added up (MiB): an upper bound of the tree's peak."""
        return sum(self.hwm.values()) / 1024

    def server_hwm_mib(self) -> float:
        """VmHWM of the server process itself (MiB)."""
        return self.hwm.get(self.root, 0) / 1024


@dataclass
class SoakServer:
    """A running ``kyso serve`` child and what clients need to reach it."""

    env: DevEnvironment
    data: Path
    config: Path
    address: str
    tokens: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls, env: DevEnvironment, data: Path, *, max_document_bytes: int, small_directory: bool
    ) -> SoakServer:
        data.mkdir(parents=True, exist_ok=True)
        (data / "tokens").mkdir(mode=0o700, exist_ok=True)
        tokens = {}
        for name in CLIENTS:
            tokens[name] = secrets.token_urlsafe(24)
            path = data / "tokens" / name
            path.write_text(tokens[name])
            path.chmod(0o600)
        port = free_port()
        config = data / "kyso.toml"
        config.write_text(
            _config_text(
                env, data, port, max_document_bytes=max_document_bytes, small=small_directory
            )
        )
        log = data / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env.child_env(),
            )
        server = cls(env, data, config, f"127.0.0.1:{port}", tokens, process, log)
        server._wait_healthy()
        return server

    def kyso(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the ``kyso`` command against this server's configuration."""
        return subprocess.run(
            [sys.executable, "-m", "kyso.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**self.env.child_env(), "KYSO_CONFIG": str(self.config)},
        )

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 180
        request = health_pb2.HealthCheckRequest(service="")
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    if (
                        stub.Check(request, timeout=2).status
                        == health_pb2.HealthCheckResponse.SERVING
                    ):
                        return
                except grpc.RpcError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"kyso serve did not become healthy:\n{self.log.read_text()}"
                    )
                time.sleep(0.2)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 30 s; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
