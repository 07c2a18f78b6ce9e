"""Signature schemes and how each maps onto PKCS#11 mechanisms.

A scheme is (key type, digest algorithm, PSS or not). For each, the token may offer a *hashed*
mechanism (``CKM_SHA256_RSA_PKCS``: the token hashes the data) and a *raw* one (``CKM_RSA_PKCS``
over a DigestInfo, ``CKM_RSA_PKCS_PSS`` or ``CKM_ECDSA`` over a digest computed on the host).
Signatures are always returned in the form X.509/CMS carry them: RSA as the big-endian integer
octets, ECDSA as DER ``SEQUENCE { r INTEGER, s INTEGER }`` (PKCS#11 returns r‖s).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from asn1crypto import algos

__all__ = [
    "DIGEST_ALGORITHMS",
    "DigestAlgorithm",
    "KeyType",
    "SignatureScheme",
    "digest_info",
    "ecdsa_der_from_raw",
    "mechanism_name",
]

DigestAlgorithm = Literal["sha256", "sha384", "sha512"]
KeyType = Literal["rsa", "ec"]
DIGEST_ALGORITHMS: tuple[DigestAlgorithm, ...] = ("sha256", "sha384", "sha512")
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}

# DER of DigestInfo up to the digest octets (RFC 8017 section 9.2, note 1).
_DIGEST_INFO_PREFIX = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}

# PKCS#11 mechanism numbers (PKCS#11 v2.40 section 2): kept as plain ints so that this module
# does not need the PKCS#11 library and the parent process can plan without loading it.
CKM_RSA_PKCS = 0x0001
CKM_RSA_PKCS_PSS = 0x000D
CKM_ECDSA = 0x1041
_CKM_HASHED_RSA = {"sha256": 0x0040, "sha384": 0x0041, "sha512": 0x0042}
_CKM_HASHED_PSS = {"sha256": 0x0043, "sha384": 0x0044, "sha512": 0x0045}
_CKM_HASHED_ECDSA = {"sha256": 0x1044, "sha384": 0x1045, "sha512": 0x1046}
_CKM_DIGEST = {"sha256": 0x0250, "sha384": 0x0260, "sha512": 0x0270}
_CKG_MGF1 = {"sha256": 0x0002, "sha384": 0x0003, "sha512": 0x0004}

_MECHANISM_NAMES = {
    CKM_RSA_PKCS: "RSA_PKCS",
    CKM_RSA_PKCS_PSS: "RSA_PKCS_PSS",
    CKM_ECDSA: "ECDSA",
    **{v: f"{k.upper()}_RSA_PKCS" for k, v in _CKM_HASHED_RSA.items()},
    **{v: f"{k.upper()}_RSA_PKCS_PSS" for k, v in _CKM_HASHED_PSS.items()},
    **{v: f"ECDSA_{k.upper()}" for k, v in _CKM_HASHED_ECDSA.items()},
}


@dataclass(frozen=True, kw_only=True)
class SignatureScheme:
    """How to sign: key type, digest algorithm, and (RSA only) PSS or PKCS#1 v1.5.

    PSS uses MGF1 with the same hash and a salt as long as the digest (RFC 4055 defaults).
    """

    key_type: KeyType
    digest_algorithm: DigestAlgorithm = "sha256"
    pss: bool = False

    def __post_init__(self) -> None:
        if self.digest_algorithm not in _DIGEST_SIZES:
            raise ValueError(
                f"digest algorithm {self.digest_algorithm!r} is not one of"
                f" {', '.join(DIGEST_ALGORITHMS)}"
            )
        if self.pss and self.key_type != "rsa":
            raise ValueError("PSS applies to RSA keys only")

    @property
    def digest_size(self) -> int:
        return _DIGEST_SIZES[self.digest_algorithm]

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.digest_algorithm, data).digest()

    @property
    def hashed_mechanism(self) -> int:
        """The mechanism by which the token hashes the data itself."""
        if self.key_type == "ec":
            return _CKM_HASHED_ECDSA[self.digest_algorithm]
        table = _CKM_HASHED_PSS if self.pss else _CKM_HASHED_RSA
        return table[self.digest_algorithm]

    @property
    def raw_mechanism(self) -> int:
        """The mechanism that signs a digest computed on the host."""
        if self.key_type == "ec":
            return CKM_ECDSA
        return CKM_RSA_PKCS_PSS if self.pss else CKM_RSA_PKCS

    @property
    def pss_parameters(self) -> tuple[int, int, int] | None:
        """``(hash mechanism, MGF, salt length)`` for CK_RSA_PKCS_PSS_PARAMS, or None."""
        if not self.pss:
            return None
        return (
            _CKM_DIGEST[self.digest_algorithm],
            _CKG_MGF1[self.digest_algorithm],
            self.digest_size,
        )

    def raw_input(self, digest: bytes) -> bytes:
        """What the raw mechanism signs for ``digest``: a DigestInfo for PKCS#1 v1.5."""
        if len(digest) != self.digest_size:
            raise ValueError(
                f"a {self.digest_algorithm} digest has {self.digest_size} bytes, got {len(digest)}"
            )
        if self.key_type == "rsa" and not self.pss:
            return digest_info(self.digest_algorithm, digest)
        return digest

    @property
    def signature_algorithm(self) -> algos.SignedDigestAlgorithm:
        """The X.509/CMS AlgorithmIdentifier of signatures made with this scheme."""
        if self.pss:
            return algos.SignedDigestAlgorithm(
                {
                    "algorithm": "rsassa_pss",
                    "parameters": algos.RSASSAPSSParams(
                        {
                            "hash_algorithm": {"algorithm": self.digest_algorithm},
                            "mask_gen_algorithm": {
                                "algorithm": "mgf1",
                                "parameters": {"algorithm": self.digest_algorithm},
                            },
                            "salt_length": self.digest_size,
                        }
                    ),
                }
            )
        suffix = "rsa" if self.key_type == "rsa" else "ecdsa"
        return algos.SignedDigestAlgorithm({"algorithm": f"{self.digest_algorithm}_{suffix}"})


def digest_info(digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
    """DER DigestInfo for ``digest`` (the input of raw RSA PKCS#1 v1.5 signing)."""
    return _DIGEST_INFO_PREFIX[digest_algorithm] + digest


def ecdsa_der_from_raw(raw: bytes) -> bytes:
    """Convert PKCS#11's ECDSA signature r‖s (two equal halves) to DER ECDSA-Sig-Value.

    Hand-written DER (two INTEGERs in a SEQUENCE): it runs once per EC signature, and a
    general ASN.1 encoder costs a fifth of a SoftHSM P-256 signature.
    """
    if not raw or len(raw) % 2:
        raise ValueError(f"an ECDSA r||s signature has an even, non-zero length, not {len(raw)}")
    half = len(raw) // 2
    body = _der_uint(raw[:half]) + _der_uint(raw[half:])
    return b"\x30" + _der_length(len(body)) + body


def _der_uint(value: bytes) -> bytes:
    value = value.lstrip(b"\0") or b"\0"
    if value[0] & 0x80:
        value = b"\0" + value
    return b"\x02" + _der_length(len(value)) + value


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def mechanism_name(mechanism: int) -> str:
    """``CKM_…`` name of a signing mechanism (hex for ones this module does not know)."""
    return _MECHANISM_NAMES.get(mechanism, f"0x{mechanism:08x}")
