"""``kyso`` starts quickly: ``kyso --help`` and ``kyso verify --help`` import none of the heavy
packages (checked through the modules a real child process has loaded, not through timing), and
the command table of kyso/cli/main.py lists exactly what the subcommand modules register."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kyso.cli.main import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]
# Runs the real entry point, then reports which modules it had loaded.
WRAPPER = (
    "import json, sys\n"
    "from kyso.cli.main import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "sys.stdout.flush()\n"
    "print('\\nMODULES=' + json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    "sys.exit(code)\n"
)
HEAVY = (
    "pyhanko",
    "pyhanko_certvalidator",
    "grpc",
    "google.protobuf",
    "sqlalchemy",
    "kyso.app",
    "kyso.config",
    "kyso.v1",
    "signer",
    "hsm",
    "pkcs11",
    "exchange",
    "audit",
    "storage",
    "asn1crypto",
    "cryptography",
    "lxml",
    "aiohttp",
    "fontTools",
)


def loaded_modules(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "KYSO_CONFIG": "/nonexistent/kyso.toml"},
        timeout=60,
        check=False,
    )
    marker = done.stderr.rindex("MODULES=")
    return done, set(json.loads(done.stderr[marker + len("MODULES=") :]))


def heavy_among(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("verify", "--help"),
        ("--version",),
        # the official's and the clerk's commands (issue 22: each took 1.3–2.8 s to start)
        ("agent", "--help"),
        ("inbox", "--help"),
        ("status", "--help"),
        ("send", "--help"),
        ("directory", "--help"),
        ("directory", "search", "--help"),
        ("request-signature", "--help"),
    ],
)
def test_help_imports_nothing_heavy(args):
    done, modules = loaded_modules(*args)
    assert done.returncode == 0, done.stderr
    assert heavy_among(modules) == []
    # The probe would see them if they were there: the entry point itself was loaded.
    assert "kyso.cli.main" in modules


def test_top_level_help_lists_every_command_without_importing_them():
    done, modules = loaded_modules("--help")
    for name in COMMANDS:
        assert name in done.stdout
    assert not {m for m in modules if m.startswith("kyso.cli.") and m.endswith(("_cmd", "_cmds"))}


def test_a_command_imports_only_its_own_module():
    done, modules = loaded_modules("verify", "--help")
    assert "--trust" in done.stdout
    commands = {m for m in modules if m.startswith("kyso.cli.") and m.endswith(("_cmd", "_cmds"))}
    assert commands == {"kyso.cli.verify_cmd"}


def test_the_probe_sees_heavy_imports():
    # A command whose --help needs the application: the same probe reports its imports.
    done, modules = loaded_modules("serve", "--help")
    assert done.returncode == 0, done.stderr
    assert "sqlalchemy" in heavy_among(modules)


def test_the_written_out_enum_values_match_the_generated_code():
    from kyso.cli.signing_args import APPEARANCES, LEVELS
    from kyso.v1 import signing_pb2

    assert LEVELS == {
        "B-B": signing_pb2.SIGNATURE_LEVEL_B_B,
        "B-T": signing_pb2.SIGNATURE_LEVEL_B_T,
        "B-LT": signing_pb2.SIGNATURE_LEVEL_B_LT,
        "B-LTA": signing_pb2.SIGNATURE_LEVEL_B_LTA,
    }
    assert APPEARANCES == {
        "none": signing_pb2.APPEARANCE_NONE,
        "seal": signing_pb2.APPEARANCE_SEAL,
        "text": signing_pb2.APPEARANCE_TEXT,
    }


def test_command_table_matches_the_modules():
    registered: dict[str, tuple[str, str | None]] = {}
    for module_name in sorted({command.module for command in COMMANDS.values()}):
        module = importlib.import_module(f"kyso.cli.{module_name}")
        parser = argparse.ArgumentParser()
        subparsers = parser.add_subparsers()
        module.register(subparsers)
        for action in subparsers._choices_actions:
            registered[action.dest] = (module_name, action.help)
    assert registered == {name: (c.module, c.help) for name, c in COMMANDS.items()}
    # Every *_cmd(s).py module of the package is in the table.
    on_disk = {p.stem for p in (ROOT / "kyso" / "cli").glob("*_cmd*.py")}
    assert on_disk == {c.module for c in COMMANDS.values()}


def test_full_parser_still_builds_and_parses():
    args = build_parser().parse_args(["verify", "a.pdf", "folder", "--json"])
    assert args.paths == ["a.pdf", "folder"]
    assert args.json
