"""A pyHanko ``Signer`` over an ``hsm.KeyRing`` key, with the per-key CMS work done once.

The signing-certificate-v2 attribute is the same for every signature of a key, but pyHanko
rebuilds and re-encodes it for each one (milliseconds of asn1crypto work). Here it is encoded
once per key and handed to pyHanko as a parsed-from-DER attribute, which asn1crypto re-emits
byte for byte. The hook used (``Signer._signed_attr_provider_spec``) is private pyHanko API:
it is only overridden on the pyHanko minor version it was written for (0.38), and the tests
compare the attributes with pyHanko's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pyhanko.version
from asn1crypto import cms, x509
from pyhanko.sign.attributes import CMSAttributeProvider
from pyhanko.sign.general import as_signing_certificate_v2, simple_cms_attribute
from pyhanko.sign.signers.pdf_cms import (
    CAdESSignedAttributeProviderSpec,
    PdfCMSSignedAttributes,
    Signer,
)
from pyhanko_certvalidator.registry import SimpleCertificateStore

from hsm import HsmError, KeyRing
from signer.errors import KeyUnavailable

__all__ = ["CACHE_SIGNED_ATTRIBUTES", "KeyRingSigner"]

CACHE_SIGNED_ATTRIBUTES = pyhanko.version.__version__.startswith("0.38.")
"""Whether the private-hook optimisation is active (only on the pyHanko version it targets)."""


class KeyRingSigner(Signer):
    """Signs with key ``alias`` of ``keyring``; embeds the certificate and its issuers."""

    def __init__(
        self,
        *,
        keyring: KeyRing,
        alias: str,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate],
    ) -> None:
        super().__init__(
            signing_cert=certificate,
            cert_registry=SimpleCertificateStore.from_certs(chain),  # type: ignore[no-untyped-call]
            embed_roots=False,
        )
        self._keyring = keyring
        self._alias = alias
        attribute = simple_cms_attribute(  # type: ignore[no-untyped-call]
            "signing_certificate_v2", as_signing_certificate_v2(certificate)
        )
        self._signing_certificate_attribute = cms.CMSAttribute.load(attribute.dump())
        self._signature_size: int = (int(certificate.public_key.bit_size) + 7) // 8
        if certificate.public_key.algorithm == "ec":
            self._signature_size = 2 * self._signature_size + 9  # DER SEQUENCE of two INTEGERs

    @property
    def signature_size(self) -> int:
        """Upper bound of a signature value's size in bytes."""
        return self._signature_size

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if dry_run:
            return bytes(self._signature_size)
        if digest_algorithm not in ("sha256", "sha384", "sha512"):
            raise KeyUnavailable(f"digest algorithm {digest_algorithm} is not supported by kyso")
        try:
            return await self._keyring.async_sign(
                self._alias,
                data,
                digest_algorithm=digest_algorithm,  # type: ignore[arg-type]
            )
        except HsmError as exc:
            raise KeyUnavailable(f"key {self._alias!r} could not sign: {exc}") from exc

    def _signed_attr_provider_spec(
        self,
        attr_settings: PdfCMSSignedAttributes,
        timestamper: Any = None,
        use_cades: bool = False,
        is_pdf_sig: bool = True,
    ) -> Any:
        if CACHE_SIGNED_ATTRIBUTES and use_cades and self.signed_attr_prov_spec is None:
            cert = self.signing_cert
            assert cert is not None
            return _CachedCadesSpec(
                attribute=self._signing_certificate_attribute,
                attr_settings=attr_settings,
                signing_cert=cert,
                is_pades=is_pdf_sig,
                timestamper=timestamper,
            )
        return super()._signed_attr_provider_spec(
            attr_settings, timestamper=timestamper, use_cades=use_cades, is_pdf_sig=is_pdf_sig
        )


class _FixedAttribute(CMSAttributeProvider):
    attribute_type = "signing_certificate_v2"

    def __init__(self, attribute: cms.CMSAttribute) -> None:
        self._attribute = attribute

    async def get_attribute(self, dry_run: bool = False) -> cms.CMSAttribute:
        return self._attribute


class _CachedCadesSpec(CAdESSignedAttributeProviderSpec):
    """pyHanko's PAdES attribute spec with the signing-certificate-v2 attribute precomputed."""

    def __init__(self, *, attribute: cms.CMSAttribute, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._attribute = attribute

    def signed_attr_providers(
        self, data_digest: bytes, digest_algorithm: str
    ) -> Iterable[CMSAttributeProvider]:
        stock = super().signed_attr_providers(data_digest, digest_algorithm)
        for provider in stock:
            if provider.attribute_type == "signing_certificate_v2":
                yield _FixedAttribute(self._attribute)
            else:
                yield provider
