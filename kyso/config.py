"""Configuration: one TOML file, every value overridable from the environment, checked at start.

Invariants:
- An unknown key, a missing or unreadable file, a value of the wrong type, a bad address or a key
  alias that points at nothing is a :class:`ConfigError` whose message names the key
  (``section.key``) and the problem; ``kyso serve`` prints it as one line and exits 2.
- Environment overrides: ``KYSO_<SECTION>__<KEY>`` (double underscore between levels, upper
  case), e.g. ``KYSO_SERVER__ADDRESS=0.0.0.0:50051`` or ``KYSO_KEYS__SEAL__PIN_FILE=/run/pin``.
  Lists are comma-separated. Overrides are applied before validation, so they are checked too.
- Secrets (PINs, API tokens, S3 keys) are never values in this file: only the *paths* of files
  or the *names* of environment variables that hold them.
- Relative paths are resolved against the directory of the configuration file.
"""

from __future__ import annotations

import dataclasses
import grp
import ipaddress
import os
import string
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from hsm import HsmError, Pkcs11Uri
from kyso.errors import ConfigError

__all__ = [
    "MESSAGE_RESERVE",
    "ArchiveConfig",
    "ClientConfig",
    "Config",
    "CscConfig",
    "DatabaseConfig",
    "DocumentsConfig",
    "ExchangeConfig",
    "HsmConfig",
    "HubConfig",
    "KeyConfig",
    "LedgerConfig",
    "LimitsConfig",
    "NotifyConfig",
    "RemoteProviderConfig",
    "S3Config",
    "ServerConfig",
    "SigningConfig",
    "SmsConfig",
    "StorageConfig",
    "TlsConfig",
    "TrustConfig",
    "VerifyConfig",
    "ZnsConfig",
    "is_loopback",
    "load_config",
    "normalise_fingerprint",
    "parse_address",
]

ENV_PREFIX = "KYSO_"
Role = Literal["workflow", "official", "clerk", "auditor", "hub", "operator", "inspector"]
ROLES: frozenset[str] = frozenset(get_args(Role))
Level = Literal["B-B", "B-T", "B-LT", "B-LTA"]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Where and how the gRPC server listens.

    ``insecure``: listen without TLS on an address other than loopback. Off by default: such
    a configuration is refused at start unless this is written in it (and then every start
    warns), since API tokens and documents would cross the network in the clear.

    Keepalive (docs/api.md, "Limits and client settings"): the server pings a connection idle
    for ``keepalive_seconds`` and closes it when no answer comes within
    ``keepalive_timeout_seconds``; it accepts client pings every ``min_client_ping_seconds`` or
    more, with or without calls in flight (a client pinging every 10 s is well inside the
    default). A followed Receive's heartbeats come at most every ``min_heartbeat_seconds``.
    """

    address: str = "127.0.0.1:50051"
    metrics_address: str = "127.0.0.1:9464"
    http_address: str = ""
    grace_seconds: float = 10.0
    max_message_bytes: int = 16 * 1024 * 1024
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    health_interval_seconds: float = 2.0
    keepalive_seconds: float = 60.0
    keepalive_timeout_seconds: float = 20.0
    min_client_ping_seconds: float = 5.0
    min_heartbeat_seconds: float = 5.0
    io_threads: int = 32
    certificate_warning_days: int = 30
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Admission control: what one client may hold and ask, and how much work of each kind runs
    at once. docs/operations.md ("Limits") lists every key with its default and the code a
    client gets when it is exceeded.

    Work of each kind runs in its own bounded pool, so one kind saturated (slow uploads, slow
    verifications) does not stop the others: ``transfer_threads`` for streamed uploads,
    ``xml_threads`` for parsing and checking edXML packages, ``pdf_threads`` for waiting on the
    signing and verifying worker processes ([server] ``io_threads`` for database and store calls).
    ``queue_per_thread``: how many calls may wait for a pool per thread before new ones are
    refused (RESOURCE_EXHAUSTED, retry later). A pool whose oldest waiting call has waited
    ``saturated_after_seconds`` makes the health check answer NOT_SERVING until it drains.
    ``stream_idle_seconds``: a client stream that sends nothing for this long is ended.
    Per client: ``calls_in_flight`` and ``streams_in_flight`` at once, and a rate of
    ``calls_per_second`` sustained with bursts of ``burst``. A call refused for one of these is
    answered after ``refusal_delay_seconds`` (at most ``held_refusals`` of a client held at
    once, the others answered at once): a client that retries without waiting is slowed to
    about ``held_refusals`` calls per delay instead of costing the server a call per refusal.
    """

    transfer_threads: int = 16
    xml_threads: int = 4
    pdf_threads: int = 16
    queue_per_thread: int = 4
    saturated_after_seconds: float = 5.0
    stream_idle_seconds: float = 30.0
    calls_in_flight: int = 64
    streams_in_flight: int = 8
    calls_per_second: float = 50.0
    burst: int = 100
    refusal_delay_seconds: float = 6.0
    held_refusals: int = 128


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Server TLS; with ``client_ca`` set, clients must present a certificate it issued (mTLS)."""

    enabled: bool = False
    certificate: Path | None = None
    private_key: Path | None = None
    client_ca: Path | None = None


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """The metadata database: ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST[:PORT]/DB``.

    The password is never in the URL: it comes from the file ``password_file`` or the
    environment variable named by ``password_env``. At start kyso waits up to
    ``start_timeout_seconds`` for the database to answer, retrying with backoff.
    """

    url: str = "sqlite:///kyso.db"
    password_file: Path | None = None
    password_env: str = ""
    start_timeout_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class S3Config:
    """An S3 endpoint (``host:port``, no scheme).

    Credentials are never in this file: they come from ``KYSO_S3_ACCESS_KEY`` and
    ``KYSO_S3_SECRET_KEY``, or from the files named by ``KYSO_S3_ACCESS_KEY_FILE`` and
    ``KYSO_S3_SECRET_KEY_FILE``. With ``retention_mode`` set, the bucket uses object lock and
    every signed document is retained for ``retention_days``.
    """

    endpoint: str = ""
    bucket: str = "kyso"
    secure: bool = True
    region: str = "us-east-1"
    ca_file: Path | None = None
    retention_mode: Literal["", "GOVERNANCE", "COMPLIANCE"] = ""
    retention_days: int = 0


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Where documents are stored.

    ``group``: the operators' group (a name). Without it only the service's user reads the
    filesystem store and the SQLite database (directories 0700, files 0600, objects 0400);
    with it, that group reads them too (0750, 0640, 0440), and never writes.

    ``direct_transfer`` (S3 only, off by default): clients send and fetch documents' bytes
    straight to and from the S3 service with presigned URLs valid ``direct_url_seconds``
    (DocumentService.BeginDirectUpload, CompleteDirectUpload, GetDownloadUrl); the clients
    must reach ``storage.s3.endpoint`` themselves.
    """

    backend: Literal["filesystem", "s3"] = "filesystem"
    path: Path = Path("objects")
    s3: S3Config = field(default_factory=S3Config)
    group: str = ""
    direct_transfer: bool = False
    direct_url_seconds: int = 900


