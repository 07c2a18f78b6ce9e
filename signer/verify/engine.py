"""``verify_pdf``: every signature of a PDF judged EN 319 102-1 style, and the document's verdict.

Per signature (``/Sig``) pyHanko checks integrity (the ``/ByteRange`` digest and the CMS
signature), the chain to a configured anchor with revocation (hard-fail: revocation data is
required), key usage, the algorithm policy and the difference analysis of later revisions. kyso
then decides on all of it, never on pyHanko's ``valid`` alone, in this order (first match of
the worst indication wins):

1. byte range not covering its whole revision (removed/shifted/shrunk ``/ByteRange``, signed
   bytes moved) or an unreadable signature → TOTAL-FAILED / FORMAT_FAILURE;
2. digest mismatch → TOTAL-FAILED / HASH_FAILURE; bad signature value → SIG_CRYPTO_FAILURE;
3. later changes beyond what kyso's change rules allow (:mod:`signer.verify.changes`: pyHanko's
   difference analysis with kyso's rules where pyHanko is stricter than ISO 32000 and Acrobat)
   or beyond the DocMDP permission → TOTAL-FAILED / FORBIDDEN_MODIFICATION (kyso code);
4. certificate problems as pyHanko's AdES sub-indication; REVOKED_NO_POE becomes TOTAL-FAILED /
   REVOKED when a trusted time-stamp proves the signature came after the revocation;
5. an invalid or untrusted signature time-stamp → INDETERMINATE;
6. otherwise TOTAL-PASSED.

Time: a signature with a signature time-stamp is judged at the time-stamp's time (revocation
data produced after it is accepted: that is what B-LT embeds); without one, at the policy's
validation time (now by default). Revocation data comes from everywhere the document carries it
(:mod:`signer.verify.revinfo`: DSS, VRI, the signed attribute adbe-revocationInfoArchival, the
CMS ``crls``, the time-stamp token's own) and the report lists it; only with ``online=True``,
and only when that does not settle the chain, is it fetched.

Reading: strictly; where the strict reader refuses a file other readers open (poppler's
generation-1 objects), tolerantly, only to locate the signatures (finding TOLERANT_READING): each
signature is still checked on exactly the bytes of its ``/ByteRange``. Where no reader can
process the file, the longest readable prefix that ends a revision is verified and the rest is
an UNREADABLE_UPDATE finding: TOTAL-FAILED / FORBIDDEN_MODIFICATION ("modified after signing:
the update that follows cannot be read"), with the signatures reported.

The document rule (docs/report-schema.md):
- at least one ``/Sig`` signature is needed for TOTAL-PASSED (else INDETERMINATE /
  NO_SIGNATURE_FOUND); the document is never better than its worst signature or time-stamp;
- every incremental update after the last signature is a finding: validation-data updates (DSS,
  document time-stamps) are informational; unsigned form filling or annotations make the document
  INDETERMINATE / UNSIGNED_CHANGES (what is shown is not what anyone signed) unless a passing
  certification signature permits them (P=2: form filling; P=3: and annotations: informational);
  any other change makes it TOTAL-FAILED / FORBIDDEN_MODIFICATION;
- bytes after the end of the last revision the parser reads (after its ``%%EOF``), other than
  whitespace, make the document TOTAL-FAILED / FORMAT_FAILURE: lenient viewers may display what
  no signature covers;
- input that is not a PDF, or of which no revision holding a signature can be read, is
  TOTAL-FAILED / FORMAT_FAILURE with ``readable=False``; input beyond a limit is INDETERMINATE /
  RESOURCE_LIMIT.

Invariant: :func:`async_verify_pdf` returns a report for every input; a document cannot make it
raise (an unexpected parser exception is a FORMAT_FAILURE naming the exception type).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from asn1crypto import cms, x509
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.crypt import AuthStatus
from pyhanko.pdf_utils.decode_limits import (
    DecodeLimits,
    DecodePurpose,
    DocumentDecodeBudget,
    StreamDecodeLimits,
)
from pyhanko.pdf_utils.misc import PdfDecodeLimitError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESSubIndic
from pyhanko.sign.diff_analysis import (
    DiffResult,
    SuspiciousModification,
)
from pyhanko.sign.diff_analysis import ModificationLevel as PyhModificationLevel
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.general import extract_signer_info
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.generic_cms import extract_tst_data_iter
from pyhanko.sign.validation.pdf_embedded import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import (
    DocumentTimestampStatus,
    PdfSignatureStatus,
    SignatureCoverageLevel,
)
from pyhanko.sign.validation.utils import CMSAlgorithmUsagePolicy
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, ValidationError
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

from signer.fetches import FetchTally
from signer.verify.algorithms import (
    DatedAlgorithmPolicy,
    Decision,
    LabelTolerantValidator,
    dated_policy,
    review,
)
from signer.verify.changes import KYSO_DIFF_POLICY
from signer.verify.fetching import fetcher_backend, urls_of_trusted
from signer.verify.policy import Limits, VerificationPolicy
from signer.verify.report import (
    AlgorithmInfo,
    CertificateInfo,
    Coverage,
    Finding,
    Indication,
    ModificationLevel,
    PadesLevel,
    Problem,
    RevocationEvidence,
    RevocationInfo,
    RevocationLocation,
    RevocationSource,
    RevocationStatus,
    Severity,
    SignatureKind,
    SignatureReport,
    SubIndication,
    TimestampInfo,
    VerificationReport,
)
from signer.verify.revinfo import Located, evidence, from_signed_data, split
from signer.verify.structure import (
    PDF_WHITESPACE,
    eof_ends,
    revision_spans,
    scan,
    unaccounted_tail,
)
from signer.verify.trust import certificate_fingerprint

__all__ = [
    "async_verify_pdf",
    "crash_report",
    "limit_report",
    "unreadable_report",
    "verify_pdf",
]

_log = logging.getLogger(__name__)

_SIGNATURE_VALIDATOR = LabelTolerantValidator()
_KEY_USAGE = KeyUsageConstraints(
    key_usage={"non_repudiation", "digital_signature"}, match_all_key_usages=False
)
_SIGNING_USAGES = frozenset({"non_repudiation", "digital_signature"})
# Sub-indications that data fetched online may settle (revocation or issuer certificates).
_FETCHABLE = frozenset(
    {
        AdESIndeterminate.TRY_LATER,
        AdESIndeterminate.REVOCATION_OUT_OF_BOUNDS_NO_POE,
        AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND,
        AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE,
        AdESIndeterminate.OUT_OF_BOUNDS_NOT_REVOKED,
    }
)
_REVOCATION_MISSING = frozenset(
    {
        AdESIndeterminate.TRY_LATER,
        AdESIndeterminate.REVOCATION_OUT_OF_BOUNDS_NO_POE,
        AdESIndeterminate.OUT_OF_BOUNDS_NOT_REVOKED,
    }
)
_MODIFICATION = {
    PyhModificationLevel.NONE: ModificationLevel.NONE,
    PyhModificationLevel.LTA_UPDATES: ModificationLevel.LTA_UPDATES,
    PyhModificationLevel.FORM_FILLING: ModificationLevel.FORM_FILLING,
    PyhModificationLevel.ANNOTATIONS: ModificationLevel.ANNOTATIONS,
    PyhModificationLevel.OTHER: ModificationLevel.OTHER,
}
_COVERAGE = {
    SignatureCoverageLevel.ENTIRE_FILE: Coverage.ENTIRE_FILE,
    SignatureCoverageLevel.ENTIRE_REVISION: Coverage.ENTIRE_REVISION,
    SignatureCoverageLevel.CONTIGUOUS_BLOCK_FROM_START: Coverage.CONTIGUOUS_BLOCK,
    SignatureCoverageLevel.UNCLEAR: Coverage.UNCLEAR,
}


class _LimitExceeded(Exception):
    """A processing limit was hit; ``detail`` names it."""


def verify_pdf(
    data: bytes, *, policy: VerificationPolicy, tally: FetchTally | None = None
) -> VerificationReport:
    """Verify every signature in ``data``; see the module docstring. Runs its own event loop
    (call :func:`async_verify_pdf` from async code)."""
    return asyncio.run(async_verify_pdf(data, policy=policy, tally=tally))


async def async_verify_pdf(
    data: bytes, *, policy: VerificationPolicy, tally: FetchTally | None = None
) -> VerificationReport:
    """Verify every signature in ``data``; never raises for anything the document contains.
    ``tally``: where the OCSP and CRL requests of online verification are counted."""
    now = policy.validation_time or datetime.now(UTC)
    try:
        return await _Verification(data, policy, now, tally=tally).run()
    except (_LimitExceeded, PdfDecodeLimitError, MemoryError) as exc:
        return limit_report(data, policy=policy, detail=_describe(exc), now=now)
    except RecursionError:
        return unreadable_report(
            data,
            policy=policy,
            code="UNREADABLE",
            now=now,
            detail="object nesting too deep or a reference loop",
        )
    except Exception as exc:  # untrusted input: any parser failure is a clean rejection
        _log.warning("PDF rejected by the parser: %s", type(exc).__name__)
        return unreadable_report(
            data, policy=policy, code="UNREADABLE", now=now, detail=_describe(exc)
        )


def unreadable_report(
    data: bytes, *, policy: VerificationPolicy, code: str, detail: str, now: datetime | None = None
) -> VerificationReport:
    """TOTAL-FAILED / FORMAT_FAILURE for input that is not a PDF or cannot be parsed."""
    return _document_only(
        data,
        policy,
        Indication.TOTAL_FAILED,
        SubIndication.FORMAT_FAILURE,
        Finding(code=code, severity=Severity.ERROR, detail=detail),
        readable=False,
        now=now,
    )


def limit_report(
    data: bytes, *, policy: VerificationPolicy, detail: str, now: datetime | None = None
) -> VerificationReport:
    """INDETERMINATE / RESOURCE_LIMIT: the document was not judged (too big, too slow, …)."""
    return _document_only(
        data,
        policy,
        Indication.INDETERMINATE,
        SubIndication.RESOURCE_LIMIT,
        Finding(code="LIMIT_EXCEEDED", severity=Severity.ERROR, detail=detail),
        readable=True,
        now=now,
    )


def crash_report(
    data: bytes, *, policy: VerificationPolicy, detail: str, now: datetime | None = None
) -> VerificationReport:
    """INDETERMINATE / GENERIC: the verifying process died on this document (parser crash)."""
    return _document_only(
        data,
        policy,
        Indication.INDETERMINATE,
        SubIndication.GENERIC,
        Finding(code="VERIFIER_CRASHED", severity=Severity.ERROR, detail=detail),
        readable=True,
        now=now,
    )


def _document_only(
    data: bytes,
    policy: VerificationPolicy,
    indication: Indication,
    sub: SubIndication,
    finding: Finding,
    *,
    readable: bool,
    now: datetime | None,
) -> VerificationReport:
    return VerificationReport(
        indication=indication,
        sub_indication=sub,
        document_sha256=hashlib.sha256(data).hexdigest(),
        document_size=len(data),
        readable=readable,
        revisions=0,
        signatures=(),
        findings=(finding,),
        verified_at=now or datetime.now(UTC),
        online=policy.online,
        trust_profiles=policy.profile_names,
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_T = TypeVar("_T", x509.Certificate, asn1_ocsp.OCSPResponse, asn1_crl.CertificateList)
_MAX_PREFIX_ATTEMPTS = 32
_PARSED_MAX_ITEMS = 512
_PARSED_MAX_BYTES = 64 * 1024
_parsed_cache: OrderedDict[tuple[type, bytes], Any] = OrderedDict()


def _parsed(kind: type[_T], der: bytes) -> _T:
    """``kind.load(der)``, reusing this process's earlier parse of the same bytes.

    The same CA certificates, CRLs and OCSP answers recur in document after document; reusing
    the parsed objects keeps asn1crypto's lazily computed values (name hashes above all, which
    path building compares constantly). Small items only, a bounded number: a hostile document
    cannot grow the cache beyond ``_PARSED_MAX_ITEMS`` × ``_PARSED_MAX_BYTES``.
    """
    if len(der) > _PARSED_MAX_BYTES:
        return kind.load(der)
    key = (kind, der)
    found = _parsed_cache.get(key)
    if found is None:
        found = kind.load(der)
        _parsed_cache[key] = found
        if len(_parsed_cache) > _PARSED_MAX_ITEMS:
            _parsed_cache.popitem(last=False)
    else:
        _parsed_cache.move_to_end(key)
    assert isinstance(found, kind)
    return found


@lru_cache(maxsize=16)
def _anchor_certificates(ders: tuple[bytes, ...]) -> tuple[x509.Certificate, ...]:
    return tuple(x509.Certificate.load(der) for der in ders)


def _decode_limits(limits: Limits) -> DecodeLimits:
    return DecodeLimits(
        per_stream=StreamDecodeLimits(
            max_ratio=limits.max_decode_ratio, max_output_size=limits.max_stream_bytes
        ),
        document_budget=DocumentDecodeBudget(base_allowance=limits.max_decoded_bytes, max_ratio=0),
    )


@dataclass(frozen=True)
class _RevocationData:
    certs: tuple[x509.Certificate, ...]
    ocsps: tuple[asn1_ocsp.OCSPResponse, ...]
    crls: tuple[asn1_crl.CertificateList, ...]
    located: tuple[Located, ...] = ()
    """Every CRL and OCSP response with where it was found (for the report)."""

    def with_signature(self, emb: EmbeddedPdfSignature) -> _RevocationData:
        """This data plus what the signature carries itself (signed attribute, CMS, time-stamp)."""
        own = _signature_revinfo(emb)
        if not own:
            return self
        ocsps, crls = split(own)
        return _RevocationData(
            self.certs,
            (*self.ocsps, *ocsps),
            (*self.crls, *crls),
            (*self.located, *own),
        )


@dataclass(frozen=True)
class _Judged:
    indication: Indication
    sub: SubIndication | None
    problem: Problem


class _Verification:
    """One document's verification (single use)."""

    def __init__(
        self,
        data: bytes,
        policy: VerificationPolicy,
        now: datetime,
        *,
        fallback: bool = True,
        tally: FetchTally | None = None,
    ) -> None:
        self.data = data
        self.tally = tally
        self.policy = policy
        self.limits = policy.limits
        self.now = now
        self.fallback = fallback
        """Whether a document no reader can process falls back to its readable revisions."""
        self.findings: list[Finding] = []
        self._fetcher: AIOHttpFetcherBackend | None = None
        # Dated algorithm rules (signer.verify.algorithms): pyHanko applies them at the
        # validation moment; review() adds what only a trusted time-stamp can prove.
        self.algorithms = dated_policy(policy.algorithms)
        self.cms_algorithms = CMSAlgorithmUsagePolicy.lift_policy(self.algorithms)

    async def run(self) -> VerificationReport:
        try:
            return await self._run()
        except (_LimitExceeded, PdfDecodeLimitError, MemoryError, RecursionError):
            raise
        except Exception as exc:  # untrusted input: the structure broke after opening
            if not self.fallback:
                raise
            _log.warning("PDF structure unreadable, trying its revisions: %s", type(exc).__name__)
            return await self._behind_unreadable_update(_describe(exc))
        finally:
            if self._fetcher is not None:
                await self._fetcher.close()  # type: ignore[no-untyped-call]

    async def _run(self) -> VerificationReport:
        data, limits = self.data, self.limits
        if len(data) > limits.max_document_bytes:
            raise _LimitExceeded(
                f"document of {len(data)} bytes; the limit is {limits.max_document_bytes}"
            )
        raw = scan(data)
        if raw.header_offset is None:
            return unreadable_report(
                data,
                policy=self.policy,
                code="NOT_A_PDF",
                now=self.now,
                detail="no %PDF- header in the first 1024 bytes",
            )
        if raw.object_headers > limits.max_objects:
            raise _LimitExceeded(f"{raw.object_headers} objects; the limit is {limits.max_objects}")
        opened = self._open(data)
        if isinstance(opened, str):
            if not self.fallback:
                return unreadable_report(
                    data, policy=self.policy, code="UNREADABLE", detail=opened, now=self.now
                )
            return await self._behind_unreadable_update(opened)
        reader, size = opened
        if size > limits.max_objects:
            raise _LimitExceeded(f"xref /Size {size}; the limit is {limits.max_objects}")
        revisions = reader.xrefs.total_revisions
        if revisions > limits.max_revisions:
            raise _LimitExceeded(f"{revisions} revisions; the limit is {limits.max_revisions}")
        if reader.encrypted and reader.decrypt("").status == AuthStatus.FAILED:
            self.findings.append(
                Finding(
                    code="ENCRYPTED",
                    severity=Severity.ERROR,
                    detail="the document is encrypted with a user password",
                )
            )
            return self._report(reader, (), readable=True)

        spans = revision_spans(data, reader)
        tail = unaccounted_tail(data, spans[-1][1] if spans else 0)
        if tail is not None:
            self.findings.append(
                Finding(
                    code="TRAILING_DATA",
                    severity=Severity.ERROR,
                    detail="bytes after the end of the last revision (%%EOF)",
                    offset=tail[0],
                    length=tail[1],
                )
            )
        embedded, broken = self._collect(reader)
        revinfo = self._dss(reader)
        roots = self._roots(embedded, revinfo)
        tst_reports: dict[int, SignatureReport] = {}
        for emb in embedded:
            if emb.sig_object_type == "/DocTimeStamp":
                tst_reports[id(emb)] = await self._timestamp(emb, roots, revinfo)
        reports: list[SignatureReport] = list(broken)
        for emb in embedded:
            if id(emb) in tst_reports:
                reports.append(tst_reports[id(emb)])
            else:
                reports.append(await self._signature(emb, reader, roots, revinfo, tst_reports))
        self._unsigned_updates(reader, spans, embedded, reports)
        reports.sort(key=lambda r: (r.signed_revision is None, r.signed_revision or 0))
        return self._report(reader, tuple(reports), readable=True)

    # -- reading --------------------------------------------------------------------------------

    def _read(self, data: bytes, *, strict: bool) -> tuple[PdfFileReader, int]:
        reader = PdfFileReader(
            io.BytesIO(data), strict=strict, decode_limits=_decode_limits(self.limits)
        )
        size = int(reader.trailer.raw_get("/Size"))
        reader.root  # noqa: B018 - resolve the catalog now: a document without one is unreadable
        return reader, size

    def _open(self, data: bytes) -> tuple[PdfFileReader, int] | str:
        """The strict reader, else a tolerant one; or why neither can read ``data``.

        A tolerant reading (pyHanko's non-strict mode: e.g. poppler's objects of generation 1
        without a freed predecessor) is only a way to find the signatures, their byte ranges
        and revisions: each signature is still checked on the exact bytes its ``/ByteRange``
        covers, and the difference analysis still compares revision with revision.
        """
        try:
            return self._read(data, strict=True)
        except (PdfDecodeLimitError, MemoryError, RecursionError):
            raise
        except Exception as exc:  # untrusted input: the parser's failure is the verdict
            strict_error = _describe(exc)
        try:
            opened = self._read(data, strict=False)
        except (PdfDecodeLimitError, MemoryError, RecursionError):
            raise
        except Exception:
            return strict_error
        self.findings.append(
            Finding(
                code="TOLERANT_READING",
                severity=Severity.INFO,
                detail=f"read tolerantly; the strict reading failed: {strict_error}",
            )
        )
        return opened

    async def _behind_unreadable_update(self, error: str) -> VerificationReport:
        """Verify the longest prefix that a reader can parse and process and that ends a
        revision (``%%EOF``); what follows it is the TOTAL-FAILED finding ``UNREADABLE_UPDATE``.

        Reached when no reader parses the whole file, or when its structure breaks while the
        signatures are collected or checked (a field list that no longer parses, say).

        Viewers repair such files and display them as signed; so the signatures are shown, and
        the document fails as modified after signing. Without a readable prefix that holds a
        signature the input is unreadable (``readable=False``).
        """
        data = self.data
        ends = [end for end in eof_ends(data) if data[end:].strip(PDF_WHITESPACE)]
        # The readable revisions of a genuine document end just before its broken update; a
        # bound on the attempts keeps a file of many %%EOF markers from costing one parse each.
        for end in reversed(ends[-_MAX_PREFIX_ATTEMPTS:]):
            prefix = data[:end]
            try:
                self._read(prefix, strict=False)
            except (PdfDecodeLimitError, MemoryError, RecursionError):
                raise
            except Exception:  # noqa: S112 - not readable either: an earlier revision
                continue
            try:
                inner = await _Verification(
                    prefix, self.policy, self.now, fallback=False, tally=self.tally
                ).run()
            except (_LimitExceeded, PdfDecodeLimitError, MemoryError, RecursionError):
                raise
            except Exception:  # noqa: S112 - this revision breaks too: an earlier one
                continue
            if not inner.readable:
                continue
            if not inner.signatures:
                break
            finding = Finding(
                code="UNREADABLE_UPDATE",
                severity=Severity.ERROR,
                detail=f"modified after signing: the update that follows cannot be read ({error})",
                offset=end,
                length=len(data) - end,
            )
            failed = inner.indication is Indication.TOTAL_FAILED
            return replace(
                inner,
                indication=Indication.TOTAL_FAILED,
                sub_indication=(
                    inner.sub_indication if failed else SubIndication.FORBIDDEN_MODIFICATION
                ),
                document_sha256=hashlib.sha256(data).hexdigest(),
                document_size=len(data),
                findings=(*inner.findings, finding),
            )
        return unreadable_report(
            data, policy=self.policy, code="UNREADABLE", detail=error, now=self.now
        )

    # -- collecting -----------------------------------------------------------------------------

    def _collect(
        self, reader: PdfFileReader
    ) -> tuple[list[EmbeddedPdfSignature], list[SignatureReport]]:
        embedded: list[EmbeddedPdfSignature] = []
        broken: list[SignatureReport] = []
        fields = enumerate_sig_fields(reader, filled_status=True)
        # islice: a field tree with a loop in /Kids would otherwise enumerate forever.
        for name, sig_ref, field_ref in itertools.islice(fields, self.limits.max_signatures + 1):
            if len(embedded) + len(broken) >= self.limits.max_signatures:
                raise _LimitExceeded(f"more than {self.limits.max_signatures} signature fields")
            kind = SignatureKind.SIGNATURE
            try:
                sig_obj = sig_ref.get_object()
                if sig_obj.get("/Type") == "/DocTimeStamp":
                    kind = SignatureKind.DOCUMENT_TIMESTAMP
                embedded.append(EmbeddedPdfSignature(reader, field_ref, name))
            except (PdfDecodeLimitError, MemoryError, RecursionError):
                raise
            except Exception as exc:  # a forged signature dictionary is a verdict, not a crash
                broken.append(
                    SignatureReport(
                        kind=kind,
                        field_name=str(name),
                        indication=Indication.TOTAL_FAILED,
                        sub_indication=SubIndication.FORMAT_FAILURE,
                        problems=(Problem(code="SIGNATURE_UNREADABLE", detail=_describe(exc)),),
                    )
                )
        embedded.sort(key=lambda e: e.signed_revision)
        return embedded, broken

    def _dss(self, reader: PdfFileReader) -> _RevocationData:
        try:
            dss = DocumentSecurityStore.read_dss(reader)
            certs = tuple(
                _parsed(x509.Certificate, ref.get_object().read_data(DecodePurpose.CERTIFICATE))
                for ref in dss.certs.values()
            )
            ocsps = tuple(
                _parsed(
                    asn1_ocsp.OCSPResponse,
                    ref.get_object().read_data(DecodePurpose.OCSP_RESPONSE),
                )
                for ref in dss.ocsps
            )
            crls = tuple(
                _parsed(asn1_crl.CertificateList, ref.get_object().read_data(DecodePurpose.CRL))
                for ref in dss.crls
            )
            located = [
                *(Located(RevocationLocation.DSS, o) for o in ocsps),
                *(Located(RevocationLocation.DSS, c) for c in crls),
                *_vri_revinfo(dss),
            ]
            vri_ocsps, vri_crls = split(e for e in located if e.location is RevocationLocation.VRI)
        except NoDSSFoundError:
            return _RevocationData((), (), ())
        except (PdfDecodeLimitError, MemoryError, RecursionError):
            raise
        except Exception as exc:  # a damaged DSS: validate as if absent, and say so
            self.findings.append(
                Finding(code="DSS_UNREADABLE", severity=Severity.WARNING, detail=_describe(exc))
            )
            return _RevocationData((), (), ())
        # VRI items are usually the DSS's own streams again; split() keeps each once.
        all_ocsps, all_crls = split(
            Located(RevocationLocation.DSS, item) for item in (*ocsps, *vri_ocsps, *crls, *vri_crls)
        )
        return _RevocationData(certs, tuple(all_ocsps), tuple(all_crls), tuple(located))

    def _roots(
        self, embedded: Sequence[EmbeddedPdfSignature], revinfo: _RevocationData
    ) -> list[x509.Certificate]:
        roots = list(_anchor_certificates(self.policy.anchor_certificates))
        wanted = self.policy.anchor_fingerprints
        if wanted:
            known = {certificate_fingerprint(c.dump()) for c in roots}
            for cert in _document_certificates(embedded, revinfo):
                fingerprint = certificate_fingerprint(cert.dump())
                if fingerprint in wanted and fingerprint not in known:
                    roots.append(cert)
                    known.add(fingerprint)
        return roots

    # -- validation -----------------------------------------------------------------------------

    def _context(
        self,
        roots: list[x509.Certificate],
        revinfo: _RevocationData,
        embedded_certs: Iterable[x509.Certificate],
        *,
        moment: datetime,
        fetch: bool,
    ) -> ValidationContext:
        kwargs: dict[str, Any] = {}
        if fetch:
            if self._fetcher is None:
                # One HTTP session per document, closed when the verification ends.
                self._fetcher = fetcher_backend(
                    self.policy.fetching,
                    trusted=urls_of_trusted(roots, [*revinfo.certs, *embedded_certs]),
                    timeout=self.policy.fetch_timeout_seconds,
                    tally=self.tally,
                )
            kwargs["fetcher_backend"] = self._fetcher
        return ValidationContext(
            trust_roots=roots,
            other_certs=[*revinfo.certs, *embedded_certs],
            ocsps=list(revinfo.ocsps),
            crls=list(revinfo.crls),
            moment=moment,
            allow_fetching=fetch,
            revocation_mode="hard-fail",
            retroactive_revinfo=True,
            algorithm_usage_policy=self.algorithms,
            signature_validator=_SIGNATURE_VALIDATOR,
            **kwargs,
        )

    async def _signature(
        self,
        emb: EmbeddedPdfSignature,
        reader: PdfFileReader,
        roots: list[x509.Certificate],
        revinfo: _RevocationData,
        timestamps: dict[int, SignatureReport],
    ) -> SignatureReport:
        field_name = str(emb.field_name)
        certs = emb.other_embedded_certs
        tst_time = _signature_timestamp_time(emb)
        moment = tst_time or self.now
        revinfo = revinfo.with_signature(emb)
        try:
            # One context for the signature and its time-stamp: same time, same data, and the
            # revocation checks of their shared CAs are done once.
            status = await async_validate_pdf_signature(
                emb,
                self._context(roots, revinfo, certs, moment=moment, fetch=False),
                diff_policy=KYSO_DIFF_POLICY,
                key_usage_settings=_KEY_USAGE,
                algorithm_policy=self.cms_algorithms,
            )
            source = RevocationSource.EMBEDDED
            embedded_ok = status.trusted
            if (
                self.policy.online
                and status.intact
                and status.valid
                and status.trust_problem_indic in _FETCHABLE
            ):
                online = await async_validate_pdf_signature(
                    emb,
                    self._context(roots, revinfo, certs, moment=moment, fetch=True),
                    key_usage_settings=_KEY_USAGE,
                    algorithm_policy=self.cms_algorithms,
                    skip_diff=True,
                )
                # Integrity and modification findings stay those of the first (full) pass.
                status = replace(
                    online,
                    coverage=status.coverage,
                    diff_result=status.diff_result,
                    docmdp_ok=status.docmdp_ok,
                )
                source = RevocationSource.ONLINE
        except (PdfDecodeLimitError, MemoryError, RecursionError):
            raise
        except Exception as exc:  # a malformed CMS or signature dictionary: FORMAT_FAILURE
            return _format_failure(emb, field_name, exc)
        certs_all = [*certs, *_timestamp_certificates(emb)]
        ts = status.timestamp_validity
        proven = tst_time is not None and ts is not None and ts.trusted
        sig_indic = await self._refine(
            status.trust_problem_indic,
            status.signing_cert,
            roots,
            revinfo,
            certs_all,
            moment,
            proven=proven,
        )
        ts_indic = None
        if ts is not None:
            ts_indic = await self._refine(
                ts.trust_problem_indic,
                ts.signing_cert,
                roots,
                revinfo,
                certs_all,
                moment,
                proven=False,
            )
        decisions = review(
            self.policy.algorithms,
            emb.signer_info,
            status.signing_cert.public_key,
            proven_at=tst_time if proven else None,
            now=self.now,
        )
        return self._signature_report(
            emb,
            reader,
            status,
            source,
            embedded_ok,
            list(timestamps.values()),
            sig_indic=sig_indic,
            ts_indic=ts_indic,
            located=revinfo.located,
            decisions=decisions,
        )

    async def _refine(
        self,
        indic: AdESSubIndic | None,
        cert: x509.Certificate,
        roots: list[x509.Certificate],
        revinfo: _RevocationData,
        certs: Iterable[x509.Certificate],
        moment: datetime,
        *,
        proven: bool,
    ) -> AdESSubIndic | None:
        """Sharpen pyHanko's catch-all CERTIFICATE_CHAIN_GENERAL_FAILURE where kyso can tell:

        - the certificate's validity starts after ``moment``: NOT_YET_VALID, TOTAL-FAILED when
          a trusted time-stamp proves the moment (``proven``), else INDETERMINATE;
        - the chain validates once revocation data is not required: TRY_LATER (the only thing
          missing is revocation data).
        """
        if indic is not AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE:
            return indic
        if cert.not_valid_before > moment:
            return AdESFailure.NOT_YET_VALID if proven else AdESIndeterminate.NOT_YET_VALID
        context = ValidationContext(
            trust_roots=roots,
            other_certs=[*revinfo.certs, *certs],
            moment=moment,
            allow_fetching=False,
            revocation_mode="soft-fail",
            algorithm_usage_policy=self.algorithms,
            signature_validator=_SIGNATURE_VALIDATOR,
        )
        try:
            await CertificateValidator(cert, validation_context=context).async_validate_path()
        except (ValidationError, PathBuildingError, ValueError):
            return indic
        return AdESIndeterminate.TRY_LATER

    def _signature_report(
        self,
        emb: EmbeddedPdfSignature,
        reader: PdfFileReader,
        status: PdfSignatureStatus,
        source: RevocationSource,
        embedded_ok: bool,
        doc_timestamps: list[SignatureReport],
        *,
        sig_indic: AdESSubIndic | None,
        ts_indic: AdESSubIndic | None,
        located: tuple[Located, ...],
        decisions: Sequence[Decision] = (),
    ) -> SignatureReport:
        judged = _judge_algorithms(decisions) + _judge_signature(status, sig_indic, ts_indic)
        indication, sub = _worst(judged)
        ts = status.timestamp_validity
        timestamp = (
            None
            if ts is None
            else TimestampInfo(
                time=ts.timestamp,
                tsa_subject=ts.signing_cert.subject.human_friendly,
                intact=ts.intact,
                valid=ts.valid,
                trusted=ts.trusted,
            )
        )
        cert = status.signing_cert
        key_usage = tuple(sorted(cert.key_usage_value.native)) if cert.key_usage_value else ()
        level = _pades_level(
            emb,
            status,
            dss_sufficient=embedded_ok,
            doc_timestamps=doc_timestamps,
            dss_revision=_dss_revision(reader),
        )
        return SignatureReport(
            kind=SignatureKind.SIGNATURE,
            field_name=str(emb.field_name),
            indication=indication,
            sub_indication=sub,
            signer=_cert_info(cert),
            chain=_chain(status.validation_path) if status.trusted else (),
            trust_anchor=(
                status.validation_path.trust_anchor.authority.name.human_friendly
                if status.trusted and status.validation_path is not None
                else None
            ),
            claimed_signing_time=status.signer_reported_dt,
            timestamp=timestamp,
            intact=status.intact,
            signature_valid=status.valid,
            trusted=status.trusted,
            revocation=_revocation(status, source, sig_indic, evidence(located, cert)),
            byte_range=tuple(int(v) for v in emb.byte_range),
            coverage=_coverage(status.coverage),
            covers_whole_document=status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
            signed_revision=emb.signed_revision,
            modification_level=_modification(status.diff_result, status.modification_level),
            docmdp=None if emb.docmdp_level is None else emb.docmdp_level.name.lower(),
            level_reached=level,
            sub_filter=_sub_filter(emb),
            signature_format=_signature_format(emb),
            algorithm=_algorithm(status, self.algorithms, decisions),
            key_usage=key_usage,
            key_usage_ok=bool(_SIGNING_USAGES & set(key_usage)),
            problems=tuple(j.problem for j in judged),
        )

    async def _timestamp(
        self, emb: EmbeddedPdfSignature, roots: list[x509.Certificate], revinfo: _RevocationData
    ) -> SignatureReport:
        field_name = str(emb.field_name)
        try:
            revinfo = revinfo.with_signature(emb)
            tst_info = emb.signed_data["encap_content_info"]["content"].parsed
            gen_time = tst_info["gen_time"].native
            status = await async_validate_pdf_timestamp(
                emb,
                self._context(
                    roots,
                    revinfo,
                    emb.other_embedded_certs,
                    moment=gen_time,
                    fetch=self.policy.online,
                ),
                diff_policy=KYSO_DIFF_POLICY,
            )
        except (PdfDecodeLimitError, MemoryError, RecursionError):
            raise
        except Exception as exc:  # a malformed time-stamp token: FORMAT_FAILURE
            return _format_failure(emb, field_name, exc, kind=SignatureKind.DOCUMENT_TIMESTAMP)
        judged = _judge_timestamp(status)
        indication, sub = _worst(judged)
        return SignatureReport(
            kind=SignatureKind.DOCUMENT_TIMESTAMP,
            field_name=field_name,
            indication=indication,
            sub_indication=sub,
            signer=_cert_info(status.signing_cert),
            chain=_chain(status.validation_path) if status.trusted else (),
            timestamp=TimestampInfo(
                time=status.timestamp,
                tsa_subject=status.signing_cert.subject.human_friendly,
                intact=status.intact,
                valid=status.valid,
                trusted=status.trusted,
            ),
            intact=status.intact,
            signature_valid=status.valid,
            trusted=status.trusted,
            revocation=_revocation(
                status,
                RevocationSource.ONLINE if self.policy.online else RevocationSource.EMBEDDED,
                status.trust_problem_indic,
                evidence(revinfo.located, status.signing_cert),
            ),
            byte_range=tuple(int(v) for v in emb.byte_range),
            coverage=_coverage(status.coverage),
            covers_whole_document=status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
            signed_revision=emb.signed_revision,
            modification_level=_modification(status.diff_result, status.modification_level),
            level_reached=PadesLevel.NONE,
            sub_filter=_sub_filter(emb),
            signature_format="timestamp",
            algorithm=_algorithm(status, self.algorithms),
            problems=tuple(j.problem for j in judged),
        )

    # -- document rules -------------------------------------------------------------------------

    def _unsigned_updates(
        self,
        reader: PdfFileReader,
        spans: list[tuple[int, int]],
        embedded: Sequence[EmbeddedPdfSignature],
        reports: Sequence[SignatureReport],
    ) -> None:
        """One finding per revision after the last ``/Sig`` signature (see module docstring)."""
        signed = [
            r.signed_revision
            for r in reports
            if r.kind is SignatureKind.SIGNATURE and r.signed_revision is not None
        ]
        if not signed:
            return
        last = max(signed)
        last_level = next(
            (
                r.modification_level
                for r in reports
                if r.kind is SignatureKind.SIGNATURE and r.signed_revision == last
            ),
            None,
        )
        timestamp_revisions = {
            e.signed_revision for e in embedded if e.sig_object_type == "/DocTimeStamp"
        }
        permitted = _certification_permits(reports)
        base = None
        for revision in range(last + 1, reader.xrefs.total_revisions):
            if last_level in (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES):
                # The whole tail was already judged validation data only.
                level = ModificationLevel.LTA_UPDATES
            else:
                base = base or reader.get_historical_resolver(last)
                try:
                    result = KYSO_DIFF_POLICY.apply(
                        old=base, new=reader.get_historical_resolver(revision)
                    )
                    level = _MODIFICATION[result.modification_level]
                except SuspiciousModification:
                    level = ModificationLevel.OTHER
            severity = {
                ModificationLevel.NONE: Severity.INFO,
                ModificationLevel.LTA_UPDATES: Severity.INFO,
                ModificationLevel.FORM_FILLING: Severity.WARNING,
                ModificationLevel.ANNOTATIONS: Severity.WARNING,
                ModificationLevel.OTHER: Severity.ERROR,
            }[level]
            detail = (
                "document time-stamp"
                if revision in timestamp_revisions
                else "incremental update not covered by any signature"
            )
            if severity is Severity.WARNING and level in permitted:
                # The certifier allowed exactly this (ISO 32000-1 12.8.2.2): informational.
                severity = Severity.INFO
                detail += f"; permitted by the certification ({permitted[level]})"
            start, end = spans[revision]
            self.findings.append(
                Finding(
                    code="UNSIGNED_UPDATE",
                    severity=severity,
                    detail=detail,
                    revision=revision,
                    offset=start,
                    length=end - start,
                    modification_level=level,
                )
            )

    def _report(
        self, reader: PdfFileReader, reports: tuple[SignatureReport, ...], *, readable: bool
    ) -> VerificationReport:
        candidates: list[tuple[Indication, SubIndication | None]] = [
            (r.indication, r.sub_indication) for r in reports
        ]
        for finding in self.findings:
            effect = _finding_effect(finding)
            if effect is not None:
                candidates.append(effect)
        if not any(r.kind is SignatureKind.SIGNATURE for r in reports):
            candidates.append((Indication.INDETERMINATE, SubIndication.NO_SIGNATURE_FOUND))
            self.findings.append(
                Finding(
                    code="NO_SIGNATURE",
                    severity=Severity.WARNING,
                    detail="the document carries no signature",
                )
            )
        indication, sub = Indication.TOTAL_PASSED, None
        for candidate in candidates:
            if candidate[0].rank > indication.rank:
                indication, sub = candidate
        return VerificationReport(
            indication=indication,
            sub_indication=sub,
            document_sha256=hashlib.sha256(self.data).hexdigest(),
            document_size=len(self.data),
            readable=readable,
            revisions=reader.xrefs.total_revisions,
            signatures=reports,
            findings=tuple(self.findings),
            verified_at=self.now,
            online=self.policy.online,
            trust_profiles=self.policy.profile_names,
        )


