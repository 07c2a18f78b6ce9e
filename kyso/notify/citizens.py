"""Telling citizens: Zalo ZNS first, an SMS brandname gateway as the fallback.

A citizen is told about their dossier only with their consent, recorded per dossier (the
document id) with their phone number (:meth:`Citizens.set_consent`). The statuses that are told
(``[notify] citizen_statuses``) become messages: :meth:`Citizens.collect` reads the outbox from
its cursor and queues one message per (event, phone) in one transaction with the cursor's move,
so each is queued once. :meth:`Citizens.send_due` sends them:

- Zalo ZNS (``POST {zns.url}`` with the ``access_token`` header and ``{"phone": "84…",
  "template_id", "template_data", "tracking_id"}``; the answer's ``error`` is 0 on success,
  negative otherwise, with ``data.msg_id``);
- when ZNS is not configured or fails (an error code, an HTTP error, a rate limit, a timeout),
  the SMS gateway (the eSMS.vn JSON shape: ``{"ApiKey", "SecretKey", "Phone", "Content",
  "Brandname", "SmsType", "IsUnicode", "RequestId"}`` answered by ``{"CodeResult": "100",
  "SMSID"}``), with the text folded to ASCII and cut to 160 characters unless the gateway
  takes Unicode;
- when both fail, the message is tried again later (:data:`RETRIES`), then marked ``failed``;
  every failure is kept on the message (``last_error``) for the operator
  (``kyso notify messages``) and logged without the phone number.

Phone numbers are normalised to ``84…`` (:func:`normalise_phone`).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from kyso.notify.outbox import committed_prefix
from kyso.notify.schema import consents, cursors, events, messages

__all__ = [
    "RETRIES",
    "STATUS_NAMES",
    "Citizens",
    "ConsentRecord",
    "GatewayError",
    "MessageRecord",
    "SmsGateway",
    "ZnsGateway",
    "fit_sms",
    "fold",
    "normalise_phone",
]

log = logging.getLogger(__name__)

RETRIES: tuple[timedelta, ...] = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=6),
)

STATUS_NAMES: Mapping[str, str] = {
    "01": "Đã đến",
    "02": "Bị từ chối tiếp nhận",
    "03": "Đã tiếp nhận",
    "04": "Đã phân công xử lý",
    "05": "Đang xử lý",
    "06": "Đã hoàn thành",
    "13": "Yêu cầu lấy lại",
    "15": "Đồng ý lấy lại",
    "16": "Từ chối lấy lại",
}

_CURSOR = "citizens"
_LEASE = timedelta(minutes=2)
_PHONE_CHARS = re.compile(r"[\s.\-()]")


class GatewayError(Exception):
    """A gateway did not take a message; the text says which and why (no phone number)."""


def normalise_phone(text: str) -> str:
    """A Vietnamese mobile number as ``84`` and 9 digits (``0912 345 678``, ``+84912345678``,
    ``84912345678`` all give ``84912345678``); raises ``ValueError`` for anything else."""
    digits = _PHONE_CHARS.sub("", text.strip())
    digits = digits.removeprefix("+")
    if digits.startswith("0") and len(digits) == 10:
        digits = "84" + digits[1:]
    if not (digits.isdigit() and digits.startswith("84") and len(digits) == 11):
        raise ValueError(
            "a phone number is a Vietnamese mobile number: 10 digits starting with 0, or 84"
            " and 9 digits (e.g. 0912345678 or 84912345678)"
        )
    return digits


def fold(text: str) -> str:
    """``text`` without Vietnamese diacritics (``Hồ sơ đã tiếp nhận`` → ``Ho so da tiep nhan``)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return plain.encode("ascii", "replace").decode("ascii")


def fit_sms(text: str, *, unicode: bool, limit: int = 160) -> str:
    """The SMS text: folded to ASCII unless the gateway takes Unicode, within ``limit``."""
    out = " ".join((text if unicode else fold(text)).split())
    if len(out) > limit:
        out = out[: limit - 3].rstrip() + "..."
    return out


