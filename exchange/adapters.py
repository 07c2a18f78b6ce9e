"""Adapters from the exchange ports to the project's hsm and storage packages.

- ``HsmSigningKey``: a ``SigningKey`` over a key of an ``hsm.KeyRing`` (the HSM signs; the key
  never leaves it). ``KeyRing.sign`` hashes with SHA-256 and returns PKCS#1 v1.5 for RSA and a
  DER ECDSA-Sig-Value for EC — exactly what the port asks for.
- ``StoredPackages``: a ``BatchPackageStore`` over a ``storage.ObjectStore`` (content-addressed,
  write-once, every read checked against its SHA-256); ``put_many`` uses the store's group
  commit when it has one (``storage.port.put_many``). Storage errors pass through unchanged:
  they are already precise (unavailable, full, integrity) and the application maps them.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from exchange.edxml.dsig import SignatureAlgorithm
from exchange.errors import SigningFailed
from hsm import KeyRing
from storage import ObjectStore
from storage.port import PutItem, put_many

__all__ = ["HsmSigningKey", "StoredPackages"]

PACKAGE_CONTENT_TYPE = "application/xml"


class HsmSigningKey:
    """The key ``alias`` of an hsm key ring, as the exchange's ``SigningKey``."""

    def __init__(self, *, ring: KeyRing, alias: str) -> None:
        self._ring = ring
        self._alias = alias
        # hsm hands out asn1crypto certificates; signxml and the verifier want cryptography's
        self._certificate = x509.load_der_x509_certificate(ring.certificate(alias).dump())
        self._chain = tuple(x509.load_der_x509_certificate(c.dump()) for c in ring.chain(alias))
        public = self._certificate.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            self._algorithm: SignatureAlgorithm = "rsa-sha256"
        elif isinstance(public, ec.EllipticCurvePublicKey):
            self._algorithm = "ecdsa-sha256"
        else:
            raise SigningFailed(
                f"key {alias!r} is neither RSA nor EC; edXML cannot be signed with it"
            )

    @property
    def algorithm(self) -> SignatureAlgorithm:
        return self._algorithm

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The issuers the key ring holds for the key (its configured chain), nearest first."""
        return self._chain

    def sign(self, data: bytes) -> bytes:
        return self._ring.sign(self._alias, data, digest_algorithm="sha256")


class StoredPackages:
    """Package bytes in object storage; refs are ``sha256/<hex>`` content addresses."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def put(self, data: bytes, /) -> str:
        stored = self._store.put(data, content_type=PACKAGE_CONTENT_TYPE, metadata={})
        return str(stored.ref)

    def put_many(self, datas: Sequence[bytes], /) -> list[str]:
        items = [PutItem(source=d, content_type=PACKAGE_CONTENT_TYPE) for d in datas]
        return [str(stored.ref) for stored in put_many(self._store, items)]

    def get(self, ref: str, /) -> bytes:
        with self._store.open(ref) as reader:
            return reader.read()
