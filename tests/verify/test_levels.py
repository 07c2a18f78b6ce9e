"""Signed documents at every level verify with the right facts; certificate problems give the
right EN 319 102-1 indications; trust comes only from configured anchors."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from asn1crypto import pem

from kyso.dev.pki import TestCertificate
from signer import Level
from signer.verify import (
    SCHEMA,
    Indication,
    PadesLevel,
    SubIndication,
    TrustProfile,
    VerificationPolicy,
    render_text,
    report_to_dict,
    verify_pdf,
)
from signer.verify.trust import certificate_fingerprint

PASSED = Indication.TOTAL_PASSED


@pytest.mark.parametrize(
    ("level", "reached"),
    [
        (Level.B_B, PadesLevel.B_B),
        (Level.B_T, PadesLevel.B_T),
        (Level.B_LT, PadesLevel.B_LT),
        (Level.B_LTA, PadesLevel.B_LTA),
    ],
)
def test_each_level_passes_online_with_its_level(signed, online_policy, level, reached):
    report = verify_pdf(signed.get("seal", level), policy=online_policy)
    assert report.indication is PASSED
    signature = report.signatures[0]
    assert signature.level_reached is reached
    assert signature.intact
    assert signature.signature_valid
    assert signature.trusted
    assert signature.revocation.status.value == "good"
    assert (signature.timestamp is None) == (level is Level.B_B)
    timestamps = [s for s in report.signatures if s.kind.value == "document-timestamp"]
    assert len(timestamps) == (1 if level is Level.B_LTA else 0)


@pytest.mark.parametrize("level", [Level.B_LT, Level.B_LTA])
def test_long_term_levels_pass_offline_from_the_dss(signed, policy, level):
    report = verify_pdf(signed.get("seal", level), policy=policy)
    assert report.indication is PASSED
    assert report.signatures[0].revocation.source.value == "embedded"
    # The DSS (and time-stamp) updates after the signature are reported, and harmless.
    unsigned = [f for f in report.findings if f.code == "UNSIGNED_UPDATE"]
    assert unsigned
    assert all(f.modification_level.value == "lta-updates" for f in unsigned)


@pytest.mark.parametrize("level", [Level.B_B, Level.B_T])
def test_short_levels_offline_lack_revocation_data(signed, policy, level):
    report = verify_pdf(signed.get("seal", level), policy=policy)
    assert report.indication is Indication.INDETERMINATE
    assert report.sub_indication is SubIndication.TRY_LATER
    assert report.signatures[0].revocation.status.value == "unknown"


def test_signature_facts(signed, policy, dev_env):
    report = verify_pdf(signed.get("seal", Level.B_LT), policy=policy)
    sig = report.signatures[0]
    assert dev_env.organisation.name in sig.signer.subject
    assert "kyso Development Issuing CA" in sig.signer.issuer
    assert int(sig.signer.serial, 16) > 0
    assert sig.claimed_signing_time is not None
    assert sig.timestamp is not None
    assert abs(sig.timestamp.time - sig.claimed_signing_time) < timedelta(minutes=1)
    assert "Time-Stamping" in sig.timestamp.tsa_subject
    assert sig.chain[-1].subject.startswith("Common Name: kyso Development Root CA")
    assert sig.chain[0].sha256 == sig.signer.sha256
    assert sig.algorithm.acceptable
    assert sig.algorithm.key_bits == 2048
    assert sig.key_usage_ok
    assert "non_repudiation" in sig.key_usage
    assert sig.byte_range[0] == 0
    assert len(sig.byte_range) == 4
    assert sig.coverage.value == "entire-revision"
    assert not sig.covers_whole_document


def test_ec_signature_passes(signed, policy):
    report = verify_pdf(signed.get("seal-ec", Level.B_LT), policy=policy)
    assert report.indication is PASSED
    assert report.signatures[0].algorithm.key_algorithm == "ec"
    assert report.signatures[0].algorithm.key_bits == 256


def test_official_then_seal_passes(signed, policy):
    report = verify_pdf(signed.official_then_seal(), policy=policy)
    assert report.indication is PASSED
    official, seal = report.signatures
    assert "Nguyễn Văn A" in official.signer.subject
    assert official.modification_level.value == "form-filling"
    assert seal.modification_level.value == "lta-updates"
    assert official.level_reached is seal.level_reached is PadesLevel.B_LT


@pytest.mark.parametrize(
    ("kind", "indication", "sub", "code"),
    [
        (
            TestCertificate.EXPIRED,
            Indication.INDETERMINATE,
            SubIndication.OUT_OF_BOUNDS_NO_POE,
            "OUT_OF_BOUNDS_NO_POE",
        ),
        (
            TestCertificate.NOT_YET_VALID,
            Indication.TOTAL_FAILED,
            SubIndication.NOT_YET_VALID,
            "NOT_YET_VALID",
        ),
        (TestCertificate.REVOKED, Indication.TOTAL_FAILED, SubIndication.REVOKED, "REVOKED"),
        (
            TestCertificate.NO_SIGNING_USAGE,
            Indication.INDETERMINATE,
            SubIndication.CHAIN_CONSTRAINTS_FAILURE,
            "KEY_USAGE",
        ),
    ],
)
def test_certificate_problems(signed, online_policy, kind, indication, sub, code):
    report = verify_pdf(signed.get(kind.value, Level.B_T), policy=online_policy)
    signature = report.signatures[0]
    assert (signature.indication, signature.sub_indication) == (indication, sub)
    assert code in {p.code for p in signature.problems}
    assert report.indication is indication
    if kind is TestCertificate.REVOKED:
        assert signature.revocation.status.value == "revoked"
        assert signature.revocation.revoked_at < signature.timestamp.time


def test_revoked_without_time_stamp_is_indeterminate(signed, online_policy):
    report = verify_pdf(signed.get(TestCertificate.REVOKED.value, Level.B_B), policy=online_policy)
    assert report.signatures[0].sub_indication is SubIndication.REVOKED_NO_POE
    assert report.indication is Indication.INDETERMINATE


def test_no_anchor_no_trust(signed):
    report = verify_pdf(signed.get("seal", Level.B_LT), policy=VerificationPolicy())
    assert report.indication is Indication.INDETERMINATE
    assert report.sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND
    assert not report.signatures[0].trusted
    assert report.signatures[0].chain == ()


def test_vietnamese_profiles_are_empty_until_filled(signed, dev_env):
    from signer.verify import vn_government_pki_profile, vn_national_root_profile

    empty = (vn_national_root_profile(), vn_government_pki_profile())
    assert all(p.empty for p in empty)
    report = verify_pdf(signed.get("seal", Level.B_LT), policy=VerificationPolicy(trust=empty))
    assert report.sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND
    filled = vn_government_pki_profile(pem_files=[dev_env.root_certificate_path])
    report = verify_pdf(signed.get("seal", Level.B_LT), policy=VerificationPolicy(trust=(filled,)))
    assert report.indication is PASSED
    assert report.trust_profiles == ("vn-government-pki",)


def test_fingerprint_anchors_a_certificate_found_in_the_document(signed, dev_env):
    der = pem.unarmor(dev_env.intermediate_certificate_path.read_bytes())[2]
    fingerprint = certificate_fingerprint(der)
    colons = ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    profile = TrustProfile.from_sources(name="pinned", fingerprints=[colons])
    report = verify_pdf(signed.get("seal", Level.B_LT), policy=VerificationPolicy(trust=(profile,)))
    assert report.indication is PASSED
    assert "Issuing CA" in report.signatures[0].trust_anchor
    wrong = TrustProfile.from_sources(name="wrong", fingerprints=["ab" * 32])
    report = verify_pdf(signed.get("seal", Level.B_LT), policy=VerificationPolicy(trust=(wrong,)))
    assert report.sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND


def test_unsigned_pdf(signed, policy):
    report = verify_pdf(signed.base, policy=policy)
    assert report.indication is Indication.INDETERMINATE
    assert report.sub_indication is SubIndication.NO_SIGNATURE_FOUND


def test_json_report_follows_the_schema(signed, policy):
    report = verify_pdf(signed.official_then_seal(), policy=policy)
    data = json.loads(json.dumps(report_to_dict(report)))
    assert next(iter(data)) == "schema"
    assert data["schema"] == SCHEMA == "kyso.verification/1"
    assert data["indication"] == "TOTAL-PASSED"
    assert data["sub_indication"] is None
    keys = {
        "kind",
        "field_name",
        "indication",
        "sub_indication",
        "signer",
        "chain",
        "trust_anchor",
        "claimed_signing_time",
        "timestamp",
        "timestamp_time",
        "intact",
        "signature_valid",
        "trusted",
        "revocation",
        "byte_range",
        "coverage",
        "covers_whole_document",
        "signed_revision",
        "modification_level",
        "docmdp",
        "level_reached",
        "sub_filter",
        "signature_format",
        "algorithm",
        "key_usage",
        "key_usage_ok",
        "problems",
    }
    assert set(data["signatures"][0]) == keys
    assert set(data["signatures"][0]["revocation"]) == {
        "status",
        "source",
        "revoked_at",
        "reason",
        "found",
    }
    assert data["signatures"][0]["level_reached"] == "B-LT"
    assert data["findings"][0]["code"] == "UNSIGNED_UPDATE"


def test_text_report_in_both_languages(signed, policy):
    report = verify_pdf(signed.official_then_seal(), policy=policy)
    vi = render_text(report, lang="vi")
    en = render_text(report, lang="en")
    assert "HỢP LỆ (TOTAL-PASSED)" in vi
    assert "Người ký" in vi
    assert "Nguyễn Văn A" in vi
    assert "VALID (TOTAL-PASSED)" in en
    assert "Signer" in en
    assert "PAdES level reached: B-LT" in en
    assert "+07:00" in vi


def test_catalogues_cover_every_code():
    from signer.verify.text import LANGUAGES, PROBLEM_TEXT, SUB_INDICATION_TEXT

    for sub in SubIndication:
        assert all(SUB_INDICATION_TEXT[sub][lang] for lang in LANGUAGES)
    for code in (
        "BYTE_RANGE_INVALID",
        "SIGNATURE_UNREADABLE",
        "HASH_MISMATCH",
        "SIGNATURE_INVALID",
        "MODIFIED_AFTER_SIGNING",
        "TIMESTAMP_INVALID",
        "KEY_USAGE",
    ):
        assert all(PROBLEM_TEXT[code][lang] for lang in LANGUAGES)
