"""A real `kyso serve` child process over the session's development environment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kyso.dev.init import DevEnvironment
from kyso.dev.setup import render_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """A running service and how to talk to it with the `kyso` command."""

    config: Path
    process: subprocess.Popen[bytes]
    log: Path
    address: str

    def kyso(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180, cwd=None):
        return subprocess.run(
            [sys.executable, "-m", "kyso.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
            env={**os.environ, "KYSO_CONFIG": str(self.config), **(env or {})},
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def serve(
    dev_env: DevEnvironment,
    directory: Path,
    *,
    head_interval_seconds: int = 0,
    extra: str = "",
    env: dict[str, str] | None = None,
    edit: Callable[[str], str] | None = None,
    port: int = 0,
) -> Served:
    """Start `kyso serve` on a free port with its own database and objects in ``directory``
    (``head_interval_seconds``: sign tree heads that often instead of the development's 60;
    ``extra``: configuration appended; ``env``: more environment for the server; ``edit``:
    rewrites the configuration's text; ``port``: this one rather than a free one)."""
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "kyso.toml"
    text = render_config(
        dev_env,
        address=f"127.0.0.1:{port}",
        data_dir=directory,
        metrics_address="",
    )
    if edit is not None:
        text = edit(text)
    if head_interval_seconds:
        text = text.replace(
            "head_interval_seconds = 60", f"head_interval_seconds = {head_interval_seconds}"
        )
    config.write_text(text + extra)
    log = directory / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    served = Served(config=config, process=process, log=log, address=f"127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    while served.kyso("health", "--timeout", "1").returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            served.stop()
            raise RuntimeError(f"kyso serve did not become healthy:\n{log.read_text()}")
        time.sleep(0.2)
    return served
