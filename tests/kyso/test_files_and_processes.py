"""Files and processes (issue 15, observation 6): the SQLite database is the service's alone,
processes that hold a PIN leave no core file and are not dumpable, and a PIN given in an
environment variable never reaches the workers that need no secret (the verifier's, which
parse untrusted PDFs). The store's modes are tested in tests/storage/test_filesystem.py."""

from __future__ import annotations

import os
import resource
import stat
from pathlib import Path

import pytest

from kyso.app import Application
from kyso.config import load_config
from signer import verify
from workers import PoolSpec, WorkerPool

PIN_VARIABLE = "KYSO_TEST_SECRET_PIN"


def _ready(environment: str) -> dict:
    seen: list[tuple[object, ...]] = []
    spec = PoolSpec(
        name=f"probe-{environment}",
        entry="tests.workers._secrets_probe:serve",
        workers=1,
        environment=environment,  # type: ignore[arg-type]
    )
    with WorkerPool(spec, on_start=lambda check: seen.append(check.ready)):
        pass
    [[ready]] = seen
    return ready  # type: ignore[return-value]


@pytest.mark.parametrize("environment", ["inherit", "minimal"])
def test_workers_dump_no_core_and_get_secrets_only_when_they_inherit(
    monkeypatch, environment
) -> None:
    monkeypatch.setenv(PIN_VARIABLE, "1234")
    ready = _ready(environment)
    assert ready["core"] == (0, 0)
    assert ready["dumpable"] == 0
    assert (PIN_VARIABLE in ready["environment"]) is (environment == "inherit")
    assert "PATH" in ready["environment"]


def _children() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        if f"\nPPid:\t{os.getpid()}\n" in status:
            found.append(int(entry.name))
    return found


def test_the_verifiers_workers_never_see_a_pin_variable(monkeypatch) -> None:
    monkeypatch.setenv(PIN_VARIABLE, "1234")
    before = set(_children())
    verifier = verify.Verifier(workers=1)
    try:
        verifier.verify(b"%PDF-1.7\nnot really\n", verify.VerificationPolicy(trust=()))
        workers = set(_children()) - before
        assert workers
        for pid in workers:
            names = {
                item.split(b"=", 1)[0].decode()
                for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                if item
            }
            assert PIN_VARIABLE not in names
            assert "PATH" in names
    finally:
        verifier.close()


def test_the_sqlite_database_is_the_services_alone(write_config, tmp_path) -> None:
    config = load_config(write_config(""))
    app = Application.open(config)
    try:
        database = tmp_path / "kyso.db"
        for path in (database, Path(f"{database}-wal")):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        objects = config.storage.path
        assert stat.S_IMODE(objects.stat().st_mode) == 0o700
    finally:
        app.close()


def test_the_server_process_holding_pins_dumps_no_core(dev_config) -> None:
    app = Application.open(dev_config)
    try:
        assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
    finally:
        app.close()
