"""``kyso agent``: the official's workstation signs what waits for them, with one PIN entry.

Reads the certificate on the token (no PIN needed), lists the sessions pending for it, fetches
each prepared PDF and checks that the digest to sign commits to exactly those bytes
(``kyso.cli.agent_check``: a mismatch is refused, never signed), shows each document (file
name, title, requester as a person and unit by name, reason, level, page count, where the
signature goes, expiry; the same document requested twice is flagged), optionally on a local
preview page with the pages rendered and the signature box drawn, asks which to sign (``tất
cả``, ``1,3-5``, ``không``…), asks the PIN once (a wrong PIN shows what the token says of the
tries left and is asked again once), prepares each chosen document again at that moment (so
the stamp shows the time of signing), signs them in one batch and prints ``signed / failed /
left``. ``--yes`` signs without asking, and only with an explicit selection: ``--session ID``
(repeatable) or ``--requester NAME``. Vietnamese by default, ``--lang en`` for English.

Modules: ``command`` (arguments, the token), ``run`` (the session), ``show`` (what is shown),
``choice`` (the prompt's answers), ``pin`` (login), ``batch`` (signing, Ctrl-C), ``rpc`` (the
server), ``preview`` (the local page).

The PIN comes from ``--pin-file``, ``KYSO_TOKEN_PIN`` or a prompt; never argv, never printed,
never written anywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kyso.cli.agent.command import PIN_ENV, register

if TYPE_CHECKING:
    from kyso.cli.agent.batch import (
        EXIT_FAILED,
        EXIT_INTERRUPTED,
        EXIT_STOPPED,
        BatchResult,
        TokenKey,
        sign_batch,
    )
    from kyso.cli.agent.choice import parse_choice
    from kyso.cli.agent.rpc import fetch_prepared, list_pending
    from kyso.cli.agent.run import Selection, run_agent

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_STOPPED",
    "PIN_ENV",
    "BatchResult",
    "Selection",
    "TokenKey",
    "fetch_prepared",
    "list_pending",
    "parse_choice",
    "register",
    "run_agent",
    "sign_batch",
]

# Imported when first used: ``kyso agent --help`` loads neither gRPC nor the token library.
_LAZY = {
    "EXIT_FAILED": "batch",
    "EXIT_INTERRUPTED": "batch",
    "EXIT_STOPPED": "batch",
    "BatchResult": "batch",
    "TokenKey": "batch",
    "sign_batch": "batch",
    "parse_choice": "choice",
    "fetch_prepared": "rpc",
    "list_pending": "rpc",
    "Selection": "run",
    "run_agent": "run",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"kyso.cli.agent.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
