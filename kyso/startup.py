"""Start-up failures as one line for an operator: the cause and the configuration key to fix.

``kyso serve`` turns every failure it can explain into :class:`StartupError` (printed as one
line, exit 2, see docs/operations.md "Troubleshooting"); only what no row here explains keeps
its class and message, still on one line. Each message is ``KEY: cause; what to do``.

Invariants: a message never holds a PIN, a password or a token (the errors explained here do
not carry them: PINs and passwords are read from their sources and never formatted).
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
from collections.abc import Sequence
from pathlib import Path

import hsm
import storage
from hsm.errors import TokenUnavailable
from kyso.config import Config
from kyso.errors import ConfigError, DatabaseError, KysoError, SchemaAheadError

__all__ = [
    "StartupError",
    "check_certificate_expiry",
    "check_tls_pair",
    "explain",
]

log = logging.getLogger(__name__)


class StartupError(KysoError):
    """The server cannot start; the message names the key to fix (``kyso serve`` exits 2)."""


def _pin_keys(config: Config, aliases: Sequence[str]) -> str:
    names = []
    for alias in aliases:
        key = config.keys.get(alias)
        if key is None:
            continue
        names.append(f"keys.{alias}.pin_file" if key.pin_file else f"keys.{alias}.pin_env")
    return ", ".join(names) or "keys.*.pin_file"


def _key_names(aliases: Sequence[str], attribute: str) -> str:
    return ", ".join(f"keys.{a}.{attribute}" for a in aliases) or f"keys.*.{attribute}"


def _explain_hsm(exc: hsm.HsmError, config: Config) -> str:
    aliases = exc.aliases
    text = str(exc)
    if isinstance(exc, hsm.PinIncorrect):
        cause = text.split(" Check the PIN source")[0].rstrip(".")
        return (
            f"{_pin_keys(config, aliases)}: {cause}; put the"
            " token's user PIN in that file or variable (kyso tried once: the token locks after"
            " a few wrong PINs)"
        )
    if isinstance(exc, hsm.PinLocked):
        return (
            f"{_pin_keys(config, aliases)}: {text}; unlock the user PIN with the security"
            " officer's PIN (vendor tool, or softhsm2-util) before starting again"
        )
    if isinstance(exc, hsm.PinSourceError):
        return (
            f"{_pin_keys(config, aliases)}: {text} (the same pin_file, or the same pin_env,"
            " for every key on that token)"
        )
    if isinstance(exc, hsm.CertificateNotFound):
        return (
            f"{_key_names(aliases, 'certificate')}: {text.split('; store')[0]}; store the"
            " certificate on the token with the key's CKA_ID, or set"
            f' {_key_names(aliases, "certificate")} = "FILE.pem"'
        )
    if isinstance(exc, hsm.ProbeFailed):
        return (
            f"{_key_names(aliases, 'certificate')}: {text.split(' The certificate belongs')[0]};"
            " the certificate belongs to another key: configure the key's own certificate"
            " (or fix the key's uri)"
        )
    if isinstance(exc, hsm.KeyPolicyViolation):
        return f"{_key_names(aliases, 'uri')}: {text}"
    if isinstance(exc, hsm.ModuleLoadError):
        return f"hsm.module: {text}; install the vendor's PKCS#11 library or fix the path"
    if isinstance(exc, hsm.TokenNotFound | hsm.KeyNotFound | hsm.InvalidUri):
        return f"{_key_names(aliases, 'uri')}: {text} (`kyso hsm list` shows the tokens)"
    if isinstance(exc, TokenUnavailable):
        return (
            f"{_key_names(aliases, 'uri')}: {text}; check that the token is plugged in and"
            " the module's daemon runs"
        )
    return f"{_key_names(aliases, 'uri')}: {text}"


def explain(exc: BaseException, config: Config) -> StartupError | None:
    """The one-line start-up error for ``exc``, or None when nothing here explains it."""
    if isinstance(exc, StartupError):
        return exc
    if isinstance(exc, ConfigError):
        return StartupError(str(exc))
    if isinstance(exc, SchemaAheadError):
        return StartupError(f"database.url: {exc}")
    if isinstance(exc, DatabaseError):
        return StartupError(
            f"database.url: {exc}; start PostgreSQL or fix database.url (and"
            " database.password_file), or raise database.start_timeout_seconds"
        )
    if isinstance(exc, hsm.HsmError):
        return StartupError(_explain_hsm(exc, config))
    if isinstance(exc, storage.StorageError):
        return StartupError(f"storage: {exc}")
    if isinstance(exc, PermissionError):
        return StartupError(f"cannot start: {exc}; check the file's owner and mode")
    if isinstance(exc, OSError):
        return StartupError(f"server.address: {exc}")
    return None


def check_tls_pair(certificate: Path, private_key: Path) -> None:
    """Raise StartupError unless ``private_key`` belongs to the first certificate of
    ``certificate`` (gRPC would only say "Failed to bind to address")."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(certificate), str(private_key))
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in reason.upper():
            raise StartupError(
                f"tls.private_key: {private_key} is not the key of the certificate in"
                f" tls.certificate ({certificate}); configure the pair that belongs together"
            ) from None
        raise StartupError(
            f"tls.certificate: cannot use {certificate} with {private_key} ({reason}); both"
            " must be PEM, the key unencrypted"
        ) from None


def check_certificate_expiry(
    name: str, not_after: dt.datetime, *, warn_days: int, now: dt.datetime | None = None
) -> float:
    """Log a warning when the certificate configured under ``name`` has expired or expires
    within ``warn_days``; return the days left (negative once expired)."""
    now = now or dt.datetime.now(dt.UTC)
    days = (not_after - now).total_seconds() / 86400
    if days < 0:
        log.warning(
            "certificate expired",
            extra={"certificate": name, "not_after": not_after.isoformat()},
        )
    elif days < warn_days:
        log.warning(
            "certificate expires soon",
            extra={
                "certificate": name,
                "not_after": not_after.isoformat(),
                "days_left": round(days, 1),
            },
        )
    return days