def _post_json(
    url: str, payload: Mapping[str, Any], headers: Mapping[str, str], timeout: float
) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 (the operator's configured gateway URL)
        url,
        data=json.dumps(payload, ensure_ascii=False).encode(),
        headers={"content-type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, json.loads(response.read(64 * 1024) or b"null")
    except urllib.error.HTTPError as exc:
        raise GatewayError(f"HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise GatewayError(f"{type(exc).__name__}: {exc}") from None


@dataclass(frozen=True, slots=True)
class ZnsGateway:
    """Zalo Notification Service: one template message."""

    url: str
    access_token: str
    template_id: str
    timeout: float = 10.0

    def send(self, phone: str, data: Mapping[str, str], tracking_id: str) -> str:
        """The ZNS message id; raises ``GatewayError``."""
        _, answer = _post_json(
            self.url,
            {
                "phone": phone,
                "template_id": self.template_id,
                "template_data": dict(data),
                "tracking_id": tracking_id,
            },
            {"access_token": self.access_token},
            self.timeout,
        )
        if not isinstance(answer, dict) or answer.get("error") != 0:
            code = answer.get("error") if isinstance(answer, dict) else None
            message = answer.get("message", "") if isinstance(answer, dict) else ""
            raise GatewayError(f"ZNS error {code}: {message}"[:300])
        return str((answer.get("data") or {}).get("msg_id", ""))


@dataclass(frozen=True, slots=True)
class SmsGateway:
    """An SMS brandname gateway with eSMS.vn's JSON API."""

    url: str
    api_key: str
    secret_key: str
    brandname: str
    template: str
    unicode: bool = False
    sms_type: str = "2"
    timeout: float = 10.0

    def text(self, data: Mapping[str, str]) -> str:
        try:
            filled = self.template.format_map(dict(data))
        except (KeyError, ValueError) as exc:
            raise GatewayError(f"the SMS template does not fit: {exc}") from None
        return fit_sms(filled, unicode=self.unicode)

    def send(self, phone: str, data: Mapping[str, str], tracking_id: str) -> str:
        """The gateway's SMS id; raises ``GatewayError``."""
        _, answer = _post_json(
            self.url,
            {
                "ApiKey": self.api_key,
                "SecretKey": self.secret_key,
                "Phone": phone,
                "Content": self.text(data),
                "Brandname": self.brandname,
                "SmsType": self.sms_type,
                "IsUnicode": "1" if self.unicode else "0",
                "RequestId": tracking_id,
            },
            {},
            self.timeout,
        )
        if not isinstance(answer, dict) or str(answer.get("CodeResult")) != "100":
            code = answer.get("CodeResult") if isinstance(answer, dict) else None
            message = answer.get("ErrorMessage", "") if isinstance(answer, dict) else ""
            raise GatewayError(f"SMS error {code}: {message}"[:300])
        return str(answer.get("SMSID", ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentRecord:
    document_id: str
    phone: str
    unit: str
    recorded_by: str
    given_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRecord:
    id: int
    document_id: str
    phone: str
    status: str
    state: str
    channel: str
    tracking_id: str
    provider_id: str
    attempts: int
    last_error: str
    created_at: datetime
    sent_at: datetime | None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Citizens:
    """Consents and the citizens' messages (see the module docstring). Blocking: use a thread."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        statuses: Sequence[str],
        zns: ZnsGateway | None,
        sms: SmsGateway | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._statuses = frozenset(statuses)
        self._zns = zns
        self._sms = sms
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self._zns is not None or self._sms is not None

    def set_consent(
        self, *, document_id: str, phone: str, unit: str, recorded_by: str
    ) -> ConsentRecord:
        number = normalise_phone(phone)
        now = self._clock()
        with self._engine.begin() as conn:
            conn.execute(consents.delete().where(consents.c.document_id == document_id))
            conn.execute(
                consents.insert().values(
                    document_id=document_id,
                    phone=number,
                    unit=unit,
                    recorded_by=recorded_by,
                    given_at=now,
                )
            )
        return ConsentRecord(
            document_id=document_id, phone=number, unit=unit, recorded_by=recorded_by, given_at=now
        )

    def withdraw_consent(self, document_id: str) -> bool:
        with self._engine.begin() as conn:
            gone = conn.execute(consents.delete().where(consents.c.document_id == document_id))
        return bool(gone.rowcount)

    def consent(self, document_id: str) -> ConsentRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(consents).where(consents.c.document_id == document_id)
            ).first()
        if row is None:
            return None
        return ConsentRecord(
            document_id=row.document_id,
            phone=row.phone,
            unit=row.unit,
            recorded_by=row.recorded_by,
            given_at=_utc(row.given_at) or self._clock(),
        )

    def collect(self) -> int:
        """Queue a message for each told status of a dossier with consent since the cursor."""
        if not self.enabled:
            return 0
        now = self._clock()
        queued = 0
        with self._engine.begin() as conn:
            position = conn.execute(  # one process moves the cursor at a time
                sa.select(cursors.c.position).where(cursors.c.name == _CURSOR).with_for_update()
            ).scalar()
            if position is None:
                # The outbox began with this component: nothing before it to skip, and a
                # message needs a consent recorded beforehand anyway.
                position = 0
                conn.execute(cursors.insert().values(name=_CURSOR, position=position))
            fresh = committed_prefix(
                conn.execute(
                    sa.select(events.c.id, events.c.type, events.c.data, events.c.occurred_at)
                    .where(events.c.id > position)
                    .order_by(events.c.id)
                    .limit(1000)
                ).all(),
                position,
                now,
            )
            if not fresh:
                return 0
            for event in fresh:
                data = event.data or {}
                if event.type != "status.changed" or data.get("status") not in self._statuses:
                    continue
                consent = conn.execute(
                    sa.select(consents).where(consents.c.document_id == data.get("document_id"))
                ).first()
                if consent is None:
                    continue
                conn.execute(
                    messages.insert().values(
                        event=event.id,
                        document_id=consent.document_id,
                        phone=consent.phone,
                        status=data["status"],
                        state="pending",
                        tracking_id="kyso-" + secrets.token_hex(8),
                        next_at=now,
                        created_at=now,
                    )
                )
                queued += 1
            conn.execute(
                cursors.update().where(cursors.c.name == _CURSOR).values(position=fresh[-1].id)
            )
        return queued

    def send_due(self) -> int:
        """Send the messages that are due; return how many went out."""
        if not self.enabled:
            return 0
        now = self._clock()
        with self._engine.connect() as conn:
            due = conn.execute(
                sa.select(messages)
                .where(messages.c.state == "pending", messages.c.next_at <= now)
                .order_by(messages.c.id)
                .limit(100)
            ).all()
        sent = 0
        for row in due:
            if self._claim(row.id, now):
                sent += self._send(row)
        return sent

    def _claim(self, message_id: int, now: datetime) -> bool:
        """Take a message for this process (another process sending it too would send it
        twice): its next attempt moves ``_LEASE`` ahead, so a crash mid-send retries it then."""
        with self._engine.begin() as conn:
            return bool(
                conn.execute(
                    messages.update()
                    .where(
                        messages.c.id == message_id,
                        messages.c.state == "pending",
                        messages.c.next_at <= now,
                    )
                    .values(next_at=now + _LEASE)
                ).rowcount
            )

    def _send(self, row: Any) -> int:
        data = {
            "document_id": row.document_id,
            "status_code": row.status,
            "status_name": STATUS_NAMES.get(row.status, row.status),
        }
        errors: list[str] = []
        for channel, gateway in (("zns", self._zns), ("sms", self._sms)):
            if gateway is None:
                continue
            try:
                provider_id = gateway.send(row.phone, data, row.tracking_id)
            except GatewayError as exc:
                errors.append(f"{channel}: {exc}")
                log.warning(
                    "citizen message not taken",
                    extra={"message_id": row.id, "channel": channel, "error": str(exc)},
                )
                continue
            with self._engine.begin() as conn:
                conn.execute(
                    messages.update()
                    .where(messages.c.id == row.id)
                    .values(
                        state="sent",
                        channel=channel,
                        provider_id=provider_id[:100],
                        attempts=row.attempts + 1,
                        last_error="; ".join(errors)[:500],
                        sent_at=self._clock(),
                    )
                )
            return 1
        attempts = row.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_error": "; ".join(errors)[:500]}
        if attempts > len(RETRIES):
            values["state"] = "failed"
            log.error("citizen message failed", extra={"message_id": row.id, "errors": errors})
        else:
            values["next_at"] = self._clock() + RETRIES[attempts - 1]
        with self._engine.begin() as conn:
            conn.execute(messages.update().where(messages.c.id == row.id).values(**values))
        return 0

    def messages(
        self, *, document_id: str = "", state: str = "", limit: int = 100
    ) -> list[MessageRecord]:
        query = sa.select(messages).order_by(messages.c.id.desc()).limit(limit)
        if document_id:
            query = query.where(messages.c.document_id == document_id)
        if state:
            query = query.where(messages.c.state == state)
        with self._engine.connect() as conn:
            return [
                MessageRecord(
                    id=row.id,
                    document_id=row.document_id,
                    phone=row.phone,
                    status=row.status,
                    state=row.state,
                    channel=row.channel,
                    tracking_id=row.tracking_id,
                    provider_id=row.provider_id,
                    attempts=row.attempts,
                    last_error=row.last_error,
                    created_at=_utc(row.created_at) or self._clock(),
                    sent_at=_utc(row.sent_at),
                )
                for row in conn.execute(query)
            ]
