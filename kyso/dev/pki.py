"""The development PKI (root and issuing CA, TSA, OCSP responder, CRLs), built with certomancer.

The certomancer configuration is generated here, in Python, and written to
``<pki>/certomancer.yml``; the same file is what :mod:`kyso.dev.responders` serves. Certomancer
re-derives every certificate and CRL from that file when it serves them, so the file pins
everything that must not move between runs: validity dates, serial numbers and the URL prefix of
the responders (the certificates' AIA and CRL distribution points point at it).

Invariants:
- keys that live on PKCS#11 tokens appear in the configuration as ``public-only`` PEM public keys
  (the SPKI the token returned); their private halves never leave the token;
- the CA, TSA and OCSP keys are software keys, generated once into ``<pki>/keys`` (mode 0600) and
  reused afterwards; they are development keys and are never committed;
- the CA keys are RSA (PKCS#1 v1.5 signatures are deterministic), so certificates served by the
  responders are byte-identical to the ones written to disk and stored on the tokens;
- end-entity signing certificates carry keyUsage digitalSignature + nonRepudiation (critical);
  the test certificates of :class:`TestCertificate` each break exactly one rule.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from asn1crypto import keys as asn1_keys
from asn1crypto import pem
from certomancer.registry import (
    ArchLabel,
    CertLabel,
    CertomancerConfig,
    PKIArchitecture,
    ServiceLabel,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kyso.errors import KysoError

__all__ = [
    "ARCH",
    "DevPki",
    "DevPkiError",
    "EndEntity",
    "TestCertificate",
    "build_pki",
    "load_pki",
]

ARCH = "kyso-dev"
"""Label of the certomancer PKI architecture (the first path segment of every service URL)."""

_CONFIG_NAME = "certomancer.yml"
_STATE_NAME = "pki-state.json"
_SOFTWARE_KEYS: Mapping[str, int] = {"root": 3072, "interm": 2048, "tsa": 2048, "ocsp": 2048}
_ROOT_YEARS = 20
_INTERM_YEARS = 10
_LEAF_YEARS = 3
# Validity starts two days before the build: CRL numbers count whole update periods (one day)
# from the issuer's notBefore, and a revocation only shows on CRLs issued after it.
_BACKDATE = timedelta(days=2)
_CRL_PERIOD = "P1D"
SHORT_TSA_DAYS = 10
"""Validity of the short-lived development TSA certificate (``DevPki.short_tsa_url``), counted
from the epoch (two days before the build): it ends about a week after ``kyso dev init``, for
trying archive renewal (a document whose last time-stamp is about to lose its force)."""
RENEW_BEFORE = timedelta(days=30)
"""A development environment's certificates are issued anew this long before they expire."""


class DevPkiError(KysoError):
    """Building or loading the development PKI failed; the message says what to do."""


class TestCertificate(enum.Enum):
    """Certificates that break one rule each, for bad-input tests (keys on the ``kyso-dev`` token).

    The value is the label of the token key, of its certificate object and of the PEM file.
    """

    __test__ = False  # not a pytest test class, despite the name

    EXPIRED = "test-expired"
    NOT_YET_VALID = "test-not-yet-valid"
    REVOKED = "test-revoked"
    NO_SIGNING_USAGE = "test-no-signing-usage"


@dataclass(frozen=True, kw_only=True)
class EndEntity:
    """A certificate to issue for a key held on a token.

    ``subject`` maps certomancer/asn1crypto name attributes (``common-name``, ``title``, …) to
    values; ``spki_der`` is the token key's DER SubjectPublicKeyInfo.
    """

    label: str
    subject: Mapping[str, str]
    spki_der: bytes
    email: str | None = None
    test_kind: TestCertificate | None = None


