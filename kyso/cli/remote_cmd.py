"""Remote signing from the command line: ``kyso request-signature --remote PROVIDER --user ID``
(wired from ``twophase_cmd``), ``kyso remote list``, ``kyso remote test PROVIDER`` and
``kyso remote poll``.

These are operator commands on the server's host: they open the application from its
configuration (database, store, providers of ``[remote.*]``) as ``kyso db upgrade`` does, and
act as the configured client named by ``--client``. Secrets come only from the files or
environment variables the configuration names; nothing secret is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kyso.cli.common import EXIT_CONFIG, die, load_or_exit, resolve_config_path

if TYPE_CHECKING:
    from kyso.config import Config

__all__ = ["register", "request_remote"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    remote = subparsers.add_parser(
        "remote", help="remote-signing providers ([remote.NAME]) and their requests"
    )
    sub = remote.add_subparsers(dest="remote_command", required=True)
    listing = sub.add_parser("list", help="the configured providers and the recent requests")
    _common(listing)
    listing.set_defaults(func=_list)
    test = sub.add_parser(
        "test", help="reach a provider and read a user's credential (certificate, multisign)"
    )
    test.add_argument("provider", help="a [remote.NAME] of the configuration")
    test.add_argument("--user", required=True, help="the official's account at the provider")
    _common(test)
    test.set_defaults(func=_test)
    poll = sub.add_parser(
        "poll", help="ask the providers about every waiting request and complete what is approved"
    )
    _common(poll)
    poll.add_argument("--client", help="the configured client to act as (default: the only one)")
    poll.set_defaults(func=_poll)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help="configuration file (default: $KYSO_CONFIG or ./var/dev/kyso.toml)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def _config(args: argparse.Namespace) -> Config:
    config = load_or_exit(resolve_config_path(args.config))
    if not config.remote:
        die("no remote-signing provider is configured ([remote.NAME])", code=EXIT_CONFIG)
    return config


def _print(args: argparse.Namespace, data: Any, lines: Sequence[str]) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        for line in lines:
            print(line)


def _list(args: argparse.Namespace) -> int:
    config = _config(args)
    providers = [
        {"name": name, "kind": p.kind, "url": p.url, "api_version": p.api_version}
        for name, p in sorted(config.remote.items())
    ]
    requests = asyncio.run(_recent(config))
    lines = [f"{p['name']}\t{p['kind']}\t{p['url']}" for p in providers]
    lines += [
        f"{r['id']}\t{r['provider']}\t{r['user']}\t{r['state']}\t{r['documents']} documents"
        for r in requests
    ]
    _print(args, {"providers": providers, "requests": requests}, lines)
    return 0


async def _recent(config: Config) -> list[dict[str, Any]]:
    from kyso.app import Application
    from signer.twophase import RemoteStore

    app = await asyncio.to_thread(Application.open, config)
    try:
        found = await asyncio.to_thread(RemoteStore(app.engine, app.sessions).list, limit=50)
    finally:
        await asyncio.to_thread(app.close)
    return [
        {
            "id": r.id,
            "provider": r.provider,
            "user": r.user_id,
            "state": r.state.value,
            "documents": len(r.session_ids),
            "created_at": r.created_at.isoformat(),
            "reason": r.reason,
        }
        for r in found
    ]


def _test(args: argparse.Namespace) -> int:
    from kyso.errors import KysoError
    from kyso.operations.remote import remote_providers
    from signer.remote import RemoteError

    config = _config(args)
    providers = remote_providers(config)
    provider = providers.get(args.provider)
    if provider is None:
        die(f"no provider {args.provider!r}; configured: {', '.join(sorted(providers))}")
    try:
        credential = provider.credential(args.user)
    except (RemoteError, KysoError) as exc:
        die(f"{args.provider}: {exc}")
    data = {
        "provider": args.provider,
        "credential": credential.id,
        "subject": credential.certificate.subject.human_friendly,
        "issuer": credential.certificate.issuer.human_friendly,
        "not_after": credential.certificate.not_valid_after.isoformat(),
        "chain": len(credential.chain),
        "multisign": credential.multisign,
    }
    _print(args, data, [f"{k}: {v}" for k, v in data.items()])
    return 0


def _actor(config: Config, name: str | None) -> Any:
    from kyso.authz import Identity

    if name is None:
        if len(config.clients) != 1:
            die("name the client to act as (--client NAME)")
        [name] = config.clients
    client = config.clients.get(name)
    if client is None:
        die(f"--client: {name!r} is not a configured client")
    return Identity(name=name, unit=client.unit, roles=frozenset(client.roles))


def _poll(args: argparse.Namespace) -> int:
    from kyso.errors import KysoError

    config = _config(args)
    actor = _actor(config, args.client)

    async def run() -> list[dict[str, Any]]:
        async with _Remote(config) as remote:
            outcomes = await remote.poll_waiting(actor)
        return [_outcome(o) for o in outcomes]

    try:
        found = asyncio.run(run())
    except KysoError as exc:
        die(str(exc))
    _print(args, found, [f"{o['id']}\t{o['state']}" for o in found])
    return 0


def add_remote_arguments(parser: argparse.ArgumentParser) -> None:
    """``request-signature``'s remote options."""
    parser.add_argument(
        "--remote", metavar="PROVIDER", help="sign with the official's remote key at PROVIDER"
    )
    parser.add_argument("--user", help="the official's account at the provider (with --remote)")
    parser.add_argument("--client", help="with --remote: the configured client to act as")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="with --remote: print the request id and return (kyso remote poll completes it)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def request_remote(args: argparse.Namespace, files: Sequence[Path]) -> int:
    """``kyso request-signature FILE… --remote PROVIDER --user ID``: one approval for all."""
    import signer
    from kyso.errors import KysoError
    from kyso.operations.documents import DocumentSource
    from signer.twophase import RemoteState

    if not args.user:
        die("--user: name the official's account at the provider")
    config = load_or_exit(resolve_config_path(args.config))
    actor = _actor(config, args.client)
    documents = []
    for path in files:
        try:
            documents.append(DocumentSource(content=path.read_bytes(), filename=path.name))
        except OSError as exc:
            die(f"{path}: cannot read ({exc.strerror})")

    async def run() -> dict[str, Any]:
        async with _Remote(config) as remote:
            await _grant_if_needed(config, remote.providers.get(args.remote), args.remote)
            outcome = await remote.request(
                actor,
                provider_name=args.remote,
                user=args.user,
                documents=documents,
                description=args.title,
                level=signer.Level(args.level) if args.level_given else None,
            )
            if outcome.request.state is RemoteState.WAITING:
                print(f"request {outcome.request.id}: waiting for approval", file=sys.stderr)
                if not args.no_wait:
                    outcome = await remote.wait(actor, outcome.request.id)
        return _outcome(outcome)

    try:
        result = asyncio.run(run())
    except KysoError as exc:
        die(str(exc))
    except signer.SigningError as exc:
        die(f"remote signing failed: {exc}")
    _print(
        args,
        result,
        [result["id"], f"state {result['state']}", *(d["ref"] for d in result["documents"])],
    )
    return 0 if result["state"] in ("completed", "waiting") else 1


