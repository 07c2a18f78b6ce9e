"""Procedures of docs/operations.md sections 6 and 7, run as an operator would.

Rotation: a signing key and the ledger key are replaced by other keys of the token (configuration
edited, server restarted); the document signed before still verifies, and `kyso audit verify`
accepts every tree head — those of the old key with its certificate kept in
`[ledger] certificates`, and refuses them when only the new certificate is trusted.

Upgrade: a database at an older schema is upgraded in place with its data; a database from a
newer release stops `kyso serve` with one line and exit 2 (what rollback has to restore from).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from kyso import db
from kyso.app import Application, components
from kyso.catalogue import Catalogue, CatalogueEntry
from kyso.config import load_config
from kyso.dev.init import DevEnvironment
from kyso.dev.setup import render_config
from kyso.server import Server
from kyso.v1 import audit_pb2, audit_pb2_grpc, common_pb2, signing_pb2, signing_pb2_grpc
from tests.signer.pdfgen import make_pdf

pytestmark = pytest.mark.timeout(400)


def _kyso(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def _sign_and_head(config_path: Path, key: str, auth: list[tuple[str, str]]):
    config = load_config(config_path)
    app = Application.open(config)
    server = Server(config, app)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            signed = await signing_pb2_grpc.SigningServiceStub(channel).SignPdf(
                signing_pb2.SignPdfRequest(
                    document=common_pb2.DocumentInput(content=make_pdf(), filename="kq.pdf"),
                    key_alias=key,
                    level=signing_pb2.SIGNATURE_LEVEL_B_B,
                ),
                metadata=auth,
            )
            head = await audit_pb2_grpc.AuditServiceStub(channel).GetTreeHead(
                audit_pb2.GetTreeHeadRequest(fresh=True), metadata=auth
            )
    finally:
        await server.stop()
    return signed.content, head


async def test_signing_and_ledger_key_rotation(dev_env: DevEnvironment, tmp_path: Path):
    auth = [("authorization", f"Bearer {dev_env.api_token_path.read_text().strip()}")]
    config_path = tmp_path / "kyso.toml"
    before = render_config(dev_env, address="127.0.0.1:0", data_dir=tmp_path, metrics_address="")
    config_path.write_text(before)
    old_pdf, old_head = await _sign_and_head(config_path, "seal-ec", auth)

    # the rotation: the ledger signs with another key of the token (`seal-ec`), whose
    # certificate is added to [ledger] certificates beside the old one; documents, sealed with
    # `seal-ec` until now, are sealed with `seal` (a ledger key signs no documents)
    old_cert = dev_env.keys["ledger"].certificate_path
    new_cert = dev_env.keys["seal-ec"].certificate_path
    after = before.replace('key = "ledger"\n', 'key = "seal-ec"\n', 1).replace(
        f'certificates = ["{old_cert}"]', f'certificates = ["{old_cert}", "{new_cert}"]'
    )
    assert after.count('"seal-ec"') > before.count('"seal-ec"')
    assert str(new_cert) in after
    config_path.write_text(after)
    new_pdf, new_head = await _sign_and_head(config_path, "seal", auth)
    assert new_head.tree_size > old_head.tree_size
    assert new_head.certificate != old_head.certificate  # signed by the new key

    verified = _kyso("audit", "verify", "--config", str(config_path))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # without the old certificate the old heads are not trusted: it must stay configured
    only_new = _kyso("audit", "verify", "--config", str(config_path), "--trust", str(new_cert))
    assert only_new.returncode != 0, only_new.stdout

    for name, pdf in (("old.pdf", old_pdf), ("new.pdf", new_pdf)):
        path = tmp_path / name
        path.write_bytes(pdf)
        result = _kyso("verify", str(path), "--online", "--config", str(config_path))
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"


@pytest.mark.postgres
def test_upgrade_from_an_older_schema_keeps_the_data(postgres_url: str):
    engine = db.create_engine(postgres_url)
    try:
        everything = components()
        # "the previous release": each component's first migration only
        older = [db.Component(c.name, [min(c.steps, key=lambda s: s[0])]) for c in everything]
        db.upgrade(engine, older)
        catalogue = Catalogue(engine)
        entry = CatalogueEntry(
            ref="sha256/" + "ab" * 32,
            size=3,
            content_type="application/pdf",
            filename="cu.pdf",
            created_at=datetime.now(UTC),
        )
        catalogue.record(entry)
        applied = db.upgrade(engine, everything)
        assert applied, "the newer release had nothing to apply"
        assert catalogue.get(entry.ref).filename == "cu.pdf"
        assert db.upgrade(engine, everything) == []  # applied once only
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_database_from_a_newer_release_stops_the_start(postgres_url: str, tmp_path: Path):
    engine = db.create_engine(postgres_url)
    try:
        db.upgrade(engine, components())
        with engine.begin() as conn:  # what a later release's migration would have recorded
            conn.execute(
                sa.text(
                    "INSERT INTO kyso_schema_versions (component, version, description,"
                    " applied_at) VALUES ('catalogue', 999, 'from the future', now())"
                )
            )
    finally:
        engine.dispose()
    config = tmp_path / "kyso.toml"
    config.write_text(
        f'[server]\naddress = "127.0.0.1:0"\nmetrics_address = ""\n\n[database]\n'
        f'url = "{postgres_url}"\n\n[storage]\npath = "{tmp_path / "objects"}"\n'
    )
    result = _kyso("serve", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("kyso: cannot start: database.url: the database has catalogue schema")
    assert "[999]" in last
