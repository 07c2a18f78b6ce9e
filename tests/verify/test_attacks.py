"""Attack corpus: each attack document is rejected with the right indication; the untouched
originals (single signature at B-LT, official-then-seal, the shadow-attack base) pass."""

from __future__ import annotations

import pytest

from signer import AppearanceKind, Level
from signer.verify import Indication, SubIndication, verify_pdf
from tests.verify import attacks
from tests.verify.conftest import SEAL_RECT

FAILED, INDETERMINATE, PASSED = (
    Indication.TOTAL_FAILED,
    Indication.INDETERMINATE,
    Indication.TOTAL_PASSED,
)


@pytest.fixture(scope="module")
def original(signed) -> bytes:
    return signed.get("seal", Level.B_LT)


@pytest.fixture(scope="module")
def stamped(signed) -> bytes:
    return signed.sign(
        signed.base, "seal", Level.B_LT, appearance=AppearanceKind.SEAL, rect=SEAL_RECT
    )


@pytest.fixture(scope="module")
def shadow_signed(signed) -> bytes:
    return signed.sign(attacks.shadow_base_pdf(), "seal", Level.B_LT)


def _codes(report) -> set[str]:
    return {p.code for s in report.signatures for p in s.problems} | {
        f.code for f in report.findings
    }


def test_originals_pass(original, stamped, shadow_signed, signed, policy):
    for doc in (original, stamped, shadow_signed, signed.official_then_seal()):
        report = verify_pdf(doc, policy=policy)
        assert report.indication is PASSED, [(s.field_name, s.problems) for s in report.signatures]
        assert all(s.indication is PASSED for s in report.signatures)


USF = {
    "byte_range_removed": (attacks.byte_range_removed, "SIGNATURE_UNREADABLE"),
    "byte_range_zeroed": (attacks.byte_range_zeroed, "BYTE_RANGE_INVALID"),
    "byte_range_shifted": (attacks.byte_range_shifted, "BYTE_RANGE_INVALID"),
    "byte_range_shrunk": (attacks.byte_range_shrunk, "BYTE_RANGE_INVALID"),
    "contents_emptied": (attacks.contents_emptied, "SIGNATURE_UNREADABLE"),
}


@pytest.mark.parametrize("name", sorted(USF))
def test_universal_signature_forgery(original, policy, name):
    attack, code = USF[name]
    report = verify_pdf(attack(original), policy=policy)
    assert report.readable
    assert report.indication is FAILED
    assert report.sub_indication is SubIndication.FORMAT_FAILURE
    (signature,) = [s for s in report.signatures if s.field_name == "Signature1"]
    assert signature.indication is FAILED
    assert code in {p.code for p in signature.problems}


@pytest.mark.parametrize(
    "attack", [attacks.change_page_content, attacks.page_added], ids=["content", "page_added"]
)
def test_incremental_saving_attacks(original, policy, attack):
    report = verify_pdf(attack(original), policy=policy)
    assert report.indication is FAILED
    assert report.sub_indication is SubIndication.FORBIDDEN_MODIFICATION
    assert report.signatures[0].sub_indication is SubIndication.FORBIDDEN_MODIFICATION
    assert "MODIFIED_AFTER_SIGNING" in _codes(report)
    unsigned = [f for f in report.findings if f.code == "UNSIGNED_UPDATE"]
    assert unsigned
    assert unsigned[-1].modification_level.value == "other"


def test_incremental_saving_image_replaced(stamped, policy):
    report = verify_pdf(attacks.replace_stamp_image(stamped), policy=policy)
    assert report.indication is FAILED
    assert report.signatures[0].sub_indication is SubIndication.FORBIDDEN_MODIFICATION


def test_signature_wrapping(original, policy):
    report = verify_pdf(attacks.signature_wrapping(original), policy=policy)
    assert report.indication is FAILED
    signature = report.signatures[0]
    assert signature.indication is FAILED
    assert signature.sub_indication in (SubIndication.FORMAT_FAILURE, SubIndication.HASH_FAILURE)


@pytest.mark.parametrize(
    "attack",
    [
        attacks.shadow_hide_overlay_removed,
        attacks.shadow_replace_swap_contents,
        attacks.shadow_hide_and_replace_override,
    ],
    ids=["hide_overlay", "replace_swap", "hide_and_replace"],
)
def test_shadow_attacks_fail(shadow_signed, policy, attack):
    report = verify_pdf(attack(shadow_signed), policy=policy)
    assert report.indication is FAILED
    assert report.sub_indication is SubIndication.FORBIDDEN_MODIFICATION


def test_shadow_hide_by_form_filling_is_not_passed(shadow_signed, policy):
    """Form filling after an approval signature is allowed by its DocMDP, so the signature
    itself holds; but what the document shows was signed by nobody: INDETERMINATE."""
    report = verify_pdf(attacks.shadow_hide_by_form_filling(shadow_signed), policy=policy)
    assert report.signatures[0].indication is PASSED
    assert report.signatures[0].modification_level.value == "form-filling"
    assert report.indication is INDETERMINATE
    assert report.sub_indication is SubIndication.UNSIGNED_CHANGES
    (finding,) = [
        f for f in report.findings if f.code == "UNSIGNED_UPDATE" and f.severity.value == "warning"
    ]
    assert finding.modification_level.value == "form-filling"


def test_appended_trailing_data(original, policy):
    doc = attacks.append_trailing_data(original)
    report = verify_pdf(doc, policy=policy)
    assert report.indication is FAILED
    assert report.sub_indication is SubIndication.FORMAT_FAILURE
    (finding,) = [f for f in report.findings if f.code == "TRAILING_DATA"]
    assert finding.offset == len(original)
    assert finding.length == len(doc) - len(original)
    # The signature itself is intact: the verdict comes from the document rule.
    assert report.signatures[0].indication is PASSED


def test_trailing_whitespace_is_tolerated(original, policy):
    report = verify_pdf(original + b"\r\n\n  \x00", policy=policy)
    assert report.indication is PASSED


def test_second_signature_over_modified_revision(signed, policy):
    first = signed.sign(signed.base, "official", Level.B_LT)
    tampered = attacks.change_page_content(first)
    both = signed.sign(tampered, "seal", Level.B_LT)
    report = verify_pdf(both, policy=policy)
    assert report.indication is FAILED
    official, seal = [s for s in report.signatures if s.kind.value == "signature"]
    assert official.indication is FAILED
    assert official.sub_indication is SubIndication.FORBIDDEN_MODIFICATION
    assert seal.indication is PASSED
