"""Long-term evidence of signed PDFs: when it ends, and renewing it (PAdES B-LT and B-LTA).

- :func:`read_evidence`: the facts of a PDF's evidence (:class:`EvidenceFacts`) — its PAdES
  signatures, the level it reaches, its *last* time-stamp (a document time-stamp or a signature
  time-stamp, whichever is latest) with its TSA's certificate and algorithms, and whether that
  TSA certificate is revoked (from the revocation data the caller fetches).
- :func:`evidence_end`: when the evidence stops proving anything — the earliest of the last
  time-stamp's TSA certificate expiry, that certificate's revocation and the dated algorithm
  policy's end for the algorithms of that time-stamp (``signer.verify.algorithms``). A document
  without any time-stamp ends with its signers' certificates.
- :class:`Renewer`: adds the validation data still missing (certificates, OCSP responses and
  CRLs of every signature's and time-stamp's chain, into the DSS) and, for B-LTA, a new document
  time-stamp over all of it (pyHanko's LTA update, done in one incremental update with the
  revocation answers cached until their ``nextUpdate`` and the token size known in advance).

Invariants:
- the earlier revisions are never touched: the output starts with the input's exact bytes
  (an incremental update), and ``extend`` checks it before returning;
- ``extend`` returns a complete document or raises a ``SigningError``: a TSA or revocation
  failure leaves nothing;
- documents are parsed as hostile (pyHanko's strict reader inside ``pdf_failures``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from asn1crypto import cms, tsp, x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.general import extract_certificate_info
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.validation.dss import DocumentSecurityStore, collect_validation_info
from pyhanko.sign.validation.generic_cms import extract_tst_data_iter
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError, ValidationError

from signer.errors import NotRenewable, RevocationUnavailable, SigningError
from signer.failures import pdf_failures
from signer.fetches import FetchTally
from signer.levels import Level
from signer.revocation import RevocationCache, RevocationData
from signer.timestamps import FailoverTimeStamper

__all__ = [
    "ArchiveSettings",
    "EvidenceEnd",
    "EvidenceFacts",
    "Extended",
    "Renewer",
    "evidence_end",
    "read_evidence",
]

# Room for a document time-stamp's CMS beyond the measured token (TSAs vary slightly).
_TOKEN_SLACK = 1024


@dataclass(frozen=True, kw_only=True)
class EvidenceFacts:
    """What decides how long a PDF's signatures stay provable (see the module docstring).

    ``signatures`` counts the ``/Sig`` signatures (0: nothing to keep). The ``last_*``,
    ``tsa_*``, ``digest`` and ``key_*`` fields describe the last time-stamp (``None``/"" when
    the document has none); ``signer_not_after`` is the earliest expiry of the signers'
    certificates.
    """

    signatures: int
    level: str = ""
    last_timestamp: datetime | None = None
    tsa_subject: str = ""
    tsa_not_after: datetime | None = None
    tsa_revoked_at: datetime | None = None
    signer_not_after: datetime | None = None
    digest: str = ""
    key_algorithm: str = ""
    key_bits: int = 0


class _Rules(Protocol):
    """What :func:`evidence_end` reads of ``signer.verify.algorithms.AlgorithmRules``."""

    def digest_until(self, name: str) -> tuple[bool, datetime | None]: ...
    def key_until(self, algorithm: str, bits: int) -> tuple[bool, datetime | None]: ...


@dataclass(frozen=True, kw_only=True)
class EvidenceEnd:
    """When the evidence ends (``None``: no end known) and why: ``tsa-certificate``,
    ``tsa-revoked``, ``algorithm``, ``signer-certificate`` (no time-stamp at all)."""

    at: datetime | None
    reason: str


def evidence_end(facts: EvidenceFacts, rules: _Rules) -> EvidenceEnd:
    """The earliest end of ``facts``' evidence under the dated algorithm ``rules``."""
    candidates: list[tuple[datetime, str]] = []
    if facts.last_timestamp is None:
        if facts.signer_not_after is not None:
            candidates.append((facts.signer_not_after, "signer-certificate"))
    else:
        if facts.tsa_not_after is not None:
            candidates.append((facts.tsa_not_after, "tsa-certificate"))
        if facts.tsa_revoked_at is not None:
            candidates.append((facts.tsa_revoked_at, "tsa-revoked"))
    if facts.digest:
        allowed, until = rules.digest_until(facts.digest)
        _algorithm_end(candidates, allowed, until)
    if facts.key_algorithm:
        allowed, until = rules.key_until(facts.key_algorithm, facts.key_bits)
        _algorithm_end(candidates, allowed, until)
    if not candidates:
        return EvidenceEnd(at=None, reason="")
    at, reason = min(candidates, key=lambda c: c[0])
    return EvidenceEnd(at=at, reason=reason)


