"""``kyso dev init``: the development environment plus the configuration that uses it.

:func:`kyso.dev.init.dev_init` makes the tokens, keys, PKI, images and API token; this module
writes ``HOME/kyso.toml`` for them (always rewritten, since it is derived) and prints what was
made and where. Secrets are referenced by path, never written into the configuration.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import TextIO

from kyso.dev.init import DevEnvironment, dev_init

__all__ = [
    "DEV_DIRECTORY",
    "DEV_HTTP_ADDRESS",
    "DEV_HUB",
    "WEB_LISTEN",
    "render_config",
    "render_web_settings",
    "set_up",
    "web_secrets",
]

DEV_HUB = "H49"
DEV_ROOT_UNIT = "000.00.00.H49"
DEV_HTTP_ADDRESS = "127.0.0.1:50052"
"""Where `kyso dev serve` answers HTTP/JSON (Connect) beside gRPC on 127.0.0.1:50051."""
DEV_DIRECTORY = Path(__file__).parent / "assets" / "units-quangninh.csv"
"""The test and demo directory: Quảng Ninh's units (plus a few outside), imported at first start."""

_ALL_ROLES = '["workflow", "clerk", "official", "auditor", "operator"]'
WEB_LISTEN = "127.0.0.1:8080"
DEV_METRICS_ADDRESS = "127.0.0.1:9464"
# The console's own client: it reads as an auditor, and as a clerk it may upload large PDFs
# to verify and have kyso seal its reports with the `seal-ec` key (and no other key).
_WEB_ROLES = '["auditor", "clerk"]'
_REPORT_KEY = "seal-ec"


def web_secrets(home: Path) -> tuple[Path, Path, Path]:
    """The console's API token and the development auditor's and operator's sign-in tokens
    (made once, 0600)."""
    directory = home / "secrets"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = (
        directory / "web-api-token",
        directory / "auditor-token",
        directory / "operator-token",
    )
    for path in paths:
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(secrets.token_urlsafe(32) + "\n")
    return paths


def _q(value: object) -> str:
    """A TOML basic string."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


DEV_CLIENT_RATE = "calls_per_second = 5000\nburst = 10000"
"""The development client's own rate (``[clients.dev]``), as the configuration spells it."""


def render_config(
    env: DevEnvironment,
    *,
    address: str = "127.0.0.1:50051",
    data_dir: Path | None = None,
    metrics_address: str = DEV_METRICS_ADDRESS,
    http_address: str = "",
) -> str:
    """The development ``kyso.toml`` for ``env`` (paths absolute, so it works from anywhere).

    ``data_dir`` (default: the dev home) holds the database and the objects. The development
    TSA/OCSP/CRL server is not part of the configuration: ``kyso dev serve`` runs it beside the
    service (``kyso serve`` never imports the development tooling).
    """
    home = env.home
    data = data_dir or home
    org = env.organisation
    web_token, _, _ = web_secrets(home)
    lines = [
        "# kyso development configuration, written by `kyso dev init`. Do not use in production:",
        "# the keys live on SoftHSM2 and the PKI is a development one. See docs/operations.md.",
        "",
        "[server]",
        f"address = {_q(address)}",
        f"metrics_address = {_q(metrics_address)}",
        "# the same services over HTTP/JSON (Connect protocol; docs/api.md)",
        f"http_address = {_q(http_address)}",
        "",
        "[database]",
        f"url = {_q('sqlite:///' + str(data / 'kyso.db'))}",
        "",
        "[storage]",
        'backend = "filesystem"',
        f"path = {_q(data / 'objects')}",
        "",
        "[hsm]",
        f"module = {_q(env.module_path)}",
        "",
        "[hsm.environment]",
        f"SOFTHSM2_CONF = {_q(env.softhsm_conf)}",
        "",
        "# The province's client: a client acts for its unit and the units below it only, so",
        "# the development client is the province's (the hub's root unit) to reach them all.",
        "[clients.dev]",
        f"roles = {_ALL_ROLES}",
        f"unit = {_q(DEV_ROOT_UNIT)}",
        f"token_file = {_q(env.api_token_path)}",
        "# Who officials see as the requester in `kyso agent`.",
        'display_name = "Trần Thị Văn Thư (văn thư)"',
        "# Its own rate instead of [limits]' share of one client (50 calls/s): the developer's",
        "# client runs the benchmarks and bulk tools.",
        *DEV_CLIENT_RATE.splitlines(),
        "",
        "[clients.web]",
        f"roles = {_WEB_ROLES}",
        f"unit = {_q(org.code)}",
        f"token_file = {_q(web_token)}",
        "",
    ]
    for alias, key in env.keys.items():
        if alias == "official":
            continue  # the official's token is theirs: the service never opens it
        lines += [
            f"[keys.{alias}]",
            f"uri = {_q(key.uri)}",
            f"pin_file = {_q(key.pin_path)}",
            f"chain = [{_q(env.intermediate_certificate_path)}]",
            f"unit = {_q(org.code)}",
            f"organisation = {_q(org.name)}",
            'clients = ["dev", "web"]' if alias == _REPORT_KEY else 'clients = ["dev"]',
        ]
        if alias != "ledger":
            lines += [
                f"seal_image = {_q(env.seal_image)}",
                f"signer_image = {_q(env.signature_image)}",
            ]
        lines.append("")
    lines += [
        "[signing]",
        f"tsa_urls = [{_q(env.tsa_url)}]",
        "",
        "[trust]",
        f"anchors = [{_q(env.root_certificate_path)}]",
        "# the development responders (OCSP, CRL, certificates) listen on loopback",
        f"fetch_allow = [{_q(env.pki.url_prefix + '/')}]",
        "",
        "[ledger]",
        'key = "ledger"',
        "head_interval_seconds = 60",
        f"certificates = [{_q(env.keys['ledger'].certificate_path)}]",
        "",
        "# One hub, the province of Quảng Ninh. Packages built from fields are signed with the",
        "# `seal` key, which the dev client may use (see kyso/operations/exchange.py).",
        "[exchange]",
        f"hub_id = {_q(DEV_HUB)}",
        f"directory = {_q(DEV_DIRECTORY)}",
        'key = "seal"',
        "",
        f"[exchange.hubs.{DEV_HUB}]",
        f"root_unit = {_q(DEV_ROOT_UNIT)}",
        f"address = {_q(address)}",
        "",
        "[client]",
        f"server = {_q(address)}",
        f"token_file = {_q(env.api_token_path)}",
        "",
    ]
    return "\n".join(lines)


