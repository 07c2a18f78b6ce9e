"""Backup and restore as docs/operations.md ("Back up") prescribes: `pg_dump -Fc` of the
database, then a copy of the object store, taken in that order; restored into a fresh
instance (`pg_restore` into a new database, the objects into a new directory), the ledger
verifies with `kyso audit verify` and every catalogued document downloads with its hash."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from kyso.app import Application
from kyso.catalogue import Catalogue
from kyso.config import load_config
from kyso.dev.init import DevEnvironment
from kyso.dev.setup import render_config
from kyso.server import Server
from kyso.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    common_pb2,
    documents_pb2,
    documents_pb2_grpc,
    signing_pb2,
    signing_pb2_grpc,
)
from tests.signer.pdfgen import make_pdf
from tests.support.db import PG_ADMIN_URL

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(400)]


@pytest.fixture
def second_database() -> Iterator[str]:
    """An empty database to restore into (the "fresh instance"), dropped afterwards."""
    name = f"kyso_restore_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _config(dev_env: DevEnvironment, directory: Path, url: str) -> Path:
    directory.mkdir(parents=True)
    text = render_config(dev_env, address="127.0.0.1:0", data_dir=directory, metrics_address="")
    text = text.replace(f'url = "sqlite:///{directory / "kyso.db"}"', f'url = "{url}"')
    path = directory / "kyso.toml"
    path.write_text(text)
    return path


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


async def test_backup_and_restore_into_a_fresh_instance(
    dev_env: DevEnvironment, postgres_url: str, second_database: str, tmp_path: Path
):
    source = load_config(_config(dev_env, tmp_path / "source", postgres_url))
    auth = [("authorization", f"Bearer {dev_env.api_token_path.read_text().strip()}")]
    app = Application.open(source)
    server = Server(source, app)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            signing = signing_pb2_grpc.SigningServiceStub(channel)
            for n in range(2):
                await signing.SignPdf(
                    signing_pb2.SignPdfRequest(
                        document=common_pb2.DocumentInput(
                            content=make_pdf(), filename=f"ket-qua-{n}.pdf"
                        ),
                        key_alias="seal",
                        level=signing_pb2.SIGNATURE_LEVEL_B_B,
                    ),
                    metadata=auth,
                )
            head = await audit_pb2_grpc.AuditServiceStub(channel).GetTreeHead(
                audit_pb2.GetTreeHeadRequest(fresh=True), metadata=auth
            )
            assert head.tree_size > 0
    finally:
        await server.stop()

    # the backup: the database first, then the objects (objects are written before their
    # rows, so a copy taken after the dump holds every object a dumped row names)
    dump = tmp_path / "kyso.dump"
    subprocess.run(
        ["pg_dump", "--format=custom", "--file", str(dump), _libpq(postgres_url)],
        check=True,
        timeout=120,
    )
    objects_backup = tmp_path / "objects-backup"
    shutil.copytree(source.storage.path, objects_backup)

    # the restore, into a fresh instance
    target_path = _config(dev_env, tmp_path / "restored", second_database)
    subprocess.run(
        [
            "pg_restore",
            "--no-owner",
            "--exit-on-error",
            "--dbname",
            _libpq(second_database),
            str(dump),
        ],
        check=True,
        timeout=120,
    )
    target = load_config(target_path)
    shutil.copytree(objects_backup, target.storage.path)

    verified = subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", "audit", "verify", "--config", str(target_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    app = Application.open(target)
    server = Server(target, app)
    await server.start()
    try:
        refs = [ref for batch in Catalogue(app.engine).refs() for ref in batch]
        assert len(refs) >= 2
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            documents = documents_pb2_grpc.DocumentServiceStub(channel)
            for ref in refs:
                data = b"".join(
                    [
                        chunk.chunk
                        async for chunk in documents.Download(
                            documents_pb2.DownloadRequest(ref=common_pb2.DocumentRef(ref=ref)),
                            metadata=auth,
                        )
                    ]
                )
                assert ref == "sha256/" + hashlib.sha256(data).hexdigest()
            same = await audit_pb2_grpc.AuditServiceStub(channel).GetTreeHead(
                audit_pb2.GetTreeHeadRequest(tree_size=head.tree_size), metadata=auth
            )
            assert same.root_hash == head.root_hash  # the head signed before the backup
    finally:
        await server.stop()