# -- judgement ------------------------------------------------------------------------------------


def _judge_signature(
    status: PdfSignatureStatus, indic: AdESSubIndic | None, ts_indic: AdESSubIndic | None
) -> list[_Judged]:
    judged: list[_Judged] = []
    failed, indeterminate = Indication.TOTAL_FAILED, Indication.INDETERMINATE
    if status.coverage is None or status.coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        judged.append(
            _Judged(
                failed,
                SubIndication.FORMAT_FAILURE,
                Problem(
                    code="BYTE_RANGE_INVALID",
                    detail="the /ByteRange does not cover its whole revision",
                ),
            )
        )
    if not status.intact:
        judged.append(_Judged(failed, SubIndication.HASH_FAILURE, Problem(code="HASH_MISMATCH")))
    if not status.valid:
        judged.append(
            _Judged(failed, SubIndication.SIG_CRYPTO_FAILURE, Problem(code="SIGNATURE_INVALID"))
        )
    judged.extend(_judge_modifications(status))
    judged.extend(_judge_trust(status, indic))
    ts = status.timestamp_validity
    if ts is not None and not (ts.intact and ts.valid and ts.trusted):
        sub = _sub(ts_indic) if ts_indic else SubIndication.NO_POE
        judged.append(
            _Judged(indeterminate, sub, Problem(code="TIMESTAMP_INVALID", detail=sub.value))
        )
    if status.seed_value_constraint_error is not None:
        judged.append(
            _Judged(
                indeterminate,
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                Problem(
                    code="SEED_VALUE_VIOLATION",
                    detail=str(status.seed_value_constraint_error.failure_message)[:300],
                ),
            )
        )
    return judged


