"""The console's settings (``web.toml``), validated once at start; unknown keys are refused.

Example (``kyso dev init`` writes one for the development service)::

    listen = "127.0.0.1:8080"          # where the console serves HTTP
    server = "127.0.0.1:50051"         # kyso's gRPC address
    token_file = "web-api.token"       # the console's own API token (a client with the auditor
                                       # role, plus the right to seal reports with report_key)
    ca_file = ""                       # kyso's CA (PEM) when its API is served over TLS
    report_key = "seal-ec"             # the key kyso seals PDF reports with ("" = no sealing)
    max_upload_bytes = 20971520        # 20 MiB: larger uploads are refused before being read
    session_minutes = 480              # a sign-in lasts this long
    public_page = true                 # the public "check a signed result" page
    public_per_minute = 10             # public checks per client address per minute
    metrics_address = "127.0.0.1:9464" # kyso's metrics endpoint, for the operator page
                                       # ("" = the page says metrics are not configured)

    [auditors.thanhtra]                # one table per auditor who may sign in (/dang-nhap)
    token_file = "auditor.token"       # or: token_sha256 = "<hex of the token's SHA-256>"

    [operators.vanhanh]                # one table per operator (/van-hanh/dang-nhap): they
    token_file = "operator.token"      # see the operator page, not the auditors' pages

A token may belong to one person only: the same token for two people (or an auditor and an
operator) is refused, so a sign-in names one person and one role.

Relative paths are taken from the settings file's directory. Secrets are read from files, never
from the command line.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kyso.errors import ConfigError

__all__ = ["DEFAULT_MAX_UPLOAD", "Person", "WebSettings", "load_settings"]

DEFAULT_MAX_UPLOAD = 20 * 1024 * 1024

_KEYS = {
    "listen",
    "server",
    "token_file",
    "ca_file",
    "report_key",
    "max_upload_bytes",
    "session_minutes",
    "public_page",
    "public_per_minute",
    "metrics_address",
    "auditors",
    "operators",
}


@dataclass(frozen=True, slots=True)
class Person:
    """Someone who may sign in (an auditor or an operator): the SHA-256 of their token."""

    name: str
    token_sha256: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSettings:
    listen: str = "127.0.0.1:8080"
    server: str = "127.0.0.1:50051"
    api_token: str = field(default="", repr=False)
    ca_pem: bytes | None = None
    report_key: str = ""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    session_minutes: int = 480
    public_page: bool = True
    public_per_minute: int = 10
    metrics_address: str = ""
    auditors: tuple[Person, ...] = ()
    operators: tuple[Person, ...] = ()

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)


def _read_secret(base: Path, value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"web settings: {name} must name a file")
    path = (base / value).expanduser()
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"web settings: {name}: cannot read {path} ({exc.strerror})") from exc
    if not text:
        raise ConfigError(f"web settings: {name}: {path} is empty")
    return text


def _people(base: Path, raw: object, kind: str) -> tuple[Person, ...]:
    """The ``[auditors.NAME]`` or ``[operators.NAME]`` tables (``kind``)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"web settings: [{kind}.NAME] tables are expected")
    found = []
    for name, table in raw.items():
        if not isinstance(table, dict) or set(table) - {"token_file", "token_sha256"}:
            raise ConfigError(
                f"web settings: {kind}.{name} takes token_file or token_sha256, nothing else"
            )
        if "token_sha256" in table:
            try:
                digest = bytes.fromhex(str(table["token_sha256"]))
            except ValueError as exc:
                raise ConfigError(f"web settings: {kind}.{name}.token_sha256 is not hex") from exc
            if len(digest) != 32:
                raise ConfigError(f"web settings: {kind}.{name}.token_sha256 is not a SHA-256")
        else:
            secret = _read_secret(base, table.get("token_file"), f"{kind}.{name}.token_file")
            digest = hashlib.sha256(secret.encode("utf-8")).digest()
        found.append(Person(name=name, token_sha256=digest))
    return tuple(found)


def _one_token_each(auditors: tuple[Person, ...], operators: tuple[Person, ...]) -> None:
    seen: dict[bytes, str] = {}
    for kind, people in (("auditors", auditors), ("operators", operators)):
        for person in people:
            other = seen.setdefault(person.token_sha256, f"{kind}.{person.name}")
            if other != f"{kind}.{person.name}":
                raise ConfigError(
                    f"web settings: {kind}.{person.name} has the same token as {other};"
                    " give each person a token of their own"
                )


def _int(raw: dict[str, Any], name: str, default: int, low: int) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"web settings: {name} must be an integer ≥ {low}")
    return value


def load_settings(path: Path) -> WebSettings:
    """Read and check ``path``; raises ``ConfigError`` naming the bad key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"web settings: cannot read {path} ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"web settings: {path} is not valid TOML ({exc})") from exc
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"web settings: unknown key {unknown[0]!r} in {path}")
    base = path.parent
    listen = str(raw.get("listen", "127.0.0.1:8080"))
    if not listen.rpartition(":")[2].isdigit():
        raise ConfigError("web settings: listen must be HOST:PORT")
    ca_file = raw.get("ca_file", "")
    metrics_address = str(raw.get("metrics_address", ""))
    if metrics_address and not metrics_address.rpartition(":")[2].isdigit():
        raise ConfigError("web settings: metrics_address must be HOST:PORT (or empty)")
    auditors = _people(base, raw.get("auditors", {}), "auditors")
    operators = _people(base, raw.get("operators", {}), "operators")
    _one_token_each(auditors, operators)
    return WebSettings(
        listen=listen,
        server=str(raw.get("server", "127.0.0.1:50051")),
        api_token=_read_secret(base, raw.get("token_file"), "token_file"),
        ca_pem=(base / ca_file).read_bytes() if ca_file else None,
        report_key=str(raw.get("report_key", "")),
        max_upload_bytes=_int(raw, "max_upload_bytes", DEFAULT_MAX_UPLOAD, 1024),
        session_minutes=_int(raw, "session_minutes", 480, 1),
        public_page=bool(raw.get("public_page", True)),
        public_per_minute=_int(raw, "public_per_minute", 10, 1),
        metrics_address=metrics_address,
        auditors=auditors,
        operators=operators,
    )
