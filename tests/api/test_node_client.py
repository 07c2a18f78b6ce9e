"""A client in another language: Node.js with @grpc/grpc-js and the .proto files loaded at run
time (tests/api/node/client.js), as an integrator who has only the contract writes it, through
every flow — sign + verify, upload + download, two-phase prepare and cancel, send → receive →
ack → status → track — and the error cases, read as a Node program reads them (the code, and
the BadRequest field paths decoded from ``grpc-status-details-bin``)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import google.rpc

from kyso.certificates import read_certificates
from kyso.config import Config
from kyso.server import Server
from tests.api.conftest import NODE_DIR, ROOT, token
from tests.signer.pdfgen import make_pdf

SENDER = "000.00.21.H49"  # the development organisation (a department of Quảng Ninh)
RECIPIENT = "000.00.02.H49"  # Sở Nội vụ Quảng Ninh


async def run_node(node: str, script: Path, environment: dict[str, str]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        node,
        str(script),
        cwd=NODE_DIR,
        env={**os.environ, **environment},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return result


async def test_a_node_client_goes_through_every_flow(
    node: str, api_server: Server, api_config: Config, dev_env, tmp_path: Path
) -> None:
    pdf = tmp_path / "qd.pdf"
    pdf.write_bytes(make_pdf())
    official = tmp_path / "official.der"
    official.write_bytes(read_certificates([dev_env.keys["official"].certificate_path])[0].dump())
    result = await run_node(
        node,
        NODE_DIR / "client.js",
        {
            "KYSO_ADDRESS": f"127.0.0.1:{api_server.port}",
            "KYSO_TOKEN": token(api_config),
            "KYSO_PROTOS": str(ROOT / "protos"),
            "KYSO_GOOGLE": str(Path(next(iter(google.rpc.__path__))).parent.parent),
            "KYSO_PDF": str(pdf),
            "KYSO_OFFICIAL": str(official),
            "KYSO_FROM": SENDER,
            "KYSO_TO": RECIPIENT,
        },
    )
    # sign + verify: int64 arrive as strings, enums as their names
    assert result["sign"]["ref"].startswith("sha256/")
    assert result["sign"]["level"] == "SIGNATURE_LEVEL_B_LT"
    assert int(result["sign"]["ledger_index"]) >= 0
    assert isinstance(result["sign"]["size"], str)
    assert result["verify"] == {"indication": "INDICATION_TOTAL_PASSED", "signatures": 1}
    assert result["sign"]["sealed_without_placement"].startswith("sha256/")
    # upload + download
    upload = result["upload"]
    assert upload["ref"] == f"sha256/{upload['downloaded_sha256']}"
    assert upload["size"] == str(pdf.stat().st_size)
    assert upload["filename"] == "upload.pdf"
    # two-phase: prepared, listed, cancelled; completing it is a state conflict
    two_phase = result["two_phase"]
    assert two_phase["sign_input"] == "SIGN_INPUT_DIGEST"
    assert two_phase["data_to_sign_bytes"] == 32
    assert two_phase["listed"] is True
    assert two_phase["complete_cancelled"]["code"] == "FAILED_PRECONDITION"
    # send → receive → ack → status → track
    flow = result["exchange"]
    assert flow["resent_document_id"] == flow["document_id"]  # a retry is not a conflict
    assert flow["resent_package"] is True
    assert flow["track_subject"] == "Về việc thử nghiệm Node.js"
    assert flow["delivery"]["document_id"] == flow["document_id"]
    assert flow["delivery"]["subject"] == "Về việc thử nghiệm Node.js"
    assert flow["delivery"]["from_unit"] == SENDER
    assert flow["acknowledged"] == 1
    assert flow["tracked"] == [
        {"unit": RECIPIENT, "state": "DELIVERY_STATE_ACKNOWLEDGED", "status_code": "03"}
    ]
    # errors: the code and the field paths a program can act on
    codes_and_fields = {
        name: (failure["code"], failure["fields"]) for name, failure in result["errors"].items()
    }
    assert codes_and_fields == {
        "no_token": ("UNAUTHENTICATED", []),
        "bad_token": ("UNAUTHENTICATED", []),
        "unknown_key": ("NOT_FOUND", []),
        "not_a_pdf": ("INVALID_ARGUMENT", codes_and_fields["not_a_pdf"][1]),
        "missing_page": ("INVALID_ARGUMENT", ["placement.rect.page"]),
        "bad_ref": ("INVALID_ARGUMENT", ["ref.ref"]),
        "unknown_ref": ("NOT_FOUND", []),
        "hash_mismatch": ("INVALID_ARGUMENT", ["metadata.sha256"]),
        "bad_unit": ("INVALID_ARGUMENT", ["from_unit"]),
        "too_large_inline": ("INVALID_ARGUMENT", ["document.content"]),
        "conflicting_send": ("ALREADY_EXISTS", ["document_id"]),
        "bad_status": ("INVALID_ARGUMENT", ["status_code"]),
    }
    assert codes_and_fields["not_a_pdf"][1][0].startswith("document")
    errors = result["errors"]
    assert "/tmp" not in errors["unknown_ref"]["message"]  # no path of the server
    assert str(Path.cwd()) not in errors["unknown_ref"]["message"]
    for name, failure in errors.items():
        assert failure["request_id"], f"{name}: no kyso-request-id trailer"
