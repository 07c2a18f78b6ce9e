"""The development tooling is the optional ``devtools`` extra: the service and every other
command work without it, ``kyso dev`` without it says which extra to install, and
``kyso dev serve`` runs the development responders beside the service.

"Without the extra" is made real in a child interpreter whose import system refuses every
module that only the extra installs (computed from the installed metadata of ``kyso``, so it
follows pyproject.toml) — and ``kyso.dev`` itself, for the service.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kyso.cli.dev_cmds import DEVTOOLS_MODULES
from kyso.dev.init import dev_init
from kyso.dev.responders import free_port
from kyso.dev.setup import render_config

_ROOT = Path(__file__).resolve().parents[2]
_PRODUCTION = ("kyso", "signer", "exchange", "audit", "hsm", "storage")
_DEV_ONLY_CODE = (_ROOT / "kyso" / "dev", _ROOT / "kyso" / "cli" / "dev_cmds.py")


def _closure(extras: tuple[str, ...]) -> set[str]:
    """Canonical names of the installed distributions that ``kyso[extras]`` pulls in."""
    found: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [("kyso", frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        if (canonicalize_name(name), wanted) in seen:
            continue
        seen.add((canonicalize_name(name), wanted))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.add(canonicalize_name(name))
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(
                req.marker.evaluate({"extra": extra}) for extra in (wanted or {""})
            ):
                todo.append((req.name, frozenset(req.extras)))
    return found


def _devtools_only_modules() -> set[str]:
    """Top-level modules that only the devtools extra installs (absent from a production
    image, which installs kyso without extras)."""
    # Less what the `web` extra brings (Jinja2 is both certomancer's and the console's):
    # kyso/web imports it, and runs only where that extra is installed.
    only = _closure(("devtools",)) - _closure(("web",))
    return {
        module
        for module, dists in metadata.packages_distributions().items()
        if dists and all(canonicalize_name(d) in only for d in dists)
    }


_BLOCKING = """
import importlib.abc, sys
_blocked = {blocked!r}
class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if any(fullname == b or fullname.startswith(b + ".") for b in _blocked):
            raise ModuleNotFoundError(f"No module named {{fullname!r}}", name=fullname)
        return None
sys.meta_path.insert(0, _Absent())
"""


def _run_without(blocked: set[str], body: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKING.format(blocked=sorted(blocked)) + body, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=_ROOT,
    )


def _imported_roots(path: Path) -> list[tuple[int, str]]:
    """Every module an import statement in ``path`` names (lazy ones too), with its line."""
    names = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append((node.lineno, node.module))
            names += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return names


def test_the_extra_holds_what_kyso_dev_imports() -> None:
    only = _devtools_only_modules()
    assert {"certomancer", "werkzeug", "yaml"} <= only
    assert set(DEVTOOLS_MODULES) <= only, "kyso dev checks for a module the extra does not bring"
    used = {
        name.partition(".")[0]
        for path in (_ROOT / "kyso" / "dev").rglob("*.py")
        for _, name in _imported_roots(path)
        if name.partition(".")[0] in only
    }
    assert used <= set(DEVTOOLS_MODULES), (
        f"kyso/dev imports {sorted(used - set(DEVTOOLS_MODULES))} from the devtools extra: "
        "add them to DEVTOOLS_MODULES (kyso/cli/dev_cmds.py) and to the extra"
    )


def test_production_code_never_imports_the_development_tooling() -> None:
    forbidden = _devtools_only_modules()
    found = []
    for package in _PRODUCTION:
        for path in sorted((_ROOT / package).rglob("*.py")):
            if any(path == p or p in path.parents for p in _DEV_ONLY_CODE):
                continue
            found += [
                f"{path.relative_to(_ROOT)}:{line} {name}"
                for line, name in _imported_roots(path)
                if name == "kyso.dev"
                or name.startswith("kyso.dev.")
                or name.partition(".")[0] in forbidden
            ]
    assert not found, f"production code reaches the devtools extra: {found}"


_SERVICE_WITHOUT_DEVTOOLS = """
import asyncio, contextlib, io, pkgutil, importlib
from pathlib import Path
import kyso, signer, exchange, audit, hsm, storage
for package in (kyso, signer, exchange, audit, hsm, storage):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not (info.name == "kyso.dev" or info.name.startswith("kyso.dev.")):
            importlib.import_module(info.name)
from kyso.cli.main import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0, exc.code
assert "dev" in out.getvalue()
from kyso.app import Application
from kyso.config import load_config
from kyso.server import Server
async def serve_once():
    config = load_config(Path(sys.argv[1]))
    server = Server(config, Application.open(config))
    await server.start()
    await server.stop()
asyncio.run(serve_once())
print("served without the development tooling")
"""


def test_the_service_and_the_cli_work_without_the_extra(tmp_path: Path) -> None:
    config = tmp_path / "kyso.toml"
    config.write_text(
        '[server]\naddress = "127.0.0.1:0"\nmetrics_address = ""\n\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "kyso.db"}"\n\n'
        f'[storage]\npath = "{tmp_path / "objects"}"\n'
    )
    blocked = _devtools_only_modules() | {"kyso.dev"}
    done = _run_without(blocked, _SERVICE_WITHOUT_DEVTOOLS, str(config))
    assert done.returncode == 0, done.stderr
    assert "served without the development tooling" in done.stdout


@pytest.mark.parametrize("command", ["init", "serve"])
def test_kyso_dev_without_the_extra_names_the_extra(tmp_path: Path, command: str) -> None:
    home = tmp_path / "home"
    done = _run_without(
        _devtools_only_modules(),
        "from kyso.cli.main import main\nsys.exit(main(sys.argv[1:]))",
        "dev",
        command,
        "--home",
        str(home),
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "devtools extra" in done.stderr
    assert "pip install -c constraints.txt -e '.[devtools]'" in done.stderr
    assert not home.exists(), "nothing is made before the check"


def _kyso(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_kyso_dev_serve_without_a_pki_says_to_run_init(tmp_path: Path) -> None:
    (tmp_path / "kyso.toml").write_text("")
    done = _kyso("dev", "serve", "--home", str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"run `kyso dev init --home {tmp_path}` first" in done.stderr


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.mark.slow
def test_kyso_dev_serve_runs_the_responders_beside_the_service(tmp_path: Path) -> None:
    # A home of its own (its own SoftHSM tokens and PKI on a free port): the session's
    # dev_env already serves its responders.
    env = dev_init(tmp_path / "dev", responders_port=free_port())
    port = free_port()
    config = env.home / "kyso.toml"
    config.write_text(
        render_config(env, address=f"127.0.0.1:{port}", data_dir=tmp_path, metrics_address="")
    )
    child_env = {**os.environ, "SOFTHSM2_CONF": str(env.softhsm_conf)}
    log_path = tmp_path / "dev-serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", "dev", "serve", "--home", str(env.home)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
        )
    try:
        deadline = time.monotonic() + 90
        while (health := _kyso("health", "--config", str(config), "--timeout", "1")).returncode:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, health.stderr + log_path.read_text()
            time.sleep(0.3)
        assert _answers(env.pki.root_certificate_url), "the responders are not up"
        assert "development responders started" in log_path.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, log_path.read_text()
    assert not _answers(env.pki.root_certificate_url), "the responders outlived the service"