def _judge_algorithms(decisions: Sequence[Decision]) -> list[_Judged]:
    """The algorithm rules' refusals (signer.verify.algorithms.review): INDETERMINATE."""
    judged = []
    for decision in decisions:
        if decision.accepted:
            continue
        sub = (
            SubIndication.CRYPTO_CONSTRAINTS_FAILURE_NO_POE
            if decision.code == "ALGORITHM_NO_POE"
            else SubIndication.CRYPTO_CONSTRAINTS_FAILURE
        )
        judged.append(
            _Judged(
                Indication.INDETERMINATE,
                sub,
                Problem(code=decision.code, detail=decision.detail),
            )
        )
    return judged


def _judge_modifications(status: PdfSignatureStatus | DocumentTimestampStatus) -> list[_Judged]:
    diff = status.diff_result
    if isinstance(diff, SuspiciousModification):
        detail = str(diff).splitlines()[0][:300] if str(diff) else "suspicious modification"
    elif status.modification_level == PyhModificationLevel.OTHER:
        detail = "changes outside the allowed kinds"
    elif getattr(status, "docmdp_ok", True) is False:
        detail = "changes not permitted by the certification (DocMDP)"
    else:
        return []
    return [
        _Judged(
            Indication.TOTAL_FAILED,
            SubIndication.FORBIDDEN_MODIFICATION,
            Problem(code="MODIFIED_AFTER_SIGNING", detail=detail),
        )
    ]


