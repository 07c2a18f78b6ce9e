"""In-process PKCS#11 work over python-pkcs11: find tokens, keys and certificates; sign.

Used inside signing worker processes, by ``LocalKey`` and by the operator listings. Everything
here runs in the process that owns the module; nothing here crosses a process boundary.

Threads: python-pkcs11 initialises modules without locking (``C_Initialize(NULL)``), and SoftHSM
then corrupts memory when two threads use the module at once. ``module_lock(path)`` is the one
lock per module per process that every in-process user holds around module calls.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pkcs11
from asn1crypto import keys as asn1_keys
from asn1crypto import x509
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import exceptions as p11x
from pkcs11.constants import MechanismFlag

from hsm.errors import (
    CertificateNotFound,
    HsmError,
    KeyNotFound,
    MechanismUnsupported,
    ModuleLoadError,
    MultipleKeysFound,
    MultipleTokensFound,
    PinIncorrect,
    PinLocked,
    TokenNotFound,
    TokenUnavailable,
)
from hsm.keys import KeyInfo
from hsm.schemes import SignatureScheme, ecdsa_der_from_raw, mechanism_name
from hsm.uri import Pkcs11Uri

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as pkcs11_lib

__all__ = [
    "certificate_chain_from_token",
    "choose_mechanism",
    "describe_key",
    "find_certificate",
    "find_private_key",
    "find_token",
    "load_module",
    "login",
    "module_lock",
    "sign",
    "signing_mechanisms",
    "token_serial",
    "translate",
]

_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()

# Errors that say "this request was wrong", not "the token or module is gone".
_REQUEST_ERRORS = (
    p11x.DataLenRange,
    p11x.DataInvalid,
    p11x.ArgumentsBad,
    p11x.KeyTypeInconsistent,
)
_MECHANISM_ERRORS = (p11x.MechanismInvalid, p11x.MechanismParamInvalid, p11x.FunctionNotSupported)


def module_lock(module_path: str) -> threading.RLock:
    """The lock that serialises this process's calls into the module at ``module_path``."""
    with _locks_guard:
        return _locks.setdefault(module_path, threading.RLock())


def load_module(module_path: str) -> pkcs11_lib:
    """Load and initialise the module (python-pkcs11 keeps one library object per path)."""
    try:
        return pkcs11.lib(module_path)
    except (p11x.PKCS11Error, OSError, RuntimeError) as exc:
        raise ModuleLoadError(
            f"cannot load the PKCS#11 module {module_path}: {exc or type(exc).__name__}."
            " Check the path and that the library matches this machine."
        ) from exc


def translate(exc: p11x.PKCS11Error, doing: str) -> HsmError:
    """Map a python-pkcs11 error to the hsm error a caller can act on."""
    name = type(exc).__name__
    if isinstance(exc, p11x.PinIncorrect):
        return PinIncorrect(
            f"{doing}: the token refused the PIN. Check the PIN source; kyso does not retry"
            " (the token locks after a few wrong PINs)."
        )
    if isinstance(exc, p11x.PinLocked):
        return PinLocked(f"{doing}: the user PIN is locked; the security officer must unblock it.")
    if isinstance(exc, _MECHANISM_ERRORS):
        return MechanismUnsupported(f"{doing}: the token rejected the mechanism ({name}).")
    if isinstance(exc, _REQUEST_ERRORS):
        return HsmError(f"{doing}: the token rejected the request ({name}).")
    return TokenUnavailable(
        f"{doing}: the token or its module failed ({name}); it may have been removed."
    )


def find_token(lib: pkcs11_lib, uri: Pkcs11Uri) -> pkcs11.Token:
    """The one token matching the URI's token attributes."""
    try:
        tokens = [slot.get_token() for slot in lib.get_slots(token_present=True)]
    except p11x.PKCS11Error as exc:
        raise translate(exc, "listing tokens") from exc
    matching = [t for t in tokens if _token_matches(t, uri)]
    if not matching:
        present = ", ".join(repr(t.label) for t in tokens if t.label) or "none"
        raise TokenNotFound(
            f"no token matches {uri.describe_token()} (tokens present: {present})."
            " Check the token label/serial in the key URI and that the device is connected."
        )
    if len(matching) > 1:
        raise MultipleTokensFound(
            f"{len(matching)} tokens match {uri.describe_token()}: add serial= to the URI."
        )
    token: pkcs11.Token = matching[0]
    return token


