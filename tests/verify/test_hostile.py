"""Hostile input: each document ends as INDETERMINATE or TOTAL-FAILED with a reason, within the
worker's limits; the Verifier keeps serving (a good document passes after each one)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from signer import Level
from signer.verify import Indication, Limits, SubIndication, VerificationPolicy, Verifier
from signer.verify.engine import verify_pdf
from tests.verify import attacks


@pytest.fixture(scope="module")
def verifier():
    with Verifier(workers=2) as pool:
        yield pool


@pytest.fixture(scope="module")
def good(signed) -> bytes:
    return signed.get("seal", Level.B_LT)


HOSTILE = {
    # name: (document factory, expected indication, expected sub-indication, finding code)
    "decompression_bomb": (
        attacks.decompression_bomb,
        Indication.INDETERMINATE,
        SubIndication.RESOURCE_LIMIT,
        "LIMIT_EXCEEDED",
    ),
    "object_flood": (
        attacks.object_flood,
        Indication.INDETERMINATE,
        SubIndication.RESOURCE_LIMIT,
        "LIMIT_EXCEEDED",
    ),
    "garbage": (
        attacks.garbage,
        Indication.TOTAL_FAILED,
        SubIndication.FORMAT_FAILURE,
        "NOT_A_PDF",
    ),
    "deep_nesting": (
        attacks.deep_nesting,
        Indication.TOTAL_FAILED,
        SubIndication.FORMAT_FAILURE,
        "UNREADABLE",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_documents_are_judged(verifier, policy, good, name):
    factory, indication, sub, code = HOSTILE[name]
    report = verifier.verify(factory(), policy)
    assert report.indication is indication
    assert report.sub_indication is sub
    assert code in {f.code for f in report.findings}
    assert all(f.detail for f in report.findings)
    assert verifier.verify(good, policy).indication is Indication.TOTAL_PASSED


@pytest.mark.parametrize(
    "factory", [attacks.reference_chain_loop, attacks.field_kids_loop], ids=["chain", "kids"]
)
def test_reference_loops_end_with_a_reason(verifier, policy, good, factory):
    report = verifier.verify(factory(), policy)
    assert report.indication is not Indication.TOTAL_PASSED
    assert report.sub_indication is not None
    assert report.findings or any(s.problems for s in report.signatures)
    assert verifier.verify(good, policy).indication is Indication.TOTAL_PASSED


def test_truncated_signed_document_is_unreadable(verifier, policy, good):
    report = verifier.verify(attacks.truncated(good), policy)
    assert report.indication is Indication.TOTAL_FAILED
    assert not report.readable


def test_size_limit(verifier, dev_trust, good):
    small = VerificationPolicy(trust=(dev_trust,), limits=Limits(max_document_bytes=1000))
    report = verifier.verify(good, small)
    assert report.sub_indication is SubIndication.RESOURCE_LIMIT


def test_timeout_kills_and_replaces_the_worker(dev_trust, good, policy):
    hasty = VerificationPolicy(trust=(dev_trust,), limits=Limits(timeout_seconds=0.001))
    with Verifier(workers=1) as pool:
        before = pool.worker_pids()
        report = pool.verify(good, hasty)
        assert report.indication is Indication.INDETERMINATE
        assert report.sub_indication is SubIndication.RESOURCE_LIMIT
        assert "longer than" in report.findings[0].detail
        assert pool.worker_pids() != before
        assert pool.verify(good, policy).indication is Indication.TOTAL_PASSED


def test_a_worker_killed_mid_document_is_replaced(good, policy):
    # pyHanko's stock hex reader needs seconds for 16 M hex digits: time to kill the worker.
    slow = attacks.huge_signature_contents()
    with Verifier(workers=1, fast_locator=False) as pool:
        assert pool.verify(good, policy).indication is Indication.TOTAL_PASSED  # started, warm
        (pid,) = pool.worker_pids()
        result = {}
        thread = threading.Thread(target=lambda: result.update(r=pool.verify(slow, policy)))
        thread.start()
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        thread.join(60)
        report = result["r"]
        assert report.indication is Indication.INDETERMINATE
        assert report.findings[0].code == "VERIFIER_CRASHED"
        assert pool.worker_pids() != (pid,)
        assert pool.verify(good, policy).indication is Indication.TOTAL_PASSED


def test_a_worker_that_died_idle_does_not_fail_the_next_document(good, policy):
    with Verifier(workers=1) as pool:
        (pid,) = pool.worker_pids()
        assert pool.verify(good, policy).indication is Indication.TOTAL_PASSED
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)  # let the kernel reap it: is_alive() then reports it dead
        assert pool.verify(good, policy).indication is Indication.TOTAL_PASSED
        assert pid not in pool.worker_pids()


def test_verify_pdf_in_process_never_raises(policy, good):
    for doc in (b"", b"%PDF-", attacks.garbage(), attacks.truncated(good), attacks.deep_nesting()):
        report = verify_pdf(doc, policy=policy)
        assert report.indication is not Indication.TOTAL_PASSED


async def test_verify_async_uses_the_pool(verifier, policy, good):
    import asyncio

    reports = await asyncio.gather(*(verifier.verify_async(good, policy) for _ in range(4)))
    assert {r.indication for r in reports} == {Indication.TOTAL_PASSED}


def test_closed_verifier_refuses(policy, good):
    from signer.verify import VerifierClosed

    pool = Verifier(workers=1)
    pool.close()
    pool.close()
    with pytest.raises(VerifierClosed):
        pool.verify(good, policy)
