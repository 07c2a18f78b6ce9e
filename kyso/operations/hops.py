"""Hop receipts between hubs and the hub's own signing key (no protobuf here).

A hub that takes a hop (a package or a status packet from another hub) answers with a receipt
signed with its ``[exchange] key``; the sending hub closes its outbox row only after checking it.

Receipt bytes (canonical, UTF-8, one ``name=value`` per line, in this order)::

    kyso-hop-receipt/1
    hop=<hop id>
    sha256=<hex SHA-256 of the package or status packet received>
    hub=<receiving hub id>
    at=<ISO 8601 UTC time of receipt>

signed by the receiving hub's ``[exchange] key`` (RSA PKCS#1 v1.5 or ECDSA, SHA-256); the
certificate travels as PEM, the signing certificate first, then its issuers.

Invariant: a receipt is accepted only when its hop id, package SHA-256 and hub are the ones sent
to, its signature verifies with its certificate, that certificate is one pinned for the next
hub (``exchange.hubs.<id>.certificate_sha256``: a certificate of another hub, however well it
chains, is refused), and it chains to a configured anchor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification

from exchange.adapters import HsmSigningKey
from exchange.edxml.dsig import SigningKey
from kyso.app import Application
from kyso.authz import Identity
from kyso.errors import ConfigError, KysoError, PermissionDenied

__all__ = [
    "RECEIPT_FORMAT",
    "Receipt",
    "ReceiptInvalid",
    "SignedReceipt",
    "exchange_key",
    "exchange_key_for",
    "hub_identity",
    "sign_receipt",
    "verify_receipt",
]

RECEIPT_FORMAT = "kyso-hop-receipt/1"
_RECEIPT_FIELDS = ("hop", "sha256", "hub", "at")


class ReceiptInvalid(KysoError):
    """A next hub's receipt does not prove it took the hop (wrong fields, signature or chain)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """What a receiving hub attests: it holds ``sha256`` durably for hop ``hop_id`` since ``at``."""

    hop_id: str
    sha256: str
    hub: str
    at: datetime

    def canonical(self) -> bytes:
        """The exact bytes that are signed (see the module docstring)."""
        for value in (self.hop_id, self.sha256, self.hub):
            if not value or "\n" in value or "\r" in value:
                raise ReceiptInvalid("a receipt field is empty or spans lines")
        at = self.at.astimezone(UTC).isoformat(timespec="microseconds")
        lines = [
            RECEIPT_FORMAT,
            f"hop={self.hop_id}",
            f"sha256={self.sha256}",
            f"hub={self.hub}",
            f"at={at}",
        ]
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes) -> Receipt:
        """Read canonical receipt bytes; ``ReceiptInvalid`` when they are not exactly that form."""
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise ReceiptInvalid("the receipt is not UTF-8 text") from None
        lines = text.split("\n")
        if len(lines) != 6 or lines[0] != RECEIPT_FORMAT or lines[-1] != "":
            raise ReceiptInvalid(f"the receipt is not in the {RECEIPT_FORMAT} form")
        values: dict[str, str] = {}
        for name, line in zip(_RECEIPT_FIELDS, lines[1:5], strict=True):
            key, sep, value = line.partition("=")
            if key != name or not sep:
                raise ReceiptInvalid(f"the receipt's line for {name!r} is missing or misplaced")
            values[name] = value
        try:
            at = datetime.fromisoformat(values["at"])
        except ValueError:
            raise ReceiptInvalid("the receipt's time is not an ISO 8601 time") from None
        receipt = cls(hop_id=values["hop"], sha256=values["sha256"], hub=values["hub"], at=at)
        if receipt.canonical() != data:
            raise ReceiptInvalid("the receipt is not in canonical form")
        return receipt


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedReceipt:
    """A receipt as it travels: the canonical bytes, their signature, the signer's chain (PEM)."""

    receipt: bytes
    signature: bytes
    certificate_pem: bytes


