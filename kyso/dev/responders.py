"""Serve the development PKI's TSA, OCSP responder, CRLs and certificate repository over HTTP.

The server is certomancer's ``Animator`` WSGI application under werkzeug, in a child process
(``python -m kyso.dev.responders``): the caller's process stays free of the server's threads and
of its CPU use, and stopping it is a signal to one process id.

The port is part of the PKI (the certificates' AIA and CRL distribution points name it), so it
is chosen before :func:`kyso.dev.pki.build_pki` runs and read back from the built PKI here:
:func:`free_port` for tests, 9780 for ``make run``.

Invariants: the server binds 127.0.0.1 only; it answers with the current time (no fake-time
header); :meth:`Responders.start` returns only once the server answers, and the child is always
reaped by :meth:`Responders.stop` (also on a failed start).
"""

from __future__ import annotations

import argparse
import logging
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from kyso.dev.pki import ARCH, DevPki
from kyso.errors import KysoError

__all__ = ["DEV_RESPONDERS_PORT", "Responders", "RespondersError", "free_port", "main"]

DEV_RESPONDERS_PORT = 9780
"""The fixed port of the development responders (``make run``)."""

_HOST = "127.0.0.1"
_STOP_TIMEOUT_S = 10.0


class RespondersError(KysoError):
    """The development responders could not start; the message says why and what to try."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(kw_only=True)
class Responders:
    """A child process serving ``pki``; use as a context manager or call start()/stop().

    ``url`` is the base (``http://127.0.0.1:<port>``); ``tsa_url`` and ``ocsp_url`` are the
    endpoints to configure in the signer; the server's log goes to ``<pki>/responders.log``.
    """

    pki: DevPki
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return self.pki.url_prefix

    @property
    def tsa_url(self) -> str:
        return self.pki.tsa_url

    @property
    def ocsp_url(self) -> str:
        return self.pki.ocsp_url

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout: float = 30.0) -> Responders:
        """Start the server and wait until it answers; raise RespondersError if it does not."""
        if self.running:
            return self
        log_path = self.pki.directory / "responders.log"
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kyso.dev.responders",
                    "--config",
                    str(self.pki.config_path),
                    "--key-dir",
                    str(self.pki.key_dir),
                    "--port",
                    str(self.pki.port),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise RespondersError(
                    f"the development responders exited (code {code}) before answering on port "
                    f"{self.pki.port}; see {log_path} (is the port in use?)"
                )
            if _answers(self.pki.root_certificate_url):
                return self
            time.sleep(0.05)
        self.stop()
        raise RespondersError(
            f"the development responders did not answer on {self.url} within {timeout:.0f} s; "
            f"see {log_path}"
        )

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after a grace period) and reap it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Responders:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - http://127.0.0.1 only
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _serve(*, config: Path, key_dir: Path, port: int) -> None:
    # Imported here: only the child needs the WSGI stack.
    from certomancer.integrations.animator import Animator, AnimatorArchStore
    from certomancer.registry import CertomancerConfig
    from werkzeug.serving import make_server

    cfg = CertomancerConfig.from_file(
        str(config), key_search_dir=str(key_dir), allow_external_config=False
    )

    class WholeSecondAnimator(Animator):
        """Answers stamped to the whole second. certomancer's clock has microseconds, so its
        OCSP times would be GeneralizedTime with fractions, which NSS refuses to decode; poppler
        22.12's pdfsig then reports "Unknown issue with Certificate" for every kyso signature."""

        def at_time(self, request: object) -> datetime:
            return datetime.now(UTC).replace(microsecond=0)

    app = WholeSecondAnimator(
        AnimatorArchStore(cfg.pki_archs), with_web_ui=False, allow_time_override=False
    )
    server = make_server(_HOST, port, app, threaded=True)
    logging.getLogger(__name__).info("serving %s on http://%s:%d", ARCH, _HOST, port)
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child: serve one certomancer configuration until terminated."""
    parser = argparse.ArgumentParser(description="Serve the kyso development PKI responders.")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--key-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=DEV_RESPONDERS_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # One line per request is noise in a test run; errors still show.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    _serve(config=args.config, key_dir=args.key_dir, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