@dataclass(frozen=True, slots=True)
class DocumentsConfig:
    """Who reads stored documents beyond their units (see docs/api.md, "Documents").

    ``auditors_download``: auditors get the bytes of any document (Download), not only its
    metadata (Stat). Off by default.
    """

    auditors_download: bool = False


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """A calling system or person: how it proves who it is, its unit and its roles.

    ``token_file`` holds the API token itself (kept by the operator, mode 0600); or
    ``token_sha256`` its SHA-256 in hex, so the server need not hold the token at all.
    ``certificate_sha256`` identifies a client by the SHA-256 of its TLS certificate (mTLS).
    ``calls_per_second`` and ``burst``, when set, replace ``[limits]``'s for this client alone:
    a peer hub catching up or a batch system given more than the default share.
    """

    roles: tuple[Role, ...] = ()
    unit: str = ""
    token_file: Path | None = None
    token_sha256: str = ""
    certificate_sha256: str = ""
    display_name: str = ""
    """The person (or office) behind the client, as officials see it in ``kyso agent``."""
    calls_per_second: float | None = None
    burst: int | None = None


@dataclass(frozen=True, slots=True)
class HsmConfig:
    """The PKCS#11 module, its environment and how many signing worker processes use it.

    ``environment``: variables the vendor module reads (e.g. the path of its own configuration
    file), set for the signing workers only. Never a PIN: PINs are per key (``keys.*``).
    """

    module: str = "/usr/lib/softhsm/libsofthsm2.so"
    workers: int = 2
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """An organisation key on the HSM, named by alias in requests.

    Its certificate is the one stored on the token beside the key (same CKA_ID), unless
    ``certificate`` names a file (PEM or DER) that replaces it; ``chain`` lists the issuer
    certificates (nearest first), read from the token when empty.
    """

    uri: str
    unit: str = ""
    organisation: str = ""
    pin_file: Path | None = None
    pin_env: str = ""
    module: str = ""
    certificate: Path | None = None
    chain: tuple[Path, ...] = ()
    clients: tuple[str, ...] = ()
    seal_image: Path | None = None
    signer_image: Path | None = None
    default_level: Level = "B-B"
    allow_exportable: bool = False


@dataclass(frozen=True, slots=True)
class SigningConfig:
    """PAdES signing: TSAs (tried in order), limits, two-phase session lifetime, and how many
    PDF signing processes run (0: one per core)."""

    tsa_urls: tuple[str, ...] = ()
    tsa_timeout_seconds: float = 10.0
    max_document_bytes: int = 64 * 1024 * 1024
    session_hours: float = 24.0
    workers: int = 0


