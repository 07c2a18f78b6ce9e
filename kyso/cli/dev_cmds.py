"""``kyso dev init`` and ``kyso dev serve``: the development environment (never for production).

The development tooling (``kyso.dev``: SoftHSM tokens, the certomancer PKI and its responders)
needs the ``devtools`` extra, which production installations leave out. Invariants: nothing of
``kyso.dev`` or of the extra is imported before a ``kyso dev`` command runs (so every other
command works without the extra); a ``kyso dev`` command without the extra exits 1 with one
line naming the extra to install, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import subprocess
import sys
from pathlib import Path

from kyso import logs
from kyso.cli.common import EXIT_CONFIG, die, load_or_exit
from kyso.cli.server_cmds import run_server
from kyso.errors import KysoError

__all__ = ["DEVTOOLS_MODULES", "register"]

log = logging.getLogger(__name__)

DEVTOOLS_MODULES = ("certomancer", "werkzeug", "yaml")
"""What ``kyso.dev`` imports from the ``devtools`` extra (pyproject.toml): keep the two in step."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = subparsers.add_parser(
        "dev", help="development environment (tokens, PKI, config); needs kyso[devtools]"
    )
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    init = dev_sub.add_parser(
        "init", help="create (or reuse) the development tokens, PKI and kyso.toml"
    )
    init.add_argument("--home", default="var/dev", help="where to put it all (default ./var/dev)")
    init.set_defaults(func=_init)
    serve = dev_sub.add_parser(
        "serve",
        help="run the service with the development PKI's TSA, OCSP and CRLs served beside it",
    )
    serve.add_argument(
        "--home", default="var/dev", help="the home `kyso dev init` made (default ./var/dev)"
    )
    serve.add_argument("--config", help="configuration file (default: HOME/kyso.toml)")
    serve.set_defaults(func=_serve)


def _require_devtools() -> None:
    """Exit with one line when the ``devtools`` extra is not installed."""
    for name in DEVTOOLS_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            die(
                f"`kyso dev` needs the development tools, which this installation lacks "
                f"(no module {exc.name!r}): install the devtools extra, e.g. "
                "`pip install -c constraints.txt -e '.[devtools]'` in a kyso checkout "
                "(`make run` does it)"
            )


def _init(args: argparse.Namespace) -> int:
    _require_devtools()
    from kyso.dev.setup import set_up

    set_up(Path(args.home))
    return 0


def _serve(args: argparse.Namespace) -> int:
    _require_devtools()
    from kyso.dev.pki import load_pki
    from kyso.dev.responders import Responders

    home = Path(args.home)
    config = load_or_exit(Path(args.config) if args.config else home / "kyso.toml")
    logs.configure(level=config.server.log_level, fmt=config.server.log_format)
    try:
        pki = load_pki(home / "pki")
        if pki is None:
            die(
                f"no development PKI in {home / 'pki'}: run `kyso dev init --home {home}` first",
                code=EXIT_CONFIG,
            )
        # Started before the service, whose start-up may already time-stamp or check
        # revocation against them; stopped after it, whatever ends the service.
        responders = Responders(pki=pki).start()
    except KysoError as exc:
        die(str(exc))
    log.info("development responders started", extra={"url": responders.url})
    console = _start_console(home)
    try:
        return run_server(config)
    finally:
        if console is not None:
            console.terminate()
            try:
                console.wait(timeout=10)
            except subprocess.TimeoutExpired:
                console.kill()
                console.wait()
        responders.stop()


def _start_console(home: Path) -> subprocess.Popen[bytes] | None:
    """``kyso web`` beside the service, when the dev home has its settings and the web extra
    is installed (its own process: it reaches the service only through the API)."""
    settings = home / "web.toml"
    if not settings.is_file() or importlib.util.find_spec("starlette") is None:
        log.info("the console is not started (no web.toml or no `web` extra)")
        return None
    command = [sys.executable, "-m", "kyso.cli.main", "web", "--settings", str(settings)]
    return subprocess.Popen(command)
