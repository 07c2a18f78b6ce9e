"""Where a visible signature goes, from ``--field`` or ``--page``/``--rect`` (shared by
``kyso sign`` and ``kyso request-signature``).

A ``seal`` appearance with no placement goes to the bottom right of page 1 (or ``--page``),
above the margin of an A4 page: where a result's signature block usually is.
"""

from __future__ import annotations

import argparse

from kyso.cli.common import die
from kyso.v1 import signing_pb2

__all__ = ["DEFAULT_SEAL_RECT", "add_placement_arguments", "placement"]

DEFAULT_SEAL_RECT = (330.0, 60.0, 565.0, 170.0)


def add_placement_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--field", help="an existing empty signature field to use")
    where.add_argument("--rect", help="x1,y1,x2,y2 in points, origin bottom left (with --page)")
    parser.add_argument("--page", type=int, help="page for --rect, from 1 (default 1)")


def placement(args: argparse.Namespace) -> signing_pb2.Placement | None:
    """The request's Placement, or None for an invisible signature with no field named."""
    if args.field:
        if args.page is not None:
            die("give --field, or --page and --rect, not both")
        return signing_pb2.Placement(field_name=args.field)
    page = args.page or 1
    if args.rect:
        try:
            x1, y1, x2, y2 = (float(v) for v in args.rect.split(","))
        except ValueError:
            die(f"--rect {args.rect!r}: give four numbers x1,y1,x2,y2")
    elif args.appearance == "seal":
        x1, y1, x2, y2 = DEFAULT_SEAL_RECT
    else:
        if args.page is not None:
            die("--page needs --rect")
        return None
    return signing_pb2.Placement(rect=signing_pb2.PageRect(page=page, x1=x1, y1=y1, x2=x2, y2=y2))