def _judge_trust(
    status: PdfSignatureStatus | DocumentTimestampStatus, indic: AdESSubIndic | None
) -> list[_Judged]:
    if not (status.intact and status.valid):
        return []
    if indic is None:
        if status.validation_path is None:
            return [
                _Judged(
                    Indication.INDETERMINATE,
                    SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
                    Problem(code=SubIndication.NO_CERTIFICATE_CHAIN_FOUND.value),
                )
            ]
        return []
    sub = _sub(indic)
    indication = (
        Indication.TOTAL_FAILED if isinstance(indic, AdESFailure) else Indication.INDETERMINATE
    )
    details = status.revocation_details
    if indic is AdESIndeterminate.REVOKED_NO_POE and details is not None:
        ts = getattr(status, "timestamp_validity", None)
        if ts is not None and ts.trusted and ts.timestamp >= details.revocation_date:
            # The time-stamp proves the signature was made after the revocation.
            indication, sub = Indication.TOTAL_FAILED, SubIndication.REVOKED
    code = sub.value
    if indic is AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE:
        usage = status.signing_cert.key_usage_value
        if usage is None or not _SIGNING_USAGES & set(usage.native):
            code = "KEY_USAGE"
    return [_Judged(indication, sub, Problem(code=code))]


def _judge_timestamp(status: DocumentTimestampStatus) -> list[_Judged]:
    judged: list[_Judged] = []
    if status.coverage is None or status.coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        judged.append(
            _Judged(
                Indication.TOTAL_FAILED,
                SubIndication.FORMAT_FAILURE,
                Problem(code="BYTE_RANGE_INVALID"),
            )
        )
    if not status.intact:
        judged.append(
            _Judged(
                Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE, Problem(code="HASH_MISMATCH")
            )
        )
    if not status.valid:
        judged.append(
            _Judged(
                Indication.TOTAL_FAILED,
                SubIndication.SIG_CRYPTO_FAILURE,
                Problem(code="SIGNATURE_INVALID"),
            )
        )
    judged.extend(_judge_modifications(status))
    judged.extend(_judge_trust(status, status.trust_problem_indic))
    return judged


