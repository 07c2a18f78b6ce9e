"""``kyso agent``: the command's entry for ``kyso.cli.main`` (the code is the package
``kyso.cli.agent``: see its docstring)."""

from __future__ import annotations

import hsm
from kyso.cli.agent import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_STOPPED,
    PIN_ENV,
    BatchResult,
    Selection,
    TokenKey,
    fetch_prepared,
    list_pending,
    parse_choice,
    register,
    run_agent,
    sign_batch,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_STOPPED",
    "PIN_ENV",
    "BatchResult",
    "Selection",
    "TokenKey",
    "fetch_prepared",
    "hsm",
    "list_pending",
    "parse_choice",
    "register",
    "run_agent",
    "sign_batch",
]

_parse_choice = parse_choice
