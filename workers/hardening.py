"""Keeping secrets in a process: no core dumps, and no secrets in a child's environment.

A process that holds a PIN (the server once it reads its keys' PINs, the signing workers, the
agent) must not leave it in a core file, nor let another process of the same user read its
memory: ``forbid_core_dumps`` sets RLIMIT_CORE to 0 and, on Linux, marks the process
non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``: no core, no ptrace attach, /proc/PID/mem closed to
others). Every worker process does this at start. A worker that needs no secret (the verifier,
which parses untrusted PDFs) gets only ``MINIMAL_ENVIRONMENT`` of its parent's variables, so a
PIN given in an environment variable (``pin_env``) never reaches it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import sys
from collections.abc import Mapping

__all__ = ["MINIMAL_ENVIRONMENT", "forbid_core_dumps", "minimal_environment"]

_PR_SET_DUMPABLE = 4

MINIMAL_ENVIRONMENT = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "LANGUAGE",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "TMPDIR",
        "PYTHONPATH",
        "PYTHONHASHSEED",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
    }
)
"""The variables a worker without secrets inherits: locale, paths, TLS roots and proxies."""


def forbid_core_dumps() -> None:
    """No core file, and (Linux) not dumpable: for a process that holds a secret."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"prctl(PR_SET_DUMPABLE, 0) failed: {os.strerror(error)}")


def minimal_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` a worker without secrets gets (see ``MINIMAL_ENVIRONMENT``)."""
    return {name: value for name, value in environ.items() if name in MINIMAL_ENVIRONMENT}
