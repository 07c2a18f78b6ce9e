"""A command run in a real terminal (Debian's tmux), driven as a person would: read the
screen, type, press Ctrl-C. Each ``Terminal`` has its own tmux server (its own socket)."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["Terminal"]


class Terminal:
    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        workdir: Path,
        width: int = 160,
        height: int = 60,
    ) -> None:
        self.socket = f"kyso-test-{uuid.uuid4().hex[:12]}"
        script = workdir / f"{self.socket}.sh"
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        script.write_text(
            "#!/bin/sh\n"
            # Ctrl-C is for the command: the shell survives it to report the exit code (a
            # trapped signal is back to its default in the command it runs).
            "trap 'true' INT\n"
            f"{exports}cd {shlex.quote(str(cwd))}\n"
            f"{shlex.join(argv)}\n"
            'echo "EXIT=$?"\n'
            "sleep 3600\n"
        )
        script.chmod(0o700)
        self._tmux(
            "new-session", "-d", "-s", "main", "-x", str(width), "-y", str(height), str(script)
        )

    def _tmux(self, *args: str) -> str:
        env = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-u", *args],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=30,
        )
        return done.stdout

    def screen(self) -> str:
        """Everything shown so far (the scroll-back too), lines joined where they wrapped."""
        return self._tmux("capture-pane", "-p", "-J", "-S", "-5000", "-t", "main")

    def mark(self) -> int:
        """Where the screen's text ends now (for ``wait_for(after=…)``)."""
        return len(self.screen().rstrip())

    def wait_for(self, text: str, *, timeout: float = 180.0, after: int = 0) -> str:
        """The screen once ``text`` appears on it (past the first ``after`` characters)."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen().rstrip()
            if text in shown[after:]:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear; the screen:\n{shown}")
            time.sleep(0.2)

    def type(self, text: str, *, enter: bool = True) -> None:
        if text:
            self._tmux("send-keys", "-t", "main", "-l", text)
        if enter:
            self._tmux("send-keys", "-t", "main", "Enter")

    def interrupt(self) -> None:
        self._tmux("send-keys", "-t", "main", "C-c")

    def exit_code(self, *, timeout: float = 180.0) -> int:
        shown = self.wait_for("EXIT=", timeout=timeout)
        return int(shown.rsplit("EXIT=", 1)[1].split()[0])

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