@dataclass(frozen=True, slots=True)
class TrustConfig:
    """Trust anchors: PEM files and/or SHA-256 fingerprints of certificates found in documents.

    ``fetch_allow``: what online verification may fetch beyond the URLs of certificates that
    chain to an anchor — URL prefixes, host names, addresses or networks; loopback, private and
    link-local addresses are fetched from only when listed here.
    """

    anchors: tuple[Path, ...] = ()
    fingerprints: tuple[str, ...] = ()
    fetch_allow: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VerifyConfig:
    """PDF verification: ``algorithms`` is a TOML file of dated algorithm rules replacing the
    ones shipped with kyso (``signer/verify/algorithms.toml``; format in docs/report-schema.md)."""

    algorithms: Path | None = None


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    """The ledger's head-signing key (an alias of ``[keys]``), how often heads are signed, and
    the head-signing certificate(s) auditors trust when verifying offline."""

    key: str = ""
    head_interval_seconds: float = 300.0
    certificates: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class ArchiveConfig:
    """Long-term evidence of stored signed PDFs (``kyso.operations.archive``): the renewal run's
    schedule, margin and bounds. Empty ``tsa_urls``: the signing TSAs (``[signing] tsa_urls``)."""

    renew: bool = True
    margin_days: int = 90
    interval_seconds: float = 3600.0
    rate_per_second: float = 2.0
    concurrency: int = 2
    workers: int = 1
    retry_seconds: float = 300.0
    max_retry_seconds: float = 86400.0
    tsa_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HubConfig:
    """A hub of the exchange: the unit at the top of the subtree it serves, its parent hub,
    the address of its kyso server, and the hubs it may send to directly (peers).

    ``certificate_sha256``: the SHA-256 fingerprints of the certificates of the hub's own
    ``[exchange] key`` — the only certificates its hop receipts may be signed with, and the
    ones allowed to sign packages on behalf of the units it serves. Required for every other
    hub this hub sends to or takes packages from.

    ``tls_certificate_sha256``: the SHA-256 fingerprints of the TLS client certificate(s) the
    hub presents on its links to this hub (mutual TLS with pinned peers). A hub's ``Forward``
    is taken only with one of these, or the certificate its ``[clients.NAME]`` pins; without a
    client certificate only from loopback (development).
    """

    root_unit: str
    parent: str = ""
    address: str = ""
    peers: tuple[str, ...] = ()
    certificate_sha256: tuple[str, ...] = ()
    tls_certificate_sha256: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    """Document exchange. Empty ``hub_id``: this server does not route documents.

    ``key``: the alias of the key that signs packages built from fields, status packets and
    hop receipts. ``directory``: a CSV of units imported at start when the directory is empty.
    Outgoing hub-to-hub calls use mutual TLS with ``client_certificate``/``client_key``,
    trusting ``server_ca`` (plaintext only when none is given, for loopback development).
    ``hub_retry_seconds``: how soon a hop to a hub that could not be reached is tried again,
    and the longest its channel waits between connection attempts; hops to a hub that is back
    move within about that (see ``kyso.hubs``).

    Packages at the door (Send, Forward): ``max_package_bytes`` (the edXML bytes; with the
    Delivery's and the Forward's other fields it must fit ``[server] max_message_bytes``,
    ``MESSAGE_RESERVE`` bytes are kept for them), ``max_attachments``, ``max_attachment_bytes``
    (one attachment, decoded), ``max_expanded_bytes`` (all attachments decoded and unpacked
    together), ``max_zip_ratio``. Quarantine: a delivery that Receive could not hand over
    ``max_delivery_attempts`` times, and a hop the next hub refused ``max_forward_attempts``
    times, is set aside until an operator releases it.
    """

    hub_id: str = ""
    hubs: Mapping[str, HubConfig] = field(default_factory=dict)
    directory: Path | None = None
    key: str = ""
    require_signature: bool = True
    lease_seconds: float = 300.0
    dispatch_interval_seconds: float = 0.5
    hub_retry_seconds: float = 5.0
    client_certificate: Path | None = None
    client_key: Path | None = None
    server_ca: Path | None = None
    hub_token_file: Path | None = None
    max_package_bytes: int = 15 * 1024 * 1024
    max_attachments: int = 200
    max_attachment_bytes: int = 16 * 1024 * 1024
    max_expanded_bytes: int = 64 * 1024 * 1024
    max_zip_ratio: int = 100
    max_delivery_attempts: int = 5
    max_forward_attempts: int = 10


MESSAGE_RESERVE = 1024 * 1024
"""Bytes of ``[server] max_message_bytes`` kept for a Delivery's or a Forward's fields beside
the package (subject, trace, verification, recipients): ``[exchange] max_package_bytes`` may be
at most ``max_message_bytes`` minus this."""


