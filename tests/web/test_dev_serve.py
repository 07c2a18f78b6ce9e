"""`kyso dev serve` (what `make run` runs) starts the auditors' console beside the service,
prints where it is, and stops it with the service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kyso.dev.init import dev_init
from kyso.dev.responders import free_port
from kyso.dev.setup import render_config, render_web_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


def _health(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", "health", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_kyso_dev_serve_starts_the_console_beside_the_service(tmp_path: Path) -> None:
    env = dev_init(tmp_path / "dev", responders_port=free_port())
    address = f"127.0.0.1:{free_port()}"
    (env.home / "kyso.toml").write_text(
        render_config(env, address=address, data_dir=tmp_path, metrics_address="")
    )
    web_port = free_port()
    (env.home / "web.toml").write_text(
        render_web_settings(env, server=address, listen=f"127.0.0.1:{web_port}")
    )
    log_path = tmp_path / "dev-serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", "dev", "serve", "--home", str(env.home)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SOFTHSM2_CONF": str(env.softhsm_conf)},
        )
    url = f"http://127.0.0.1:{web_port}/dang-nhap"
    try:
        deadline = time.monotonic() + 120
        while not _answers(url):
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        while _health(env.home / "kyso.toml").returncode:  # the service too, then stop both
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        printed = log_path.read_text()
        assert f"the console at http://127.0.0.1:{web_port}/" in printed
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, log_path.read_text()
    assert not _answers(url), "the console outlived the service"
