"""``kyso directory import FILE.csv`` and ``kyso directory export FILE.csv``: offline, against
the database the configuration names (no server involved; pending migrations are applied).

The CSV has a header row: code, name, parent_code, level, kind and optionally hub (UTF-8).
An import is all or nothing; a bad line is reported by number and nothing is written. A server
already running keeps its routing index until restarted.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import sqlalchemy as sa

from exchange.directory import Directory
from exchange.errors import ExchangeError
from exchange.hubs import Topology
from kyso import db
from kyso.app import components
from kyso.cli.common import die, load_or_exit, resolve_config_path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("directory", help="import or export the unit directory")
    sub = parser.add_subparsers(dest="directory_command", required=True)

    load = sub.add_parser("import", help="insert or update the units of a CSV file")
    load.add_argument("file", type=Path)
    load.add_argument("--config", help="configuration file (its [database] is used)")
    load.set_defaults(func=_import)

    dump = sub.add_parser("export", help="write every unit to a CSV file")
    dump.add_argument("file", type=Path)
    dump.add_argument("--config", help="configuration file (its [database] is used)")
    dump.set_defaults(func=_export)


def _directory(args: argparse.Namespace) -> tuple[Directory, sa.Engine]:
    config = load_or_exit(resolve_config_path(args.config))
    engine = db.open_engine(config.database)
    db.upgrade(engine, components())
    # Import and export do not route: the directory needs no hub topology for them.
    return Directory(engine, topology=Topology([])), engine


def _import(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        die(f"{path}: no such file")
    directory, engine = _directory(args)
    try:
        with path.open(encoding="utf-8-sig", newline="") as source:
            count = directory.import_csv(source)
    except (ExchangeError, UnicodeDecodeError) as exc:
        die(f"{path}: {exc}; nothing was imported")
    finally:
        engine.dispose()
    print(f"imported {count} units from {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    path: Path = args.file
    directory, engine = _directory(args)
    partial = path.with_name(path.name + ".part")
    try:
        with partial.open("w", encoding="utf-8", newline="") as target:
            count = directory.export_csv(target)
            target.flush()
            os.fsync(target.fileno())
    finally:
        engine.dispose()
    partial.replace(path)
    print(f"exported {count} units to {path}")
    return 0
