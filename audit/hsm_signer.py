"""The head signer over an HSM key: ``audit.HeadSigner`` implemented with ``hsm.KeyRing``.

The ledger's tree heads are signed by a dedicated key configured in the application's key
ring; this adapter picks the signature algorithm from the key itself (RSA: PKCS#1 v1.5 or PSS
with SHA-256; EC P-256: ECDSA-SHA256; EC P-384: ECDSA-SHA384).
"""

from __future__ import annotations

from audit.errors import HeadSigningFailed
from audit.heads import SignatureAlgorithm
from hsm import DigestAlgorithm, KeyRing

__all__ = ["KeyRingHeadSigner"]


class KeyRingHeadSigner:
    """Signs tree heads with key ``alias`` of ``ring`` (the ring stays the caller's to close)."""

    __slots__ = ("_algorithm", "_alias", "_certificate", "_digest", "_pss", "_ring")

    def __init__(self, ring: KeyRing, *, alias: str, pss: bool = False) -> None:
        info = ring.key_info(alias)
        self._digest: DigestAlgorithm = "sha256"
        if info.key_type == "rsa":
            self._algorithm = (
                SignatureAlgorithm.RSA_PSS_SHA256 if pss else SignatureAlgorithm.RSA_PKCS1V15_SHA256
            )
        elif pss:
            raise HeadSigningFailed(f"key {alias!r} is an EC key; PSS applies to RSA keys only")
        elif info.size == 256:
            self._algorithm = SignatureAlgorithm.ECDSA_SHA256
        elif info.size == 384:
            self._algorithm = SignatureAlgorithm.ECDSA_SHA384
            self._digest = "sha384"
        else:
            raise HeadSigningFailed(
                f"key {alias!r} ({info.algorithm}) cannot sign tree heads; use an RSA,"
                " EC P-256 or EC P-384 key"
            )
        self._ring = ring
        self._alias = alias
        self._pss = pss
        # The ring gives an asn1crypto certificate; its dump() is the DER encoding.
        self._certificate = bytes(ring.certificate(alias).dump())

    @property
    def certificate(self) -> bytes:
        """The key's DER certificate."""
        return self._certificate

    @property
    def algorithm(self) -> SignatureAlgorithm:
        """The signature algorithm this key produces."""
        return self._algorithm

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` on the token (hashed there or by the ring's workers)."""
        signature: bytes = self._ring.sign(
            self._alias, data, digest_algorithm=self._digest, pss=self._pss
        )
        return signature
