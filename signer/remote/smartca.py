"""An asynchronous driver for the request → transaction id → status pattern of Vietnamese
remote-signing services (VNPT SmartCA's service-provider gateway, Viettel MySign alike).

Shapes followed (the public integration samples of VNPT SmartCA's "sp769" gateway; see
docs/api.md, "Remote signing"): all calls are ``POST`` JSON with the service provider's
``sp_id`` and ``sp_password`` in the body:
- ``{base}/v1/credentials/get_certificate`` ``{sp_id, sp_password, user_id, serial_number,
  transaction_id}`` → ``{status_code, message, data: {user_certificates: [{serial_number,
  cert_data, cert_status, chain_data: {ca_cert, root_cert}}]}}`` (certificates base64 DER);
- ``{base}/v1/signatures/sign`` ``{…, transaction_id, transaction_desc, serial_number,
  sign_files: [{data_to_be_signed (hex hash), doc_id, file_type, sign_type: "hash"}]}`` →
  ``{data: {transaction_id, tran_code}}``: the user is asked on the phone app;
- ``{base}/v1/signatures/sign/{transaction_id}/status`` ``{}`` → ``{data: {transaction_id,
  signatures: [{doc_id, signature_value (base64), timestamp_signature}] | null}}``.
Not in those samples, so assumed (and configurable by nothing yet): a refusal or a lapse is
told by ``data.transaction_status`` = ``"rejected"`` / ``"expired"`` (anything else with no
signatures is pending).

Signatures are matched to hashes by ``doc_id`` (the hash's index): every hash needs exactly
one, or the whole batch fails. ``sp_password`` never reaches an error or a log.
"""

from __future__ import annotations

import base64
import binascii
import ssl
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import x509

from signer.remote.base import (
    Approval,
    BatchMismatch,
    ProviderRefused,
    ProviderUnavailable,
    RemoteCredential,
    Transaction,
)
from signer.remote.http import post_json

__all__ = ["SmartCaProvider", "SmartCaSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SmartCaSettings:
    name: str
    base_url: str
    sp_id: str
    sp_password: Callable[[], str] = field(repr=False)
    multisign: int = 100
    timeout: float = 30.0
    ca_file: str | None = None


class SmartCaProvider:
    """``RemoteProvider`` over a SmartCA-style asynchronous gateway (module docstring)."""

    answers_at_submit = False

    def __init__(self, settings: SmartCaSettings) -> None:
        self.name = settings.name
        self._s = settings
        self._context = (
            ssl.create_default_context(cafile=settings.ca_file) if settings.ca_file else None
        )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = post_json(
            f"{self._s.base_url.rstrip('/')}/v1/{path}",
            body,
            timeout=self._s.timeout,
            context=self._context,
        )
        code = answer.get("status_code")
        if code not in (0, 200):
            message = str(answer.get("message", ""))[:300]
            raise ProviderRefused(f"{self.name}: {path}: status {code} {message}".rstrip())
        data = answer.get("data")
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"{self.name}: {path}: the answer has no data")
        return data

    def _auth(self) -> dict[str, str]:
        return {"sp_id": self._s.sp_id, "sp_password": self._s.sp_password()}

    def credential(self, user: str) -> RemoteCredential:
        data = self._post(
            "credentials/get_certificate",
            {**self._auth(), "user_id": user, "serial_number": "", "transaction_id": _tid()},
        )
        found = data.get("user_certificates")
        if not isinstance(found, list) or not found:
            raise ProviderRefused(f"{self.name}: user {user!r} has no certificate")
        chosen = next((c for c in found if c.get("cert_status") in (None, "", "active")), None)
        if not isinstance(chosen, dict):
            raise ProviderRefused(f"{self.name}: user {user!r} has no active certificate")
        try:
            certificate = _certificate(chosen["cert_data"])
            chain_data = chosen.get("chain_data") or {}
            chain = tuple(
                _certificate(chain_data[k]) for k in ("ca_cert", "root_cert") if chain_data.get(k)
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ProviderUnavailable(
                f"{self.name}: the certificate is not usable ({exc})"
            ) from None
        return RemoteCredential(
            id=str(chosen.get("serial_number", "")),
            certificate=certificate,
            chain=chain,
            multisign=self._s.multisign,
        )

    def submit(
        self, user: str, credential: RemoteCredential, hashes: Sequence[bytes], description: str
    ) -> Transaction:
        if len(hashes) > credential.multisign:
            raise ProviderRefused(
                f"{self.name}: {len(hashes)} documents exceed the {credential.multisign} one "
                "approval may cover"
            )
        data = self._post(
            "signatures/sign",
            {
                **self._auth(),
                "user_id": user,
                "transaction_id": _tid(),
                "transaction_desc": description[:500],
                "serial_number": credential.id,
                "sign_files": [
                    {
                        "data_to_be_signed": value.hex(),
                        "doc_id": str(index),
                        "file_type": "pdf",
                        "sign_type": "hash",
                    }
                    for index, value in enumerate(hashes)
                ],
            },
        )
        reference = data.get("transaction_id")
        if not isinstance(reference, str) or not reference:
            raise ProviderUnavailable(f"{self.name}: signatures/sign gave no transaction_id")
        return Transaction(reference=reference, approval=Approval.PENDING)

    def status(self, user: str, reference: str) -> Transaction:
        quoted = urllib.parse.quote(reference, safe="")
        data = self._post(f"signatures/sign/{quoted}/status", {})
        state = str(data.get("transaction_status", "")).lower()
        if state in ("rejected", "expired"):
            return Transaction(reference=reference, approval=Approval(state), reason=state)
        found = data.get("signatures")
        if not found:
            return Transaction(reference=reference, approval=Approval.PENDING)
        return Transaction(
            reference=reference, approval=Approval.APPROVED, signatures=_by_doc_id(found)
        )


def _by_doc_id(found: Any) -> tuple[bytes, ...]:
    if not isinstance(found, list):
        raise ProviderUnavailable("the signatures are not a list")
    values: dict[int, bytes] = {}
    try:
        for item in found:
            index = int(item["doc_id"])
            if index in values or index < 0:
                raise BatchMismatch(f"doc_id {index} is answered twice or is negative")
            values[index] = base64.b64decode(item["signature_value"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ProviderUnavailable(f"a signature is not usable ({exc})") from None
    if sorted(values) != list(range(len(values))):
        raise BatchMismatch("the signatures do not answer the documents 0…n-1")
    return tuple(values[i] for i in range(len(values)))


def _certificate(text: str) -> x509.Certificate:
    return x509.Certificate.load(base64.b64decode(text, validate=True))


def _tid() -> str:
    return uuid.uuid4().hex
