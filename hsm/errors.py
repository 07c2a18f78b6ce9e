"""The hsm package's exceptions: one root, ``HsmError``, and a class per failure a caller handles.

Messages say what is wrong and what to do. They never contain PINs, key material or data that
was signed. PKCS#11 library errors are wrapped with ``raise … from exc``.
"""

from __future__ import annotations

__all__ = [
    "CertificateNotFound",
    "HsmError",
    "InvalidUri",
    "KeyNotFound",
    "KeyPolicyViolation",
    "MechanismUnsupported",
    "ModuleLoadError",
    "MultipleKeysFound",
    "MultipleTokensFound",
    "PinIncorrect",
    "PinLocked",
    "PinSourceError",
    "ProbeFailed",
    "TokenNotFound",
    "TokenUnavailable",
]


class HsmError(Exception):
    """Root of every error raised by the hsm package.

    ``aliases``: the configured keys the failure concerns, when known (the key ring sets it so
    that an operator is told which configuration entries to fix).
    """

    aliases: tuple[str, ...] = ()


class ModuleLoadError(HsmError):
    """The PKCS#11 module (shared library) could not be loaded or initialised."""


class InvalidUri(HsmError):
    """A PKCS#11 URI is malformed; the message names the offending part and its position."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class TokenNotFound(HsmError):
    """No token matches the URI's token attributes (label, serial, manufacturer, model)."""


class MultipleTokensFound(HsmError):
    """Several tokens match; the URI must name one (add ``serial=``)."""


class TokenUnavailable(HsmError):
    """The token or module failed mid-operation (device removed, module error, worker died).

    Transient by nature: the signing service maps it to UNAVAILABLE and recovers by itself when
    the token is back.
    """


class PinIncorrect(HsmError):
    """The token refused the PIN. Never retried automatically: tokens lock after a few tries."""


class PinLocked(HsmError):
    """The token's user PIN is locked; the security officer must unblock it."""


class PinSourceError(HsmError):
    """A PIN could not be read from its source (environment variable, file or prompt)."""


class KeyNotFound(HsmError):
    """No private key on the token matches the URI's object attributes."""


class MultipleKeysFound(HsmError):
    """Several private keys match the URI; name one key (``object=`` and/or ``id=``)."""


class CertificateNotFound(HsmError):
    """A key has no certificate on the token (same CKA_ID or label) and none was configured."""


class KeyPolicyViolation(HsmError):
    """The key may be exported (extractable or not sensitive) and config does not allow that."""


class MechanismUnsupported(HsmError):
    """Neither the hashed nor the raw mechanism for a signature scheme is offered by the token."""


class ProbeFailed(HsmError):
    """A probe signature did not verify against the key's certificate (key/certificate mismatch)."""