@dataclass(frozen=True, slots=True)
class CscConfig:
    """The CSC v2 facade over this server's keys (``kyso.csc``). Empty ``address``: not served.

    Callers are the configured ``[clients]``: OAuth2 client credentials, ``client_id`` the
    client's name and ``client_secret`` its API token. ``token_seconds``: lifetime of an access
    token; ``sad_seconds``: lifetime of a SAD (single use, bound to the credential and hashes);
    ``max_batch``: the most hashes one authorisation covers (``multisign``). With ``certificate``
    and ``private_key`` the facade speaks HTTPS. An official may also grant a client access to
    the official's own credentials (OAuth2 authorization code, ``/oauth2/authorize``): the
    client's ``redirect_uri`` must be a loopback address (any port, RFC 8252) or one of
    ``redirect_uris``. With ``client_ca`` too, a caller may instead present a TLS client
    certificate issued by it whose SHA-256 is a client's ``certificate_sha256`` (mutual TLS): it
    is that client, with no token.
    """

    address: str = ""
    token_seconds: float = 600.0
    sad_seconds: float = 120.0
    max_batch: int = 100
    certificate: Path | None = None
    private_key: Path | None = None
    client_ca: Path | None = None
    redirect_uris: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RemoteProviderConfig:
    """A remote-signing provider (``[remote.NAME]``), used by ``kyso request-signature
    --remote NAME``.

    ``kind``: ``csc`` (a CSC v1.0.4/v2 server: ``url`` precedes ``/csc/<api_version>/``) or
    ``smartca`` (the asynchronous request → transaction → status gateways of VNPT SmartCA /
    Viettel MySign style: ``url`` precedes ``/v1/``). ``client_id`` (CSC) or SmartCA's ``sp_id``;
    the secret only by ``client_secret_file`` or ``client_secret_env``, never inline.
    ``approval_seconds``: how long the official has to approve before the request expires;
    ``poll_seconds``: how often a waiting request is asked about; ``multisign``: the most
    documents one approval covers (SmartCA; a CSC credential says its own).
    """

    kind: Literal["csc", "smartca"]
    url: str
    api_version: Literal["v1", "v2"] = "v2"
    grant: Literal["client_credentials", "authorization_code"] = "client_credentials"
    client_id: str = ""
    client_secret_file: Path | None = None
    client_secret_env: str = ""
    ca_file: Path | None = None
    level: Level = "B-LT"
    approval_seconds: float = 300.0
    poll_seconds: float = 2.0
    timeout_seconds: float = 30.0
    multisign: int = 100


@dataclass(frozen=True, slots=True)
class ZnsConfig:
    """Zalo ZNS (``kyso.notify.citizens``): ``url`` empty means ZNS is not used. The access
    token comes from ``access_token_file`` or the variable ``access_token_env``."""

    url: str = ""
    template_id: str = ""
    access_token_file: Path | None = None
    access_token_env: str = ""
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class SmsConfig:
    """An SMS brandname gateway with eSMS.vn's JSON API: ``url`` empty means no SMS. The API
    key and secret key come from files or environment variables, never from this file."""

    url: str = ""
    brandname: str = ""
    api_key_file: Path | None = None
    api_key_env: str = ""
    secret_key_file: Path | None = None
    secret_key_env: str = ""
    template: str = "Ho so {document_id}: {status_name}"
    unicode: bool = False
    sms_type: str = "2"
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """Notifications (``kyso.notify``): webhooks for systems, Zalo ZNS and SMS for citizens,
    the live stream for officials' agents. See docs/operations.md, "Notifications"."""

    enabled: bool = True
    webhook_allow: tuple[str, ...] = ()
    webhook_http_loopback: bool = False
    webhook_timeout_seconds: float = 15.0
    webhook_ca_file: Path | None = None
    secret_overlap_hours: float = 24.0
    delivery_threads: int = 8
    keep_days: float = 30.0
    citizen_statuses: tuple[str, ...] = ("03", "06")
    zns: ZnsConfig = field(default_factory=ZnsConfig)
    sms: SmsConfig = field(default_factory=SmsConfig)


@dataclass(frozen=True, slots=True)
class ClientSide:
    """How the ``kyso`` command reaches a server: address, API token file, the CA to trust for
    TLS, and a client certificate and key for servers that require mutual TLS."""

    server: str = "127.0.0.1:50051"
    token_file: Path | None = None
    ca_file: Path | None = None
    certificate: Path | None = None
    private_key: Path | None = None
    token_module: str = ""
    """The PKCS#11 library of the official's token, for ``kyso agent`` (default: hsm.module)."""


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, validated."""

    source: Path | None = None
    server: ServerConfig = field(default_factory=ServerConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    documents: DocumentsConfig = field(default_factory=DocumentsConfig)
    hsm: HsmConfig = field(default_factory=HsmConfig)
    keys: Mapping[str, KeyConfig] = field(default_factory=dict)
    clients: Mapping[str, ClientConfig] = field(default_factory=dict)
    signing: SigningConfig = field(default_factory=SigningConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    client: ClientSide = field(default_factory=ClientSide)
    csc: CscConfig = field(default_factory=CscConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    remote: Mapping[str, RemoteProviderConfig] = field(default_factory=dict)


T = TypeVar("T")


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, convert and validate the configuration at ``path``."""
    environ = os.environ if environ is None else environ
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: the configuration file does not exist") from None
    except PermissionError:
        raise ConfigError(f"{path}: the configuration file is not readable") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    _apply_env_overrides(raw, environ)
    raw.pop("source", None)
    config = _build(Config, raw, "", base=path.resolve().parent)
    config = dataclasses.replace(config, source=path.resolve())
    _validate(config)
    return config


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        node = raw
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(parts[:-1])} is not a section")
            node = child
        node[parts[-1]] = _EnvValue(value)