def _worst(judged: Sequence[_Judged]) -> tuple[Indication, SubIndication | None]:
    indication, sub = Indication.TOTAL_PASSED, None
    for item in judged:
        if item.indication.rank > indication.rank:
            indication, sub = item.indication, item.sub
    return indication, sub


def _sub(indic: AdESSubIndic) -> SubIndication:
    try:
        return SubIndication(indic.standard_name)
    except ValueError:
        return SubIndication.GENERIC


_PERMISSIONS = {
    "fill_forms": (ModificationLevel.FORM_FILLING,),
    "annotate": (ModificationLevel.FORM_FILLING, ModificationLevel.ANNOTATIONS),
}


def _certification_permits(reports: Sequence[SignatureReport]) -> dict[ModificationLevel, str]:
    """The kinds of unsigned change a passing certification signature permits (P=2: form
    filling; P=3: form filling and annotations), each with how to name the permission."""
    for report in reports:
        if report.docmdp is not None and report.kind is SignatureKind.SIGNATURE:
            if report.indication is not Indication.TOTAL_PASSED:
                return {}
            number = {"no_changes": 1, "fill_forms": 2, "annotate": 3}.get(report.docmdp)
            name = f"DocMDP P={number}, field {report.field_name}"
            return dict.fromkeys(_PERMISSIONS.get(report.docmdp, ()), name)
    return {}


