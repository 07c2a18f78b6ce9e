"""Operator listings (``kyso hsm list / keys``) and ``test_sign`` (``kyso hsm test-sign URI``).

These run in the calling process (a short-lived CLI), under the module's process-wide lock.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import pkcs11
from asn1crypto import x509
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11x
from pkcs11.constants import MechanismFlag

from hsm import _p11
from hsm.errors import HsmError, MechanismUnsupported, ProbeFailed
from hsm.keys import KeyInfo
from hsm.pin import PinSource
from hsm.schemes import DigestAlgorithm, SignatureScheme, mechanism_name
from hsm.uri import Pkcs11Uri
from hsm.verify import verify_signature

__all__ = [
    "KeyEntry",
    "MechanismEntry",
    "TestSignResult",
    "TokenEntry",
    "list_keys",
    "list_mechanisms",
    "list_tokens",
    "probe_sign",
    "test_sign",
]


@dataclass(frozen=True, kw_only=True)
class TokenEntry:
    label: str
    serial: str
    manufacturer: str
    model: str
    flags: tuple[str, ...]
    slot_description: str

    @property
    def uri(self) -> Pkcs11Uri:
        return Pkcs11Uri(token=self.label, serial=self.serial or None)


@dataclass(frozen=True, kw_only=True)
class KeyEntry:
    """A private key (or, without login, a public key) and whether it has a certificate."""

    token_label: str
    label: str
    id: bytes
    object_class: str
    key_type: str
    size: int | None
    sensitive: bool | None
    extractable: bool | None
    always_authenticate: bool | None
    has_certificate: bool

    @property
    def uri(self) -> Pkcs11Uri:
        return Pkcs11Uri(
            token=self.token_label,
            object=self.label,
            id=self.id or None,
            type="private" if self.object_class == "private" else "public",
        )


@dataclass(frozen=True, kw_only=True)
class MechanismEntry:
    name: str
    min_key_size: int
    max_key_size: int
    flags: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class TestSignResult:
    """The outcome of signing and verifying one probe."""

    __test__ = False  # not a pytest test class

    key: KeyInfo
    mechanism: str
    seconds: float
    certificate_subject: str


def list_tokens(module_path: str) -> tuple[TokenEntry, ...]:
    """Tokens present on the module's slots."""
    lib = _p11.load_module(module_path)
    with _p11.module_lock(module_path):
        try:
            out = []
            for slot in lib.get_slots(token_present=True):
                token = slot.get_token()
                out.append(
                    TokenEntry(
                        label=token.label,
                        serial=_p11.token_serial(token),
                        manufacturer=token.manufacturer_id,
                        model=token.model,
                        flags=_flag_names(token.flags),
                        slot_description=slot.slot_description,
                    )
                )
        except p11x.PKCS11Error as exc:
            raise _p11.translate(exc, "listing tokens") from exc
    return tuple(out)


def list_keys(
    module_path: str, *, token: Pkcs11Uri | None = None, pin: PinSource | None = None
) -> tuple[KeyEntry, ...]:
    """Keys on the token(s) matching ``token`` (all tokens when None).

    Private keys are visible only after login: with ``pin`` the listing shows private keys;
    without, public keys (and whether each has a certificate).
    """
    lib = _p11.load_module(module_path)
    selector = token or Pkcs11Uri()
    with _p11.module_lock(module_path):
        try:
            tokens = [
                slot.get_token()
                for slot in lib.get_slots(token_present=True)
                if slot.get_token().flags & pkcs11.TokenFlag.TOKEN_INITIALIZED
            ]
        except p11x.PKCS11Error as exc:
            raise _p11.translate(exc, "listing tokens") from exc
        if token is not None:
            tokens = [_p11.find_token(lib, selector)]
        entries: list[KeyEntry] = []
        for tok in tokens:
            session = _p11.login(tok, pin.read() if pin else None)
            try:
                entries.extend(_keys_of(session, tok, private=pin is not None))
            except p11x.PKCS11Error as exc:
                raise _p11.translate(exc, f"listing keys of {tok.label!r}") from exc
            finally:
                session.close()
    return tuple(entries)


