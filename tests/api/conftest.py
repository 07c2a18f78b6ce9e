"""Fixtures of the contract tests: the pinned Node tools of tests/api/node (buf, @grpc/grpc-js)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).resolve().parent / "node"


@pytest.fixture(scope="session")
def buf() -> Path:
    path = NODE_DIR / "node_modules" / ".bin" / "buf"
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/bootstrap.sh test (npm ci in tests/api/node)")
    return path


@pytest.fixture(scope="session")
def node() -> str:
    found = shutil.which("node")
    if found is None or not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("node or tests/api/node/node_modules is missing: run scripts/bootstrap.sh test")
    return found