def _token_matches(token: pkcs11.Token, uri: Pkcs11Uri) -> bool:
    serial = token.serial.decode("ascii", "replace").strip()
    return (
        (uri.token is None or token.label == uri.token)
        and (uri.serial is None or serial == uri.serial)
        and (uri.manufacturer is None or token.manufacturer_id == uri.manufacturer)
        and (uri.model is None or token.model == uri.model)
    )


def token_serial(token: pkcs11.Token) -> str:
    return str(token.serial.decode("ascii", "replace").strip())


def login(token: pkcs11.Token, pin: str | None) -> pkcs11.Session:
    """Open a session, logged in as the user when ``pin`` is given. Never retries a PIN."""
    try:
        return token.open(user_pin=pin)
    except p11x.UserAlreadyLoggedIn:
        # The login is per token and per process: another session of this process logged in.
        return token.open()
    except p11x.PKCS11Error as exc:
        raise translate(exc, f"logging in to token {token.label!r}") from exc


def find_private_key(session: pkcs11.Session, uri: Pkcs11Uri) -> pkcs11.PrivateKey:
    """The one private key matching the URI's ``object``/``id``."""
    template: dict[Attribute, object] = {Attribute.CLASS: ObjectClass.PRIVATE_KEY}
    if uri.object is not None:
        template[Attribute.LABEL] = uri.object
    if uri.id is not None:
        template[Attribute.ID] = uri.id
    try:
        found = list(session.get_objects(template))
    except p11x.PKCS11Error as exc:
        raise translate(exc, "searching for the key") from exc
    if not found:
        raise KeyNotFound(
            f"no private key matches {uri.describe_object()} on token {uri.describe_token()}."
            " Check the URI (and that the PIN belongs to the user owning the key)."
        )
    if len(found) > 1:
        raise MultipleKeysFound(
            f"{len(found)} private keys match {uri.describe_object()}: name one key with"
            " both object= and id=."
        )
    key: Any = found[0]
    return key  # type: ignore[no-any-return]  # a PRIVATE_KEY object


def find_certificate(session: pkcs11.Session, *, label: str, key_id: bytes) -> bytes:
    """DER of the certificate stored beside a key: same CKA_ID, else same label."""
    candidates: list[dict[Attribute, object]] = []
    if key_id:
        candidates.append({Attribute.ID: key_id})
    if label:
        candidates.append({Attribute.LABEL: label})
    try:
        for template in candidates:
            template[Attribute.CLASS] = ObjectClass.CERTIFICATE
            found = list(session.get_objects(template))
            if found:
                return bytes(found[0][Attribute.VALUE])
    except p11x.PKCS11Error as exc:
        raise translate(exc, "reading the key's certificate") from exc
    raise CertificateNotFound(
        f"key {label!r} (id {key_id.hex()}) has no certificate on the token: store one with the"
        " same CKA_ID or label, or configure a certificate file."
    )


def certificate_chain_from_token(session: pkcs11.Session, leaf_der: bytes) -> list[bytes]:
    """Issuer certificates of ``leaf_der`` found on the token, nearest issuer first."""
    try:
        objects = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}))
        ders = [bytes(obj[Attribute.VALUE]) for obj in objects]
    except p11x.PKCS11Error as exc:
        raise translate(exc, "reading certificates") from exc
    by_subject: dict[bytes, bytes] = {}
    for der in ders:
        cert = x509.Certificate.load(der)
        by_subject.setdefault(cert.subject.dump(), der)
    chain: list[bytes] = []
    current = x509.Certificate.load(leaf_der)
    while not current.self_signed and len(chain) < 8:
        issuer = by_subject.get(current.issuer.dump())
        if issuer is None or issuer in chain or issuer == leaf_der:
            break
        chain.append(issuer)
        current = x509.Certificate.load(issuer)
    return chain