@dataclass(frozen=True, kw_only=True)
class DevPki:
    """Where the development PKI lives and how to reach its services.

    ``certificates`` maps every end-entity label (token keys and test certificates) to its PEM.
    """

    directory: Path
    config_path: Path
    key_dir: Path
    port: int
    url_prefix: str
    root_path: Path
    intermediate_path: Path
    tsa_certificate_path: Path
    ocsp_certificate_path: Path
    root_crl_path: Path
    intermediate_crl_path: Path
    certificates: Mapping[str, Path]
    epoch: datetime

    def renewal_due(self, now: datetime) -> bool:
        """True when ``now`` is before the epoch (a clock set back) or within
        ``RENEW_BEFORE`` of the end-entity certificates' expiry: build the PKI anew."""
        return not self.epoch <= now < _years(self.epoch, _LEAF_YEARS) - RENEW_BEFORE

    @property
    def tsa_url(self) -> str:
        """RFC 3161 time-stamping endpoint."""
        return f"{self.url_prefix}/{ARCH}/tsa/tsa"

    @property
    def short_tsa_url(self) -> str:
        """A second RFC 3161 endpoint whose certificate expires ``SHORT_TSA_DAYS`` after the
        epoch (same key as the default TSA); the default configuration does not use it."""
        return f"{self.url_prefix}/{ARCH}/tsa/tsa-short"

    @property
    def revoked_tsa_url(self) -> str:
        """A third RFC 3161 endpoint whose certificate was revoked an hour after the epoch (key
        compromise), for tests of evidence that ends by revocation."""
        return f"{self.url_prefix}/{ARCH}/tsa/tsa-revoked"

    @property
    def short_tsa_certificate_path(self) -> Path:
        return self.directory / "tsa-short.pem"

    @property
    def revoked_tsa_certificate_path(self) -> Path:
        return self.directory / "tsa-revoked.pem"

    @property
    def ocsp_url(self) -> str:
        """OCSP responder for certificates issued by the intermediate CA."""
        return f"{self.url_prefix}/{ARCH}/ocsp/interm"

    def crl_url(self, issuer: str) -> str:
        """Latest CRL of ``issuer`` (``root`` or ``interm``), DER."""
        return f"{self.url_prefix}/{ARCH}/crls/{issuer}/latest.crl"

    @property
    def root_certificate_url(self) -> str:
        """The root certificate from the certificate repository (a readiness probe)."""
        return f"{self.url_prefix}/{ARCH}/certs/root/ca.crt"