def render_web_settings(
    env: DevEnvironment,
    *,
    server: str = "127.0.0.1:50051",
    listen: str = WEB_LISTEN,
    metrics_address: str = DEV_METRICS_ADDRESS,
) -> str:
    """The development console's ``web.toml`` (see ``kyso.web.settings``)."""
    web_token, auditor_token, operator_token = web_secrets(env.home)
    return "\n".join(
        [
            "# The console (auditors, operators) for the development service, by `kyso dev init`.",
            f"listen = {_q(listen)}",
            f"server = {_q(server)}",
            f"token_file = {_q(web_token)}",
            f"report_key = {_q(_REPORT_KEY)}",
            "public_page = true",
            f"metrics_address = {_q(metrics_address)}",
            "",
            "[auditors.kiemtoan]",
            f"token_file = {_q(auditor_token)}",
            "",
            "[operators.vanhanh]",
            f"token_file = {_q(operator_token)}",
            "",
        ]
    )


def set_up(home: Path, *, out: TextIO = sys.stdout) -> DevEnvironment:
    env = dev_init(home)
    config_path = env.home / "kyso.toml"
    config_path.write_text(render_config(env, http_address=DEV_HTTP_ADDRESS), encoding="utf-8")
    web_path = env.home / "web.toml"
    web_path.write_text(render_web_settings(env), encoding="utf-8")
    _, auditor_token, operator_token = web_secrets(env.home)
    print(f"development environment in {env.home}", file=out)
    print(f"  configuration     {config_path}", file=out)
    print(f"  SoftHSM2 config   {env.softhsm_conf}", file=out)
    for alias, key in env.keys.items():
        print(f"  key {alias:<13} {key.uri}", file=out)
    for token, pin_path in env.pin_paths.items():
        print(f"  PIN of {token:<10} {pin_path} (mode 0600)", file=out)
    print(f"  trust anchor      {env.root_certificate_path}", file=out)
    print(f"  TSA / OCSP        {env.tsa_url} , {env.ocsp_url}", file=out)
    print(f"  short-lived TSA   {env.pki.short_tsa_url} (for trying archive renewal)", file=out)
    print(f"  API token         {env.api_token_path} (mode 0600)", file=out)
    print(f"  stamp images      {env.seal_image}, {env.signature_image}", file=out)
    print(f"  console settings  {web_path}", file=out)
    print(f"  auditor sign-in   {auditor_token} (mode 0600)", file=out)
    print(f"  operator sign-in  {operator_token} (mode 0600, /van-hanh)", file=out)
    print(f"HTTP/JSON (Connect) http://{DEV_HTTP_ADDRESS}/kyso.v1.<Service>/<Method>", file=out)
    print(f"serve it with       kyso dev serve --home {env.home}", file=out)
    return env