@dataclass(frozen=True, slots=True)
class _EnvValue:
    """A string from the environment, converted to the field's type when built."""

    text: str


def _build(cls: type[T], data: Any, where: str, *, base: Path) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'top level'}: expected a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"{key}: unknown key (check the spelling; see docs/operations.md)")
    values: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        values[name] = _convert(hints[name], value, key, base=base)
    try:
        return cls(**values)
    except TypeError as exc:
        missing = [
            n
            for n, f in fields.items()
            if n not in values
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"{where}.{missing[0]}: required key is missing") from None
        raise ConfigError(f"{where}: {exc}") from None


def _convert(hint: Any, value: Any, key: str, *, base: Path) -> Any:
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if isinstance(value, _EnvValue) and value.text == "" and len(options) < len(get_args(hint)):
            return None
        return _convert(options[0], value, key, base=base)
    if origin is Literal:
        text = value.text if isinstance(value, _EnvValue) else value
        allowed = get_args(hint)
        if isinstance(text, str) and text not in allowed:
            # `info` for `INFO`, `S3` for `s3`: the spelling differs, the choice is clear
            folded = [a for a in allowed if isinstance(a, str) and a.lower() == text.lower()]
            text = folded[0] if len(folded) == 1 else text
        if text not in allowed:
            shown = ", ".join(repr(a) for a in allowed)
            raise ConfigError(f"{key}: {text!r} is not one of {shown}")
        return text
    if origin is tuple:
        item = get_args(hint)[0]
        if isinstance(value, _EnvValue):
            value = [v.strip() for v in value.text.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list")
        return tuple(_convert(item, v, f"{key}[{i}]", base=base) for i, v in enumerate(value))
    if origin in (Mapping, dict) or hint is Mapping:
        value_type = get_args(hint)[1]
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table of named entries")
        return {k: _convert(value_type, v, f"{key}.{k}", base=base) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type[Any], hint), value, key, base=base)
    if isinstance(value, _EnvValue):
        value = _from_env_text(hint, value.text, key)
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a path (a string)")
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string")
        return value
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")


def _from_env_text(hint: Any, text: str, key: str) -> Any:
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{key}: expected true or false, got {text!r}")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a whole number, got {text!r}") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {text!r}") from None
    return text


def parse_address(text: str, *, key: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) and check both parts."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{key}: {text!r} is not an address of the form host:port")
    # Port 0 asks the system for a free port (tests and ephemeral servers).
    if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ConfigError(f"{key}: port {port_text!r} is not a number from 0 to 65535")
    host = host.strip("[]")
    if host not in {"localhost", ""}:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not all(part.isalnum() or "-" in part for part in host.split(".")):
                raise ConfigError(f"{key}: {host!r} is not a host name or IP address") from None
    return host, int(port_text)


def _validate_limits(limits: LimitsConfig) -> None:
    for name in (
        "transfer_threads",
        "xml_threads",
        "pdf_threads",
        "calls_in_flight",
        "streams_in_flight",
        "burst",
    ):
        if getattr(limits, name) < 1:
            raise ConfigError(f"limits.{name}: must be at least 1")
    if limits.queue_per_thread < 0:
        raise ConfigError("limits.queue_per_thread: must be 0 (no waiting) or more")
    if limits.refusal_delay_seconds < 0:
        raise ConfigError("limits.refusal_delay_seconds: must be 0 (answer at once) or more")
    if limits.held_refusals < 0:
        raise ConfigError("limits.held_refusals: must be 0 (hold none) or more")
    for name in ("saturated_after_seconds", "stream_idle_seconds", "calls_per_second"):
        if getattr(limits, name) <= 0:
            raise ConfigError(f"limits.{name}: must be more than 0")


def _validate_notify(notify: NotifyConfig) -> None:
    if notify.webhook_allow:
        from signer.verify import FetchRules  # pyHanko behind it: only when there is a list

        try:
            FetchRules(notify.webhook_allow)
        except ValueError as exc:
            raise ConfigError(f"notify.webhook_allow: {exc}") from None
    if notify.webhook_ca_file is not None:
        _readable(notify.webhook_ca_file, "notify.webhook_ca_file")
    if not 0 < notify.webhook_timeout_seconds <= 60:
        raise ConfigError("notify.webhook_timeout_seconds: give a number of seconds from 0 to 60")
    if notify.keep_days < 4:
        raise ConfigError(
            "notify.keep_days: keep notifications at least 4 days (the retry window is about"
            " 3.2 days)"
        )
    if notify.delivery_threads < 1:
        raise ConfigError("notify.delivery_threads: must be at least 1")
    for index, code in enumerate(notify.citizen_statuses):
        if code not in {"01", "02", "03", "04", "05", "06", "13", "15", "16"}:
            raise ConfigError(
                f"notify.citizen_statuses[{index}]: {code!r} is not a status code (01–06, 13,"
                " 15, 16)"
            )
    if notify.zns.url:
        if not notify.zns.template_id:
            raise ConfigError("notify.zns.template_id: required when notify.zns.url is set")
        if not (notify.zns.access_token_file or notify.zns.access_token_env):
            raise ConfigError(
                "notify.zns: give access_token_file or access_token_env (never the token)"
            )
    if notify.sms.url:
        if not (notify.sms.api_key_file or notify.sms.api_key_env):
            raise ConfigError("notify.sms: give api_key_file or api_key_env")
        if not (notify.sms.secret_key_file or notify.sms.secret_key_env):
            raise ConfigError("notify.sms: give secret_key_file or secret_key_env")
        if len(notify.sms.brandname) > 11:
            raise ConfigError("notify.sms.brandname: a brandname has at most 11 characters")


