"""signer.verify: PDF signature verification for auditors (EN 319 102-1 style reports).

- :func:`verify_pdf` / :func:`async_verify_pdf`: one document in this process, within the
  parsing limits of the policy;
- :class:`Verifier`: the same in worker processes with a memory cap and a per-document timeout
  (what a service uses: one hostile document cannot take it down);
- :class:`VerificationPolicy`, :class:`TrustProfile` and the Vietnamese profiles;
- :class:`VerificationReport` and friends, :func:`report_to_json` (schema ``kyso.verification/1``,
  docs/report-schema.md) and :func:`render_text` (Vietnamese or English).

Imports pyHanko, pyhanko-certvalidator, asn1crypto, aiohttp and the standard library, and signer's
errors and fetch counts (``signer.fetches``, which imports ``workers``).
"""

from signer.verify.engine import async_verify_pdf, verify_pdf
from signer.verify.errors import TrustAnchorInvalid, VerificationError, VerifierClosed
from signer.verify.fetching import FetchRules
from signer.verify.policy import Limits, VerificationPolicy
from signer.verify.pool import Verifier
from signer.verify.report import (
    SCHEMA,
    Finding,
    Indication,
    ModificationLevel,
    PadesLevel,
    Problem,
    SignatureKind,
    SignatureReport,
    SubIndication,
    VerificationReport,
    report_to_dict,
    report_to_json,
)
from signer.verify.text import Language, render_text
from signer.verify.trust import (
    VN_GOVERNMENT_PKI,
    VN_NATIONAL_ROOT,
    TrustProfile,
    dev_profile,
    vn_government_pki_profile,
    vn_national_root_profile,
)

__all__ = [
    "SCHEMA",
    "VN_GOVERNMENT_PKI",
    "VN_NATIONAL_ROOT",
    "FetchRules",
    "Finding",
    "Indication",
    "Language",
    "Limits",
    "ModificationLevel",
    "PadesLevel",
    "Problem",
    "SignatureKind",
    "SignatureReport",
    "SubIndication",
    "TrustAnchorInvalid",
    "TrustProfile",
    "VerificationError",
    "VerificationPolicy",
    "VerificationReport",
    "Verifier",
    "VerifierClosed",
    "async_verify_pdf",
    "dev_profile",
    "render_text",
    "report_to_dict",
    "report_to_json",
    "verify_pdf",
    "vn_government_pki_profile",
    "vn_national_root_profile",
]