def _algorithm_end(
    candidates: list[tuple[datetime, str]], allowed: bool, until: datetime | None
) -> None:
    if not allowed:  # refused outright: the evidence has already ended
        candidates.append((datetime.fromtimestamp(0, UTC), "algorithm"))
    elif until is not None:
        candidates.append((until, "algorithm"))


def read_evidence(pdf: bytes, *, revocation: RevocationData | None = None) -> EvidenceFacts:
    """The evidence facts of ``pdf``; ``revocation`` (answers about the last TSA's chain, from
    :meth:`Renewer.facts`) sets ``tsa_revoked_at``. Raises ``PdfCorrupt`` for what cannot be read.
    """
    with pdf_failures(doing="read"):
        return _facts_of(PdfFileReader(io.BytesIO(pdf)), revocation)


def _facts_of(reader: PdfFileReader, revocation: RevocationData | None) -> EvidenceFacts:
    with pdf_failures(doing="read"):
        embedded = list(reader.embedded_signatures)
        signatures = [e for e in embedded if e.sig_object_type == "/Sig"]
        doc_timestamps = [e for e in embedded if e.sig_object_type != "/Sig"]
        if not signatures:
            return EvidenceFacts(signatures=0)
        tokens: list[cms.SignedData] = [ts.signed_data for ts in doc_timestamps]
        for emb in signatures:
            tokens.extend(extract_tst_data_iter(emb.signer_info, signed=False))
        signer_ends = [
            emb.signer_cert["tbs_certificate"]["validity"]["not_after"].native for emb in signatures
        ]
        has_dss = "/DSS" in reader.root
        level = (
            "B-LTA"
            if doc_timestamps and has_dss
            else "B-LT"
            if has_dss and tokens
            else "B-T"
            if tokens
            else "B-B"
        )
        if not tokens:
            digest, key_algorithm, bits = _algorithms(signatures[-1].signed_data)
            return EvidenceFacts(
                signatures=len(signatures),
                level=level,
                signer_not_after=min(signer_ends),
                digest=digest,
                key_algorithm=key_algorithm,
                key_bits=bits,
            )
        last = max(tokens, key=_gen_time)
        tsa = extract_certificate_info(last).signer_cert
        digest, key_algorithm, bits = _algorithms(last)
        return EvidenceFacts(
            signatures=len(signatures),
            level=level,
            last_timestamp=_gen_time(last),
            tsa_subject=tsa.subject.human_friendly,
            tsa_not_after=tsa["tbs_certificate"]["validity"]["not_after"].native,
            tsa_revoked_at=_revoked_at(tsa, revocation) if revocation is not None else None,
            signer_not_after=min(signer_ends),
            digest=digest,
            key_algorithm=key_algorithm,
            key_bits=bits,
        )


def _gen_time(token: cms.SignedData) -> datetime:
    moment: datetime = token["encap_content_info"]["content"].parsed["gen_time"].native
    return moment


def _algorithms(signed_data: cms.SignedData) -> tuple[str, str, int]:
    """The digest of ``signed_data``'s signer and its key's algorithm and size."""
    signer_info = signed_data["signer_infos"][0]
    digest = signer_info["digest_algorithm"]["algorithm"].native
    cert = extract_certificate_info(signed_data).signer_cert
    public_key = cert.public_key
    algorithm = {"rsa": "rsa", "rsassa_pss": "rsa", "ec": "ec"}.get(public_key.algorithm, "")
    return str(digest), algorithm, int(public_key.bit_size)


def _revoked_at(cert: x509.Certificate, data: RevocationData) -> datetime | None:
    for response in data.ocsps:
        basic = response.basic_ocsp_response
        for single in basic["tbs_response_data"]["responses"]:
            cert_id = single["cert_id"]
            if cert_id["serial_number"].native != cert.serial_number:
                continue
            status = single["cert_status"]
            if status.name == "revoked":
                revoked: datetime = status.chosen["revocation_time"].native
                return revoked
    for crl in data.crls:
        if crl["tbs_cert_list"]["issuer"] != cert.issuer:
            continue
        for entry in crl["tbs_cert_list"]["revoked_certificates"] or ():
            if entry["user_certificate"].native == cert.serial_number:
                when: datetime = entry["revocation_date"].native
                return when
    return None


