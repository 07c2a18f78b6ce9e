"""Revocation data from every place a PDF signature may carry it, each item with where it was.

- the document's DSS (``/DSS /OCSPs``, ``/CRLs``) and its per-signature ``/VRI`` entries;
- the CMS signed attribute ``adbe-revocationInfoArchival`` (1.2.840.113583.1.1.8), where
  Acrobat and iText put the CRLs and OCSP responses they fetched before signing;
- the CMS ``crls`` field (RevocationInfoChoices: CRLs, and OCSP responses as ``other``
  with the format id-ri-ocsp-response);
- the signature time-stamp token's own SignedData (its ``crls`` and its signer's
  ``adbe-revocationInfoArchival``).

All of it goes into the validation context; :func:`evidence` then says, item by item, what was
found, where, and whether it is about a given certificate, so a report never claims "not
revoked" without naming the data that shows it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from asn1crypto import cms, x509
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import pdf as asn1_pdf  # noqa: F401 - registers adobe_revocation_info_archival

from signer.verify.report import RevocationEvidence, RevocationLocation

__all__ = ["Located", "evidence", "from_signed_data", "split"]

_OCSP_FORMAT = "1.3.6.1.5.5.7.16.2"  # id-ri-ocsp-response (RFC 5940)

RevocationItem: TypeAlias = asn1_ocsp.OCSPResponse | asn1_crl.CertificateList


@dataclass(frozen=True)
class Located:
    """One CRL or OCSP response and where the document carries it."""

    location: RevocationLocation
    item: RevocationItem


def from_signed_data(
    signed_data: cms.SignedData,
    *,
    attribute_location: RevocationLocation,
    cms_location: RevocationLocation,
) -> list[Located]:
    """CRLs and OCSP responses in ``signed_data``'s signed attributes and its ``crls`` field."""
    found: list[Located] = []
    for signer_info in signed_data["signer_infos"]:
        for attribute in signer_info["signed_attrs"] or ():
            if attribute["type"].native != "adobe_revocation_info_archival":
                continue
            for archival in attribute["values"]:
                found.extend(Located(attribute_location, c) for c in archival["crl"] or ())
                found.extend(Located(attribute_location, o) for o in archival["ocsp"] or ())
    for choice in signed_data["crls"] or ():
        if choice.name == "crl":
            found.append(Located(cms_location, choice.chosen))
        elif (
            choice.name == "other" and choice.chosen["other_rev_info_format"].dotted == _OCSP_FORMAT
        ):
            parsed = asn1_ocsp.OCSPResponse.load(choice.chosen["other_rev_info"].dump())
            found.append(Located(cms_location, parsed))
    return found


def split(
    located: Iterable[Located],
) -> tuple[list[asn1_ocsp.OCSPResponse], list[asn1_crl.CertificateList]]:
    """The OCSP responses and the CRLs, each once (by their DER), for a validation context."""
    ocsps: dict[bytes, asn1_ocsp.OCSPResponse] = {}
    crls: dict[bytes, asn1_crl.CertificateList] = {}
    for entry in located:
        if isinstance(entry.item, asn1_ocsp.OCSPResponse):
            ocsps.setdefault(entry.item.dump(), entry.item)
        else:
            crls.setdefault(entry.item.dump(), entry.item)
    return list(ocsps.values()), list(crls.values())


def evidence(located: Iterable[Located], cert: x509.Certificate) -> tuple[RevocationEvidence, ...]:
    """Each item once per location, saying whether it speaks about ``cert``."""
    seen: set[tuple[RevocationLocation, bytes]] = set()
    result: list[RevocationEvidence] = []
    for entry in located:
        key = (entry.location, entry.item.dump())
        if key in seen:
            continue
        seen.add(key)
        try:
            result.append(_describe(entry, cert))
        except (ValueError, KeyError, TypeError):
            continue  # an item too damaged to describe is not evidence of anything
    return tuple(result)


def _describe(entry: Located, cert: x509.Certificate) -> RevocationEvidence:
    item = entry.item
    if isinstance(item, asn1_crl.CertificateList):
        tbs = item["tbs_cert_list"]
        return RevocationEvidence(
            kind="crl",
            location=entry.location,
            issuer=tbs["issuer"].human_friendly,
            produced_at=_time(tbs["this_update"].native),
            about_signer=tbs["issuer"] == cert.issuer,
        )
    basic = item["response_bytes"]["response"].parsed
    data = basic["tbs_response_data"]
    responder = data["responder_id"]
    return RevocationEvidence(
        kind="ocsp",
        location=entry.location,
        issuer=(
            responder.chosen.human_friendly
            if responder.name == "by_name"
            else "responder key " + responder.chosen.native.hex()
        ),
        produced_at=_time(data["produced_at"].native),
        about_signer=any(_is_about(single["cert_id"], cert) for single in _singles(data)),
    )


def _singles(data: asn1_ocsp.ResponseData) -> Iterator[asn1_ocsp.SingleResponse]:
    yield from data["responses"]


def _is_about(cert_id: asn1_ocsp.CertId, cert: x509.Certificate) -> bool:
    if cert_id["serial_number"].native != cert.serial_number:
        return False
    algorithm = cert_id["hash_algorithm"]["algorithm"].native
    try:
        digest = hashlib.new(algorithm, cert.issuer.dump()).digest()
    except ValueError:
        return False
    return bool(digest == cert_id["issuer_name_hash"].native)


def _time(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None
