"""docs/api.md, the integrator's guide, is true: every RPC of the protos has a curl example in
"Every RPC with curl", and that section's script, run as written against a server, gets the
answer it says from each call."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from kyso.app import Application
from kyso.config import Config, load_config
from kyso.server import Server
from kyso.v1 import (
    archive_pb2,
    audit_pb2,
    directory_pb2,
    documents_pb2,
    exchange_pb2,
    notifications_pb2,
    signing_pb2,
    verification_pb2,
)
from tests.api.conftest import ROOT, write_api_config
from tests.signer.pdfgen import make_pdf
from tests.support.rgw import RgwHandle, new_bucket_name

API_MD = ROOT / "docs" / "api.md"
# What a fresh development server cannot do, and so answers with an error the script expects:
# a signature value no token made, a quarantined item that does not exist, a hop from a hub
# the caller is not, and direct transfer (its store is a filesystem: FAILED_PRECONDITION).
# test_the_direct_transfer_curl_runs_on_s3 below runs those lines against a real S3 gateway.
EXPECTED_REFUSALS = {
    "SigningService/CompleteSignature": {400},
    "ExchangeService/ReleaseQuarantined": {400, 404},
    "ExchangeService/Forward": {400, 403},
    "DocumentService/BeginDirectUpload": {400},
    "DocumentService/CompleteDirectUpload": {400},
    "DocumentService/GetDownloadUrl": {400},
}


def _rpcs() -> set[str]:
    modules = (
        signing_pb2,
        verification_pb2,
        documents_pb2,
        exchange_pb2,
        directory_pb2,
        audit_pb2,
        notifications_pb2,
        archive_pb2,
    )
    return {
        f"{service.name}/{method.name}"
        for module in modules
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def _json_object(line: str) -> dict[str, object]:
    """The line as a JSON object, or empty when it is none."""
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _curl_section() -> str:
    text = API_MD.read_text(encoding="utf-8")
    start = text.index("### Every RPC with curl")
    end = text.index("\n## ", start)
    return text[start:end]


def _blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", _curl_section(), flags=re.S)


def _script() -> str:
    return "\n".join(_blocks())


async def _run_script(script: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``script`` with bash; every curl also says, on standard error, the status it got and
    for which URL."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        "set -euo pipefail\n"
        'curl() { command curl -w "%{stderr}HTTP %{http_code} %{url_effective}\\n" "$@"; }\n'
        + script,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_every_rpc_has_a_curl_example() -> None:
    shown = set(re.findall(r"\b(?:call|stream) (\w+Service/\w+)", _script()))
    missing = _rpcs() - shown
    assert not missing, f"docs/api.md has no curl example for {sorted(missing)}"
    assert shown <= _rpcs(), f"examples of RPCs the protos do not have: {shown - _rpcs()}"


async def test_the_curl_script_of_the_guide_runs(
    api_server: Server, api_config: Config, dev_env, tmp_path: Path
) -> None:
    assert api_server.http is not None
    (tmp_path / "quyet-dinh.pdf").write_bytes(make_pdf())
    (tmp_path / "phu-luc.pdf").write_bytes(make_pdf(title="Phụ lục"))
    (tmp_path / "goi-tin.xml").write_text("<edXMLEnvelope/>")
    token_file = api_config.clients["dev"].token_file
    assert token_file is not None
    code, output, log = await _run_script(
        _script(),
        tmp_path,
        {
            "K": api_server.http.url,
            "TOKEN_FILE": str(token_file),
            "OFFICIAL_PEM": str(dev_env.keys["official"].certificate_path),
        },
    )
    assert code == 0, f"{log}\n{output}"
    statuses: dict[str, int] = {}
    for status, url in re.findall(r"^HTTP (\d+) \S+/kyso\.v1\.(\S+)$", log, flags=re.M):
        statuses[url] = int(status)
    assert set(statuses) == _rpcs(), log
    for rpc, status in statuses.items():
        expected = EXPECTED_REFUSALS.get(rpc, {200})
        assert status in expected, f"{rpc}: HTTP {status}\n{output}"
    # no stream ended with an error: its last envelope, a line of its own, has "error" at the
    # top (CompleteSignatures' answer has one inside, for each item it could not complete)
    ends = [line for line in output.splitlines() if "error" in _json_object(line)]
    assert not ends, ends
    assert (tmp_path / "copy.pdf").read_bytes() == (tmp_path / "quyet-dinh.signed.pdf").read_bytes()
    assert '"INDICATION_TOTAL_PASSED"' in output
    assert '"DELIVERY_STATE_ACKNOWLEDGED"' in output
    assert '"state": "cancelled"' in output  # GetSignature after CancelSignature
    extended = json.loads((tmp_path / "extended.json").read_text())
    assert extended["created"] is True
    assert f'{{"ref": "{extended["current"]["ref"]}"}}]}}' in output  # the last of ListVersions


@pytest.mark.s3
@pytest.mark.timeout(900)
async def test_the_direct_transfer_curl_runs_on_s3(
    dev_env, rgw: RgwHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guide's DocumentService lines against a server that offers direct transfer (the
    whole script runs on a filesystem store, where these RPCs are refused)."""
    monkeypatch.setenv("KYSO_S3_ACCESS_KEY", rgw.access_key)
    monkeypatch.setenv("KYSO_S3_SECRET_KEY", rgw.secret_key)
    config = write_api_config(dev_env, tmp_path)
    assert config.source is not None
    text = config.source.read_text()
    storage = f'[storage]\nbackend = "filesystem"\npath = "{tmp_path / "objects"}"\n'
    assert storage in text
    config.source.write_text(
        text.replace(
            storage,
            f'[storage]\nbackend = "s3"\ndirect_transfer = true\n\n[storage.s3]\n'
            f'endpoint = "{rgw.endpoint}"\nbucket = "{new_bucket_name("api")}"\n'
            "secure = false\n",
        )
    )
    config = load_config(config.source)
    document = make_pdf(title="Phụ lục")
    (tmp_path / "phu-luc.pdf").write_bytes(document)
    preamble, *rest = _blocks()
    [documents] = [block for block in rest if "DocumentService/Upload" in block]
    lines = documents[documents.index("# Upload") :]
    ref = f"sha256/{hashlib.sha256(document).hexdigest()}"
    app = Application.open(config)
    server = Server(config, app)
    await server.start()
    try:
        assert server.http is not None
        token_file = config.clients["dev"].token_file
        assert token_file is not None
        code, output, log = await _run_script(
            f"{preamble}\nREF={ref}\n{lines}",
            tmp_path,
            {"K": server.http.url, "TOKEN_FILE": str(token_file)},
        )
    finally:
        await server.stop()
    assert code == 0, f"{log}\n{output}"
    statuses = {
        url: status
        for status, url in re.findall(r"^HTTP (\d+) \S+/kyso\.v1\.(\S+)$", log, flags=re.M)
    }
    assert set(statuses.values()) == {"200"}, log
    assert "DocumentService/CompleteDirectUpload" in statuses
    assert f'"ref": "{ref}"' in output  # Complete answered the document
    assert "direct.pdf: OK" in output  # the presigned GET gave the bytes of the sha256
    assert (tmp_path / "direct.pdf").read_bytes() == document
