"""The contract passes `buf lint` (STANDARD, buf.yaml) and breaks no released contract
(protos/released/README.md): WIRE against the gRPC-only contract, WIRE_JSON against the first
JSON one. A copy of the protos with a breaking change is refused, so the check is not vacuous."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.api.conftest import ROOT

RELEASED = ROOT / "protos" / "released"


def _buf(buf: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(buf), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _config(category: str) -> str:
    return json.dumps(
        {"version": "v2", "modules": [{"path": "protos"}], "breaking": {"use": [category]}}
    )


def test_the_protos_pass_buf_lint(buf: Path) -> None:
    result = _buf(buf, "lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_nothing_a_json_client_sees_changed_since_the_release(buf: Path) -> None:
    result = _buf(buf, "breaking", "--against", str(RELEASED / "kyso-v1.binpb"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_grpc_wire_of_the_last_grpc_only_contract_is_kept(buf: Path) -> None:
    against = str(RELEASED / "kyso-v1-3a7e5db.binpb")
    result = _buf(buf, "breaking", "--against", against, "--config", _config("WIRE"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_lint_configuration_waives_only_what_it_explains() -> None:
    text = (ROOT / "buf.yaml").read_text(encoding="utf-8")
    assert "STANDARD" in text
    assert "except:" not in text
    for rule in ("RPC_RESPONSE_STANDARD_NAME", "RPC_REQUEST_RESPONSE_UNIQUE"):
        assert rule in text


def test_a_renamed_enum_value_or_renumbered_field_is_caught(buf: Path, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "protos" / "kyso", tmp_path / "protos" / "kyso")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    exchange = tmp_path / "protos" / "kyso" / "v1" / "exchange.proto"
    text = exchange.read_text(encoding="utf-8")
    renamed = text.replace("DELIVERY_STATE_QUEUED = 1;", "DELIVERY_STATE_WAITING = 1;")
    assert renamed != text
    exchange.write_text(renamed, encoding="utf-8")
    json_check = _buf(buf, "breaking", "--against", str(RELEASED / "kyso-v1.binpb"), cwd=tmp_path)
    assert json_check.returncode != 0
    assert "DELIVERY_STATE_QUEUED" in json_check.stdout
    # a name is no part of the binary wire; a field number is
    renumbered = renamed.replace("string document_id = 5;", "string document_id = 15;")
    assert renumbered != renamed
    exchange.write_text(renumbered, encoding="utf-8")
    wire_check = _buf(
        buf,
        "breaking",
        "--against",
        str(RELEASED / "kyso-v1-3a7e5db.binpb"),
        "--config",
        _config("WIRE"),
        cwd=tmp_path,
    )
    assert wire_check.returncode != 0
    assert "document_id" in wire_check.stdout
    assert "WAITING" not in wire_check.stdout


def test_every_file_names_its_go_java_and_csharp_packages() -> None:
    from kyso.v1 import (
        audit_pb2,
        common_pb2,
        directory_pb2,
        documents_pb2,
        exchange_pb2,
        signing_pb2,
        verification_pb2,
    )

    modules = (
        audit_pb2,
        common_pb2,
        directory_pb2,
        documents_pb2,
        exchange_pb2,
        signing_pb2,
        verification_pb2,
    )
    for module in modules:
        options = module.DESCRIPTOR.GetOptions()
        assert options.go_package == "kyso.vn/api/kyso/v1;kysov1", module.DESCRIPTOR.name
        assert options.java_package == "vn.kyso.v1", module.DESCRIPTOR.name
        assert options.java_multiple_files, module.DESCRIPTOR.name
        assert options.csharp_namespace == "Kyso.V1", module.DESCRIPTOR.name