def _finding_effect(finding: Finding) -> tuple[Indication, SubIndication] | None:
    if finding.code == "TRAILING_DATA":
        return Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE
    if finding.code == "ENCRYPTED":
        return Indication.INDETERMINATE, SubIndication.SIGNED_DATA_NOT_FOUND
    if finding.code == "UNREADABLE_UPDATE":
        return Indication.TOTAL_FAILED, SubIndication.FORBIDDEN_MODIFICATION
    if finding.code == "UNSIGNED_UPDATE" and finding.severity is not Severity.INFO:
        if finding.modification_level is ModificationLevel.OTHER:
            return Indication.TOTAL_FAILED, SubIndication.FORBIDDEN_MODIFICATION
        if finding.modification_level in (
            ModificationLevel.FORM_FILLING,
            ModificationLevel.ANNOTATIONS,
        ):
            return Indication.INDETERMINATE, SubIndication.UNSIGNED_CHANGES
    return None


def _format_failure(
    emb: EmbeddedPdfSignature,
    field_name: str,
    exc: Exception,
    *,
    kind: SignatureKind = SignatureKind.SIGNATURE,
) -> SignatureReport:
    return SignatureReport(
        kind=kind,
        field_name=field_name,
        indication=Indication.TOTAL_FAILED,
        sub_indication=SubIndication.FORMAT_FAILURE,
        byte_range=_safe_byte_range(emb),
        signed_revision=emb.signed_revision,
        problems=(Problem(code="SIGNATURE_UNREADABLE", detail=_describe(exc)),),
    )


