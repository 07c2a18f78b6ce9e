"""Fixtures of the interoperability tests: the interop PKI, the tools and the corpus, made once
per session under a temporary directory, and a policy that trusts the interop root (and kyso's
development root, for documents kyso seals after another tool)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from signer import AppearanceKind, Level, PdfSigningService, SignRequest
from signer.verify import Limits, TrustProfile, VerificationPolicy
from tests.interop.corpus import Corpus
from tests.interop.pki import InteropPki, make_pki
from tests.interop.tools import Tools, missing_tools
from tests.verify.conftest import dev_trust, signed, signing_service, verify_keyring

__all__ = ["dev_trust", "signed", "signing_service", "verify_keyring"]


@pytest.fixture(scope="session")
def interop_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interop")


@pytest.fixture(scope="session")
def interop_pki(interop_home: Path) -> InteropPki:
    return make_pki(interop_home / "pki")


@pytest.fixture(scope="session")
def interop_tools(interop_home: Path, interop_pki: InteropPki) -> Iterator[Tools]:
    missing = missing_tools()
    if missing:
        pytest.fail(
            f"missing for the interop corpus: {', '.join(missing)} (run scripts/bootstrap.sh test)"
        )
    tools = Tools(interop_home / "tools", interop_pki)
    yield tools
    tools.close()


@pytest.fixture(scope="session")
def kyso_seal(signing_service: PdfSigningService) -> Callable[[bytes], bytes]:
    """kyso's server-side seal (dev HSM key ``seal``, B-LT, visible) over any PDF."""

    def seal(pdf: bytes) -> bytes:
        request = SignRequest(
            pdf=pdf,
            alias="seal",
            level=Level.B_LT,
            appearance=AppearanceKind.SEAL,
            page=1,
            rect=(330.0, 640.0, 560.0, 740.0),
            reason="Đóng dấu",
        )
        return asyncio.run(signing_service.sign(request)).pdf

    return seal


@pytest.fixture(scope="session")
def corpus(interop_tools: Tools) -> Corpus:
    return Corpus(interop_tools)


@pytest.fixture(scope="session")
def interop_trust(interop_pki: InteropPki) -> TrustProfile:
    return TrustProfile.from_sources(
        name="interop-test",
        description="the interoperability corpus's test root",
        pem_files=(interop_pki.root_pem,),
    )


@pytest.fixture(scope="session")
def interop_policy(interop_trust: TrustProfile) -> VerificationPolicy:
    return VerificationPolicy(trust=(interop_trust,), limits=Limits(timeout_seconds=30.0))


@pytest.fixture(scope="session")
def both_policy(interop_trust: TrustProfile, dev_trust: TrustProfile) -> VerificationPolicy:
    """The interop root and kyso's development root (documents kyso sealed after a tool)."""
    return VerificationPolicy(trust=(interop_trust, dev_trust), limits=Limits(timeout_seconds=30.0))


# tool × case → kyso's indication: test_corpus records each as a report property (VERDICT),
# collected here from the reports (in the controlling process under pytest-xdist) and printed
# at the end of the run.
VERDICT = "kyso_interop_verdict"
VERDICTS: dict[str, tuple[str, str, str]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, value in report.user_properties:
        if key == VERDICT:
            name, tools, what, verdict = value
            VERDICTS[name] = (tools, what, verdict)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not VERDICTS:
        return
    terminalreporter.section("interoperability corpus: tool × case → kyso")
    terminalreporter.write_line("| tools | case | kyso's indication |")
    terminalreporter.write_line("|---|---|---|")
    for name, (tools, what, verdict) in VERDICTS.items():
        terminalreporter.write_line(f"| {tools} | {name}: {what} | {verdict} |")