def signing_mechanisms(token: pkcs11.Token) -> frozenset[int]:
    """The mechanisms the token can sign with."""
    slot = token.slot
    out = set()
    try:
        for mech in slot.get_mechanisms():
            try:
                info = slot.get_mechanism_info(mech)
            except p11x.PKCS11Error:
                continue
            if info.flags & MechanismFlag.SIGN:
                out.add(int(mech))
    except p11x.PKCS11Error as exc:
        raise translate(exc, "listing mechanisms") from exc
    return frozenset(out)


_CURVES = {"secp256r1": 256, "secp384r1": 384, "secp521r1": 521}


def describe_key(key: pkcs11.PrivateKey, token: pkcs11.Token, mechanisms: Iterable[int]) -> KeyInfo:
    """Read a private key's type, size and protection attributes."""
    try:
        key_type = key.key_type
        label = key.label or ""
        key_id = bytes(key.id or b"")
        sensitive = bool(key[Attribute.SENSITIVE])
        extractable = bool(key[Attribute.EXTRACTABLE])
        try:
            always_auth = bool(key[Attribute.ALWAYS_AUTHENTICATE])
        except p11x.AttributeTypeInvalid:
            always_auth = False
        curve = None
        if key_type == KeyType.RSA:
            size = len(bytes(key[Attribute.MODULUS]).lstrip(b"\0")) * 8
            kind = "rsa"
        elif key_type == KeyType.EC:
            params = asn1_keys.ECDomainParameters.load(bytes(key[Attribute.EC_PARAMS]))
            curve = str(params.chosen.native) if params.name == "named" else "explicit"
            if curve not in _CURVES:
                raise MechanismUnsupported(f"key {label!r} is on unsupported curve {curve}")
            size = _CURVES[curve]
            kind = "ec"
        else:
            raise MechanismUnsupported(
                f"key {label!r} is of type {key_type.name}; kyso signs with RSA and EC keys only"
            )
    except p11x.PKCS11Error as exc:
        raise translate(exc, "reading the key's attributes") from exc
    return KeyInfo(
        label=label,
        id=key_id,
        key_type=kind,  # type: ignore[arg-type]  # "rsa" or "ec", set just above
        size=size,
        curve=curve,
        sensitive=sensitive,
        extractable=extractable,
        always_authenticate=always_auth,
        token_label=token.label,
        token_serial=token_serial(token),
        mechanisms=frozenset(mechanisms),
    )


def choose_mechanism(scheme: SignatureScheme, mechanisms: frozenset[int], *, hashed: bool) -> int:
    """The mechanism to use: hashed if wanted and offered, else raw; MechanismUnsupported."""
    if hashed and scheme.hashed_mechanism in mechanisms:
        return scheme.hashed_mechanism
    if scheme.raw_mechanism in mechanisms:
        return scheme.raw_mechanism
    raise MechanismUnsupported(
        f"the token offers neither {mechanism_name(scheme.hashed_mechanism)} nor"
        f" {mechanism_name(scheme.raw_mechanism)}"
    )


def sign(
    key: pkcs11.PrivateKey,
    scheme: SignatureScheme,
    mechanism: int,
    payload: bytes,
    *,
    pin: str | None,
) -> bytes:
    """Sign ``payload`` (the data for a hashed mechanism, the digest for a raw one).

    ``pin`` is given for CKA_ALWAYS_AUTHENTICATE keys (context-specific login per signature).
    Returns X.509/CMS form (DER ECDSA-Sig-Value for EC).
    """
    if mechanism == scheme.raw_mechanism:
        payload = scheme.raw_input(payload)
    raw = key.sign(  # type: ignore[attr-defined]  # private keys of RSA/EC sign
        payload,
        mechanism=pkcs11.Mechanism(mechanism),
        mechanism_param=scheme.pss_parameters,
        pin=pin,
    )
    return ecdsa_der_from_raw(raw) if scheme.key_type == "ec" else bytes(raw)