def _safe_byte_range(emb: EmbeddedPdfSignature) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in emb.byte_range)
    except (TypeError, ValueError):
        return ()


# -- facts ----------------------------------------------------------------------------------------


def _signature_timestamp_time(emb: EmbeddedPdfSignature) -> datetime | None:
    """gen_time of the signature time-stamp token, if any (its validity is judged later)."""
    try:
        signer_info = extract_signer_info(emb.signed_data)
        for token in extract_tst_data_iter(signer_info, signed=False):
            gen_time = token["encap_content_info"]["content"].parsed["gen_time"].native
            assert isinstance(gen_time, datetime)
            return gen_time
    except (ValueError, KeyError, TypeError):
        return None
    return None


def _signature_revinfo(emb: EmbeddedPdfSignature) -> list[Located]:
    """Revocation data the signature carries: its signed attribute, its CMS ``crls``, and the
    same places in its signature time-stamp tokens. A part that cannot be parsed is skipped
    (it proves nothing; the validation then lacks it and says so)."""
    found: list[Located] = []
    try:
        found.extend(
            from_signed_data(
                emb.signed_data,
                attribute_location=RevocationLocation.SIGNED_ATTRIBUTE,
                cms_location=RevocationLocation.CMS,
            )
        )
        for token in extract_tst_data_iter(extract_signer_info(emb.signed_data), signed=False):
            found.extend(
                from_signed_data(
                    token,
                    attribute_location=RevocationLocation.TIMESTAMP,
                    cms_location=RevocationLocation.TIMESTAMP,
                )
            )
    except (ValueError, KeyError, TypeError):
        return found
    return found


def _vri_revinfo(dss: DocumentSecurityStore) -> list[Located]:
    """CRLs and OCSP responses referenced from the DSS's /VRI entries."""
    found: list[Located] = []
    for entry in dss.vri_entries.values():
        vri = entry.get_object()
        for ref in vri.get("/OCSP", ()):
            data = ref.get_object().read_data(DecodePurpose.OCSP_RESPONSE)
            found.append(Located(RevocationLocation.VRI, _parsed(asn1_ocsp.OCSPResponse, data)))
        for ref in vri.get("/CRL", ()):
            data = ref.get_object().read_data(DecodePurpose.CRL)
            found.append(Located(RevocationLocation.VRI, _parsed(asn1_crl.CertificateList, data)))
    return found


def _sub_filter(emb: EmbeddedPdfSignature) -> str | None:
    value = emb.sig_object.get("/SubFilter")
    return None if value is None else str(value).lstrip("/")


