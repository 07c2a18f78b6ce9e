"""What a verification checks and within which limits: :class:`VerificationPolicy`.

The algorithm rules are :class:`~signer.verify.algorithms.AlgorithmRules` (dated, in a TOML
file the operator can replace; the shipped ones accept RSA ≥ 2048 bits (PKCS#1 v1.5 or PSS),
ECDSA on curves of ≥ 256 bits, SHA-2 or SHA-3 digests of ≥ 256 bits at any time, and SHA-1 and
RSA-1024 only for signatures a trusted time-stamp proves older than 2014). They apply to the CMS
signature and to every certificate on the chain. :class:`KeyPolicyAlgorithms` is the earlier,
undated allow-list, kept for callers that want it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from asn1crypto import algos, keys
from pyhanko_certvalidator.policy_decl import AlgorithmUsageConstraint, AlgorithmUsagePolicy

from signer.verify.algorithms import AlgorithmRules
from signer.verify.fetching import FetchRules
from signer.verify.trust import TrustProfile

__all__ = [
    "ALLOWED_DIGESTS",
    "KeyPolicyAlgorithms",
    "Limits",
    "VerificationPolicy",
]

ALLOWED_DIGESTS = frozenset(
    {"sha256", "sha384", "sha512", "sha512_256", "sha3_256", "sha3_384", "sha3_512"}
)
_MIN_RSA_BITS = 2048
_MIN_EC_BITS = 256
_RSA_MECHANISMS = frozenset({"rsassa_pkcs1v15", "rsassa_pss"})
_EC_MECHANISMS = frozenset({"ecdsa"})


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Bounds for parsing an untrusted PDF.

    ``max_decode_ratio`` bounds each stream's decoded/encoded size (above 1 MiB decoded);
    ``max_decoded_bytes`` bounds everything one document may decode; ``timeout_seconds`` is
    enforced by :class:`~signer.verify.pool.Verifier`, which kills and replaces a worker that
    overruns it (a plain :func:`~signer.verify.engine.verify_pdf` call cannot interrupt itself;
    the worker's memory cap is the Verifier's own setting).
    """

    max_document_bytes: int = 64 * 1024 * 1024
    max_objects: int = 250_000
    max_revisions: int = 500
    max_signatures: int = 100
    max_decode_ratio: float = 100.0
    max_stream_bytes: int = 64 * 1024 * 1024
    max_decoded_bytes: int = 256 * 1024 * 1024
    timeout_seconds: float = 30.0


@dataclass(frozen=True, kw_only=True)
class VerificationPolicy:
    """How to verify: whom to trust, whether to go online, the limits, an optional fixed time.

    ``online``: fetch OCSP/CRL (and missing issuer certificates) when the document's own DSS data
    does not settle the chain; offline (the default) uses only what the document carries.
    ``validation_time``: judge "now" at this instant instead of the current time (audits of the
    past, reproducible tests). ``algorithms``: the dated algorithm rules (default: shipped).
    ``fetching``: what may be fetched when online (``signer.verify.fetching``); None follows
    every URL the document names — only for a verifier run by a person on their own machine.
    """

    trust: tuple[TrustProfile, ...] = ()
    online: bool = False
    limits: Limits = field(default_factory=Limits)
    validation_time: datetime | None = None
    fetch_timeout_seconds: float = 10.0
    fetching: FetchRules | None = None
    algorithms: AlgorithmRules = field(default_factory=AlgorithmRules.shipped)

    @property
    def anchor_certificates(self) -> tuple[bytes, ...]:
        return tuple(dict.fromkeys(c for p in self.trust for c in p.certificates))

    @property
    def anchor_fingerprints(self) -> frozenset[str]:
        return frozenset(f for p in self.trust for f in p.fingerprints)

    @property
    def profile_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.trust)


class KeyPolicyAlgorithms(AlgorithmUsagePolicy):
    """An allow-list algorithm policy (see the module docstring); independent of time."""

    def digest_algorithm_allowed(
        self, algo: algos.DigestAlgorithm, moment: datetime | None
    ) -> AlgorithmUsageConstraint:
        name = algo["algorithm"].native
        if name in ALLOWED_DIGESTS:
            return AlgorithmUsageConstraint(allowed=True)
        return AlgorithmUsageConstraint(
            allowed=False, failure_reason=f"digest {name} is not SHA-2/SHA-3 of at least 256 bits"
        )

    def signature_algorithm_allowed(
        self,
        algo: algos.SignedDigestAlgorithm,
        moment: datetime | None,
        public_key: keys.PublicKeyInfo | None,
    ) -> AlgorithmUsageConstraint:
        try:
            mechanism = algo.signature_algo
        except ValueError:
            mechanism = str(algo["algorithm"].native)
        if mechanism not in _RSA_MECHANISMS | _EC_MECHANISMS:
            return AlgorithmUsageConstraint(
                allowed=False, failure_reason=f"signature algorithm {mechanism} is not RSA/ECDSA"
            )
        if public_key is not None:
            bits = public_key.bit_size
            minimum = _MIN_RSA_BITS if mechanism in _RSA_MECHANISMS else _MIN_EC_BITS
            if bits < minimum:
                return AlgorithmUsageConstraint(
                    allowed=False,
                    failure_reason=f"{mechanism} key of {bits} bits; at least {minimum} required",
                )
        try:
            digest = algo.hash_algo
        except ValueError:
            # A bare mechanism (rsassa_pkcs1v15 in a CMS SignerInfo) names no digest: the CMS
            # digest algorithm is checked on its own by digest_algorithm_allowed.
            return AlgorithmUsageConstraint(allowed=True)
        return self.digest_algorithm_allowed(algos.DigestAlgorithm({"algorithm": digest}), moment)
