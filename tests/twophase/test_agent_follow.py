"""``kyso agent --follow``: the agent waits on the live stream (NotificationService.WatchEvents)
and signs a document requested after it started, without polling the pending list."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from .conftest import REPO, RunningServer, render
from .test_agent import pending, request_signatures

pytestmark = pytest.mark.slow


@pytest.fixture
def running(dev_env, tmp_path):
    with RunningServer(render(dev_env, tmp_path / "server")) as server:
        yield server


def test_follow_signs_what_is_requested_after_it_started(running, dev_env, tmp_path, capsys):
    key = dev_env.keys["official"]
    env = dev_env.child_env()
    env["KYSO_TOKEN_PIN"] = key.pin_path.read_text().strip()
    argv = [
        sys.executable,
        "-m",
        "kyso.cli.main",
        "agent",
        "--lang",
        "en",
        "--yes",
        "--requester",
        "dev",
    ]
    argv += ["--module", str(dev_env.module_path), "--token", key.token_label]
    argv += ["--config", str(running.config.source), "--server", running.address]
    argv += ["--follow", "--batches", "1"]
    agent = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert agent.stderr is not None
        deadline = time.monotonic() + 120
        line = ""
        while "Waiting for documents" not in line:  # the first round found nothing
            assert time.monotonic() < deadline, "the agent never started waiting"
            line = agent.stderr.readline()
            assert line or agent.poll() is None, "the agent ended early"
        [session] = request_signatures(running, dev_env, tmp_path, capsys, 1)
        out, err = agent.communicate(timeout=120)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0, err
    assert "Nothing waits for this certificate." in out
    assert "signed 1, failed 0, left 0" in out
    assert session not in pending(running, dev_env)
    assert key.pin_path.read_text().strip() not in out + err
