"""Dated algorithm rules (ETSI TS 119 312 style): which digests, mechanisms and key sizes are
acceptable, and until when.

- :class:`AlgorithmRules`: the rules as data, read from a TOML file (``algorithms.toml`` beside
  this module is shipped with kyso; the operator names another in ``[verify] algorithms``). The
  format is documented in that file and in docs/report-schema.md.
- :class:`DatedAlgorithmPolicy`: the rules as pyHanko's algorithm usage policy. An algorithm
  with an ``until`` date is allowed at a moment before that date and refused at or after it with
  ``not_allowed_after`` set, which pyHanko and pyhanko-certvalidator turn into
  CRYPTO_CONSTRAINTS_FAILURE_NO_POE; an algorithm not in the rules is refused without a date
  (CRYPTO_CONSTRAINTS_FAILURE).
- :class:`LabelTolerantValidator`: checks an ECDSA value whose CMS signature algorithm names the
  key type (id-ecPublicKey, as iText 5 writes it; rsaEncryption, as endesive does) as ECDSA with
  the CMS digest algorithm, so that whether such a signature is acceptable is the rules'
  decision (``mislabelled_ecdsa``), not a "bad signature value".
- :func:`review`: what the rules decided for one CMS signature, as notes for the report —
  accepted because a trusted time-stamp proves the signature existed before an algorithm's end
  date, refused for want of that proof, or a mislabelled ECDSA value accepted or refused.

The moment pyHanko judges a signature at is the time of its time-stamp when it has one, trusted
or not (the engine's validation moment); :func:`review` is what insists that the proof comes from
a *trusted* time-stamp: without one, an algorithm past its date is refused at the verification
time.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from asn1crypto import algos, cms, keys
from pyhanko_certvalidator.policy_decl import AlgorithmUsageConstraint, AlgorithmUsagePolicy
from pyhanko_certvalidator.sig_validate import (
    DEFAULT_VALIDATION_CONTEXT,
    DefaultSignatureValidator,
    SignatureValidationContext,
)

from signer.verify.errors import VerificationError

__all__ = [
    "SHIPPED_RULES",
    "AlgorithmRules",
    "AlgorithmRulesInvalid",
    "DatedAlgorithmPolicy",
    "Decision",
    "KeyRule",
    "LabelTolerantValidator",
    "dated_policy",
    "review",
]

SHIPPED_RULES = Path(__file__).with_name("algorithms.toml")

# CMS signature algorithm OIDs that name a key type rather than a signature mechanism.
_KEY_TYPE_LABELS = frozenset({"1.2.840.10045.2.1", "rsassa_pkcs1v15"})
_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_KEY_ALGORITHMS = {"rsa": "rsa", "rsassa_pss": "rsa", "ec": "ec"}


class AlgorithmRulesInvalid(VerificationError):
    """The algorithm rules file cannot be read or says something kyso cannot apply."""


@dataclass(frozen=True, kw_only=True)
class KeyRule:
    """Keys of ``algorithm`` with at least ``min_bits`` bits, acceptable before ``until``."""

    algorithm: str
    min_bits: int
    until: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class AlgorithmRules:
    """The rules; see the module docstring. Frozen and picklable (it travels to the workers
    inside :class:`~signer.verify.policy.VerificationPolicy`)."""

    digests: tuple[tuple[str, datetime | None], ...]
    key_rules: tuple[KeyRule, ...]
    mechanisms: frozenset[str]
    mislabelled_ecdsa: Literal["accept", "refuse"] = "accept"
    source: str = field(default="", compare=False)

    @classmethod
    def shipped(cls) -> AlgorithmRules:
        """The rules shipped with kyso (``algorithms.toml`` beside this module)."""
        return _shipped()

    @classmethod
    def load(cls, path: Path) -> AlgorithmRules:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise AlgorithmRulesInvalid(f"{path}: cannot read the algorithm rules ({exc})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise AlgorithmRulesInvalid(f"{path}: not valid TOML ({exc})") from exc
        return cls.from_mapping(raw, source=str(path))

    @classmethod
    def from_mapping(cls, raw: dict[str, Any], *, source: str = "") -> AlgorithmRules:
        where = source or "algorithm rules"
        unknown = set(raw) - {"digests", "keys", "signatures"}
        if unknown:
            raise AlgorithmRulesInvalid(f"{where}: unknown section {sorted(unknown)[0]!r}")
        digests = []
        for name, entry in _table(raw.get("digests", {}), f"{where}: digests").items():
            entry = _table(entry, f"{where}: digests.{name}")
            _only(entry, {"until"}, f"{where}: digests.{name}")
            digests.append((str(name), _until(entry.get("until"), f"{where}: digests.{name}")))
        key_rules = []
        for algorithm, entries in _table(raw.get("keys", {}), f"{where}: keys").items():
            if algorithm not in ("rsa", "ec"):
                raise AlgorithmRulesInvalid(f"{where}: keys.{algorithm}: only rsa and ec")
            if not isinstance(entries, list):
                raise AlgorithmRulesInvalid(f"{where}: keys.{algorithm}: an array of tables")
            for i, entry in enumerate(entries):
                key = f"{where}: keys.{algorithm}[{i}]"
                entry = _table(entry, key)
                _only(entry, {"min_bits", "until"}, key)
                bits = entry.get("min_bits")
                if not isinstance(bits, int) or isinstance(bits, bool) or bits < 1:
                    raise AlgorithmRulesInvalid(f"{key}.min_bits: a positive integer")
                key_rules.append(
                    KeyRule(
                        algorithm=algorithm, min_bits=bits, until=_until(entry.get("until"), key)
                    )
                )
        signatures = _table(raw.get("signatures", {}), f"{where}: signatures")
        _only(signatures, {"mechanisms", "mislabelled_ecdsa"}, f"{where}: signatures")
        mechanisms = signatures.get("mechanisms", ["rsassa_pkcs1v15", "rsassa_pss", "ecdsa"])
        if not isinstance(mechanisms, list) or not all(isinstance(m, str) for m in mechanisms):
            raise AlgorithmRulesInvalid(f"{where}: signatures.mechanisms: a list of names")
        label = signatures.get("mislabelled_ecdsa", "accept")
        if label not in ("accept", "refuse"):
            raise AlgorithmRulesInvalid(
                f'{where}: signatures.mislabelled_ecdsa: "accept" or "refuse", not {label!r}'
            )
        return cls(
            digests=tuple(digests),
            key_rules=tuple(key_rules),
            mechanisms=frozenset(mechanisms),
            mislabelled_ecdsa=label,
            source=source,
        )

    def digest_until(self, name: str) -> tuple[bool, datetime | None]:
        """(listed, until) for digest ``name``."""
        for listed, until in self.digests:
            if listed == name:
                return True, until
        return False, None

    def key_until(self, algorithm: str, bits: int) -> tuple[bool, datetime | None]:
        """(acceptable at some time, until) for a key: the rule with the largest ``min_bits``
        not above ``bits`` decides."""
        family = _KEY_ALGORITHMS.get(algorithm, algorithm)
        fitting = [r for r in self.key_rules if r.algorithm == family and r.min_bits <= bits]
        if not fitting:
            return False, None
        rule = max(fitting, key=lambda r: r.min_bits)
        return True, rule.until


@lru_cache(maxsize=1)
def _shipped() -> AlgorithmRules:
    return AlgorithmRules.load(SHIPPED_RULES)


def _table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise AlgorithmRulesInvalid(f"{key}: a table")
    return value


def _only(entry: dict[str, Any], allowed: set[str], key: str) -> None:
    unknown = set(entry) - allowed
    if unknown:
        raise AlgorithmRulesInvalid(f"{key}: unknown key {sorted(unknown)[0]!r}")


def _until(value: Any, key: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise AlgorithmRulesInvalid(f"{key}.until: give an offset (e.g. Z) or a plain date")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    raise AlgorithmRulesInvalid(f"{key}.until: a TOML date or offset date-time")


def _dated(until: datetime | None, moment: datetime | None, what: str) -> AlgorithmUsageConstraint:
    if until is None or (moment is not None and moment < until):
        return AlgorithmUsageConstraint(allowed=True)
    return AlgorithmUsageConstraint(
        allowed=False,
        not_allowed_after=until,
        failure_reason=f"{what} is acceptable only for signatures proven to exist before "
        f"{until.isoformat()}",
    )


class DatedAlgorithmPolicy(AlgorithmUsagePolicy):
    """:class:`AlgorithmRules` as pyHanko's algorithm usage policy (see the module docstring)."""

    def __init__(self, rules: AlgorithmRules) -> None:
        self.rules = rules

    def digest_algorithm_allowed(
        self, algo: algos.DigestAlgorithm, moment: datetime | None
    ) -> AlgorithmUsageConstraint:
        name = str(algo["algorithm"].native)
        listed, until = self.rules.digest_until(name)
        if not listed:
            return AlgorithmUsageConstraint(
                allowed=False, failure_reason=f"digest {name} is not in the algorithm rules"
            )
        return _dated(until, moment, f"digest {name}")

    def signature_algorithm_allowed(
        self,
        algo: algos.SignedDigestAlgorithm,
        moment: datetime | None,
        public_key: keys.PublicKeyInfo | None,
    ) -> AlgorithmUsageConstraint:
        label = str(algo["algorithm"].native)
        if public_key is not None and _mislabelled_ecdsa(label, public_key):
            if self.rules.mislabelled_ecdsa == "refuse":
                return AlgorithmUsageConstraint(
                    allowed=False,
                    failure_reason=f"an ECDSA value labelled {_label_name(label)} "
                    "(refused by the algorithm rules)",
                )
            mechanism = "ecdsa"
        else:
            try:
                mechanism = algo.signature_algo
            except ValueError:
                mechanism = label
        if mechanism not in self.rules.mechanisms:
            return AlgorithmUsageConstraint(
                allowed=False,
                failure_reason=f"signature algorithm {mechanism} is not in the algorithm rules",
            )
        if public_key is not None:
            family, bits = _key_facts(public_key.dump())
            acceptable, until = self.rules.key_until(family, bits)
            if not acceptable:
                return AlgorithmUsageConstraint(
                    allowed=False,
                    failure_reason=f"{family} key of {bits} bits is not in the algorithm rules",
                )
            constraint = _dated(until, moment, f"a {family} key of {bits} bits")
            if not constraint:
                return constraint
        try:
            digest = algo.hash_algo
        except ValueError:
            # A bare mechanism (rsassa_pkcs1v15 in a SignerInfo) names no digest: the CMS digest
            # algorithm is checked on its own by digest_algorithm_allowed.
            return AlgorithmUsageConstraint(allowed=True)
        return self.digest_algorithm_allowed(algos.DigestAlgorithm({"algorithm": digest}), moment)


