"""Trust anchors: certificates from PEM/DER files and SHA-256 fingerprints, grouped in profiles.

A :class:`TrustProfile` names a hierarchy the operator trusts and holds its anchors. kyso bundles
no root certificate (validation.md: a root is bundled only once its fingerprint was checked
against the official publication); the two Vietnamese profiles are empty shells the operator
fills with the certificates or fingerprints published by NEAC and by Ban Cơ yếu Chính phủ.

Invariants: an anchor certificate is kept as DER bytes (profiles are picklable and cross process
boundaries to the verification workers); a fingerprint is 64 lower-case hex digits. A fingerprint
anchors a certificate only when a certificate with exactly that SHA-256 (of its DER) is found in
the verified document (CMS certificates or the DSS).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import pem, x509

from signer.verify.errors import TrustAnchorInvalid

__all__ = [
    "VN_GOVERNMENT_PKI",
    "VN_NATIONAL_ROOT",
    "TrustProfile",
    "certificate_fingerprint",
    "dev_profile",
    "load_certificates",
    "normalise_fingerprint",
    "vn_government_pki_profile",
    "vn_national_root_profile",
]

VN_NATIONAL_ROOT = "vn-national-root"
"""Profile name: the national root of public CAs (Vietnam National Root CA, run by NEAC)."""

VN_GOVERNMENT_PKI = "vn-government-pki"
"""Profile name: the government's specialised PKI (Ban Cơ yếu Chính phủ, RootCA chuyên dùng
Chính phủ G2 and its subordinate CAs)."""

_HEX64 = re.compile(r"[0-9a-f]{64}")


def certificate_fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate's DER, lower-case hex (the form fingerprints are compared in)."""
    return hashlib.sha256(der).hexdigest()


def normalise_fingerprint(text: str) -> str:
    """``text`` as 64 lower-case hex digits; colons, spaces and a ``sha256:`` prefix are allowed."""
    value = text.strip().lower().removeprefix("sha256:").replace(":", "").replace(" ", "")
    if not _HEX64.fullmatch(value):
        raise TrustAnchorInvalid(
            f"trust fingerprint {text.strip()[:80]!r} is not a SHA-256 fingerprint; give 64 hex "
            "digits (colons allowed), e.g. from `openssl x509 -noout -fingerprint -sha256`"
        )
    return value


def load_certificates(path: Path) -> tuple[bytes, ...]:
    """Every certificate in a PEM file (one or more blocks) or a DER file, as DER."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrustAnchorInvalid(
            f"trust anchor {path}: cannot read the file ({exc.strerror}); check the path"
        ) from exc
    ders: list[bytes] = []
    try:
        if pem.detect(raw):
            for kind, _headers, der in pem.unarmor(raw, multiple=True):
                if kind == "CERTIFICATE":
                    ders.append(bytes(der))
        else:
            ders.append(raw)
        for der in ders:
            x509.Certificate.load(der).native  # noqa: B018 - parse fully, fail at load time
    except (ValueError, TypeError) as exc:
        raise TrustAnchorInvalid(
            f"trust anchor {path}: not an X.509 certificate in PEM or DER form"
        ) from exc
    if not ders:
        raise TrustAnchorInvalid(f"trust anchor {path}: the PEM file holds no CERTIFICATE block")
    return tuple(ders)


@dataclass(frozen=True, kw_only=True)
class TrustProfile:
    """A named set of trust anchors: certificates (DER) and SHA-256 fingerprints.

    Build one with :meth:`from_sources`; an empty profile anchors nothing (a signature whose
    chain ends in no configured anchor is INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND).
    """

    name: str
    description: str = ""
    certificates: tuple[bytes, ...] = ()
    fingerprints: tuple[str, ...] = ()

    @classmethod
    def from_sources(
        cls,
        *,
        name: str,
        description: str = "",
        pem_files: Iterable[Path] = (),
        fingerprints: Iterable[str] = (),
    ) -> TrustProfile:
        """Load ``pem_files`` and normalise ``fingerprints``; raise TrustAnchorInvalid if bad."""
        certificates: list[bytes] = []
        for path in pem_files:
            certificates.extend(load_certificates(Path(path)))
        return cls(
            name=name,
            description=description,
            certificates=tuple(dict.fromkeys(certificates)),
            fingerprints=tuple(dict.fromkeys(normalise_fingerprint(f) for f in fingerprints)),
        )

    @property
    def empty(self) -> bool:
        return not self.certificates and not self.fingerprints


def vn_national_root_profile(
    *, pem_files: Iterable[Path] = (), fingerprints: Iterable[str] = ()
) -> TrustProfile:
    """The public-CA hierarchy under the Vietnam National Root CA (NEAC), filled by the operator."""
    return TrustProfile.from_sources(
        name=VN_NATIONAL_ROOT,
        description="Vietnam National Root CA (NEAC) and the public CAs under it",
        pem_files=pem_files,
        fingerprints=fingerprints,
    )


def vn_government_pki_profile(
    *, pem_files: Iterable[Path] = (), fingerprints: Iterable[str] = ()
) -> TrustProfile:
    """The government's specialised PKI (Ban Cơ yếu Chính phủ), filled by the operator."""
    return TrustProfile.from_sources(
        name=VN_GOVERNMENT_PKI,
        description="Ban Cơ yếu Chính phủ: RootCA chuyên dùng Chính phủ G2 and subordinate CAs",
        pem_files=pem_files,
        fingerprints=fingerprints,
    )


def dev_profile(root_pem: Path) -> TrustProfile:
    """The development root written by ``kyso dev init`` (tests and local runs only)."""
    return TrustProfile.from_sources(
        name="kyso-dev",
        description="kyso development root (not for production)",
        pem_files=(root_pem,),
    )
