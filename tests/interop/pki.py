"""The interoperability corpus's own test PKI, made by code (``cryptography``), once per session.

One root CA signs every signer certificate; the signers differ by what a verifier must notice:

- ``rsa`` / ``ec``: RSA-2048 and P-256 with digitalSignature + nonRepudiation (legitimate);
- ``crl``: RSA-2048 naming a CRL distribution point (an unserved loopback URL): it can only be
  trusted with the CRL the document itself carries (iText embeds it in the signed attribute
  ``adbe-revocationInfoArchival``);
- ``nokeyusage``: key usage keyEncipherment only (not a signing certificate);
- ``expired``: valid from three years ago until one year ago.

Each signer is written as a PEM key, a PEM certificate and a PKCS#12 bundle (key, certificate,
root; password :data:`P12_PASSWORD`) that Java's KeyStore and NSS's ``pk12util`` import.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

__all__ = ["P12_PASSWORD", "InteropPki", "Signer", "make_pki"]

P12_PASSWORD = "interop"
CRL_URL = "http://127.0.0.1:9/interop-root.crl"

_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Signer:
    name: str
    key_pem: Path
    cert_pem: Path
    cert_der: bytes
    p12: Path
    key: _PrivateKey
    cert: x509.Certificate


@dataclass(frozen=True)
class InteropPki:
    root_pem: Path
    root_der: bytes
    root: x509.Certificate
    crl_der: Path
    signers: dict[str, Signer]

    def __getitem__(self, name: str) -> Signer:
        return self.signers[name]


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kyso interop test PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _usage(*, signing: bool, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=signing,
        key_encipherment=not signing and not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_pki(home: Path) -> InteropPki:
    """Write the PKI under ``home`` and return where everything is."""
    home.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = _name("kyso Interop Test Root CA")
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=4 * 365))
        .not_valid_after(now + dt.timedelta(days=10 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(signing=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    root_pem = home / "root.pem"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root_name)
        .last_update(now - dt.timedelta(hours=1))
        .next_update(now + dt.timedelta(days=30))
        .add_extension(x509.CRLNumber(1), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    crl_der = home / "root.crl"
    crl_der.write_bytes(crl.public_bytes(serialization.Encoding.DER))

    recipes: list[tuple[str, str, bool, dt.datetime, dt.datetime, bool]] = [
        # name, key type, signing usage, not before, not after, CRL pointer
        ("rsa", "rsa", True, now - dt.timedelta(days=1), now + dt.timedelta(days=730), False),
        ("ec", "ec", True, now - dt.timedelta(days=1), now + dt.timedelta(days=730), False),
        ("crl", "rsa", True, now - dt.timedelta(days=1), now + dt.timedelta(days=730), True),
        (
            "nokeyusage",
            "rsa",
            False,
            now - dt.timedelta(days=1),
            now + dt.timedelta(days=730),
            False,
        ),
        (
            "expired",
            "rsa",
            True,
            now - dt.timedelta(days=3 * 365),
            now - dt.timedelta(days=365),
            False,
        ),
    ]
    signers: dict[str, Signer] = {}
    for serial, (name, kind, signing, start, end, crl_pointer) in enumerate(recipes, start=100):
        key: _PrivateKey = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(f"Interop signer {name}"))
            .issuer_name(root_name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(signing=signing), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
            )
        )
        if crl_pointer:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            full_name=[x509.UniformResourceIdentifier(CRL_URL)],
                            relative_name=None,
                            reasons=None,
                            crl_issuer=None,
                        )
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(root_key, hashes.SHA256())
        key_pem = home / f"{name}.key.pem"
        key_pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cert_pem = home / f"{name}.pem"
        cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        p12 = home / f"{name}.p12"
        p12.write_bytes(
            pkcs12.serialize_key_and_certificates(
                name.encode(),
                key,
                cert,
                [root],
                serialization.BestAvailableEncryption(P12_PASSWORD.encode()),
            )
        )
        signers[name] = Signer(
            name=name,
            key_pem=key_pem,
            cert_pem=cert_pem,
            cert_der=cert.public_bytes(serialization.Encoding.DER),
            p12=p12,
            key=key,
            cert=cert,
        )
    return InteropPki(
        root_pem=root_pem,
        root_der=root.public_bytes(serialization.Encoding.DER),
        root=root,
        crl_der=crl_der,
        signers=signers,
    )
