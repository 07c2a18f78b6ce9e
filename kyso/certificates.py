"""Reading certificate files named in the configuration: one helper for every caller.

A file is PEM (one or more ``CERTIFICATE`` blocks: a bundle of anchors or a chain) or a single
DER certificate. Every certificate of a bundle is returned, in file order; a file with none, or
one that does not parse, is a ``ConfigError`` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from asn1crypto import pem, x509

from kyso.errors import ConfigError

__all__ = ["read_certificates"]


def read_certificates(paths: Iterable[Path]) -> list[x509.Certificate]:
    """Every certificate in ``paths`` (PEM bundles or DER files), in order."""
    found: list[x509.Certificate] = []
    for path in paths:
        try:
            data = path.read_bytes()
            if pem.detect(data):
                ders = [
                    d for kind, _, d in pem.unarmor(data, multiple=True) if kind == "CERTIFICATE"
                ]
            else:
                ders = [data]
            certificates = [x509.Certificate.load(der) for der in ders]
            for certificate in certificates:
                _ = certificate.subject.human_friendly  # parse now, not at first use
        except OSError as exc:
            raise ConfigError(
                f"{path}: cannot read the certificate file ({exc.strerror})"
            ) from None
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"{path}: not a PEM or DER certificate file ({exc})") from None
        if not certificates:
            raise ConfigError(f"{path}: the file holds no CERTIFICATE block")
        found.extend(certificates)
    return found