def _outcome(outcome: Any) -> dict[str, Any]:
    return {
        "id": outcome.request.id,
        "provider": outcome.request.provider,
        "state": outcome.request.state.value,
        "reason": outcome.request.reason,
        "documents": [
            {"ref": str(c.stored.ref), "sha256": c.stored.sha256, "level": c.level.value}
            for c in outcome.completed
        ],
    }


async def _grant_if_needed(config: Config, provider: Any, name: str) -> None:
    """A CSC provider configured with ``grant = "authorization_code"``: the official grants
    access first. The URL to open is printed on stderr; the provider redirects the official's
    browser to a listener on this machine's loopback (RFC 8252) that takes the code, which is
    exchanged with PKCE S256. The code and token stay in memory."""
    from signer.remote import CscProvider

    if not isinstance(provider, CscProvider) or not provider.needs_grant:
        return
    settings = config.remote[name]
    code, redirect_uri, verifier = await asyncio.to_thread(
        _loopback_code, provider, settings.approval_seconds
    )
    await asyncio.to_thread(
        provider.exchange_code, code, redirect_uri=redirect_uri, code_verifier=verifier
    )


def _loopback_code(provider: Any, timeout: float) -> tuple[str, str, str]:
    import http.server
    import secrets
    import time
    import urllib.parse

    from signer.remote.csc import pkce_pair

    state = secrets.token_urlsafe(16)
    verifier, challenge = pkce_pair()
    found: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            if query.get("state") != state:
                self.send_error(400, "state does not match")
                return
            found.update(query)
            granted = "code" in query
            text = (
                "Đã cấp quyền; có thể đóng trang này. / Access granted; you may close this page."
                if granted
                else "Không được cấp quyền. / Access was not granted."
            )
            data = f'<!doctype html><meta charset="utf-8"><p>{text}</p>'.encode()
            self.send_response(200 if granted else 403)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # the query holds the code: never logged

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    redirect_uri = f"http://127.0.0.1:{server.server_port}/kyso/callback"
    url = provider.authorization_url(
        redirect_uri=redirect_uri, state=state, code_challenge=challenge
    )
    print(
        "Người ký mở địa chỉ sau để cấp quyền ký / "
        f"the official opens this address to grant access:\n{url}",
        file=sys.stderr,
        flush=True,
    )
    deadline = time.monotonic() + timeout
    server.timeout = 1.0
    try:
        while not found and time.monotonic() < deadline:
            server.handle_request()
    finally:
        server.server_close()
    if "code" not in found:
        error = found.get("error", "no answer in time")
        die(f"the official did not grant access ({error[:100]})")
    return found["code"], redirect_uri, verifier


class _Remote:
    """The application and its remote-signing operation, for one command."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._app: Any = None

    async def __aenter__(self) -> Any:
        from kyso.app import Application
        from kyso.operations.documents import Documents
        from kyso.operations.remote import RemoteSigning, remote_providers
        from kyso.operations.twophase import TwoPhase

        self._app = await asyncio.to_thread(Application.open, self._config)
        return RemoteSigning(
            self._app, TwoPhase(self._app, Documents(self._app)), remote_providers(self._config)
        )

    async def __aexit__(self, *exc: object) -> None:
        if self._app is not None:
            await asyncio.to_thread(self._app.close)
