"""``LocalKey``: one key on a token, used in-process (an official's USB token at the desk).

One session, one PIN entry (``login``) for many signatures; calls are serialised by the
module's process-wide lock. USB tokens are slow and often allow a single session, so there is
no pool here: the server uses ``KeyRing`` instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pkcs11
from asn1crypto import x509
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11x

from hsm import _p11
from hsm.errors import (
    CertificateNotFound,
    HsmError,
    KeyNotFound,
    MechanismUnsupported,
    MultipleKeysFound,
    TokenNotFound,
)
from hsm.keys import KeyInfo
from hsm.schemes import DigestAlgorithm, SignatureScheme
from hsm.uri import Pkcs11Uri

__all__ = ["LocalKey", "PinState", "open_token_key"]

_log = logging.getLogger(__name__)


def open_token_key(
    module_path: str, token_label: str | None = None, key_label: str | None = None
) -> LocalKey:
    """Open the key ``key_label`` on token ``token_label`` (each may be omitted when only one).

    The key is chosen by its certificate (certificates are public, so no PIN is needed yet):
    with ``key_label`` None the token must hold exactly one certificate. Call ``login`` before
    signing.
    """
    lib = _p11.load_module(module_path)
    lock = _p11.module_lock(module_path)
    with lock:
        if token_label is None:
            tokens = [s.get_token() for s in lib.get_slots(token_present=True)]
            tokens = [t for t in tokens if t.flags & pkcs11.TokenFlag.TOKEN_INITIALIZED]
            if len(tokens) != 1:
                found = ", ".join(repr(t.label) for t in tokens) or "none"
                raise TokenNotFound(
                    f"choose the token: {len(tokens)} initialised tokens are present ({found})"
                )
            token = tokens[0]
        else:
            token = _p11.find_token(lib, Pkcs11Uri(token=token_label))
        session = _p11.login(token, None)
        try:
            template: dict[Attribute, object] = {Attribute.CLASS: ObjectClass.CERTIFICATE}
            if key_label is not None:
                template[Attribute.LABEL] = key_label
            certs = list(session.get_objects(template))
            if not certs:
                raise CertificateNotFound(
                    f"token {token.label!r} has no certificate"
                    + (f" labelled {key_label!r}" if key_label else "")
                    + "; the official's certificate must be on the token"
                )
            if len(certs) > 1:
                raise MultipleKeysFound(
                    f"token {token.label!r} holds {len(certs)} certificates: name the key label"
                )
            cert = certs[0]
            label = str(cert[Attribute.LABEL])
            key_id = bytes(cert[Attribute.ID])
            der = bytes(cert[Attribute.VALUE])
        except p11x.PKCS11Error as exc:
            session.close()
            raise _p11.translate(exc, "reading certificates") from exc
        except HsmError:
            session.close()
            raise
    return LocalKey(
        module_path=module_path,
        token=token,
        session=session,
        uri=Pkcs11Uri(token=token.label, object=label, id=key_id or None, type="private"),
        certificate=x509.Certificate.load(der),
    )


@dataclass(frozen=True, slots=True)
class PinState:
    """The token's own word on its user PIN (PKCS#11 token flags)."""

    count_low: bool = False
    """A wrong PIN was entered since the last good login (CKF_USER_PIN_COUNT_LOW)."""
    final_try: bool = False
    """One more wrong PIN locks the token (CKF_USER_PIN_FINAL_TRY)."""
    locked: bool = False
    """The PIN is locked (CKF_USER_PIN_LOCKED): only the security officer can unblock it."""


class LocalKey:
    """A key on a token, in this process. Not thread-parallel: calls are serialised."""

    def __init__(
        self,
        *,
        module_path: str,
        token: pkcs11.Token,
        session: pkcs11.Session,
        uri: Pkcs11Uri,
        certificate: x509.Certificate,
    ) -> None:
        self._module_path = module_path
        self._lock = _p11.module_lock(module_path)
        self._token = token
        self._session: pkcs11.Session | None = session
        self._uri = uri
        self.certificate = certificate
        self._key: pkcs11.PrivateKey | None = None
        self._info: KeyInfo | None = None
        self._pin: str | None = None

    @property
    def uri(self) -> Pkcs11Uri:
        return self._uri

    @property
    def info(self) -> KeyInfo:
        """Key facts (available after ``login``)."""
        if self._info is None:
            raise HsmError("log in first: private key attributes are hidden until then")
        return self._info

    def login(self, pin: str) -> None:
        """Log in with the user PIN (once). A refused PIN raises PinIncorrect; never retried."""
        with self._lock:
            public_session = self._require_session()
            # python-pkcs11 logs in when it opens a session: open a logged-in one, and keep the
            # public one until that succeeded (a refused PIN leaves the key usable for a retry
            # that the person, not this code, decides on).
            self._session = _p11.login(self._token, pin)
            public_session.close()
            try:
                key = _p11.find_private_key(self._session, self._uri)
            except KeyNotFound:
                # Certificate and key may share a label but not an id (or the reverse).
                key = _p11.find_private_key(self._session, Pkcs11Uri(object=self._uri.object))
            mechanisms = _p11.signing_mechanisms(self._token)
            self._info = _p11.describe_key(key, self._token, mechanisms)
            self._key = key
            self._pin = pin if self._info.always_authenticate else None

    def pin_state(self) -> PinState:
        """What the token says now of its user PIN (CKF_USER_PIN_COUNT_LOW, _FINAL_TRY,
        _LOCKED), read afresh (C_GetTokenInfo): after a refused PIN, how many tries are left as
        far as the token tells (most say only "low" or "final")."""
        with self._lock:
            try:
                flags = self._token.slot.get_token().flags
            except p11x.PKCS11Error as exc:
                raise _p11.translate(exc, "reading the token's PIN state") from exc
        return PinState(
            count_low=bool(flags & pkcs11.TokenFlag.USER_PIN_COUNT_LOW),
            final_try=bool(flags & pkcs11.TokenFlag.USER_PIN_FINAL_TRY),
            locked=bool(flags & pkcs11.TokenFlag.USER_PIN_LOCKED),
        )

    def sign_digest(
        self, digest: bytes, digest_algorithm: DigestAlgorithm, pss: bool = False
    ) -> bytes:
        """Sign a precomputed digest; X.509/CMS form (DER ECDSA-Sig-Value for EC)."""
        info = self.info
        try:
            scheme = SignatureScheme(
                key_type=info.key_type, digest_algorithm=digest_algorithm, pss=pss
            )
        except ValueError as exc:
            raise MechanismUnsupported(str(exc)) from exc
        mechanism = _p11.choose_mechanism(scheme, info.mechanisms, hashed=False)
        with self._lock:
            if self._key is None:
                raise HsmError("log in first")
            try:
                return _p11.sign(self._key, scheme, mechanism, digest, pin=self._pin)
            except p11x.PKCS11Error as exc:
                raise _p11.translate(exc, f"signing with {self._uri.describe_object()}") from exc

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                try:
                    self._session.close()
                except p11x.PKCS11Error as exc:
                    _log.debug("closing a session of a removed token: %s", type(exc).__name__)
                self._session = None
            self._key = None
            self._pin = None

    def __enter__(self) -> LocalKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_session(self) -> pkcs11.Session:
        if self._session is None:
            raise HsmError("this token key is closed")
        return self._session