def _keys_of(session: pkcs11.Session, token: pkcs11.Token, *, private: bool) -> list[KeyEntry]:
    certs = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}))
    cert_ids = {bytes(c[Attribute.ID]) for c in certs}
    cert_labels = {str(c[Attribute.LABEL]) for c in certs}
    object_class = ObjectClass.PRIVATE_KEY if private else ObjectClass.PUBLIC_KEY
    out = []
    key: Any
    for key in session.get_objects({Attribute.CLASS: object_class}):
        label = key.label or ""
        key_id = bytes(key.id or b"")
        key_type = key.key_type
        size: int | None = None
        if key_type == pkcs11.KeyType.RSA:
            size = len(bytes(key[Attribute.MODULUS]).lstrip(b"\0")) * 8
        elif key_type == pkcs11.KeyType.EC:
            size = _ec_size(bytes(key[Attribute.EC_PARAMS]))
        sensitive = extractable = always = None
        if private:
            sensitive = bool(key[Attribute.SENSITIVE])
            extractable = bool(key[Attribute.EXTRACTABLE])
            try:
                always = bool(key[Attribute.ALWAYS_AUTHENTICATE])
            except p11x.AttributeTypeInvalid:
                always = False
        out.append(
            KeyEntry(
                token_label=token.label,
                label=label,
                id=key_id,
                object_class="private" if private else "public",
                key_type=key_type.name,
                size=size,
                sensitive=sensitive,
                extractable=extractable,
                always_authenticate=always,
                has_certificate=(key_id in cert_ids) if key_id else (label in cert_labels),
            )
        )
    return out


def _ec_size(params_der: bytes) -> int | None:
    from asn1crypto import keys

    params = keys.ECDomainParameters.load(params_der)
    if params.name != "named":
        return None
    return {"secp256r1": 256, "secp384r1": 384, "secp521r1": 521}.get(str(params.chosen.native))


def list_mechanisms(module_path: str, *, token: Pkcs11Uri) -> tuple[MechanismEntry, ...]:
    """Mechanisms the matching token offers, with key sizes and capability flags."""
    lib = _p11.load_module(module_path)
    with _p11.module_lock(module_path):
        tok = _p11.find_token(lib, token)
        out = []
        try:
            for mech in tok.slot.get_mechanisms():
                info = tok.slot.get_mechanism_info(mech)
                out.append(
                    MechanismEntry(
                        name=getattr(mech, "name", None) or f"0x{int(mech):08x}",
                        min_key_size=int(info.min_key_length or 0),
                        max_key_size=int(info.max_key_length or 0),
                        flags=tuple(f.name for f in MechanismFlag if f.name and info.flags & f),
                    )
                )
        except p11x.PKCS11Error as exc:
            raise _p11.translate(exc, "listing mechanisms") from exc
    return tuple(sorted(out, key=lambda m: m.name))


def probe_sign(
    uri: Pkcs11Uri,
    *,
    pin: PinSource,
    module_path: str | None = None,
    digest_algorithm: DigestAlgorithm = "sha256",
    pss: bool = False,
) -> TestSignResult:
    """Sign a random probe with the key at ``uri``, verify it against the key's certificate.

    Returns the mechanism used and the time of the token operation. Raises ProbeFailed if the
    signature does not verify (the certificate belongs to another key).
    """
    path = module_path or uri.module_path
    if not path:
        raise HsmError("no module path: pass one or put ?module-path= in the URI")
    lib = _p11.load_module(path)
    with _p11.module_lock(path):
        token = _p11.find_token(lib, uri)
        session = _p11.login(token, pin.read())
        try:
            key = _p11.find_private_key(session, uri)
            info = _p11.describe_key(key, token, _p11.signing_mechanisms(token))
            try:
                scheme = SignatureScheme(
                    key_type=info.key_type, digest_algorithm=digest_algorithm, pss=pss
                )
            except ValueError as exc:
                raise MechanismUnsupported(str(exc)) from exc
            cert_der = _p11.find_certificate(session, label=info.label, key_id=info.id)
            mechanism = _p11.choose_mechanism(scheme, info.mechanisms, hashed=True)
            data = b"kyso test-sign probe " + secrets.token_bytes(16)
            payload = data if mechanism == scheme.hashed_mechanism else scheme.hash(data)
            pin_again = pin.read() if info.always_authenticate else None
            started = time.perf_counter()
            try:
                signature = _p11.sign(key, scheme, mechanism, payload, pin=pin_again)
            except p11x.PKCS11Error as exc:
                raise _p11.translate(exc, "signing the probe") from exc
            seconds = time.perf_counter() - started
        finally:
            session.close()
    cert = x509.Certificate.load(cert_der)
    digest = hashlib.new(digest_algorithm, data).digest()
    if not verify_signature(cert, scheme, digest, signature):
        raise ProbeFailed(
            f"the probe signed by {uri.describe_object()} does not verify against the"
            f" certificate '{cert.subject.human_friendly}': they belong to different keys"
        )
    return TestSignResult(
        key=info,
        mechanism=mechanism_name(mechanism),
        seconds=seconds,
        certificate_subject=cert.subject.human_friendly,
    )


test_sign = probe_sign
"""The name the operator command uses (``kyso hsm test-sign``)."""
# Modules that import it would otherwise have pytest collect it as a test.
probe_sign.__test__ = False  # type: ignore[attr-defined]


def _flag_names(flags: int) -> tuple[str, ...]:
    return tuple(f.name for f in pkcs11.TokenFlag if f.name and flags & f)
