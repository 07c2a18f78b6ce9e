"""When a document's evidence ends: the earliest of its last time-stamp's TSA certificate
expiry, that certificate's revocation and its algorithms' end under the dated rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from signer.archive import EvidenceFacts, evidence_end
from signer.verify.algorithms import AlgorithmRules

RULES = AlgorithmRules.from_mapping(
    {
        "digests": {"sha256": {}, "sha1": {"until": datetime(2030, 1, 1, tzinfo=UTC)}},
        "keys": {
            "rsa": [
                {"min_bits": 2048},
                {"min_bits": 1024, "until": datetime(2029, 6, 1, tzinfo=UTC)},
            ]
        },
        "signatures": {"mechanisms": ["rsassa_pkcs1v15"]},
    }
)
TSA_END = datetime(2031, 3, 1, tzinfo=UTC)
SIGNER_END = datetime(2032, 1, 1, tzinfo=UTC)


def _facts(**changes: object) -> EvidenceFacts:
    base: dict[str, object] = {
        "signatures": 1,
        "level": "B-LTA",
        "last_timestamp": datetime(2026, 12, 1, tzinfo=UTC),
        "tsa_not_after": TSA_END,
        "signer_not_after": SIGNER_END,
        "digest": "sha256",
        "key_algorithm": "rsa",
        "key_bits": 2048,
    }
    return EvidenceFacts(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "at", "reason"),
    [
        ({}, TSA_END, "tsa-certificate"),
        (
            {"tsa_revoked_at": datetime(2027, 5, 1, tzinfo=UTC)},
            datetime(2027, 5, 1, tzinfo=UTC),
            "tsa-revoked",
        ),
        ({"digest": "sha1"}, datetime(2030, 1, 1, tzinfo=UTC), "algorithm"),
        ({"key_bits": 1536}, datetime(2029, 6, 1, tzinfo=UTC), "algorithm"),
        ({"digest": "md5"}, datetime.fromtimestamp(0, UTC), "algorithm"),  # refused outright
        ({"last_timestamp": None, "tsa_not_after": None}, SIGNER_END, "signer-certificate"),
    ],
)
def test_the_earliest_end_wins(changes: dict[str, object], at: datetime, reason: str) -> None:
    end = evidence_end(_facts(**changes), RULES)
    assert (end.at, end.reason) == (at, reason)


def test_no_dated_fact_means_no_end() -> None:
    facts = EvidenceFacts(signatures=1, digest="sha256", key_algorithm="rsa", key_bits=4096)
    assert evidence_end(facts, RULES).at is None
