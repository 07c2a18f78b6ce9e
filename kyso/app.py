"""The application: the domain packages composed from configuration.

This is the only place that knows how the parts fit together (DESIGN.md: kyso → signer,
exchange, audit → hsm, storage). Servicers get what they need from here and stay thin.

Invariants: everything opened by :meth:`Application.open` is closed by :meth:`close`, in
reverse order, even when opening failed half-way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import grp
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

import audit
import audit.schema
import exchange.schema
import hsm
import signer
import signer.schema
import storage
import workers
from audit.hsm_signer import KeyRingHeadSigner
from exchange.directory import Directory
from exchange.edxml.dsig import TrustPolicy
from exchange.edxml.safexml import Limits
from exchange.routing.router import Router
from kyso import db, schema
from kyso.authz import Identity
from kyso.catalogue import Catalogue
from kyso.certificates import read_certificates
from kyso.config import Config
from kyso.errors import ConfigError, FailedPrecondition
from kyso.notify import schema as notify_schema
from kyso.notify.citizens import Citizens, SmsGateway, ZnsGateway
from kyso.notify.runner import Notifier
from kyso.notify.webhooks import Webhooks, WebhookSettings
from kyso.operations.ledger import EventLog
from kyso.operations.refusals import Refusals
from kyso.operations.running import Blocking, Executors
from signer import verify
from signer.fetches import FetchTally
from signer.twophase import SessionStore, TwoPhaseSigner

if TYPE_CHECKING:
    from signer.archive_pool import RenewalPool

__all__ = ["Application", "components", "open_store"]

log = logging.getLogger(__name__)


def components() -> list[db.Component]:
    """Every component that owns tables, in dependency order."""
    return [
        schema.COMPONENT,
        db.Component("audit", audit.schema.MIGRATIONS),
        db.Component("exchange", exchange.schema.MIGRATIONS),
        db.Component("signing", signer.schema.MIGRATIONS),
        notify_schema.COMPONENT,
    ]


def operators_group(config: Config) -> int | None:
    """The id of ``storage.group`` (checked to exist when the configuration was loaded)."""
    return grp.getgrnam(config.storage.group).gr_gid if config.storage.group else None


def open_store(config: Config) -> storage.ObjectStore:
    """The object store the configuration names (filesystem by default)."""
    return store_opener(config)()


def store_opener(config: Config) -> Callable[[], storage.ObjectStore]:
    """A picklable function that opens the configured store: in this process, or in a worker
    process that reads and writes the store itself (the signing workers)."""
    if config.storage.backend == "filesystem":
        return functools.partial(
            storage.FilesystemStore, config.storage.path, group=operators_group(config)
        )
    s3 = config.storage.s3
    try:
        credentials = storage.S3Credentials.from_env()
    except storage.StorageConfigError as exc:
        raise ConfigError(f"storage.s3: {exc}") from None
    return functools.partial(
        storage.S3Store,
        storage.S3Config(
            endpoint=s3.endpoint,
            bucket=s3.bucket,
            secure=s3.secure,
            ca_bundle=s3.ca_file,
            region=s3.region,
            object_lock=bool(s3.retention_mode),
        ),
        credentials=credentials,
    )


@dataclass
class Application:
    config: Config
    engine: sa.Engine
    store: storage.ObjectStore
    catalogue: Catalogue
    ledger: audit.Ledger
    appender: audit.GroupCommitAppender
    events: EventLog
    executors: Executors
    two_phase: TwoPhaseSigner
    sessions: SessionStore
    pdf_policy: verify.VerificationPolicy
    package_policy: TrustPolicy
    keyring: hsm.KeyRing | None = None
    pdf_signer: signer.PdfSigningService | None = None
    head_signer: audit.HeadSigner | None = None
    router: Router | None = None
    directory: Directory | None = None
    verifier: verify.Verifier | None = None
    outbox_listeners: list[Callable[[], None]] = field(default_factory=list)
    refusals: Refusals | None = None
    webhooks: Webhooks | None = None
    citizens: Citizens | None = None
    notifier: Notifier | None = None
    """Started by the server (``kyso.notify.runner``); None in a process that delivers none."""
    fetches: FetchTally = field(default_factory=FetchTally)
    """Every TSA request and OCSP/CRL fetch made to sign, renew or verify online (the signing,
    renewal and verification workers' and the two-phase signer's), for the metrics."""
    _renewal: RenewalPool | None = None
    _renewal_lock: threading.Lock = field(default_factory=threading.Lock)
    _closers: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @classmethod
    def open(cls, config: Config) -> Application:
        stack = contextlib.ExitStack()
        try:
            db.restrict_sqlite(config.database.url, group=operators_group(config))
            engine = db.open_engine(config.database)
            stack.callback(engine.dispose)
            db.wait_until_reachable(engine, timeout=config.database.start_timeout_seconds)
            db.upgrade(engine, components())
            store = open_store(config)
            ledger = audit.Ledger(engine)
            appender = audit.GroupCommitAppender(ledger)
            # Closed before the engine is disposed (ExitStack unwinds in reverse): what is
            # queued is committed, never dropped.
            stack.callback(appender.close)
            executors = open_executors(config)
            stack.callback(executors.close)
            if config.keys:  # this process reads the keys' PINs: no core file may hold one
                workers.forbid_core_dumps()
            keyring = open_keyring(config)
            if keyring is not None:
                stack.callback(keyring.close)
            settings = signer_settings(config)
            package_policy = package_trust(config)
            fetches = FetchTally()
            pdf_signer = open_pdf_signer(config, keyring, settings, fetches)
            if pdf_signer is not None:
                stack.callback(pdf_signer.close)
            app = cls(
                config=config,
                engine=engine,
                store=store,
                catalogue=Catalogue(engine),
                ledger=ledger,
                appender=appender,
                events=EventLog(appender),
                executors=executors,
                keyring=keyring,
                pdf_signer=pdf_signer,
                two_phase=two_phase_signer(config, settings, fetches),
                fetches=fetches,
                sessions=SessionStore(engine),
                pdf_policy=verification_policy(config),
                package_policy=package_policy,
                head_signer=(
                    KeyRingHeadSigner(keyring, alias=config.ledger.key)
                    if keyring is not None and config.ledger.key
                    else None
                ),
                _closers=stack,
            )
            app.refusals = Refusals(app.events)
            app.webhooks, app.citizens = open_notify(config, engine)
            app.directory, app.router = open_exchange(
                config, engine, store, package_policy, key_fingerprints(keyring)
            )
            app.verifier = verify.Verifier(workers=config.signing.workers or None, tally=fetches)
            stack.callback(app.verifier.close)
        except BaseException:
            stack.close()
            raise
        return app

    def renewal_pool(self) -> RenewalPool:
        """The archive renewal workers, started on first use (``[archive] workers``); raises
        ``FailedPrecondition`` when no TSA is configured for renewal. Blocking (the workers'
        start): call it from a thread."""
        with self._renewal_lock:
            return self._renewal_pool()

    def _renewal_pool(self) -> RenewalPool:
        if self._renewal is None:
            from signer.archive import ArchiveSettings
            from signer.archive_pool import RenewalPool as Pool

            urls = self.config.archive.tsa_urls or self.config.signing.tsa_urls
            if not urls:
                raise FailedPrecondition(
                    "archive renewal needs a time-stamping authority: set [archive] tsa_urls "
                    "or [signing] tsa_urls"
                )
            settings = signer_settings(self.config)
            self._renewal = Pool(
                settings=ArchiveSettings(
                    tsa_urls=tuple(urls),
                    tsa_timeout=settings.tsa_timeout,
                    revocation_timeout=settings.revocation_timeout,
                    trust_roots=settings.trust_roots,
                    max_document_size=settings.max_document_size,
                ),
                workers=self.config.archive.workers,
                tally=self.fetches,
            )
            self._closers.callback(self._renewal.close)
        return self._renewal

    @property
    def signed_retention(self) -> storage.Retention | None:
        """The object lock that signed documents get (S3 with a retention mode), else None."""
        s3 = self.config.storage.s3
        if self.config.storage.backend != "s3" or not s3.retention_mode:
            return None
        return storage.Retention(storage.RetentionMode(s3.retention_mode), s3.retention_days)

    def outbox_written(self) -> None:
        """Rows may have been added to the exchange outbox: wake whoever forwards them now,
        rather than at their next poll."""
        for listener in self.outbox_listeners:
            listener()

    async def record_denied(self, identity: Identity, method: str, reason: str) -> None:
        """Count a refusal for the ledger (the interceptor calls this for every one: not
        authenticated, not authorised, a key or unit not the caller's). The ledger gets one
        event per caller and minute (``kyso.operations.refusals``)."""
        if self.refusals is not None:
            self.refusals.note(identity, method, reason)

    def verification_policy(self, *, online: bool = False) -> verify.VerificationPolicy:
        """How PDFs are verified here (see :func:`verification_policy`), read once at open."""
        return dataclasses.replace(self.pdf_policy, online=online)

    def package_trust(self) -> TrustPolicy:
        """How edXML package signatures are verified here (see :func:`package_trust`)."""
        return self.package_policy

    def probes(self) -> Mapping[str, Callable[[], None]]:
        """Health probes, by dependency name (see ``kyso.health.SERVICE_NEEDS``)."""
        probes: dict[str, Callable[[], None]] = {
            "database": self._probe_database,
            "storage": self.store.check,
        }
        if self.keyring is not None:
            probes["hsm"] = self._probe_hsm
        return probes

    def _probe_hsm(self) -> None:
        """Sign a probe digest with every key: a token that is gone or failing shows here
        even when no request has touched it yet (a passive check cannot see a removed token
        whose sessions are still open)."""
        assert self.keyring is not None
        digest = hashlib.sha256(b"kyso health probe").digest()
        for alias in self.keyring.aliases():
            self.keyring.sign_digest(alias, digest, digest_algorithm="sha256")

    def _probe_database(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        self._closers.close()


def _secret(path: Path | None, env: str, key: str) -> str:
    """A gateway secret from its file or environment variable (never from the configuration)."""
    if path is not None:
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{key}_file: cannot read {path} ({exc.strerror})") from None
    value = os.environ.get(env, "")
    if not value:
        raise ConfigError(f"{key}_env: the variable {env} is not set")
    return value


def open_notify(config: Config, engine: sa.Engine) -> tuple[Webhooks, Citizens]:
    """Webhook subscriptions and the citizens' gateways of ``[notify]``."""
    settings = config.notify
    webhooks = Webhooks(
        engine,
        WebhookSettings(
            allow=settings.webhook_allow,
            http_loopback=settings.webhook_http_loopback,
            timeout=settings.webhook_timeout_seconds,
            secret_overlap=timedelta(hours=settings.secret_overlap_hours),
            ca_file=settings.webhook_ca_file,
        ),
    )
    zns = sms = None
    if settings.zns.url:
        zns = ZnsGateway(
            url=settings.zns.url,
            access_token=_secret(
                settings.zns.access_token_file,
                settings.zns.access_token_env,
                "notify.zns.access_token",
            ),
            template_id=settings.zns.template_id,
            timeout=settings.zns.timeout_seconds,
        )
    if settings.sms.url:
        sms = SmsGateway(
            url=settings.sms.url,
            api_key=_secret(
                settings.sms.api_key_file, settings.sms.api_key_env, "notify.sms.api_key"
            ),
            secret_key=_secret(
                settings.sms.secret_key_file, settings.sms.secret_key_env, "notify.sms.secret_key"
            ),
            brandname=settings.sms.brandname,
            template=settings.sms.template,
            unicode=settings.sms.unicode,
            sms_type=settings.sms.sms_type,
            timeout=settings.sms.timeout_seconds,
        )
    citizens = Citizens(engine, statuses=settings.citizen_statuses, zns=zns, sms=sms)
    return webhooks, citizens


def trust_anchors(config: Config) -> list[bytes]:
    """Every certificate of the configured anchor files (PEM bundles or DER), as DER."""
    return [certificate.dump() for certificate in read_certificates(config.trust.anchors)]


def signer_settings(config: Config) -> signer.SignerSettings:
    """The PAdES settings shared by server sealing and two-phase signing."""
    from asn1crypto import x509

    return signer.SignerSettings(
        max_document_size=config.signing.max_document_bytes,
        tsa_urls=config.signing.tsa_urls,
        tsa_timeout=config.signing.tsa_timeout_seconds,
        trust_roots=tuple(x509.Certificate.load(der) for der in trust_anchors(config)),
    )


def two_phase_signer(
    config: Config, settings: signer.SignerSettings, fetches: FetchTally | None = None
) -> TwoPhaseSigner:
    """Prepare/complete for officials' tokens; the keys' chains help build officials' chains.
    ``fetches``: where its TSA requests and revocation fetches are counted."""
    chains = [path for key in config.keys.values() for path in key.chain]
    return TwoPhaseSigner(
        settings=settings, known_intermediates=read_certificates(chains), tally=fetches
    )


def verification_policy(config: Config, *, online: bool = False) -> verify.VerificationPolicy:
    """How PDFs are verified here (VerifyPdf and attached PDFs alike): the configured anchors
    and fingerprints, the ``[verify] algorithms`` rules (else the shipped ones), offline unless
    asked; online, only what ``[trust] fetch_allow`` lists or certificates chaining to the
    anchors name is fetched, never a private address unless listed (``signer.verify.fetching``)."""
    from signer.verify.algorithms import AlgorithmRules, AlgorithmRulesInvalid

    profile = verify.TrustProfile.from_sources(
        name="configured",
        description="[trust] anchors and fingerprints of this server",
        pem_files=config.trust.anchors,
        fingerprints=config.trust.fingerprints,
    )
    try:
        fetching = verify.FetchRules(config.trust.fetch_allow)
    except ValueError as exc:
        raise ConfigError(f"trust.fetch_allow: {exc}") from None
    try:
        rules = (
            AlgorithmRules.load(config.verify.algorithms)
            if config.verify.algorithms is not None
            else AlgorithmRules.shipped()
        )
    except AlgorithmRulesInvalid as exc:
        raise ConfigError(f"verify.algorithms: {exc}") from exc
    return verify.VerificationPolicy(
        trust=(profile,), online=online, fetching=fetching, algorithms=rules
    )


def package_trust(config: Config) -> TrustPolicy:
    """How edXML package signatures are verified: chains to the configured anchors, and
    unsigned packages refused unless ``exchange.require_signature`` is off."""
    from cryptography import x509

    return TrustPolicy(
        anchors=[x509.load_der_x509_certificate(der) for der in trust_anchors(config)],
        require_signature=config.exchange.require_signature,
    )


def key_fingerprints(keyring: hsm.KeyRing | None) -> dict[str, str]:
    """The SHA-256 (hex) of each key's certificate, by alias."""
    if keyring is None:
        return {}
    return {
        alias: hashlib.sha256(keyring.certificate(alias).dump()).hexdigest()
        for alias in keyring.aliases()
    }


def package_limits(config: Config) -> Limits:
    """The limits every package arriving at this hub is read within (``[exchange]``)."""
    settings = config.exchange
    return Limits(
        max_package_bytes=settings.max_package_bytes,
        max_attachments=settings.max_attachments,
        max_attachment_bytes=settings.max_attachment_bytes,
        max_expanded_bytes=settings.max_expanded_bytes,
        max_zip_ratio=settings.max_zip_ratio,
    )


DIRECTORY_MAX_AGE = 30.0
"""Seconds the in-memory routing index of the unit directory is trusted before a reload."""


def open_exchange(
    config: Config,
    engine: sa.Engine,
    store: storage.ObjectStore,
    policy: TrustPolicy,
    keys: Mapping[str, str] | None = None,
) -> tuple[Directory | None, Router | None]:
    """The unit directory and this hub's router (both None when the server routes nothing).

    A package from a unit must be signed by a certificate bound to it or to its hub
    (``kyso.operations.bindings``); ``keys`` are the configured keys' certificate fingerprints.
    """
    from exchange.adapters import StoredPackages
    from exchange.hubs import Hub, Topology
    from kyso.operations.bindings import UnitSigners

    settings = config.exchange
    if not settings.hub_id:
        return None, None
    topology = Topology(
        [
            Hub(
                id=name,
                root_unit=hub.root_unit,
                parent_hub=hub.parent or None,
                address=hub.address,
                peers=hub.peers,
            )
            for name, hub in settings.hubs.items()
        ]
    )
    # Rebuilt from the database at least this often: an import by `kyso directory import` or
    # by another replica is routed by within DIRECTORY_MAX_AGE seconds without a restart.
    directory = Directory(engine, topology=topology, max_age=DIRECTORY_MAX_AGE)
    if settings.directory is not None and next(directory.units(), None) is None:
        with settings.directory.open(encoding="utf-8") as handle:
            count = directory.import_csv(handle)
        log.info("directory imported", extra={"units": count, "source": str(settings.directory)})
    router = Router(
        engine=engine,
        directory=directory,
        hub_id=settings.hub_id,
        store=StoredPackages(store),
        policy=policy,
        limits=package_limits(config),
        lease=timedelta(seconds=settings.lease_seconds),
        unit_certificates=UnitSigners(config, directory, keys or {}),
        max_delivery_attempts=settings.max_delivery_attempts,
        max_forward_attempts=settings.max_forward_attempts,
    )
    return directory, router


def key_specs(config: Config) -> list[hsm.KeySpec]:
    """The configured keys as hsm key specifications (PINs by reference, never read here)."""
    specs = []
    for alias, key in config.keys.items():
        pin = (
            hsm.PinSource.from_file(key.pin_file)
            if key.pin_file is not None
            else hsm.PinSource.from_env(key.pin_env)
        )
        specs.append(
            hsm.KeySpec(
                alias=alias,
                uri=hsm.Pkcs11Uri.parse(key.uri),
                pin=pin,
                module_path=key.module or config.hsm.module,
                chain_files=key.chain,
                certificate_file=key.certificate,
                allow_exportable=key.allow_exportable,
            )
        )
    return specs


def open_executors(config: Config) -> Executors:
    """One bounded pool per kind of blocking work (``kyso.operations.running``)."""
    limits = config.limits

    def pool(name: str, threads: int, *, queued: bool = True) -> Blocking:
        return Blocking(
            threads=threads,
            name=name,
            queue_limit=threads * limits.queue_per_thread if queued else None,
            saturated_after=limits.saturated_after_seconds,
        )

    return Executors(
        # Database and store calls are short and every RPC needs them: they queue rather than
        # fail, and a long queue shows as saturation in the health check.
        io=pool("io", config.server.io_threads, queued=False),
        transfer=pool("transfer", limits.transfer_threads),
        xml=pool("xml", limits.xml_threads),
        pdf=pool("pdf", limits.pdf_threads),
        health=pool("health", 2, queued=False),
    )


def open_keyring(config: Config) -> hsm.KeyRing | None:
    """Start the signing workers for the configured keys (None when no key is configured).

    The module's environment (``hsm.environment``) is set before the workers start: they are
    child processes and inherit it. Every key signs a probe before this returns.
    """
    if not config.keys:
        return None
    os.environ.update(config.hsm.environment)
    return hsm.KeyRing(key_specs(config), workers=config.hsm.workers)


def open_pdf_signer(
    config: Config,
    keyring: hsm.KeyRing | None,
    settings: signer.SignerSettings,
    fetches: FetchTally | None = None,
) -> signer.PdfSigningService | None:
    """The PAdES signer over every configured key except the ledger's; ``fetches``: where its
    workers' TSA requests and revocation fetches are counted."""
    if keyring is None:
        return None
    profiles = {
        alias: signer.KeyProfile(
            alias=alias,
            organisation=key.organisation,
            signer_image=key.signer_image,
            seal_image=key.seal_image,
        )
        for alias, key in config.keys.items()
        if alias != config.ledger.key
    }
    # PDF work is CPU-bound: it runs in a pool of signing processes, each with its own key ring
    # over the same keys (PKCS#11 never crosses a process boundary).
    return signer.PdfSigningService(
        keys=profiles,
        settings=settings,
        key_specs=[spec for spec in key_specs(config) if spec.alias in profiles],
        workers=config.signing.workers or None,
        # The workers read stored documents themselves: a large one never crosses a socket
        # from this process to a worker.
        store=store_opener(config),
        tally=fetches,
    )
