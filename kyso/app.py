"""The application: the domain packages composed from configuration.

This is the only place that knows how the parts fit together (DESIGN.md: kyso → signer,
exchange, audit → hsm, storage). Servicers get what they need from here and stay thin.

Invariants: everything opened by :meth:`Application.open` is closed by :meth:`close`, in
reverse order, even when opening failed half-way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

import audit
import audit.schema
import storage
from kyso import db, schema
from kyso.authz import Identity
from kyso.catalogue import Catalogue
from kyso.config import Config
from kyso.errors import ConfigError

__all__ = ["Application", "components", "open_store"]

log = logging.getLogger(__name__)


def components() -> list[db.Component]:
    """Every component that owns tables, in dependency order."""
    return [schema.COMPONENT, db.Component("audit", audit.schema.MIGRATIONS)]


def open_store(config: Config) -> storage.ObjectStore:
    """The object store the configuration names (filesystem by default)."""
    if config.storage.backend == "filesystem":
        return storage.FilesystemStore(config.storage.path)
    s3 = config.storage.s3
    try:
        credentials = storage.S3Credentials.from_env()
    except storage.StorageConfigError as exc:
        raise ConfigError(f"storage.s3: {exc}") from None
    return storage.S3Store(
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
    head_signer: audit.HeadSigner | None = None
    _closers: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @classmethod
    def open(cls, config: Config) -> Application:
        stack = contextlib.ExitStack()
        try:
            if config.dev_responders.enabled:
                _start_dev_responders(config, stack)
            engine = db.create_engine(config.database.url)
            stack.callback(engine.dispose)
            db.upgrade(engine, components())
            store = open_store(config)
            ledger = audit.Ledger(engine)
            appender = audit.GroupCommitAppender(ledger)
            # Closed before the engine is disposed (ExitStack unwinds in reverse): what is
            # queued is committed, never dropped.
            stack.callback(appender.close)
            app = cls(
                config=config,
                engine=engine,
                store=store,
                catalogue=Catalogue(engine),
                ledger=ledger,
                appender=appender,
                _closers=stack,
            )
        except BaseException:
            stack.close()
            raise
        return app

    @property
    def signed_retention(self) -> storage.Retention | None:
        """The object lock that signed documents get (S3 with a retention mode), else None."""
        s3 = self.config.storage.s3
        if self.config.storage.backend != "s3" or not s3.retention_mode:
            return None
        return storage.Retention(storage.RetentionMode(s3.retention_mode), s3.retention_days)

    async def record(
        self,
        event_type: audit.EventType,
        *,
        actor: Identity,
        unit: str = "",
        document_sha256: str | None = None,
        refs: tuple[str, ...] = (),
        key: str | None = None,
        details: Mapping[str, str] | None = None,
    ) -> int:
        """Append an event to the ledger (group-committed) and return its index."""
        event = audit.Event(
            time=datetime.now(UTC),
            actor=actor.name,
            unit=unit or actor.unit or "-",
            type=event_type,
            document_sha256=document_sha256,
            refs=refs,
            key=key,
            details=dict(details or {}),
        )
        return await self.appender.append_async(event)

    def probes(self) -> Mapping[str, Callable[[], None]]:
        """Health probes, by dependency name (see ``kyso.health.SERVICE_NEEDS``)."""
        return {"database": self._probe_database, "storage": self.store.check}

    def _probe_database(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        self._closers.close()


def _start_dev_responders(config: Config, stack: contextlib.ExitStack) -> None:
    """Development only: the dev PKI's TSA, OCSP and CRL server, stopped with the application."""
    from kyso.dev.pki import load_pki
    from kyso.dev.responders import Responders

    home = config.dev_responders.home
    pki = load_pki(home / "pki") if home is not None else None
    if pki is None:
        raise ConfigError(
            "dev_responders.home: no development PKI there; run `kyso dev init --home DIR` first"
        )
    responders = Responders(pki=pki).start()
    stack.callback(responders.stop)
    log.info("development responders started", extra={"url": responders.url})
