"""A throw-away Ceph RADOS Gateway on loopback: a real S3 engine for tests and benchmarks.

One monitor, one bluestore OSD on a sparse file and the gateway, all inside one working
directory, started as plain child processes (no systemd, no ceph-mgr). Daemon-to-daemon auth is
off; S3 request signatures are still checked by the gateway. The settings below are the ones
that make it start in about two seconds (see TOOLCHAIN.md, "Object storage"); the comments say
what each one prevents.

Invariants:
- every file (config, stores, sockets, logs, pid files) lives under ``workdir``;
- ``stop()`` stops gateway → OSD → monitor, in that order (any other order can hang 120 s);
- after the gateway was SIGKILLed, its RADOS watches are evicted (blocklisted) before the next
  start, so that bucket operations do not wait ~25 s for them to time out.

Command line (for a developer's shell)::

    python -m kyso.dev.rgw start DIR      # prints endpoint and keys as KEY=VALUE lines
    python -m kyso.dev.rgw stop DIR
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CEPH_PACKAGES", "RadosGateway", "RgwError", "RgwUser", "ensure_installed"]

CEPH_PACKAGES = ("radosgw", "ceph-mon", "ceph-osd", "ceph-common")
_BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool", "rados")
_CLIENT_TIMEOUT = "20"  # seconds for one `ceph`/`rados` CLI call against the monitor


class RgwError(RuntimeError):
    """The local gateway could not be installed, started or stopped; the message says which step."""


@dataclass(frozen=True)
class RgwUser:
    """An S3 user of the gateway. The secret never appears in repr()."""

    uid: str
    access_key: str
    secret_key: str = field(repr=False)


def ensure_installed() -> None:
    """Install the Debian packages when a Ceph binary is missing (needs root and apt)."""
    if all(shutil.which(name) for name in _BINARIES):
        return
    if os.geteuid() != 0:
        raise RgwError(
            "Ceph binaries are missing and this is not root: run "
            f"`apt-get install -y --no-install-recommends {' '.join(CEPH_PACKAGES)}` as root"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *CEPH_PACKAGES]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        # A fresh image often has no package lists yet.
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    missing = [name for name in _BINARIES if not shutil.which(name)]
    if missing:
        raise RgwError(f"apt-get finished but {', '.join(missing)} is still missing")


def _ephemeral_ports() -> range:
    """The ports the kernel hands out to outgoing connections (Linux's default when unknown)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def _free_port() -> int:
    """A free loopback port outside the ephemeral range.

    The gateway's port is kept across its restarts. A port from the ephemeral range (what binding
    to port 0 gives) can be taken, while the gateway is down, as the local port of any outgoing
    connection on the machine, and the restarted gateway then cannot listen.
    """
    ephemeral = _ephemeral_ports()
    candidates = [port for port in range(10000, 30000) if port not in ephemeral]
    rng = random.SystemRandom()
    for port in rng.sample(candidates, k=min(200, len(candidates))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RgwError("no free loopback port between 10000 and 30000 outside the ephemeral range")


class RadosGateway:
    """Owns one loopback Ceph cluster (monitor, OSD, gateway) inside ``workdir``.

    ``start()`` creates the cluster on first use and restarts it afterwards; the gateway can be
    killed and restarted on its own (``kill_gateway``/``start_gateway``) to test outages.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        osd_size_bytes: int = 20 * 1024**3,
        ready_timeout: float = 60.0,
    ) -> None:
        self.workdir = workdir.resolve()
        self._port_file = self.workdir / "rgw.port"
        if port is None and self._port_file.exists():
            port = int(self._port_file.read_text())
        self.port = port if port is not None else _free_port()
        self._mon_port = _free_port()
        self._osd_size = osd_size_bytes
        self._ready_timeout = ready_timeout
        self._conf = self.workdir / "ceph.conf"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # ---------------------------------------------------------------- public
    @property
    def endpoint(self) -> str:
        """``host:port`` of the S3 endpoint (plain HTTP)."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Create the cluster if needed, start monitor, OSD and gateway; wait until S3 answers."""
        ensure_installed()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._port_file.write_text(str(self.port))
        fresh = not (self.workdir / "mon" / "store.db").exists()
        self._write_conf()
        if fresh:
            self._mkfs_mon()
        self._spawn("mon", ["ceph-mon", "-f", "-i", "a"])
        self._wait_for(self._mon_ready, "monitor to form a quorum")
        if fresh:
            self._mkfs_osd()
        # ceph-osd 16.2 sometimes sends its first command before it has the monmap and exits
        # ("wrong fsid"); a later start works. On a loaded machine (two test workers each
        # starting a cluster) three quick starts in a row were seen to fail: wait a little
        # longer before each new one.
        self._start_daemon(
            "osd", ["ceph-osd", "-f", "-i", "0"], self._osd_up, "OSD 0 to come up",
            attempts=6, pause=0.5,
        )  # fmt: skip
        self.start_gateway()

    def start_gateway(self) -> None:
        """Start the gateway (evicting the watches of a killed one first); wait for S3.

        A gateway that exits while starting is started again, up to three times in all: on a
        loaded machine its first commands to the monitor can time out.
        """
        if self._alive("rgw"):
            return
        self._evict_stale_watches()
        self._start_daemon(
            "rgw", ["radosgw", "-f", "-n", "client.rgw"], self._s3_answers,
            "the gateway to answer S3 requests", attempts=3, pause=1.0,
        )  # fmt: skip

    def kill_gateway(self) -> None:
        """SIGKILL the gateway, as a crash would: no clean shutdown, watches left behind."""
        self._signal("rgw", signal.SIGKILL)
        self._reap("rgw", timeout=10)

    def stop_gateway(self) -> None:
        """Stop the gateway cleanly (SIGTERM), SIGKILL after 20 s."""
        self._stop("rgw")

    def stop(self) -> None:
        """Stop gateway, OSD and monitor, in that order; safe to call twice."""
        for name in ("rgw", "osd", "mon"):
            self._stop(name)

    def gateway_pid(self) -> int | None:
        """The gateway's process id, or None when it is not running."""
        return self._pid("rgw") if self._alive("rgw") else None

    def create_user(self, uid: str = "kyso", *, display_name: str = "kyso") -> RgwUser:
        """Create an S3 user with newly generated keys (or return the stored keys of ``uid``)."""
        access_file, secret_file = self.key_files(uid)
        if secret_file.exists():
            return RgwUser(
                uid=uid,
                access_key=access_file.read_text().strip(),
                secret_key=secret_file.read_text().strip(),
            )
        access = "KYSO" + secrets.token_hex(8).upper()
        secret = secrets.token_urlsafe(30)
        self._admin(
            "user", "create", f"--uid={uid}", f"--display-name={display_name}",
            f"--access-key={access}", f"--secret-key={secret}",
        )  # fmt: skip
        access_file.write_text(access + "\n")
        secret_file.touch(mode=0o600)
        secret_file.write_text(secret + "\n")
        return RgwUser(uid=uid, access_key=access, secret_key=secret)

    def key_files(self, uid: str = "kyso") -> tuple[Path, Path]:
        """Where the access key and the secret key (mode 0600) of ``uid`` are kept."""
        return self.workdir / f"user-{uid}.access", self.workdir / f"user-{uid}.secret"

    # ---------------------------------------------------------------- set-up
    def _write_conf(self) -> None:
        d = self.workdir
        for sub in ("mon", "osd", "run", "log", "rgw"):
            (d / sub).mkdir(exist_ok=True)
        fsid_file = d / "fsid"
        if not fsid_file.exists():
            fsid_file.write_text(str(uuid.uuid4()))
        fsid = fsid_file.read_text().strip()
        mon_addr = f"127.0.0.1:{self._mon_port}"
        # The monitor's address is part of its monmap; keep the first one across restarts.
        mon_addr_file = d / "mon.addr"
        if mon_addr_file.exists():
            mon_addr = mon_addr_file.read_text().strip()
        else:
            mon_addr_file.write_text(mon_addr)
        self._conf.write_text(
            f"""[global]
fsid = {fsid}
mon host = v1:{mon_addr}
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
# Without this the gateway fails with -13 and hangs 300 s when daemon auth is off.
ms mon client mode = crc secure
run dir = {d}/run
pid file = {d}/run/$name.pid
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
mon cluster log file = {d}/log/cluster.log
log to stderr = false
err to stderr = true
# One OSD: pools of size one, placement across OSDs rather than hosts.
mon allow pool size one = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false
# A development disk is often fuller than Ceph likes.
mon data avail warn = 2
mon data avail crit = 1
# First gateway start 9 s → 0.2 s.
paxos propose interval = 0.01

[mon.a]
mon data = {d}/mon

[osd.0]
osd data = {d}/osd
osd objectstore = bluestore
bluestore block create = true
bluestore block size = {self._osd_size}
# OSD start 3.5 s → 0.5 s.
bdev aio poll ms = 10
osd max object name len = 1024
osd max object namespace len = 256

[client.rgw]
rgw data = {d}/rgw
# Without tcp_nodelay small GETs stall ~40 ms (Nagle + delayed ACK).
rgw frontends = beast endpoint=127.0.0.1:{self.port} tcp_nodelay=1
rgw dns name = localhost
rgw enable usage log = false
"""
        )

    def _mkfs_mon(self) -> None:
        monmap = self.workdir / "monmap"
        fsid = (self.workdir / "fsid").read_text().strip()
        mon_addr = (self.workdir / "mon.addr").read_text().strip()
        self._run(
            "monmaptool", "--create", "--clobber", "--fsid", fsid,
            "--addv", "a", f"[v1:{mon_addr}]", str(monmap),
        )  # fmt: skip
        self._run("ceph-mon", "-c", str(self._conf), "--mkfs", "-i", "a", "--monmap", str(monmap))

    def _mkfs_osd(self) -> None:
        osd_uuid = str(uuid.uuid4())
        osd_id = self._ceph("osd", "new", osd_uuid).strip()
        if osd_id != "0":
            raise RgwError(f"expected the new OSD to get id 0, the monitor gave {osd_id!r}")
        self._run(
            "ceph-osd", "-c", str(self._conf), "-i", "0", "--mkfs", "--osd-uuid", osd_uuid
        )  # fmt: skip

    # ---------------------------------------------------------------- processes
    def _start_daemon(
        self,
        name: str,
        argv: Sequence[str],
        ready: Callable[[], bool],
        what: str,
        *,
        attempts: int,
        pause: float,
    ) -> None:
        """Start ``name`` and wait until ``ready``; a daemon that exits or never gets ready is
        stopped and started again, up to ``attempts`` times, ``pause`` × n seconds after the nth."""
        for attempt in range(1, attempts):
            self._spawn(name, argv)
            try:
                self._wait_for(ready, what)
                return
            except RgwError:
                self._stop(name)
                time.sleep(pause * attempt)
        self._spawn(name, argv)
        self._wait_for(ready, what)

    def _spawn(self, name: str, argv: Sequence[str]) -> None:
        if self._alive(name):
            return
        log = (self.workdir / "log" / f"{name}.stderr").open("ab")
        with log:
            proc = subprocess.Popen(
                [argv[0], "-c", str(self._conf), *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # the cluster outlives a `start` from the shell
            )
        self._procs[name] = proc
        (self.workdir / "run" / f"{name}.child").write_text(str(proc.pid))

    def _pid(self, name: str) -> int | None:
        proc = self._procs.get(name)
        if proc is not None:
            return proc.pid
        pidfile = self.workdir / "run" / f"{name}.child"
        if pidfile.exists():
            return int(pidfile.read_text())
        return None

    def _alive(self, name: str) -> bool:
        proc = self._procs.get(name)
        if proc is not None:
            return proc.poll() is None
        pid = self._pid(name)
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        cmdline = Path(f"/proc/{pid}/cmdline")
        # A recycled pid must not be mistaken for our daemon.
        return cmdline.exists() and str(self._conf).encode() in cmdline.read_bytes()

    def _signal(self, name: str, sig: signal.Signals) -> None:
        pid = self._pid(name)
        if pid is not None and self._alive(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _reap(self, name: str, *, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._alive(name):
                proc = self._procs.pop(name, None)
                if proc is not None:
                    proc.wait()
                (self.workdir / "run" / f"{name}.child").unlink(missing_ok=True)
                return True
            time.sleep(0.05)
        return False

    def _stop(self, name: str) -> None:
        self._signal(name, signal.SIGTERM)
        if not self._reap(name, timeout=20):
            self._signal(name, signal.SIGKILL)
            self._reap(name, timeout=10)

    # ---------------------------------------------------------------- readiness
    def _wait_for(self, probe: object, what: str) -> None:
        assert callable(probe)
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            if probe():
                return
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise RgwError(
                        f"{name} exited with {proc.returncode} while waiting for {what}; "
                        f"see {self.workdir / 'log'}"
                    )
            time.sleep(0.05)
        raise RgwError(f"timed out after {self._ready_timeout:.0f} s waiting for {what}")

    def _mon_ready(self) -> bool:
        return self._ceph_ok("mon", "stat")

    def _osd_up(self) -> bool:
        try:
            out = self._cli("ceph", "osd", "stat", "--format=json")
        except RgwError:
            return False
        return '"num_up_osds":1' in out.replace(" ", "")

    def _s3_answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/", timeout=2) as resp:
                return int(resp.status) < 500
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except OSError:
            return False

    def _evict_stale_watches(self) -> None:
        """Blocklist the client addresses still watching the gateway's control objects.

        A killed gateway leaves its watches on ``notify.*`` behind; the next gateway's bucket
        creation would wait for them to expire (~25 s).
        """
        try:
            pools = self._ceph("osd", "pool", "ls").split()
        except RgwError:
            return
        if "default.rgw.control" not in pools:
            return  # first start: no control pool yet
        addresses: set[str] = set()
        for i in range(8):
            try:
                # `rados` spells the connect timeout differently from `ceph`.
                out = self._retrying(
                    "rados", "-c", str(self._conf), f"--client_mount_timeout={_CLIENT_TIMEOUT}",
                    "-p", "default.rgw.control", "listwatchers", f"notify.{i}",
                )  # fmt: skip
            except RgwError:
                continue
            for line in out.splitlines():
                # watcher=127.0.0.1:0/1234567 client.4123 cookie=94...
                if line.startswith("watcher="):
                    addresses.add(line.split()[0].removeprefix("watcher="))
        for address in addresses:
            self._ceph("osd", "blocklist", "add", address)

    # ---------------------------------------------------------------- commands
    def _run(self, *argv: str) -> str:
        try:
            result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        except subprocess.TimeoutExpired as exc:
            raise RgwError(f"`{' '.join(argv[:3])} …` did not finish in 60 s") from exc
        if result.returncode != 0:
            raise RgwError(
                f"`{' '.join(argv[:3])} …` failed ({result.returncode}): {result.stderr[-800:]}"
            )
        return result.stdout

    def _cli_argv(self, program: str, *args: str, timeout: str) -> tuple[str, ...]:
        return (program, "-c", str(self._conf), "--connect-timeout", timeout, *args)

    def _cli(self, program: str, *args: str, timeout: str = _CLIENT_TIMEOUT) -> str:
        return self._run(*self._cli_argv(program, *args, timeout=timeout))

    def _retrying(self, *argv: str, attempts: int = 5) -> str:
        """``_run`` again after a growing pause when it fails.

        A monitor on a loaded machine sometimes answers a CLI with "problem getting command
        descriptions" (EPERM) or a timeout; the same command a second later works. Every command
        sent through here is idempotent (reads, ``osd new`` with a fixed uuid, blocklist adds).
        """
        for attempt in range(1, attempts):
            try:
                return self._run(*argv)
            except RgwError:
                time.sleep(0.5 * attempt)
        return self._run(*argv)

    def _ceph(self, *args: str) -> str:
        return self._retrying(*self._cli_argv("ceph", *args, timeout=_CLIENT_TIMEOUT))

    def _ceph_ok(self, *args: str) -> bool:
        try:
            self._cli("ceph", *args, timeout="2")
        except RgwError:
            return False
        return True

    def _admin(self, *args: str) -> str:
        # Its own admin socket name: the running gateway already holds client.rgw.asok.
        return self._run(
            "radosgw-admin", "-c", str(self._conf), "-n", "client.rgw",
            f"--admin-socket={self.workdir}/run/radosgw-admin.asok", *args,
        )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """``start DIR`` / ``stop DIR``: run the gateway for a developer's shell."""
    parser = argparse.ArgumentParser(prog="python -m kyso.dev.rgw", description=__doc__)
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    gateway = RadosGateway(args.workdir, port=args.port)
    if args.action == "stop":
        gateway.stop()
        return 0
    gateway.start()
    user = gateway.create_user()
    access_file, secret_file = gateway.key_files(user.uid)
    # the environment override of storage.s3.endpoint (the gateway speaks plain HTTP)
    print("KYSO_STORAGE__BACKEND=s3")
    print(f"KYSO_STORAGE__S3__ENDPOINT={gateway.endpoint}")
    print("KYSO_STORAGE__S3__SECURE=false")
    # The secret stays in its 0600 file; print where it is, not what it is.
    print(f"KYSO_S3_ACCESS_KEY_FILE={access_file}")
    print(f"KYSO_S3_SECRET_KEY_FILE={secret_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
