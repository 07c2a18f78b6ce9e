"""Starting a worker process that talks over a socket pair (used by hsm's key ring and by the
signer's PDF pool).

Why a fresh interpreter started directly, not multiprocessing's spawn: spawn re-runs the
caller's ``__main__`` in the child, which a server or a test runner cannot allow.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

__all__ = ["start_worker"]

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def start_worker(boot: str) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """Run ``python -c boot FD`` with the child's end of a new socket pair as FD.

    Returns the parent's end and the process. The child's end is closed here, so the parent
    sees EOF when the child is gone. Raises ``OSError`` when the process cannot start (nothing
    is left open then).
    """
    ours, theirs = socket.socketpair()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", boot, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except OSError:
        ours.close()
        raise
    finally:
        theirs.close()
    return ours, process