@dataclass(frozen=True, kw_only=True)
class ArchiveSettings:
    """The TSAs and trust anchors that renewal uses (validated once, at start)."""

    tsa_urls: tuple[str, ...]
    tsa_timeout: float = 10.0
    revocation_timeout: float = 10.0
    trust_roots: tuple[x509.Certificate, ...] = ()
    max_document_size: int = 50 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class Extended:
    """A renewed (or raised) document and the facts of its new evidence."""

    pdf: bytes = field(repr=False)
    level: Level
    facts: EvidenceFacts


class Renewer:
    """Renews PDFs' evidence with the configured TSAs; one per process (see the module
    docstring). Revocation answers are shared by every document until their ``nextUpdate``."""

    def __init__(self, settings: ArchiveSettings, *, tally: FetchTally | None = None) -> None:
        """``tally``: where the TSA requests and revocation fetches are counted."""
        if not settings.tsa_urls:
            raise ValueError("archive renewal needs at least one time-stamping authority")
        self._settings = settings
        self._timestamper = _Recording(
            settings.tsa_urls, timeout=settings.tsa_timeout, keep_connections=True, tally=tally
        )
        self._revocation = RevocationCache(
            timeout=settings.revocation_timeout, tally=self._timestamper.tally
        )
        self._roots = tuple(settings.trust_roots)
        self._tsa_certs: tuple[x509.Certificate, ...] | None = None
        self._token_size = 0

    async def facts(self, pdf: bytes) -> EvidenceFacts:
        """:func:`read_evidence` with the last TSA's revocation status fetched (cached)."""
        with pdf_failures(doing="read"):
            reader = PdfFileReader(io.BytesIO(pdf))
            facts = _facts_of(reader, None)
            if facts.last_timestamp is None:
                return facts
            certs = _document_certificates(reader)
        try:
            data = await self._revocation.collect(_unique([*certs, *self._roots]))
        except RevocationUnavailable:
            return facts  # unknown: the expiry and the algorithms still decide
        return _facts_of(reader, data)

    async def extend(self, pdf: bytes, *, level: Level) -> Extended:
        """``pdf`` with the validation data still missing and, for B-LTA, a new document
        time-stamp; raises ``NotRenewable`` for a document without a PAdES signature or a
        level below B-LT, ``TimestampUnavailable``/``RevocationUnavailable`` when the data
        cannot be obtained."""
        if level not in (Level.B_LT, Level.B_LTA):
            raise NotRenewable(
                f"documents are extended to B-LT or B-LTA, not {level.value}", field="level"
            )
        if len(pdf) > self._settings.max_document_size:
            raise NotRenewable(
                f"the document is {len(pdf):,} bytes, over the {self._settings.max_document_size:,}"
                " bytes this server processes"
            )
        with pdf_failures(doing="renewed"):
            reader = PdfFileReader(io.BytesIO(pdf))
            embedded = list(reader.embedded_signatures)
            if not any(e.sig_object_type == "/Sig" for e in embedded):
                raise NotRenewable(
                    "the document carries no PAdES signature: there is no evidence to renew"
                )
            if level is Level.B_LT and not _has_timestamp(embedded):
                raise NotRenewable(
                    "B-LT builds on a time-stamped signature (B-T) and this document has no "
                    "time-stamp; extend it to B-LTA, whose document time-stamp gives it one",
                    field="level",
                )
            tsa_certs = await self._tsa_chain() if level is Level.B_LTA else ()
            certs = [*_document_certificates(reader), *tsa_certs]
            data = await self._revocation.collect(_unique([*certs, *self._roots]))
            context = ValidationContext(
                trust_roots=list(self._roots),
                other_certs=certs,
                ocsps=list(data.ocsps),
                crls=list(data.crls),
                allow_fetching=False,
                revocation_mode="hard-fail",
            )
            buffer = io.BytesIO(pdf)
            writer = IncrementalPdfFileWriter(buffer)
            await self._add_validation_data(writer, embedded, context)
            out = io.BytesIO()
            if level is Level.B_LTA:
                stamper = PdfTimeStamper(self._timestamper, field_name=_new_field_name(embedded))
                await stamper.async_timestamp_pdf(
                    writer,
                    "sha256",
                    context,
                    bytes_reserved=2 * (self._token_size + _TOKEN_SLACK),
                    output=out,
                )
            else:
                writer.write(out)  # type: ignore[no-untyped-call]
        result = out.getvalue()
        if not result.startswith(pdf):  # never: an incremental update only appends
            raise SigningError("the renewed document does not keep the earlier revisions")
        if level is Level.B_LTA and self._timestamper.last is not None:
            # the new document time-stamp is now the last one: no need to parse the result
            facts = _renewed_facts(self._timestamper.last, embedded, data)
        else:
            facts = _facts_of(PdfFileReader(io.BytesIO(result)), data)
        return Extended(pdf=result, level=level, facts=facts)

    async def _tsa_chain(self) -> tuple[x509.Certificate, ...]:
        if self._tsa_certs is None:
            token = await self._timestamper.async_dummy_response("sha256")
            self._token_size = len(token.dump())
            self._tsa_certs = tuple(c.chosen for c in token["content"]["certificates"])
        return self._tsa_certs

    async def _add_validation_data(
        self,
        writer: IncrementalPdfFileWriter,
        embedded: Sequence[EmbeddedPdfSignature],
        context: ValidationContext,
    ) -> None:
        for emb in embedded:
            try:
                paths = await collect_validation_info(emb, context)
            except (PathBuildingError, PathValidationError, ValidationError) as exc:
                raise RevocationUnavailable(
                    f"the chain of {emb.field_name!s} does not validate now ({exc}); its "
                    "validation data cannot be completed — check the trust anchors, or the "
                    "evidence has already ended"
                ) from exc
            DocumentSecurityStore.supply_dss_in_writer(
                writer,
                emb.pkcs7_content.hex().encode("ascii"),
                paths=paths,
                validation_context=context,
                embed_roots=False,
            )


