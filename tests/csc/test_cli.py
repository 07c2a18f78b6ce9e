"""The commands as real child processes: ``kyso csc serve`` (or ``kyso serve`` with ``[csc]
address`` set) serves the facade;
``kyso remote test``/``list`` reach it; ``kyso request-signature --remote kyso --user seal``
produces a PAdES B-LT document that pdfsig reports valid; SIGTERM stops the facade cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

import storage
from kyso.config import load_config
from kyso.dev.responders import free_port
from signer import Level
from signer.schema import remote_requests, sessions
from tests.signer.checks import nss_db, pdfsig, validate
from tests.signer.pdfgen import make_pdf

from .conftest import SP_ID, facade_config_text
from .test_facade import kyso_verify, root

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def kyso(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )


@pytest.mark.parametrize(
    "serve", [("csc", "serve"), ("serve",)], ids=["kyso-csc-serve", "beside-kyso-serve"]
)
async def test_commands(dev_env, tmp_path: Path, serve):
    port = free_port()
    config = tmp_path / "kyso.toml"
    text = facade_config_text(
        dev_env,
        tmp_path,
        f"""
[remote.kyso]
kind = "csc"
url = "http://127.0.0.1:{port}"
client_id = "dev"
client_secret_env = "KYSO_TEST_CSC_SECRET"
""",
    ).replace('address = "127.0.0.1:0"\nsad_seconds', f'address = "127.0.0.1:{port}"\nsad_seconds')
    config.write_text(text)
    os.environ["KYSO_TEST_CSC_SECRET"] = dev_env.api_token_path.read_text().strip()
    log_path = tmp_path / "csc.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", *serve, "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(f"http://127.0.0.1:{port}/csc/v2/info", method="POST"),
                    timeout=2,
                ) as response:
                    info = json.loads(response.read())
                break
            except OSError:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.5)
        assert info["specs"].startswith("2.")
        assert info["authType"] == ["oauth2client", "oauth2code"]

        tested = kyso("remote", "test", "kyso", "--user", "seal", "--json", "--config", str(config))
        assert tested.returncode == 0, tested.stderr
        assert json.loads(tested.stdout)["credential"] == "seal"

        pdf = tmp_path / "to-sign.pdf"
        pdf.write_bytes(make_pdf())
        done = kyso(
            "request-signature",
            str(pdf),
            "--remote",
            "kyso",
            "--user",
            "seal",
            "--client",
            "dev",
            "--json",
            "--config",
            str(config),
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["state"] == "completed"
        [document] = result["documents"]
        assert document["level"] == "B-LT"

        listed = kyso("remote", "list", "--json", "--config", str(config))
        assert listed.returncode == 0, listed.stderr
        [request] = json.loads(listed.stdout)["requests"]
        assert (request["id"], request["state"]) == (result["id"], "completed")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()
    secret = os.environ.pop("KYSO_TEST_CSC_SECRET")
    assert secret not in log_path.read_text()
    assert secret not in done.stdout + done.stderr

    with storage.FilesystemStore(tmp_path / "objects").open(document["ref"]) as reader:
        signed = reader.read()
    await validate(signed, root(dev_env), level=Level.B_LT)
    out = tmp_path / "signed.pdf"
    out.write_bytes(signed)
    [report] = pdfsig(out, nss_db(tmp_path / "nss", dev_env.root_certificate_path))
    assert report["Signature Validation"] == "Signature is Valid."
    assert kyso_verify(out, dev_env.root_certificate_path) == "TOTAL-PASSED"


async def test_async_provider_completed_by_the_server(dev_env, tmp_path: Path, standin):
    """``kyso request-signature --remote smartca --no-wait`` returns at once; the official
    approves at the provider; ``kyso serve``'s background poller completes the request — nobody
    runs ``kyso remote poll`` — into a PAdES B-LT document that pdfsig reports valid."""
    (tmp_path / "sp.secret").write_text(standin.sp_password)
    config = tmp_path / "kyso.toml"
    config.write_text(
        facade_config_text(
            dev_env,
            tmp_path,
            f"""
[remote.smartca]
kind = "smartca"
url = "{standin.url}"
client_id = "{SP_ID}"
client_secret_file = "{tmp_path / "sp.secret"}"
approval_seconds = 300
poll_seconds = 0.2
""",
        ).replace('[csc]\naddress = "127.0.0.1:0"', '[csc]\naddress = ""')
    )
    pdf = tmp_path / "to-sign.pdf"
    pdf.write_bytes(make_pdf())
    started = await asyncio.to_thread(
        kyso,
        "request-signature",
        str(pdf),
        "--remote",
        "smartca",
        "--user",
        standin.user,
        "--client",
        "dev",
        "--no-wait",
        "--json",
        "--config",
        str(config),
    )
    assert started.returncode == 0, started.stderr
    request = json.loads(started.stdout)
    assert request["state"] == "waiting"
    await standin.approve(standin.only())

    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
    try:
        for _ in range(300):
            listed = await asyncio.to_thread(
                kyso, "remote", "list", "--json", "--config", str(config)
            )
            assert listed.returncode == 0, listed.stderr
            [found] = json.loads(listed.stdout)["requests"]
            if found["state"] != "waiting":
                break
            assert proc.poll() is None, log_path.read_text()
            await asyncio.sleep(1)
        assert (found["id"], found["state"]) == (request["id"], "completed"), found
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()
    assert standin.sp_password not in log_path.read_text()

    with sa.create_engine(load_config(config).database.url).connect() as conn:
        ids = conn.execute(
            sa.select(remote_requests.c.session_ids).where(remote_requests.c.id == request["id"])
        ).scalar_one()
        [ref] = [
            conn.execute(sa.select(sessions.c.result_ref).where(sessions.c.id == i)).scalar_one()
            for i in ids.split(",")
        ]
    with storage.FilesystemStore(tmp_path / "objects").open(ref) as reader:
        signed = reader.read()
    await validate(signed, root(dev_env), level=Level.B_LT)
    out = tmp_path / "signed.pdf"
    out.write_bytes(signed)
    [report] = pdfsig(out, nss_db(tmp_path / "nss", dev_env.root_certificate_path))
    assert report["Signature Validation"] == "Signature is Valid."
