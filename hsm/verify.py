"""Signature verification against certificates, and certificate files (PEM or DER)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from asn1crypto import pem, x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509 import load_der_x509_certificate

from hsm.errors import CertificateNotFound
from hsm.schemes import SignatureScheme

__all__ = ["load_certificate_file", "load_certificate_files", "verify_signature"]


def verify_signature(
    certificate: x509.Certificate, scheme: SignatureScheme, digest: bytes, signature: bytes
) -> bool:
    """Whether ``signature`` over ``digest`` verifies with the certificate's public key."""
    public_key = load_der_x509_certificate(certificate.dump()).public_key()
    algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[
        scheme.digest_algorithm
    ]
    prehashed = utils.Prehashed(algorithm)
    try:
        if isinstance(public_key, rsa.RSAPublicKey) and scheme.key_type == "rsa":
            pad: padding.AsymmetricPadding = (
                padding.PSS(mgf=padding.MGF1(algorithm), salt_length=scheme.digest_size)
                if scheme.pss
                else padding.PKCS1v15()
            )
            public_key.verify(signature, digest, pad, prehashed)
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and scheme.key_type == "ec":
            public_key.verify(signature, digest, ec.ECDSA(prehashed))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def load_certificate_file(path: Path) -> x509.Certificate:
    certs = load_certificate_files((path,))
    if len(certs) != 1:
        raise CertificateNotFound(f"{path} must hold exactly one certificate, found {len(certs)}")
    return certs[0]


def load_certificate_files(paths: Sequence[Path]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CertificateNotFound(
                f"cannot read certificate file {path}: {exc.strerror}"
            ) from exc
        try:
            if pem.detect(data):
                out.extend(x509.Certificate.load(der) for _, _, der in pem.unarmor(data, True))
            else:
                cert = x509.Certificate.load(data)
                cert.native  # noqa: B018  # parse now, so a bad file fails at start
                out.append(cert)
        except ValueError as exc:
            raise CertificateNotFound(f"{path} is not a PEM or DER X.509 certificate") from exc
    return out