def _signature_format(emb: EmbeddedPdfSignature) -> str:
    """``cades``, ``cades-without-signing-certificate`` or ``cms`` (see SignatureReport)."""
    if emb.sig_object.get("/SubFilter") != "/ETSI.CAdES.detached":
        return "cms"
    names = {a["type"].native for a in emb.signer_info["signed_attrs"] or ()}
    if names & {"signing_certificate_v2", "signing_certificate"}:
        return "cades"
    return "cades-without-signing-certificate"


def _timestamp_certificates(emb: EmbeddedPdfSignature) -> list[x509.Certificate]:
    """Certificates carried in the signature's time-stamp tokens (the TSA's chain)."""
    certs: list[x509.Certificate] = []
    try:
        signer_info = extract_signer_info(emb.signed_data)
        for token in extract_tst_data_iter(signer_info, signed=False):
            certs.extend(c.chosen for c in token["certificates"] or () if c.name == "certificate")
    except (ValueError, KeyError, TypeError):
        return []
    return certs


def _document_certificates(
    embedded: Sequence[EmbeddedPdfSignature], revinfo: _RevocationData
) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = list(revinfo.certs)
    for emb in embedded:
        for choice in emb.signed_data["certificates"] or ():
            if choice.name == "certificate":
                certs.append(choice.chosen)
        certs.extend(_timestamp_certificates(emb))
    return certs


def _cert_info(cert: x509.Certificate) -> CertificateInfo:
    public_key = cert.public_key
    return CertificateInfo(
        subject=cert.subject.human_friendly,
        serial=format(cert.serial_number, "X"),
        issuer=cert.issuer.human_friendly,
        sha256=certificate_fingerprint(cert.dump()),
        not_before=cert.not_valid_before,
        not_after=cert.not_valid_after,
        key_algorithm=public_key.algorithm,
        key_bits=public_key.bit_size,
    )


def _chain(path: Any) -> tuple[CertificateInfo, ...]:
    if path is None:
        return ()
    certs = list(path.iter_certs(include_root=True))
    return tuple(_cert_info(c) for c in reversed(certs))


def _algorithm(
    status: PdfSignatureStatus | DocumentTimestampStatus,
    rules: DatedAlgorithmPolicy,
    decisions: Sequence[Decision] = (),
) -> AlgorithmInfo:
    """The algorithms used, whether the rules accept them at the signature's proven time (the
    time-stamp's) or today, and the rules' decisions about them."""
    cert = status.signing_cert
    mechanism = status.pkcs7_signature_mechanism
    ts = getattr(status, "timestamp_validity", None)
    moment = ts.timestamp if ts is not None and ts.trusted else status.validation_time
    moment = moment or datetime.now(UTC)
    digest_ok = bool(
        rules.digest_algorithm_allowed(
            cms.DigestAlgorithm({"algorithm": status.md_algorithm}), moment
        )
    )
    try:
        signature_ok = bool(
            rules.signature_algorithm_allowed(
                cms.SignedDigestAlgorithm({"algorithm": mechanism}), moment, cert.public_key
            )
        )
    except ValueError:
        signature_ok = False
    return AlgorithmInfo(
        digest=status.md_algorithm,
        signature=mechanism,
        key_algorithm=cert.public_key.algorithm,
        key_bits=cert.public_key.bit_size,
        acceptable=digest_ok and signature_ok and all(d.accepted for d in decisions),
        notes=tuple(Problem(code=d.code, detail=d.detail) for d in decisions),
    )


def _revocation(
    status: PdfSignatureStatus | DocumentTimestampStatus,
    source: RevocationSource,
    indic: AdESSubIndic | None,
    found: tuple[RevocationEvidence, ...],
) -> RevocationInfo:
    """What is known about the signer's revocation, never more than the data shows.

    ``good`` needs data about the signer's certificate: carried by the document (``found``,
    ``about_signer``) or, with ``source`` online, fetched. A trusted chain without any such
    data (a certificate that names no CRL or OCSP source) is ``no-data``.
    """
    details = status.revocation_details
    if details is not None:
        return RevocationInfo(
            status=RevocationStatus.REVOKED,
            source=source,
            revoked_at=details.revocation_date,
            reason=str(details.revocation_reason.native),
            found=found,
        )
    if status.trusted:
        if source is RevocationSource.ONLINE or any(e.about_signer for e in found):
            return RevocationInfo(status=RevocationStatus.GOOD, source=source, found=found)
        return RevocationInfo(
            status=RevocationStatus.NO_DATA, source=RevocationSource.NONE, found=found
        )
    if indic in _REVOCATION_MISSING:
        return RevocationInfo(
            status=RevocationStatus.UNKNOWN, source=RevocationSource.NONE, found=found
        )
    return RevocationInfo(
        status=RevocationStatus.NOT_CHECKED, source=RevocationSource.NONE, found=found
    )


def _coverage(level: SignatureCoverageLevel | None) -> Coverage:
    return Coverage.UNCLEAR if level is None else _COVERAGE[level]


def _modification(
    diff: DiffResult | SuspiciousModification | None, level: PyhModificationLevel | None
) -> ModificationLevel | None:
    if isinstance(diff, SuspiciousModification):
        return ModificationLevel.OTHER
    return None if level is None else _MODIFICATION[level]


def _dss_revision(reader: PdfFileReader) -> int | None:
    """The revision that introduced the DSS, or None without a DSS.

    pyHanko may update the DSS again after a document time-stamp (the time-stamp's own
    validation data); the revision that first wrote it is the one a later time-stamp covers.
    """
    try:
        ref = reader.root.raw_get("/DSS")
    except KeyError:
        return None
    if isinstance(ref, generic.IndirectObject):
        return int(reader.xrefs.get_introducing_revision(ref.reference))
    return int(reader.xrefs.get_last_change(reader.root_ref))


def _pades_level(
    emb: EmbeddedPdfSignature,
    status: PdfSignatureStatus,
    *,
    dss_sufficient: bool,
    doc_timestamps: list[SignatureReport],
    dss_revision: int | None,
) -> PadesLevel:
    """The PAdES baseline level this signature reaches (EN 319 142-1), given what verified.

    B-B: a PAdES (ETSI.CAdES.detached) signature that verifies; B-T: plus a valid, trusted
    signature time-stamp or a later passing document time-stamp; B-LT: plus a DSS that alone
    settles the chain and revocation; B-LTA: plus a passing document time-stamp covering that DSS.
    """
    if _signature_format(emb) != "cades":
        # adbe.pkcs7.* is CMS, not PAdES; the CAdES sub-filter without the signing-certificate
        # attribute (EN 319 122-1 requires it) is a CMS signature in a CAdES container.
        return PadesLevel.NONE
    if not (status.intact and status.valid):
        return PadesLevel.NONE
    later = [
        r
        for r in doc_timestamps
        if r.indication is Indication.TOTAL_PASSED
        and r.signed_revision is not None
        and r.signed_revision > emb.signed_revision
    ]
    ts = status.timestamp_validity
    if not ((ts is not None and ts.intact and ts.valid and ts.trusted) or later):
        return PadesLevel.B_B
    if not (dss_sufficient and dss_revision is not None):
        return PadesLevel.B_T
    covering = any((r.signed_revision or 0) >= dss_revision for r in later)
    return PadesLevel.B_LTA if covering else PadesLevel.B_LT
