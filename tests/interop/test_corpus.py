"""Documents signed by independent tools, verified by kyso: every legitimate case passes with
its anchor, every negative gets its indication and sub-indication (tests/interop/corpus.py)."""

from __future__ import annotations

from typing import Any

import pytest

from signer.verify import VerificationPolicy, verify_pdf
from tests.interop.conftest import VERDICT
from tests.interop.corpus import CASES, Case, Corpus


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_kyso_verdict(
    case: Case, corpus: Corpus, interop_policy: VerificationPolicy, record_property: Any
) -> None:
    report = verify_pdf(corpus.get(case.name), policy=interop_policy)
    got = (report.indication.value, report.sub_indication and report.sub_indication.value)
    detail = [
        (s.field_name, s.indication.value, [p.code + ": " + p.detail for p in s.problems])
        for s in report.signatures
    ] + [(f.code, f.detail) for f in report.findings]
    # the table at the end of the run (conftest): a report property reaches the controlling
    # process also when the tests run in several processes (pytest-xdist)
    record_property(VERDICT, (case.name, case.tools, case.what, " / ".join(v for v in got if v)))
    assert got == case.expected, detail
    assert report.readable
    assert report.signatures, "the signatures must be reported"
    if case.expected[0] == "TOTAL-PASSED":
        for sig in report.signatures:
            assert sig.trusted, sig
            assert sig.trust_anchor is not None
            assert "Interop Test Root" in sig.trust_anchor
    if case.problem is not None:
        codes = {p.code for s in report.signatures for p in s.problems}
        assert case.problem in codes, detail
