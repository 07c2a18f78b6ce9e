"""What an operator watches, on a real `kyso serve` over the development environment (SoftHSM
keys, ledger key, one hub): `kyso admin status` (text and --json) from health and the metrics
endpoint, the state metrics, JSON logs where every line is JSON (gRPC C-core's own lines
included), the peer address on a refused call, and the rules file naming only metrics that
exist."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml

from kyso.dev.init import DevEnvironment
from kyso.dev.setup import render_config
from kyso.v1 import directory_pb2, directory_pb2_grpc
from tests.kyso.served import free_port

pytestmark = pytest.mark.timeout(300)

RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "kyso-rules.yml"


def _kyso(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _metrics(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_admin_status_metrics_and_json_logs(dev_env: DevEnvironment, tmp_path: Path):
    port, metrics_port = free_port(), free_port()
    config = tmp_path / "kyso.toml"
    text = render_config(
        dev_env,
        address=f"127.0.0.1:{port}",
        data_dir=tmp_path,
        metrics_address=f"127.0.0.1:{metrics_port}",
    )
    text = text.replace(
        "[server]\n", '[server]\nlog_format = "json"\nhealth_interval_seconds = 0.5\n'
    )
    config.write_text(text)
    log = tmp_path / "serve.log"
    # C-core writes its own lines to file descriptor 2 at this verbosity: they must arrive as JSON
    env = {**os.environ, "GRPC_VERBOSITY": "INFO"}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 120

        def ready() -> bool:
            if _kyso(config, "health", "--timeout", "1").returncode != 0:
                return False
            try:  # the state gauges are set after the first health check
                return "kyso_ledger_entries " in _metrics(f"127.0.0.1:{metrics_port}")
            except OSError:
                return False

        while not ready():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"never ready:\n{log.read_text()}"
            time.sleep(0.3)

        metrics = _metrics(f"127.0.0.1:{metrics_port}")
        assert 'kyso_dependency_up{dependency="database"} 1.0' in metrics
        assert 'kyso_dependency_up{dependency="hsm"} 1.0' in metrics
        assert re.search(r'kyso_token_up\{token="[^"]*kyso-dev[^"]*"\} 1\.0', metrics), metrics
        assert 'kyso_certificate_expiry_timestamp_seconds{certificate="keys.seal"}' in metrics
        assert 'kyso_certificate_expiry_timestamp_seconds{certificate="keys.ledger"}' in metrics

        # a refused call: a token this server does not know
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as err:
                directory_pb2_grpc.DirectoryServiceStub(channel).GetUnit(
                    directory_pb2.GetUnitRequest(code="000.00.00.H49"),
                    metadata=[("authorization", "Bearer not-a-token-of-this-server")],
                )
            assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED

        shown = _kyso(config, "admin", "status", "--json")
        assert shown.returncode == 0, shown.stderr
        status = json.loads(shown.stdout)
        assert status["health"] == "SERVING"
        assert status["dependencies"] == {"database": "up", "hsm": "up", "storage": "up"}
        assert set(status["tokens"].values()) == {"serving"}
        assert {"keys.seal", "keys.seal-ec", "keys.ledger"} <= set(status["certificates"])
        assert all(c["days_left"] > 0 for c in status["certificates"].values())
        assert status["ledger"]["entries"] >= 0
        assert status["backlogs"]["audit_outbox"] == 0
        assert status["backlogs"]["webhooks_failed"] == 0
        assert status["backlogs"]["citizen_messages_failed"] == 0
        assert status["backlogs"]["webhook_endpoints_disabled"] == 0
        assert [hub["id"] for hub in status["hubs"]] == ["H49"]
        assert status["hubs"][0]["this_hub"] is True

        text_view = _kyso(config, "admin", "status")
        assert text_view.returncode == 0, text_view.stderr
        assert "certificate   keys.seal" in text_view.stdout
        assert "hub           H49" in text_view.stdout

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    records = [json.loads(line) for line in log.read_text().splitlines()]  # every line is JSON
    assert any(r["logger"] == "native" for r in records), "no gRPC C-core line was captured"
    refused = [r for r in records if r["message"] == "refused"]
    assert refused, "the refusal was not logged"
    assert refused[0]["peer"].startswith("ipv4:127.0.0.1:")
    assert refused[0]["code"] == "UNAUTHENTICATED"


def test_rules_file_names_only_metrics_kyso_serves():
    rules = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert exprs
    served = set(
        re.findall(
            r'"(kyso_[a-z_]+)"', (Path(__file__).parents[2] / "kyso" / "metrics.py").read_text()
        )
    )
    served |= {f"{name}_total" for name in served}  # counters get the suffix
    for expr in exprs:
        for name in re.findall(r"\bkyso_[a-z_]+", expr):
            assert name in served, f"{name} in {expr!r} is not a kyso metric"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) absent")
def test_rules_file_passes_promtool():
    result = subprocess.run(
        ["promtool", "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) absent")
def test_fetch_alerts_fire_for_failing_responders_in_promtool():
    """KysoRevocationFailing and KysoTsaFailing fire, by responder, on series of failures."""
    result = subprocess.run(
        [
            "promtool",
            "test",
            "rules",
            str(Path(__file__).parent / "prometheus" / "fetch-alerts.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
