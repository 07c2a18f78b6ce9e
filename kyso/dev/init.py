"""``kyso dev init``: SoftHSM2 tokens, keys, the development PKI, sample images and an API token.

Layout of a development home (everything secret is mode 0600 and never printed):
```
home/softhsm/softhsm2.conf, tokens/     the SoftHSM2 token directory (unless one is given)
home/pins/<token>.pin, <token>.so.pin   random PINs
home/pki/                               root.pem, intermediate.pem, certs/<key>.pem, CRLs,
                                        tsa.pem, ocsp.pem, certomancer.yml, keys/ (CA keys)
home/assets/signature.png, seal.png     sample stamp images
home/secrets/dev-api-token              a random development API token
```
Idempotent: a second run reuses the PINs, tokens, keys, PKI and files that exist. It re-issues
the certificates (and stores them on the tokens again) only when a token key changed or the
responders' port changed, since both are written into the certificates.

This module does not write ``kyso.toml``: it returns a :class:`DevEnvironment` with everything
the application's configuration needs.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import pem

from kyso.dev.assets import write_sample_images
from kyso.dev.pki import DevPki, EndEntity, TestCertificate, build_pki, load_pki
from kyso.dev.responders import DEV_RESPONDERS_PORT, Responders
from kyso.dev.softhsm import (
    SOFTHSM_MODULE,
    KeyKind,
    generate_keypair,
    init_token,
    softhsm_conf,
    store_certificate,
)

__all__ = [
    "DEV_TOKEN",
    "OFFICIAL_TOKEN",
    "ORGANISATION",
    "DevEnvironment",
    "DevKey",
    "Organisation",
    "dev_init",
]

DEV_TOKEN = "kyso-dev"  # noqa: S105 - a token label, not a secret
OFFICIAL_TOKEN = "kyso-official"  # noqa: S105 - a token label, not a secret


@dataclass(frozen=True, kw_only=True)
class Organisation:
    """A unit of the administrative directory (code as in the edXML unit directory)."""

    code: str
    name: str
    province: str


ORGANISATION = Organisation(
    code="000.00.21.H49",
    name="Trung tâm Phục vụ hành chính công tỉnh Quảng Ninh",
    province="Quảng Ninh",
)
"""The development organisation whose seal keys ``dev_init`` creates."""


@dataclass(frozen=True, kw_only=True)
class DevKey:
    """A key pair on a token with its certificate (also stored on the token, same label and id)."""

    alias: str
    token_label: str
    label: str
    key_id: bytes
    kind: KeyKind
    certificate_path: Path
    pin_path: Path

    @property
    def uri(self) -> str:
        """RFC 7512 URI of the private key (names the token by label, never by slot)."""
        return f"pkcs11:token={self.token_label};object={self.label};type=private"


@dataclass(frozen=True, kw_only=True)
class DevEnvironment:
    """Everything ``dev_init`` made, for the application's config and for tests.

    ``keys``: ``seal`` (RSA-2048), ``seal-ec`` (P-256), ``ledger`` (RSA-2048) on ``kyso-dev`` and
    ``official`` (RSA-2048) on ``kyso-official``. ``test_keys``: one ``kyso-dev`` key per
    :class:`~kyso.dev.pki.TestCertificate`, whose certificate breaks that one rule.
    ``pin_paths`` maps token label to its user-PIN file.
    """

    home: Path
    softhsm_conf: Path
    module_path: Path
    pin_paths: Mapping[str, Path]
    keys: Mapping[str, DevKey]
    test_keys: Mapping[TestCertificate, DevKey]
    pki: DevPki
    organisation: Organisation
    signature_image: Path
    seal_image: Path
    api_token_path: Path

    @property
    def responders_port(self) -> int:
        return self.pki.port

    @property
    def tsa_url(self) -> str:
        return self.pki.tsa_url

    @property
    def ocsp_url(self) -> str:
        return self.pki.ocsp_url

    @property
    def root_certificate_path(self) -> Path:
        return self.pki.root_path

    @property
    def intermediate_certificate_path(self) -> Path:
        return self.pki.intermediate_path

    def responders(self) -> Responders:
        """A (not yet started) handle on the PKI's responders; ``with env.responders(): …``."""
        return Responders(pki=self.pki)

    def child_env(self) -> dict[str, str]:
        """This process's environment with ``SOFTHSM2_CONF`` pointing at the dev tokens."""
        return {**os.environ, "SOFTHSM2_CONF": str(self.softhsm_conf)}


@dataclass(frozen=True)
class _KeySpec:
    alias: str
    token: str
    key_id: bytes
    kind: KeyKind
    subject: Mapping[str, str]
    email: str | None = None
    test_kind: TestCertificate | None = None


