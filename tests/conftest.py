"""Suite-wide set-up.

A PKCS#11 module reads its configuration once per process, at C_Initialize: SoftHSM2 takes its
token directory from SOFTHSM2_CONF then. So the whole test process uses ONE SoftHSM2 token
directory, chosen here at import time, before anything can load the module; every fixture that
needs a token creates it there under its own label. Child processes (servers, workers) inherit it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_SOFTHSM_HOME = Path(tempfile.mkdtemp(prefix="kyso-test-softhsm-"))
(_SOFTHSM_HOME / "tokens").mkdir()
(_SOFTHSM_HOME / "softhsm2.conf").write_text(
    f"directories.tokendir = {_SOFTHSM_HOME / 'tokens'}\n"
    "objectstore.backend = file\n"
    "log.level = ERROR\n"
)
os.environ["SOFTHSM2_CONF"] = str(_SOFTHSM_HOME / "softhsm2.conf")
os.environ["KYSO_TEST_SOFTHSM_HOME"] = str(_SOFTHSM_HOME)

pytest_plugins = [
    "tests.support.db",
    "tests.support.tokens",
    "tests.support.devenv",
    "tests.support.rgw",
    "tests.support.order",
]
