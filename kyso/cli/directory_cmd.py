"""``kyso directory``: find units by name, import and export the unit directory.

- ``kyso directory search TEXT [--limit N] [--json]``: units whose name matches TEXT, with or
  without Vietnamese diacritics ("so y te" finds "Sở Y tế"), through the server
  (DirectoryService.Search): what a clerk uses to find a unit's code.
- ``kyso directory import FILE.csv`` and ``kyso directory export FILE.csv`` (``-``: standard
  output): offline, against the database the configuration names (no server involved; pending
  migrations are applied). The CSV has a header row: code, name, parent_code, level, kind and
  optionally hub (UTF-8). An import is all or nothing; a bad line is reported by number and
  nothing is written. A server already running keeps its routing index until restarted.

The database and exchange packages are imported only by import and export (start-up stays fast).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kyso.cli.common import (
    add_client_arguments,
    client_target,
    die,
    load_or_exit,
    open_channel,
    resolve_config_path,
)
from kyso.cli.text import Language, add_lang_argument, say

if TYPE_CHECKING:
    import sqlalchemy as sa

    from exchange.directory import Directory

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "directory", help="find units by name; import or export the unit directory"
    )
    sub = parser.add_subparsers(dest="directory_command", required=True)

    search = sub.add_parser(
        "search", help="units whose name matches TEXT (with or without diacritics)"
    )
    search.add_argument("text", help='part of the unit\'s name, e.g. "Sở Y tế" or "so y te"')
    search.add_argument("--limit", type=int, default=20, help="at most N units (default 20)")
    search.add_argument("--json", action="store_true", help="print the units as JSON")
    add_lang_argument(search)
    add_client_arguments(search)
    search.set_defaults(func=_search)

    load = sub.add_parser("import", help="insert or update the units of a CSV file")
    load.add_argument("file", type=Path)
    load.add_argument("--config", help="configuration file (its [database] is used)")
    load.add_argument("--json", action="store_true", help="print the count as JSON")
    load.set_defaults(func=_import)

    dump = sub.add_parser("export", help="write every unit to a CSV file (- : standard output)")
    dump.add_argument("file", help="the CSV file to write, or - for standard output")
    dump.add_argument("--config", help="configuration file (its [database] is used)")
    dump.set_defaults(func=_export)


def _search(args: argparse.Namespace) -> int:
    import grpc

    from kyso.v1 import directory_pb2, directory_pb2_grpc

    lang: Language = args.lang
    with open_channel(client_target(args)) as channel:
        try:
            reply = directory_pb2_grpc.DirectoryServiceStub(channel).Search(
                directory_pb2.SearchRequest(query=args.text, limit=args.limit)
            )
        except grpc.RpcError as exc:
            detail = f"{exc.code().name}: {exc.details()}"
            die(say("error.rpc", lang, what="directory search", detail=detail))
    units = [
        {
            "code": u.code,
            "name": u.name,
            "parent_code": u.parent_code,
            "level": u.level,
            "kind": u.kind,
            "hub": u.hub,
        }
        for u in reply.units
    ]
    if args.json:
        print(json.dumps(units, ensure_ascii=False, indent=2))
        return 0
    if not units:
        print(say("directory.none", lang, query=args.text), file=sys.stderr)
        return 1
    for unit in units:
        hub = f"\thub {unit['hub']}" if unit["hub"] else ""
        parent = f"\t↑ {unit['parent_code']}" if unit["parent_code"] else ""
        print(f"{unit['code']}\t{unit['name']}{parent}{hub}")
    return 0


def _directory(args: argparse.Namespace) -> tuple[Directory, sa.Engine]:
    from exchange.directory import Directory
    from exchange.hubs import Topology
    from kyso import db
    from kyso.app import components

    config = load_or_exit(resolve_config_path(args.config))
    engine = db.open_engine(config.database)
    db.upgrade(engine, components())
    # Import and export do not route: the directory needs no hub topology for them.
    return Directory(engine, topology=Topology([])), engine


def _import(args: argparse.Namespace) -> int:
    from exchange.errors import ExchangeError

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
    if args.json:
        print(json.dumps({"imported": count, "file": str(path)}))
    else:
        print(f"imported {count} units from {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    directory, engine = _directory(args)
    if args.file == "-":
        try:
            count = directory.export_csv(sys.stdout)
            sys.stdout.flush()
        finally:
            engine.dispose()
        print(f"exported {count} units", file=sys.stderr)
        return 0
    path = Path(args.file)
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
