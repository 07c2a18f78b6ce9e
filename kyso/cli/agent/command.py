"""``kyso agent``'s arguments, and opening the token named by them or by the configuration."""

from __future__ import annotations

import argparse
from typing import Any

from kyso.cli.common import (
    add_client_arguments,
    client_target,
    die,
    load_or_exit,
    resolve_config_path,
)
from kyso.cli.text import Language, add_lang_argument, say

__all__ = ["PIN_ENV", "register", "token_module"]

PIN_ENV = "KYSO_TOKEN_PIN"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = subparsers.add_parser(
        "agent",
        help="sign the documents waiting for the official whose token is plugged in",
        description=(
            "Show what waits for the certificate on the token (file, title, requester, unit,"
            " reason, level, pages, where the signature goes, expiry), optionally on a local"
            " preview page, ask which to sign, ask the PIN once and sign them in one batch."
            f" PIN: --pin-file, ${PIN_ENV}, or a prompt (asked again once if wrong)."
            " Ctrl-C finishes the document in hand and prints what is left."
        ),
    )
    add_client_arguments(agent)
    agent.add_argument(
        "--module",
        help="the token vendor's PKCS#11 library (default: client.token_module, else hsm.module"
        " of the configuration)",
    )
    agent.add_argument("--token", help="token label (needed when several tokens are present)")
    agent.add_argument("--key", help="key/certificate label (needed when the token has several)")
    agent.add_argument(
        "--yes",
        action="store_true",
        help="sign the selected documents without asking (unattended use; needs --session or"
        " --requester)",
    )
    agent.add_argument(
        "--session",
        action="append",
        default=[],
        metavar="ID",
        help="only this session (repeatable)",
    )
    agent.add_argument("--requester", help="only the documents this client requested")
    agent.add_argument("--pin-file", help="read the PIN from this file (mode 0600)")
    agent.add_argument(
        "--preview",
        action="store_true",
        help="open a local page (127.0.0.1) showing the pages with the signature box and a"
        " 'sign these' button",
    )
    agent.add_argument(
        "--json", action="store_true", help="print the documents and the outcome as JSON"
    )
    agent.add_argument(
        "--follow",
        action="store_true",
        help="then wait for new documents on the live stream and sign each batch (Ctrl-C stops)",
    )
    agent.add_argument(
        "--batches", type=int, default=0, help="with --follow: stop after this many batches"
    )
    add_lang_argument(agent)
    agent.set_defaults(func=_agent)


def token_module(args: argparse.Namespace, lang: Language) -> str:
    """--module, else the configuration's client.token_module, else its hsm.module."""
    if args.module:
        return str(args.module)
    path = resolve_config_path(args.config)
    if path.exists() or args.config:
        config = load_or_exit(path)
        module = config.client.token_module or config.hsm.module
        if module:
            return module
    return die(say("agent.no_module", lang))


def _agent(args: argparse.Namespace) -> int:
    import hsm
    import workers
    from kyso.cli.agent.pin import pin_source
    from kyso.cli.agent.run import Selection, run_agent

    lang: Language = args.lang
    if args.yes and not (args.session or args.requester):
        die(say("agent.yes_needs_selection", lang))
    target = client_target(args)
    module = token_module(args, lang)
    workers.forbid_core_dumps()  # this process will hold the token's PIN
    pin = pin_source(args.pin_file, PIN_ENV, lang)
    try:
        key = hsm.open_token_key(module, args.token, args.key)
    except hsm.HsmError as exc:
        die(say("agent.token_unusable", lang, error=exc))
    selection = Selection(sessions=tuple(args.session), requester=args.requester)

    def round_(**token: Any) -> int:
        return run_agent(
            target=target,
            assume_yes=args.yes,
            selection=selection,
            lang=lang,
            preview=args.preview,
            as_json=args.json,
            **token,
        )

    with key:
        if args.follow:  # rounds now and whenever work arrives (kyso.cli.agent_follow)
            from kyso.cli.agent_follow import follow

            return follow(run_round=round_, target=target, key=key, pin=pin, batches=args.batches)
        return round_(key=key, pin=pin)
