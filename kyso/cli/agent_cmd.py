"""``kyso agent``: the command's entry for ``kyso.cli.main`` (the code is the package
``kyso.cli.agent``: see its docstring). Kept light: ``kyso agent --help`` imports neither gRPC
nor the token library; the names below are loaded when first used."""

from __future__ import annotations

from typing import Any

from kyso.cli.agent import PIN_ENV, register

__all__ = ["PIN_ENV", "register"]
# Also, loaded when first used: run_agent, sign_batch, list_pending, fetch_prepared, Selection,
# BatchResult, TokenKey, parse_choice, the EXIT_* codes (from kyso.cli.agent) and hsm.


def __getattr__(name: str) -> Any:
    import importlib

    if name == "hsm":
        return importlib.import_module("hsm")
    if name == "_parse_choice":
        name = "parse_choice"
    return getattr(importlib.import_module("kyso.cli.agent"), name)
