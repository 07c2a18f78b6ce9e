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

import sqlalchemy as sa

from kyso import db
from kyso.config import Config

__all__ = ["Application"]

log = logging.getLogger(__name__)


def components() -> list[db.Component]:
    """Every component that owns tables, in dependency order."""
    return []


@dataclass
class Application:
    config: Config
    engine: sa.Engine
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
            app = cls(config=config, engine=engine, _closers=stack)
        except BaseException:
            stack.close()
            raise
        return app

    def probes(self) -> Mapping[str, Callable[[], None]]:
        """Health probes, by dependency name (see ``kyso.health.SERVICE_NEEDS``)."""
        return {"database": self._probe_database}

    def _probe_database(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        self._closers.close()


def _start_dev_responders(config: Config, stack: contextlib.ExitStack) -> None:
    """Development only: the dev PKI's TSA, OCSP and CRL server, stopped with the application."""
    from kyso.dev.pki import load_pki
    from kyso.dev.responders import Responders
    from kyso.errors import ConfigError

    home = config.dev_responders.home
    pki = load_pki(home / "pki") if home is not None else None
    if pki is None:
        raise ConfigError(
            "dev_responders.home: no development PKI there; run `kyso dev init --home DIR` first"
        )
    responders = Responders(pki=pki).start()
    stack.callback(responders.stop)
    log.info("development responders started", extra={"url": responders.url})
