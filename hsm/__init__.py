"""hsm: PKCS#11 keys that many requests share safely.

- ``Pkcs11Uri``: RFC 7512 URIs naming tokens and keys; ``PinSource``: where a PIN comes from.
- ``KeyRing``: the server's signing service (worker processes, probes, recovery, health).
- ``open_token_key`` / ``LocalKey``: one token key in-process, for an official's workstation.
- ``list_tokens``, ``list_keys``, ``list_mechanisms``, ``test_sign``: operator tools.

Imports nothing of the project but the leaf ``workers`` (its worker processes). Errors derive
from ``HsmError`` (see ``hsm.errors``).
"""

from hsm.errors import (
    CertificateNotFound,
    HsmError,
    InvalidUri,
    KeyNotFound,
    KeyPolicyViolation,
    MechanismUnsupported,
    ModuleLoadError,
    MultipleKeysFound,
    MultipleTokensFound,
    PinIncorrect,
    PinLocked,
    PinSourceError,
    ProbeFailed,
    TokenNotFound,
    TokenUnavailable,
)
from hsm.inventory import (
    KeyEntry,
    MechanismEntry,
    TestSignResult,
    TokenEntry,
    list_keys,
    list_mechanisms,
    list_tokens,
    probe_sign,
    test_sign,
)
from hsm.keyring import KeyRing, TokenState
from hsm.keys import KeyInfo, KeySpec
from hsm.local import LocalKey, PinState, open_token_key
from hsm.pin import PinSource
from hsm.schemes import (
    DIGEST_ALGORITHMS,
    DigestAlgorithm,
    KeyType,
    SignatureScheme,
    digest_info,
    ecdsa_der_from_raw,
    mechanism_name,
)
from hsm.uri import ObjectType, Pkcs11Uri
from hsm.verify import verify_signature

__all__ = [
    "DIGEST_ALGORITHMS",
    "CertificateNotFound",
    "DigestAlgorithm",
    "HsmError",
    "InvalidUri",
    "KeyEntry",
    "KeyInfo",
    "KeyNotFound",
    "KeyPolicyViolation",
    "KeyRing",
    "KeySpec",
    "KeyType",
    "LocalKey",
    "MechanismEntry",
    "MechanismUnsupported",
    "ModuleLoadError",
    "MultipleKeysFound",
    "MultipleTokensFound",
    "ObjectType",
    "PinIncorrect",
    "PinLocked",
    "PinSource",
    "PinSourceError",
    "PinState",
    "Pkcs11Uri",
    "ProbeFailed",
    "SignatureScheme",
    "TestSignResult",
    "TokenEntry",
    "TokenNotFound",
    "TokenState",
    "TokenUnavailable",
    "digest_info",
    "ecdsa_der_from_raw",
    "list_keys",
    "list_mechanisms",
    "list_tokens",
    "mechanism_name",
    "open_token_key",
    "probe_sign",
    "test_sign",
    "verify_signature",
]