def _key_specs() -> tuple[_KeySpec, ...]:
    org = {
        "organization-name": ORGANISATION.name,
        "state-or-province-name": ORGANISATION.province,
    }
    seal_subject = {**org, "common-name": ORGANISATION.name}
    specs = [
        _KeySpec("seal", DEV_TOKEN, b"\x01", "rsa2048", seal_subject, "vanthu@dev.kyso.test"),
        _KeySpec("seal-ec", DEV_TOKEN, b"\x02", "p256", seal_subject, "vanthu@dev.kyso.test"),
        _KeySpec(
            "ledger", DEV_TOKEN, b"\x03", "rsa2048", {**org, "common-name": "Sổ cái kiểm toán kyso"}
        ),
        _KeySpec(
            "official",
            OFFICIAL_TOKEN,
            b"\x01",
            "rsa2048",
            {**org, "title": "Giám đốc", "common-name": "Nguyễn Văn A"},
            "nguyenvana@dev.kyso.test",
        ),
    ]
    test_names = {
        TestCertificate.EXPIRED: "hết hạn",
        TestCertificate.NOT_YET_VALID: "chưa có hiệu lực",
        TestCertificate.REVOKED: "đã thu hồi",
        TestCertificate.NO_SIGNING_USAGE: "không dùng để ký",
    }
    for index, (kind, name) in enumerate(test_names.items()):
        specs.append(
            _KeySpec(
                kind.value,
                DEV_TOKEN,
                bytes([0x11 + index]),
                "rsa2048",
                {**org, "common-name": f"Chứng thư kiểm thử: {name}"},
                test_kind=kind,
            )
        )
    return tuple(specs)


def dev_init(
    home: Path,
    *,
    responders_port: int = DEV_RESPONDERS_PORT,
    softhsm_conf_path: Path | None = None,
    module_path: Path = Path(SOFTHSM_MODULE),
) -> DevEnvironment:
    """Create (or reuse) the development environment under ``home``; see the module docstring.

    ``softhsm_conf_path``: use this existing SoftHSM2 configuration (the test suite's) instead of
    creating ``home/softhsm``; tokens are found and made there by label.
    """
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    conf = softhsm_conf_path or softhsm_conf(home / "softhsm")
    child_env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    pins_dir = _private_dir(home / "pins")

    pin_paths: dict[str, Path] = {}
    for token in (DEV_TOKEN, OFFICIAL_TOKEN):
        pin_path, pin = _secret_file(pins_dir / f"{token}.pin", lambda: secrets.token_hex(8))
        _, so_pin = _secret_file(pins_dir / f"{token}.so.pin", lambda: secrets.token_hex(8))
        init_token(
            label=token, so_pin=so_pin, user_pin=pin, env=child_env, module_path=str(module_path)
        )
        pin_paths[token] = pin_path

    specs = _key_specs()
    spkis = {
        spec.alias: generate_keypair(
            module_path=str(module_path),
            token_label=spec.token,
            user_pin=_read_secret(pin_paths[spec.token]),
            label=spec.alias,
            key_id=spec.key_id,
            kind=spec.kind,
            env=child_env,
        )
        for spec in specs
    }

    pki_dir = home / "pki"
    pki = load_pki(pki_dir)
    renew = pki is not None and pki.renewal_due(datetime.now(UTC))
    if pki is None or renew or pki.port != responders_port or not _same_keys(pki, spkis):
        entities = tuple(
            EndEntity(
                label=spec.alias,
                subject=spec.subject,
                spki_der=spkis[spec.alias],
                email=spec.email,
                test_kind=spec.test_kind,
            )
            for spec in specs
        )
        pki = build_pki(directory=pki_dir, port=responders_port, end_entities=entities, renew=renew)
        for spec in specs:
            store_certificate(
                module_path=str(module_path),
                token_label=spec.token,
                user_pin=_read_secret(pin_paths[spec.token]),
                label=spec.alias,
                key_id=spec.key_id,
                certificate_der=_pem_to_der(pki.certificates[spec.alias]),
                env=child_env,
            )

    signature_image, seal_image = write_sample_images(
        home / "assets", organisation=ORGANISATION.name
    )
    api_token_path, _ = _secret_file(
        _private_dir(home / "secrets") / "dev-api-token", lambda: secrets.token_urlsafe(32)
    )

    def dev_key(spec: _KeySpec) -> DevKey:
        return DevKey(
            alias=spec.alias,
            token_label=spec.token,
            label=spec.alias,
            key_id=spec.key_id,
            kind=spec.kind,
            certificate_path=pki.certificates[spec.alias],
            pin_path=pin_paths[spec.token],
        )

    return DevEnvironment(
        home=home,
        softhsm_conf=conf,
        module_path=module_path,
        pin_paths=pin_paths,
        keys={spec.alias: dev_key(spec) for spec in specs if spec.test_kind is None},
        test_keys={spec.test_kind: dev_key(spec) for spec in specs if spec.test_kind is not None},
        pki=pki,
        organisation=ORGANISATION,
        signature_image=signature_image,
        seal_image=seal_image,
        api_token_path=api_token_path,
    )


def _same_keys(pki: DevPki, spkis: Mapping[str, bytes]) -> bool:
    """Whether the PKI's public-key files hold exactly the tokens' current keys."""
    for alias, spki in spkis.items():
        path = pki.key_dir / f"{alias}.pub.pem"
        if alias not in pki.certificates or not path.is_file():
            return False
        _, _, der = pem.unarmor(path.read_bytes())
        if der != spki:
            return False
    return True


def _pem_to_der(path: Path) -> bytes:
    _, _, der = pem.unarmor(path.read_bytes())
    return bytes(der)


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _secret_file(path: Path, make: Callable[[], str]) -> tuple[Path, str]:
    """Return ``path`` and its content, creating it with ``make()`` (mode 0600 from birth)."""
    if not path.exists():
        value = make()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(value + "\n")
    return path, _read_secret(path)


def _read_secret(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()