@lru_cache(maxsize=8)
def dated_policy(rules: AlgorithmRules) -> DatedAlgorithmPolicy:
    """The policy object for ``rules`` (one per rules value in a process)."""
    return DatedAlgorithmPolicy(rules)


class LabelTolerantValidator(DefaultSignatureValidator):
    """pyHanko's signature check, but an ECDSA value labelled with a key-type OID is checked as
    ECDSA with the CMS digest algorithm (whether it is *acceptable* is the rules' decision)."""

    def validate_signature(
        self,
        signature: bytes,
        signed_data: bytes,
        public_key_info: keys.PublicKeyInfo,
        signature_algorithm: algos.SignedDigestAlgorithm,
        context: SignatureValidationContext = DEFAULT_VALIDATION_CONTEXT,
    ) -> None:
        label = str(signature_algorithm["algorithm"].native)
        digest = context.contextual_md_algorithm
        if _mislabelled_ecdsa(label, public_key_info) and digest:
            signature_algorithm = algos.SignedDigestAlgorithm({"algorithm": f"{digest}_ecdsa"})
        super().validate_signature(
            signature, signed_data, public_key_info, signature_algorithm, context
        )


def _mislabelled_ecdsa(label: str, public_key: keys.PublicKeyInfo) -> bool:
    return label in _KEY_TYPE_LABELS and _key_facts(public_key.dump())[0] == "ec"