def sign_receipt(
    receipt: Receipt, *, key: SigningKey, chain: Sequence[x509.Certificate] = ()
) -> SignedReceipt:
    """``receipt`` signed with this hub's ``key``, with the certificate chain to check it."""
    data = receipt.canonical()
    return SignedReceipt(
        receipt=data,
        signature=key.sign(data),
        certificate_pem=b"".join(c.public_bytes(Encoding.PEM) for c in (key.certificate, *chain)),
    )


def verify_receipt(
    response: SignedReceipt,
    *,
    hop_id: str,
    sha256: str,
    hub: str,
    anchors: Sequence[x509.Certificate],
    pinned: Collection[str],
) -> Receipt:
    """Check a next hub's answer (see the module's invariants); return the receipt.

    ``pinned``: the SHA-256 fingerprints (hex) of the certificates the next hub signs with.
    """
    receipt = Receipt.parse(response.receipt)
    expected = (hop_id, sha256, hub)
    if (receipt.hop_id, receipt.sha256, receipt.hub) != expected:
        raise ReceiptInvalid(
            f"hub {hub} answered a receipt for hop {receipt.hop_id} of {receipt.sha256[:12]}… at"
            f" hub {receipt.hub}, not for the hop it was sent"
        )
    try:
        certificates = x509.load_pem_x509_certificates(response.certificate_pem)
    except ValueError:
        raise ReceiptInvalid(f"hub {hub} sent no readable receipt certificate") from None
    leaf, issuers = certificates[0], certificates[1:]
    fingerprint = hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()
    if fingerprint not in {p.lower() for p in pinned}:
        raise ReceiptInvalid(
            f"hub {hub}'s receipt is signed by a certificate (SHA-256 {fingerprint[:16]}…) that is"
            f" not pinned for it; set exchange.hubs.{hub}.certificate_sha256 to its key's"
            " certificate"
        )
    public = leaf.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(response.signature, response.receipt, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(response.signature, response.receipt, ec.ECDSA(hashes.SHA256()))
        else:
            raise ReceiptInvalid(f"hub {hub} signed its receipt with neither RSA nor EC")
    except InvalidSignature:
        raise ReceiptInvalid(f"the signature on hub {hub}'s receipt does not verify") from None
    if not anchors:
        raise ReceiptInvalid("no trust anchor is configured to check hub receipts against")
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(anchors)))
        .time(datetime.now(UTC))
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, issuers)
    except verification.VerificationError as exc:
        raise ReceiptInvalid(
            f"hub {hub}'s receipt certificate does not chain to a trust anchor: {exc}"
        ) from exc
    return receipt


def exchange_key(app: Application) -> HsmSigningKey:
    """This hub's ``[exchange] key`` (signs built packages, status packets and receipts)."""
    alias = app.config.exchange.key
    if not alias or app.keyring is None:
        raise ConfigError(
            "exchange.key: this hub has no signing key for packages, statuses and receipts;"
            " name one of [keys]"
        )
    return HsmSigningKey(ring=app.keyring, alias=alias)


def exchange_key_for(app: Application, actor: Identity) -> HsmSigningKey:
    """This hub's ``[exchange] key``, to sign a package built for ``actor``: a key use like any
    other, so ``actor`` must be one of ``keys.<alias>.clients`` (``PermissionDenied``)."""
    key = exchange_key(app)
    alias = app.config.exchange.key
    if actor.name not in app.config.keys[alias].clients:
        raise PermissionDenied(
            f"client {actor.name!r} may not have packages signed with this hub's key {alias!r};"
            f" send a package it signed itself, or add it to keys.{alias}.clients"
        )
    return key


def hub_identity(app: Application) -> Identity:
    """The actor that the ledger names for what this hub does by itself (hops, statuses)."""
    settings = app.config.exchange
    return Identity(
        name=f"hub:{settings.hub_id}",
        unit=settings.hubs[settings.hub_id].root_unit,
        roles=frozenset({"hub"}),
    )
