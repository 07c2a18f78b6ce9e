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

    [auditors.thanhtra]                # one table per person who may sign in
    token_file = "auditor.token"       # or: token_sha256 = "<hex of the token's SHA-256>"

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

__all__ = ["DEFAULT_MAX_UPLOAD", "Auditor", "WebSettings", "load_settings"]

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
    "auditors",
}


@dataclass(frozen=True, slots=True)
class Auditor:
    """A person who may sign in: the SHA-256 of their sign-in token."""

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
    auditors: tuple[Auditor, ...] = ()

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


def _auditors(base: Path, raw: object) -> tuple[Auditor, ...]:
    if not isinstance(raw, dict):
        raise ConfigError("web settings: [auditors.NAME] tables are expected")
    found = []
    for name, table in raw.items():
        if not isinstance(table, dict) or set(table) - {"token_file", "token_sha256"}:
            raise ConfigError(
                f"web settings: auditors.{name} takes token_file or token_sha256, nothing else"
            )
        if "token_sha256" in table:
            try:
                digest = bytes.fromhex(str(table["token_sha256"]))
            except ValueError as exc:
                raise ConfigError(f"web settings: auditors.{name}.token_sha256 is not hex") from exc
            if len(digest) != 32:
                raise ConfigError(f"web settings: auditors.{name}.token_sha256 is not a SHA-256")
        else:
            secret = _read_secret(base, table.get("token_file"), f"auditors.{name}.token_file")
            digest = hashlib.sha256(secret.encode("utf-8")).digest()
        found.append(Auditor(name=name, token_sha256=digest))
    return tuple(found)


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
        auditors=_auditors(base, raw.get("auditors", {})),
    )