def normalise_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as lower-case hex, from the common spellings: ``ab12…``,
    ``AB:12:…`` (``openssl x509 -fingerprint``), with spaces, or prefixed ``sha256:``."""
    cleaned = text.strip().lower()
    for prefix in ("sha256 fingerprint=", "sha256:", "sha256="):
        if cleaned.startswith(prefix):
            cleaned = cleaned[len(prefix) :]
    return "".join(ch for ch in cleaned if ch not in ": -")


def _check_fingerprint(text: str, key: str) -> None:
    digits = normalise_fingerprint(text)
    if len(digits) != 64 or any(ch not in "0123456789abcdef" for ch in digits):
        raise ConfigError(
            f"{key}: {text!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed;"
            " e.g. the output of `openssl x509 -noout -fingerprint -sha256`)"
        )


DATABASE_SCHEMES = ("sqlite", "postgresql+psycopg", "postgresql")
"""URL schemes ``database.url`` accepts (``postgresql`` means ``postgresql+psycopg``)."""


def _validate_database(database: DatabaseConfig) -> None:
    scheme, sep, rest = database.url.partition("://")
    if not sep or scheme not in DATABASE_SCHEMES:
        raise ConfigError(
            f"database.url: scheme {scheme + sep if sep else database.url!r} is not supported;"
            " use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE"
        )
    if scheme == "sqlite" and not rest.startswith("/"):
        raise ConfigError("database.url: write SQLite as sqlite:///PATH (three slashes)")
    if scheme != "sqlite":
        userinfo = rest.partition("/")[0].rpartition("@")[0]
        if ":" in userinfo:
            raise ConfigError(
                "database.url: a password is never part of the URL; put it in a file named by"
                " database.password_file or a variable named by database.password_env"
            )
    if database.password_file is not None:
        _readable(database.password_file, "database.password_file")
        if database.password_env:
            raise ConfigError("database.password_env: give password_file or password_env, not both")
    if database.start_timeout_seconds < 0:
        raise ConfigError("database.start_timeout_seconds: must be 0 or more")


def is_loopback(address: str) -> bool:
    """Whether ``host:port`` names this machine only (127.0.0.0/8, ::1, localhost, a Unix
    socket): what travels there does not cross a network."""
    if address.startswith("unix:"):
        return True
    host = address.rpartition(":")[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate(config: Config) -> None:
    parse_address(config.server.address, key="server.address")
    _validate_database(config.database)
    plain = not config.tls.enabled and not config.server.insecure
    if plain and not is_loopback(config.server.address):
        raise ConfigError(
            f"server.address: {config.server.address} is not a loopback address and TLS is"
            " off, so tokens and documents would cross the network in the clear; enable"
            " [tls], listen on 127.0.0.1, or write server.insecure = true"
        )
    if config.server.http_address:
        parse_address(config.server.http_address, key="server.http_address")
        if plain and not is_loopback(config.server.http_address):
            raise ConfigError(
                f"server.http_address: {config.server.http_address} is not a loopback address"
                " and TLS is off, so tokens and documents would cross the network in the clear;"
                " enable [tls], listen on 127.0.0.1, or write server.insecure = true"
            )
    if config.server.io_threads < 1:
        raise ConfigError("server.io_threads: at least 1 thread is needed for blocking work")
    _validate_limits(config.limits)
    _validate_notify(config.notify)
    if config.server.metrics_address:
        parse_address(config.server.metrics_address, key="server.metrics_address")
    if config.tls.enabled:
        for name in ("certificate", "private_key"):
            path = getattr(config.tls, name)
            if path is None:
                raise ConfigError(f"tls.{name}: required when tls.enabled is true")
            _readable(path, f"tls.{name}")
        if config.tls.client_ca is not None:
            _readable(config.tls.client_ca, "tls.client_ca")
    for name, client in config.clients.items():
        if not client.roles:
            raise ConfigError(f"clients.{name}.roles: a client needs at least one role")
        if not (client.token_file or client.token_sha256 or client.certificate_sha256):
            raise ConfigError(
                f"clients.{name}: give token_file, token_sha256 or certificate_sha256"
            )
        if client.token_file is not None:
            _readable(client.token_file, f"clients.{name}.token_file")
        if client.certificate_sha256:
            _check_fingerprint(client.certificate_sha256, f"clients.{name}.certificate_sha256")
        if client.calls_per_second is not None and client.calls_per_second <= 0:
            raise ConfigError(f"clients.{name}.calls_per_second: must be more than 0")
        if client.burst is not None and client.burst < 1:
            raise ConfigError(f"clients.{name}.burst: must be at least 1")
    for alias, key in config.keys.items():
        try:
            Pkcs11Uri.parse(key.uri)
        except HsmError as exc:
            raise ConfigError(f"keys.{alias}.uri: {exc}") from None
        if not key.pin_file and not key.pin_env:
            raise ConfigError(f"keys.{alias}: give pin_file or pin_env (PINs are never inline)")
        if key.pin_file is not None:
            _readable(key.pin_file, f"keys.{alias}.pin_file")
        if key.certificate is not None:
            _readable(key.certificate, f"keys.{alias}.certificate")
        for i, chain in enumerate(key.chain):
            _readable(chain, f"keys.{alias}.chain[{i}]")
        for image in ("seal_image", "signer_image"):
            path = getattr(key, image)
            if path is not None:
                _readable(path, f"keys.{alias}.{image}")
        for client_name in key.clients:
            if client_name not in config.clients:
                raise ConfigError(
                    f"keys.{alias}.clients: {client_name!r} is not a configured client"
                )
    if config.ledger.key and config.ledger.key not in config.keys:
        raise ConfigError(f"ledger.key: {config.ledger.key!r} is not a configured key alias")
    _validate_archive(config.archive)
    _validate_exchange(config)
    _validate_csc(config.csc)
    for name, provider in config.remote.items():
        _validate_remote(name, provider)
    side = config.client
    for name in ("ca_file", "certificate", "private_key"):
        path = getattr(side, name)
        if path is not None:
            _readable(path, f"client.{name}")
    if (side.certificate is None) != (side.private_key is None):
        raise ConfigError("client.private_key: give client.certificate and private_key together")
    if side.certificate is not None and side.ca_file is None:
        raise ConfigError("client.ca_file: a client certificate needs TLS, so give the server's CA")
    for i, certificate in enumerate(config.ledger.certificates):
        _readable(certificate, f"ledger.certificates[{i}]")
    for i, anchor in enumerate(config.trust.anchors):
        _readable(anchor, f"trust.anchors[{i}]")
    if config.verify.algorithms is not None:
        _readable(config.verify.algorithms, "verify.algorithms")
    if config.storage.group:
        try:
            grp.getgrnam(config.storage.group)
        except KeyError:
            raise ConfigError(
                f"storage.group: no group {config.storage.group!r} on this machine"
            ) from None
    if config.storage.backend == "s3" and not config.storage.s3.endpoint:
        raise ConfigError("storage.s3.endpoint: required when storage.backend is 's3'")
    if config.storage.s3.retention_mode and config.storage.s3.retention_days < 1:
        raise ConfigError("storage.s3.retention_days: must be at least 1 with a retention_mode")
    if config.storage.direct_transfer and config.storage.backend != "s3":
        raise ConfigError(
            "storage.direct_transfer: needs storage.backend = 's3' (clients cannot reach a"
            " filesystem store); turn it off or use S3"
        )
    if not 1 <= config.storage.direct_url_seconds <= 7 * 24 * 3600:
        raise ConfigError(
            "storage.direct_url_seconds: between 1 and 604800 (7 days, the most S3 allows)"
        )


def _validate_package_limits(config: Config) -> None:
    exchange = config.exchange
    for name in (
        "max_package_bytes",
        "max_attachments",
        "max_attachment_bytes",
        "max_expanded_bytes",
        "max_zip_ratio",
        "max_delivery_attempts",
        "max_forward_attempts",
    ):
        if getattr(exchange, name) < 1:
            raise ConfigError(f"exchange.{name}: must be at least 1")
    room = config.server.max_message_bytes - MESSAGE_RESERVE
    if exchange.max_package_bytes > room:
        raise ConfigError(
            f"exchange.max_package_bytes: {exchange.max_package_bytes} does not fit a Delivery"
            f" under server.max_message_bytes ({config.server.max_message_bytes}, of which"
            f" {MESSAGE_RESERVE} are kept for its other fields); at most {room}"
        )


def _validate_csc(csc: CscConfig) -> None:
    if csc.address:
        parse_address(csc.address, key="csc.address")
    for name in ("token_seconds", "sad_seconds"):
        if getattr(csc, name) <= 0:
            raise ConfigError(f"csc.{name}: must be more than 0 seconds")
    if csc.max_batch < 1:
        raise ConfigError("csc.max_batch: at least 1 hash per authorisation")
    if (csc.certificate is None) != (csc.private_key is None):
        raise ConfigError("csc.private_key: give csc.certificate and private_key together")
    if csc.client_ca is not None:
        if csc.certificate is None:
            raise ConfigError("csc.client_ca: mutual TLS needs csc.certificate and private_key")
        _readable(csc.client_ca, "csc.client_ca")
    for uri in csc.redirect_uris:
        if not uri.startswith("https://") or "#" in uri:
            raise ConfigError(
                f"csc.redirect_uris: {uri!r} must be an https:// address without a fragment"
            )
    for name in ("certificate", "private_key"):
        path = getattr(csc, name)
        if path is not None:
            _readable(path, f"csc.{name}")


def _validate_remote(name: str, provider: RemoteProviderConfig) -> None:
    where = f"remote.{name}"
    if not provider.url.startswith(("https://", "http://")):
        raise ConfigError(f"{where}.url: give the provider's http(s) URL")
    if not provider.client_id:
        raise ConfigError(f"{where}.client_id: required (SmartCA: the sp_id)")
    if provider.client_secret_file is None and not provider.client_secret_env:
        raise ConfigError(
            f"{where}: give client_secret_file or client_secret_env (secrets are never inline)"
        )
    if provider.client_secret_file is not None:
        _readable(provider.client_secret_file, f"{where}.client_secret_file")
    if provider.ca_file is not None:
        _readable(provider.ca_file, f"{where}.ca_file")
    for key in ("approval_seconds", "poll_seconds", "timeout_seconds"):
        if getattr(provider, key) <= 0:
            raise ConfigError(f"{where}.{key}: must be more than 0 seconds")
    if provider.multisign < 1:
        raise ConfigError(f"{where}.multisign: at least 1 document per approval")


def _validate_exchange(config: Config) -> None:
    exchange = config.exchange
    if not exchange.hub_id:
        return
    if exchange.hub_id not in exchange.hubs:
        raise ConfigError(f"exchange.hub_id: {exchange.hub_id!r} is not one of [exchange.hubs]")
    if exchange.hub_retry_seconds <= 0:
        raise ConfigError("exchange.hub_retry_seconds: must be more than 0")
    _validate_package_limits(config)
    for name, hub in exchange.hubs.items():
        if hub.parent and hub.parent not in exchange.hubs:
            raise ConfigError(f"exchange.hubs.{name}.parent: no hub {hub.parent!r}")
        for peer in hub.peers:
            if peer not in exchange.hubs:
                raise ConfigError(f"exchange.hubs.{name}.peers: no hub {peer!r}")
        if hub.address:
            parse_address(hub.address, key=f"exchange.hubs.{name}.address")
        for i, fingerprint in enumerate(hub.certificate_sha256):
            if len(fingerprint) != 64 or any(c not in string.hexdigits for c in fingerprint):
                raise ConfigError(
                    f"exchange.hubs.{name}.certificate_sha256[{i}]: not a SHA-256 fingerprint"
                    " (64 hex digits)"
                )
        for i, fingerprint in enumerate(hub.tls_certificate_sha256):
            _check_fingerprint(fingerprint, f"exchange.hubs.{name}.tls_certificate_sha256[{i}]")
    if exchange.key and exchange.key not in config.keys:
        raise ConfigError(f"exchange.key: {exchange.key!r} is not a configured key alias")
    for name in ("directory", "client_certificate", "client_key", "server_ca", "hub_token_file"):
        path = getattr(exchange, name)
        if path is not None:
            _readable(path, f"exchange.{name}")
    if (exchange.client_certificate is None) != (exchange.client_key is None):
        raise ConfigError("exchange.client_key: give client_certificate and client_key together")
    if exchange.client_certificate is not None and exchange.server_ca is None:
        raise ConfigError(
            "exchange.server_ca: hub links with a client certificate trust only this CA (never"
            " the system's roots); give the CA that issued the other hubs' server certificates"
        )
    if exchange.client_certificate is None and exchange.hub_token_file is not None:
        for name, hub in exchange.hubs.items():
            if name != exchange.hub_id and hub.address and not is_loopback(hub.address):
                raise ConfigError(
                    f"exchange.hub_token_file: the hub token would travel in the clear to hub"
                    f" {name} at {hub.address}; hub links off this machine use mutual TLS"
                    " (client_certificate, client_key, server_ca)"
                )


def _readable(path: Path, key: str) -> None:
    if not path.exists():
        raise ConfigError(f"{key}: {path} does not exist")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{key}: {path} is not readable")


def _validate_archive(archive: ArchiveConfig) -> None:
    for name in ("margin_days", "concurrency", "workers"):
        if getattr(archive, name) < (0 if name == "margin_days" else 1):
            raise ConfigError(
                f"archive.{name}: must be at least {0 if name == 'margin_days' else 1}"
            )
    for name in ("interval_seconds", "rate_per_second", "retry_seconds", "max_retry_seconds"):
        if getattr(archive, name) <= 0:
            raise ConfigError(f"archive.{name}: must be above 0")
    for i, url in enumerate(archive.tsa_urls):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"archive.tsa_urls[{i}]: {url!r} is not an http(s) URL")
