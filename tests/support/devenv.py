"""Fixture ``dev_env``: the development environment, built once per test session.

``dev_init`` runs into a temporary home but makes its tokens (``kyso-dev``, ``kyso-official``) in
the suite's one SoftHSM2 token directory (``SOFTHSM2_CONF``, set by tests/conftest.py), and the
PKI's responders (TSA, OCSP, CRLs) serve on a free port for the whole session.

Note for users: SoftHSM2 lists tokens as they were at ``C_Initialize``; a process that loaded
the module before this fixture ran must re-initialise it to see ``kyso-dev``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kyso.dev.init import DevEnvironment, dev_init
from kyso.dev.responders import free_port

__all__ = ["dev_env"]


@pytest.fixture(scope="session")
def dev_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevEnvironment]:
    """The development environment with its responders running (stopped at session end)."""
    env = dev_init(
        tmp_path_factory.mktemp("kyso-dev-home"),
        responders_port=free_port(),
        softhsm_conf_path=Path(os.environ["SOFTHSM2_CONF"]),
    )
    with env.responders():
        yield env
