"""``kyso upload`` and ``kyso download``: their arguments; the commands themselves are in
:mod:`kyso.cli.documents_run`, imported only when one runs (gRPC and the stubs take longer to
import than ``--help`` should take)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kyso.cli.common import add_client_arguments, lazy_command

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    upload = subparsers.add_parser("upload", help="store a document; prints its ref")
    upload.add_argument("file", type=Path)
    upload.add_argument("--content-type", default="", help="default: guessed from the name")
    upload.add_argument("--json", action="store_true", help="print the ref and size as JSON")
    upload.add_argument(
        "--no-direct",
        action="store_true",
        help="send the bytes through the kyso server even when it offers direct transfer to S3"
        " (files under 1 MiB always are)",
    )
    add_client_arguments(upload)
    upload.set_defaults(func=lazy_command("kyso.cli.documents_run", "upload"))

    download = subparsers.add_parser("download", help="fetch a stored document by its ref")
    download.add_argument("ref", help="sha256/<hex>")
    download.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    download.add_argument("--json", action="store_true", help="print what was written as JSON")
    download.add_argument(
        "--no-direct",
        action="store_true",
        help="fetch the bytes through the kyso server even when it offers direct transfer",
    )
    add_client_arguments(download)
    download.set_defaults(func=lazy_command("kyso.cli.documents_run", "download"))