def build_pki(
    *,
    directory: Path,
    port: int,
    end_entities: tuple[EndEntity, ...],
    now: datetime | None = None,
    renew: bool = False,
) -> DevPki:
    """Write the configuration, certificates and CRLs of the development PKI under ``directory``.

    Software keys already in ``directory/keys`` are reused; the epoch (validity start) of an
    earlier build is reused too, so rebuilding with the same inputs gives the same certificates
    — unless ``renew``, which starts a new epoch at ``now`` (see ``DevPki.renewal_due``).
    ``port`` is the responders' port on 127.0.0.1, baked into AIA and CRL distribution points.
    """
    if not 0 < port < 65536:
        raise DevPkiError(f"responders port {port} is not a TCP port number (1–65535)")
    labels = [entity.label for entity in end_entities]
    if len(set(labels)) != len(labels) or set(labels) & set(_SOFTWARE_KEYS):
        raise DevPkiError(f"end-entity labels must be unique and not CA labels: {labels}")
    directory.mkdir(parents=True, exist_ok=True)
    key_dir = directory / "keys"
    key_dir.mkdir(mode=0o700, exist_ok=True)
    for label, bits in _SOFTWARE_KEYS.items():
        _ensure_software_key(key_dir / f"{label}.key.pem", bits)
    for entity in end_entities:
        _write_public_key(key_dir / f"{entity.label}.pub.pem", entity.spki_der)

    state_path = directory / _STATE_NAME
    epoch = (None if renew else _read_epoch(state_path)) or _epoch_for(now or datetime.now(UTC))
    url_prefix = f"http://127.0.0.1:{port}"
    config = _config(url_prefix=url_prefix, epoch=epoch, end_entities=end_entities)
    config_path = directory / _CONFIG_NAME
    config_path.write_text(
        "# Generated by kyso.dev.pki: edit the code, not this file.\n"
        + yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    arch = _load_arch(config_path, key_dir)

    def dump_cert(label: str, path: Path) -> Path:
        path.write_bytes(pem.armor("CERTIFICATE", arch.get_cert(CertLabel(label)).dump()))
        return path

    certs_dir = directory / "certs"
    certs_dir.mkdir(exist_ok=True)
    certificates = {
        entity.label: dump_cert(entity.label, certs_dir / f"{entity.label}.pem")
        for entity in end_entities
    }
    crl_now = max(now or datetime.now(UTC), epoch + _BACKDATE)
    crl_paths = {}
    for issuer in ("root", "interm"):
        crl = arch.service_registry.get_crl(ServiceLabel(issuer), at_time=crl_now)
        crl_paths[issuer] = directory / f"{issuer}.crl"
        crl_paths[issuer].write_bytes(crl.dump())
    dump_cert("tsa-short", directory / "tsa-short.pem")
    dump_cert("tsa-revoked", directory / "tsa-revoked.pem")
    pki = DevPki(
        directory=directory,
        config_path=config_path,
        key_dir=key_dir,
        port=port,
        url_prefix=url_prefix,
        root_path=dump_cert("root", directory / "root.pem"),
        intermediate_path=dump_cert("interm", directory / "intermediate.pem"),
        tsa_certificate_path=dump_cert("tsa", directory / "tsa.pem"),
        ocsp_certificate_path=dump_cert("ocsp", directory / "ocsp.pem"),
        root_crl_path=crl_paths["root"],
        intermediate_crl_path=crl_paths["interm"],
        certificates=certificates,
        epoch=epoch,
    )
    state = {
        "epoch": epoch.isoformat(),
        "port": port,
        "certificates": {label: str(path) for label, path in certificates.items()},
    }
    state_path.write_text(json.dumps(state, indent=2), encoding="utf-8")
    return pki


def load_pki(directory: Path) -> DevPki | None:
    """The PKI an earlier :func:`build_pki` wrote under ``directory``, or None if there is none."""
    state_path = directory / _STATE_NAME
    if not state_path.is_file():
        return None
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        port = int(state["port"])
        certificates = {str(k): Path(v) for k, v in state["certificates"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DevPkiError(
            f"{state_path} is not a PKI state file written by kyso; delete {directory} "
            "and run the development init again"
        ) from exc
    pki = DevPki(
        directory=directory,
        config_path=directory / _CONFIG_NAME,
        key_dir=directory / "keys",
        port=port,
        url_prefix=f"http://127.0.0.1:{port}",
        root_path=directory / "root.pem",
        intermediate_path=directory / "intermediate.pem",
        tsa_certificate_path=directory / "tsa.pem",
        ocsp_certificate_path=directory / "ocsp.pem",
        root_crl_path=directory / "root.crl",
        intermediate_crl_path=directory / "interm.crl",
        certificates=certificates,
        epoch=_read_epoch(state_path) or datetime.fromtimestamp(0, UTC),
    )
    expected = [
        pki.config_path,
        pki.root_path,
        pki.intermediate_path,
        pki.short_tsa_certificate_path,  # a PKI from before the extra TSAs is built again
        pki.revoked_tsa_certificate_path,
        *certificates.values(),
    ]
    if not all(path.is_file() for path in expected):
        return None
    return pki


def _load_arch(config_path: Path, key_dir: Path) -> PKIArchitecture:
    try:
        config = CertomancerConfig.from_file(
            str(config_path), key_search_dir=str(key_dir), allow_external_config=False
        )
        return config.get_pki_arch(ArchLabel(ARCH))
    except Exception as exc:  # certomancer raises several unrelated types for a bad config
        raise DevPkiError(
            f"certomancer rejected the generated PKI configuration {config_path}: {exc}"
        ) from exc


def _epoch_for(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - _BACKDATE


def _read_epoch(state_path: Path) -> datetime | None:
    if not state_path.is_file():
        return None
    try:
        return datetime.fromisoformat(json.loads(state_path.read_text("utf-8"))["epoch"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DevPkiError(
            f"{state_path} is damaged; delete {state_path.parent} and run the development "
            "init again"
        ) from exc


def _ensure_software_key(path: Path, bits: int) -> None:
    if path.is_file():
        return
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Created 0600 from the start: the file never exists with wider permissions.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _write_public_key(path: Path, spki_der: bytes) -> None:
    try:
        asn1_keys.PublicKeyInfo.load(spki_der).native  # noqa: B018 - parse fully, fail early
    except ValueError as exc:
        raise DevPkiError(f"the public key for {path.stem} is not DER SPKI") from exc
    path.write_bytes(pem.armor("PUBLIC KEY", spki_der))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+0000")


def _validity(start: datetime, end: datetime) -> dict[str, str]:
    return {"valid-from": _iso(start), "valid-to": _iso(end)}


def _years(moment: datetime, years: int) -> datetime:
    return moment + timedelta(days=365 * years)


def _config(
    *, url_prefix: str, epoch: datetime, end_entities: tuple[EndEntity, ...]
) -> dict[str, Any]:
    keys: dict[str, Any] = {label: {"path": f"{label}.key.pem"} for label in _SOFTWARE_KEYS} | {
        entity.label: {"path": f"{entity.label}.pub.pem", "public-only": True}
        for entity in end_entities
    }
    entities: dict[str, Any] = {
        "root": {"common-name": "kyso Development Root CA"},
        "interm": {"common-name": "kyso Development Issuing CA"},
        "tsa": {"common-name": "kyso Development Time-Stamping Authority"},
        "tsa-short": {"common-name": "kyso Development Time-Stamping Authority (short-lived)"},
        "tsa-revoked": {"common-name": "kyso Development Time-Stamping Authority (revoked)"},
        "ocsp": {"common-name": "kyso Development OCSP Responder"},
    } | {entity.label: dict(entity.subject) for entity in end_entities}
    certs: dict[str, Any] = {
        "root": {
            "subject": "root",
            "issuer": "root",
            "validity": _validity(epoch, _years(epoch, _ROOT_YEARS)),
            "profiles": [{"id": "simple-ca", "params": {"crl-repo": "root"}}],
        },
        "interm": {
            "subject": "interm",
            "issuer": "root",
            "validity": _validity(epoch, _years(epoch, _INTERM_YEARS)),
            "profiles": [
                {
                    "id": "simple-ca",
                    "params": {"crl-repo": "interm", "ocsp-service": "interm", "max-path-len": 0},
                }
            ],
        },
        "tsa": {
            "subject": "tsa",
            "issuer": "interm",
            "validity": _validity(epoch, _years(epoch, _LEAF_YEARS)),
            "extensions": [
                _key_usage(["digital_signature"]),
                {"id": "extended_key_usage", "critical": True, "value": ["time_stamping"]},
            ],
        },
        "tsa-short": {
            "subject": "tsa-short",
            "subject-key": "tsa",
            "issuer": "interm",
            "validity": _validity(epoch, epoch + timedelta(days=SHORT_TSA_DAYS)),
            "extensions": [
                _key_usage(["digital_signature"]),
                {"id": "extended_key_usage", "critical": True, "value": ["time_stamping"]},
            ],
        },
        "tsa-revoked": {
            "subject": "tsa-revoked",
            "subject-key": "tsa",
            "issuer": "interm",
            "validity": _validity(epoch, _years(epoch, _LEAF_YEARS)),
            "revocation": {
                "revoked-since": _iso(epoch + timedelta(hours=1)),
                "reason": "key_compromise",
            },
            "extensions": [
                _key_usage(["digital_signature"]),
                {"id": "extended_key_usage", "critical": True, "value": ["time_stamping"]},
            ],
        },
        "ocsp": {
            "subject": "ocsp",
            "issuer": "interm",
            "validity": _validity(epoch, _years(epoch, _LEAF_YEARS)),
            "profiles": ["ocsp-responder"],
        },
    }
    for entity in end_entities:
        certs[entity.label] = _leaf_cert(entity, epoch)
    return {
        "external-url-prefix": url_prefix,
        "keysets": {ARCH: {"keys": keys}},
        "pki-architectures": {
            ARCH: {
                "keyset": ARCH,
                "entity-defaults": {"country-name": "VN"},
                "entities": entities,
                "certs": certs,
                "services": {
                    "ocsp": {
                        "interm": {
                            "for-issuer": "interm",
                            "responder-cert": "ocsp",
                            "signing-key": "ocsp",
                        }
                    },
                    "crl-repo": {
                        issuer: {
                            "for-issuer": issuer,
                            "signing-key": issuer,
                            "simulated-update-schedule": _CRL_PERIOD,
                        }
                        for issuer in ("root", "interm")
                    },
                    "cert-repo": {
                        "root": {"for-issuer": "root", "publish-issued-certs": True},
                        "interm": {"for-issuer": "interm", "publish-issued-certs": True},
                    },
                    "time-stamping": {
                        # The issuing CA travels in every token: relying parties can build the
                        # TSA's path from the document alone.
                        "tsa": {
                            "signing-key": "tsa",
                            "signing-cert": "tsa",
                            "certs-to-embed": ["interm"],
                        },
                        # The same key under a certificate that ends soon (archive renewal).
                        "tsa-short": {
                            "signing-key": "tsa",
                            "signing-cert": "tsa-short",
                            "certs-to-embed": ["interm"],
                        },
                        "tsa-revoked": {
                            "signing-key": "tsa",
                            "signing-cert": "tsa-revoked",
                            "certs-to-embed": ["interm"],
                        },
                    },
                },
            }
        },
    }


def _key_usage(usages: list[str]) -> dict[str, Any]:
    return {
        "id": "key_usage",
        "critical": True,
        "smart-value": {"schema": "key-usage", "params": usages},
    }


def _leaf_cert(entity: EndEntity, epoch: datetime) -> dict[str, Any]:
    validity = _validity(epoch, _years(epoch, _LEAF_YEARS))
    usages = ["digital_signature", "non_repudiation"]
    spec: dict[str, Any] = {"subject": entity.label, "issuer": "interm"}
    match entity.test_kind:
        case TestCertificate.EXPIRED:
            validity = _validity(epoch, epoch + timedelta(days=1))
        case TestCertificate.NOT_YET_VALID:
            # after the renewal point of the others: not yet valid for the PKI's whole life
            start = _years(epoch, _LEAF_YEARS)
            validity = _validity(start, _years(start, 1))
        case TestCertificate.REVOKED:
            spec["revocation"] = {
                "revoked-since": _iso(epoch + timedelta(hours=1)),
                "reason": "key_compromise",
            }
        case TestCertificate.NO_SIGNING_USAGE:
            usages = ["key_encipherment"]
        case None:
            pass
    extensions = [_key_usage(usages)]
    if entity.email is not None:
        extensions.append(
            {
                "id": "subject_alt_name",
                "smart-value": {
                    "schema": "general-names",
                    "params": [{"type": "email", "value": entity.email}],
                },
            }
        )
    spec["validity"] = validity
    spec["extensions"] = extensions
    return spec
