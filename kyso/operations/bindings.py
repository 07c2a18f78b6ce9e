"""Which certificates may sign for a unit, and which hubs a package may come through.

A package from a unit (and a status packet a unit sets) must be signed by a certificate bound
to that unit, or by its hub on its behalf, stated in the package:
- bound to the unit: the certificate of a configured key whose ``keys.<alias>.unit`` is the
  unit or a unit above it (the ledger's key never signs packages);
- its hub, only when the package says ``kyso:SignedByHub`` = that hub and that hub serves the
  unit: the hub's pinned certificates (``exchange.hubs.<id>.certificate_sha256``), and, for
  this hub, the certificate of its own ``[exchange] key``.

A hub link is mutual TLS with a pinned peer: a hub's ``Forward`` is taken only when the call
presented a TLS client certificate pinned for that hub
(``exchange.hubs.<id>.tls_certificate_sha256`` or its client's ``certificate_sha256``); a call
without a client certificate only from loopback (development and tests on one machine).

A hub may hand this hub (``Forward``) only a package whose route, from the hub serving its
sender to the hub serving each recipient, reaches this hub directly from the calling hub.

This module imports nothing of ``kyso.app`` (the composition root builds ``UnitSigners``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

from exchange.directory import Directory
from exchange.errors import ExchangeError
from kyso.authz import Identity
from kyso.config import Config, normalise_fingerprint
from kyso.errors import PermissionDenied

__all__ = ["UnitSigners", "check_hub_link", "check_route"]


class UnitSigners:
    """The router's ``unit_certificates``: SHA-256 fingerprints allowed to sign for a unit.

    ``keys``: the fingerprint of each configured key's certificate, by alias.
    """

    def __init__(self, config: Config, directory: Directory, keys: Mapping[str, str]) -> None:
        settings = config.exchange
        self._directory = directory
        self._hub_id = settings.hub_id
        by_unit: dict[str, set[str]] = {}
        for alias, key in config.keys.items():
            if key.unit and alias != config.ledger.key and alias in keys:
                by_unit.setdefault(key.unit, set()).add(keys[alias])
        self._by_unit = {unit: frozenset(fps) for unit, fps in by_unit.items()}
        by_hub: dict[str, set[str]] = {
            name: {fp.lower() for fp in hub.certificate_sha256}
            for name, hub in settings.hubs.items()
        }
        if settings.key in keys and settings.hub_id:
            by_hub.setdefault(settings.hub_id, set()).add(keys[settings.key])
        self._by_hub = {hub: frozenset(fps) for hub, fps in by_hub.items()}

    def __call__(self, unit: str, signed_by_hub: str | None = None) -> frozenset[str]:
        if signed_by_hub is not None:
            if self._directory.serving_hub(unit) != signed_by_hub:
                return frozenset()
            return self._by_hub.get(signed_by_hub, frozenset())
        allowed: set[str] = set()
        for code in self._directory.lineage(unit):
            allowed |= self._by_unit.get(code, frozenset())
        return frozenset(allowed)


def check_route(
    directory: Directory, *, here: str, via_hub: str, sender: str, recipients: Iterable[str]
) -> None:
    """Return when every recipient's route from ``sender``'s hub reaches ``here`` directly from
    ``via_hub``; raise ``PermissionDenied`` otherwise."""
    origin = directory.serving_hub(sender)
    for recipient in recipients:
        try:
            path = directory.path(from_hub=origin, to_unit=recipient) if origin else ()
        except ExchangeError:
            path = ()
        hops = list(itertools.pairwise(path))
        if (via_hub, here) not in hops:
            shown = " → ".join(path) if path else "no route"
            raise PermissionDenied(
                f"hub {via_hub} may not hand this hub ({here}) a package from unit {sender} to"
                f" unit {recipient}: its route is {shown}"
            )


def check_hub_link(config: Config, actor: Identity, hub_id: str) -> None:
    """Return when ``actor``'s call came over the pinned mutual-TLS link of hub ``hub_id`` (or
    from loopback without a client certificate); raise ``PermissionDenied`` otherwise."""
    hub = config.exchange.hubs.get(hub_id)
    pins = {normalise_fingerprint(fp) for fp in hub.tls_certificate_sha256} if hub else set()
    client = config.clients.get(actor.name)
    if client is not None and client.certificate_sha256:
        pins.add(normalise_fingerprint(client.certificate_sha256))
    if not actor.certificate_sha256:
        if actor.loopback:
            return
        raise PermissionDenied(
            f"hub {hub_id} must call over mutual TLS with its pinned client certificate"
            f" (exchange.hubs.{hub_id}.tls_certificate_sha256); this call presented none"
        )
    if actor.certificate_sha256 not in pins:
        raise PermissionDenied(
            f"the TLS client certificate of this call (SHA-256 {actor.certificate_sha256[:16]}…)"
            f" is not pinned for hub {hub_id}; pin it in"
            f" exchange.hubs.{hub_id}.tls_certificate_sha256"
        )