@lru_cache(maxsize=256)
def _key_facts(der: bytes) -> tuple[str, int]:
    """(algorithm, size in bits) of a public key: asn1crypto recomputes both from the key's
    encoding on every call, and the same few keys are checked for every certificate of every
    document."""
    info = keys.PublicKeyInfo.load(der)
    return str(info.algorithm), int(info.bit_size)


def _label_name(label: str) -> str:
    return "id-ecPublicKey" if label == _EC_PUBLIC_KEY else "rsaEncryption"


@dataclass(frozen=True, kw_only=True)
class Decision:
    """One decision of the rules about a signature, for the report (``code`` is stable API)."""

    code: str
    detail: str
    accepted: bool


def review(
    rules: AlgorithmRules,
    signer_info: cms.SignerInfo,
    public_key: keys.PublicKeyInfo,
    *,
    proven_at: datetime | None,
    now: datetime,
) -> list[Decision]:
    """What the rules decided about this CMS signature's own algorithms (see module docstring).

    ``proven_at``: the time of a *trusted* signature time-stamp, or None. Codes:
    ``ALGORITHM_ACCEPTED_WITH_POE`` (a dated algorithm accepted because the time-stamp precedes
    its end date), ``ALGORITHM_NO_POE`` (refused: past its end date and no trusted time-stamp
    before it), ``ECDSA_LABEL_ACCEPTED`` / ``ECDSA_LABEL_REFUSED``.
    """
    decisions: list[Decision] = []
    label = str(signer_info["signature_algorithm"]["algorithm"].native)
    if _mislabelled_ecdsa(label, public_key):
        accepted = rules.mislabelled_ecdsa == "accept"
        decisions.append(
            Decision(
                code="ECDSA_LABEL_ACCEPTED" if accepted else "ECDSA_LABEL_REFUSED",
                detail=f"ECDSA value labelled {_label_name(label)}; checked as ECDSA "
                f"(algorithm rules: {rules.mislabelled_ecdsa})",
                accepted=accepted,
            )
        )
    digest = str(signer_info["digest_algorithm"]["algorithm"].native)
    dated: list[tuple[str, datetime]] = []
    listed, until = rules.digest_until(digest)
    if listed and until is not None:
        dated.append((f"digest {digest}", until))
    acceptable, until = rules.key_until(public_key.algorithm, int(public_key.bit_size))
    if acceptable and until is not None:
        dated.append((f"{public_key.algorithm} key of {public_key.bit_size} bits", until))
    for what, until in dated:
        if now < until:
            continue  # still acceptable today: nothing to prove
        if proven_at is not None and proven_at < until:
            decisions.append(
                Decision(
                    code="ALGORITHM_ACCEPTED_WITH_POE",
                    detail=f"{what} acceptable before {until.date().isoformat()}; a trusted "
                    f"time-stamp proves the signature existed at {proven_at.isoformat()}",
                    accepted=True,
                )
            )
        else:
            decisions.append(
                Decision(
                    code="ALGORITHM_NO_POE",
                    detail=f"{what} acceptable only before {until.date().isoformat()}, and no "
                    "trusted time-stamp proves the signature existed before then",
                    accepted=False,
                )
            )
    return decisions