def _has_timestamp(embedded: Sequence[EmbeddedPdfSignature]) -> bool:
    return any(
        e.sig_object_type != "/Sig"
        or next(extract_tst_data_iter(e.signer_info, signed=False), None)
        for e in embedded
    )


class _Recording(FailoverTimeStamper):
    """The failover time-stamper, keeping its last token (one renewal at a time per worker)."""

    last: cms.SignedData | None = None

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        self.last = None
        response = await super().async_request_tsa_response(req)
        self.last = response["time_stamp_token"]["content"]
        return response


def _renewed_facts(
    token: cms.SignedData, embedded: Sequence[EmbeddedPdfSignature], data: RevocationData
) -> EvidenceFacts:
    signatures = [e for e in embedded if e.sig_object_type == "/Sig"]
    tsa = extract_certificate_info(token).signer_cert
    digest, key_algorithm, bits = _algorithms(token)
    return EvidenceFacts(
        signatures=len(signatures),
        level="B-LTA",
        last_timestamp=_gen_time(token),
        tsa_subject=tsa.subject.human_friendly,
        tsa_not_after=tsa["tbs_certificate"]["validity"]["not_after"].native,
        tsa_revoked_at=_revoked_at(tsa, data),
        signer_not_after=min(
            e.signer_cert["tbs_certificate"]["validity"]["not_after"].native for e in signatures
        ),
        digest=digest,
        key_algorithm=key_algorithm,
        key_bits=bits,
    )


def _document_certificates(reader: PdfFileReader) -> list[x509.Certificate]:
    """Every certificate the signatures, their time-stamps and the DSS carry."""
    found: list[x509.Certificate] = []
    for emb in reader.embedded_signatures:  # cached by the reader: parsed once
        found.extend(_certificates_of(emb.signed_data))
        for token in extract_tst_data_iter(emb.signer_info, signed=False):
            found.extend(_certificates_of(token))
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except Exception:
        dss = None
    if dss is not None:
        found.extend(dss.load_certs())
    return _unique(found)


def _certificates_of(signed_data: cms.SignedData) -> list[x509.Certificate]:
    return [c.chosen for c in signed_data["certificates"] or () if c.name == "certificate"]


def _unique(certs: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    seen: dict[bytes, x509.Certificate] = {}
    for cert in certs:
        seen.setdefault(cert.sha256, cert)
    return list(seen.values())


def _new_field_name(embedded: Sequence[EmbeddedPdfSignature]) -> str:
    names = {str(e.field_name) for e in embedded}
    number = len(names) + 1
    while f"ArchiveTimestamp{number}" in names:
        number += 1
    return f"ArchiveTimestamp{number}"
