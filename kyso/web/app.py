"""The console's Starlette application: sign-in, CSRF, bounded uploads, and the pages.

Access: an auditor signs in at ``/dang-nhap``, an operator at ``/van-hanh/dang-nhap``, each
with a token (compared by SHA-256, in constant time, against that role's people only) and gets
a random session id in a cookie that is HttpOnly, SameSite=Strict, and Secure when the request
came over TLS; sessions live in this process's memory, know their role and end after
``session_minutes``. The auditors' pages refuse an operator's session and the operator page
(``/van-hanh``) an auditor's, with 403 and the reason in words.
Every form carries a CSRF token: the session's own once signed in, otherwise a random token
also held in a SameSite=Strict cookie (double submit); a POST without the right token, or with
an ``Origin`` of another site, is refused with 403 (the origin before the body is read; the
token, which travels in the form, before anything is done with the form). Uploads need a
``Content-Length`` no larger than ``max_upload_bytes`` (plus the form's overhead) and the part
itself is bounded again while parsing. The public page needs no sign-in, shows only the
summary, and allows ``public_per_minute`` checks per client address.

Logs carry the method, the route (never the query string), the status and the time taken:
never a document, a token, a DocumentId or a name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import audit
from audit.heads import TrustedCertificates
from kyso import operator_view
from kyso.v1 import audit_pb2
from kyso.web import summary
from kyso.web.client import KysoClient, ServiceError
from kyso.web.evidence import EntryProof, build_bundle
from kyso.web.i18n import EVENT_TEXT, MESSAGES, Language, language_of, translate
from kyso.web.report_pdf import FONT, report_pdf
from kyso.web.settings import WebSettings

__all__ = ["create_app", "serve"]

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
SESSION_COOKIE = "kyso_session"
CSRF_COOKIE = "kyso_csrf"
LANG_COOKIE = "kyso_lang"
_FORM_OVERHEAD = 64 * 1024
_RESULTS_PER_SESSION = 5
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
OPERATOR_REFRESH_SECONDS = 30
"""The operator page reloads itself this often (a meta refresh: no script)."""
_OPERATOR_TIMEOUT = 5.0  # seconds for the health call and the metrics read

Role = Literal["auditor", "operator"]


@dataclass(slots=True)
class Result:
    """One verified upload, kept for its downloads while the session lives."""

    filename: str
    pdf: bytes
    report_json: str
    report_text: str
    document_sha256: str
    language: Language
    sealed: bytes | None = None


@dataclass(frozen=True, slots=True)
class Upload:
    """The one file of a posted form, already bounded and read."""

    filename: str
    data: bytes


@dataclass(slots=True)
class Session:
    name: str
    role: Role
    csrf: str
    expires: float
    results: OrderedDict[str, Result] = field(default_factory=OrderedDict)


class Sessions:
    """Signed-in people, by random session id (in memory: a restart signs everyone out)."""

    def __init__(self, minutes: int) -> None:
        self._lifetime = minutes * 60.0
        self._sessions: dict[str, Session] = {}

    def create(self, name: str, role: Role) -> tuple[str, Session]:
        self._expire()
        sid = secrets.token_urlsafe(32)
        session = Session(
            name=name,
            role=role,
            csrf=secrets.token_urlsafe(32),
            expires=time.monotonic() + self._lifetime,
        )
        self._sessions[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._sessions.get(sid)
        if session is None or session.expires < time.monotonic():
            self._sessions.pop(sid, None)
            return None
        return session

    def end(self, sid: str | None) -> None:
        if sid:
            self._sessions.pop(sid, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [s for s, v in self._sessions.items() if v.expires < now]:
            del self._sessions[sid]


class RateLimit:
    """At most ``per_minute`` events per key in any 60-second window."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        window = self._seen.setdefault(key, deque())
        while window and window[0] < now - 60:
            window.popleft()
        if len(window) >= self._per_minute:
            return False
        window.append(now)
        if len(self._seen) > 10_000:  # forget idle addresses; the bound keeps memory flat
            for idle in [k for k, v in self._seen.items() if not v]:
                del self._seen[idle]
        return True


class Console:
    """The pages, over one ``KysoClient``."""

    def __init__(self, settings: WebSettings, client: KysoClient) -> None:
        self.settings = settings
        self.client = client
        self.sessions = Sessions(settings.session_minutes)
        self.public_limit = RateLimit(settings.public_per_minute)
        self.templates = Environment(
            loader=FileSystemLoader(_HERE / "templates"),
            autoescape=select_autoescape(["html"]),
        )

    # -- request helpers ---------------------------------------------------------------------

    def lang(self, request: Request) -> Language:
        return language_of(request.query_params.get("lang") or request.cookies.get(LANG_COOKIE))

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(SESSION_COOKIE))

    def render(self, request: Request, name: str, *, status: int = 200, **context: Any) -> Response:
        lang = self.lang(request)
        session = self.session(request)
        csrf = session.csrf if session else request.cookies.get(CSRF_COOKIE) or ""
        fresh_csrf = not csrf
        if fresh_csrf:
            csrf = secrets.token_urlsafe(32)

        def t(key: str, **values: object) -> str:
            return translate(key, lang, **values)

        body = self.templates.get_template(name).render(
            t=t,
            lang=lang,
            other_lang="en" if lang == "vi" else "vi",
            path=request.url.path,
            session=session,
            csrf=csrf,
            public_page=self.settings.public_page,
            event_text=lambda kind: EVENT_TEXT.get(kind, (kind, kind))[0 if lang == "vi" else 1],
            **context,
        )
        response = Response(body, status_code=status, media_type="text/html; charset=utf-8")
        if fresh_csrf:
            self._cookie(request, response, CSRF_COOKIE, csrf)
        return response

    @staticmethod
    def _cookie(request: Request, response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    def check_csrf(self, request: Request, submitted: str) -> None:
        """Refuse (403) a form that does not carry this browser's CSRF token."""
        session = self.session(request)
        expected = session.csrf if session else request.cookies.get(CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(submitted.encode(), expected.encode()):
            raise HTTPException(403, translate("csrf_refused", self.lang(request)))

    def check_post(self, request: Request) -> None:
        """Before any body is read: same-site origin and a bounded, declared length."""
        origin = request.headers.get("origin")
        if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise HTTPException(403, translate("csrf_refused", self.lang(request)))
        length = request.headers.get("content-length")
        limit = self.settings.max_upload_bytes + _FORM_OVERHEAD
        if length is None or not length.isdigit():
            raise HTTPException(411, "Content-Length required")
        if int(length) > limit:
            raise HTTPException(
                413,
                translate(
                    "too_large",
                    self.lang(request),
                    limit=self.settings.max_upload_bytes // (1024 * 1024),
                ),
            )

    async def form(self, request: Request) -> tuple[dict[str, str], Upload | None]:
        """The posted form (CSRF checked); the one file part, bounded, if any."""
        self.check_post(request)
        async with request.form(
            max_files=1, max_fields=10, max_part_size=self.settings.max_upload_bytes
        ) as form:
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            self.check_csrf(request, fields.get("csrf", ""))
            upload = form.get("file")
            if isinstance(upload, UploadFile) and upload.filename:
                data = await upload.read(self.settings.max_upload_bytes + 1)
                if len(data) > self.settings.max_upload_bytes:
                    raise HTTPException(413, "too large")
                return fields, Upload(filename=upload.filename, data=data)
            return fields, None

    def require(self, request: Request, role: Role = "auditor") -> Session:
        """The session, which must have ``role``: none → to the role's sign-in page; another
        role → 403 saying whose page this is."""
        session = self.session(request)
        if session is None:
            raise _SignIn(request.url.path, _SIGN_IN[role])
        if session.role != role:
            raise HTTPException(403, translate(f"{role}s_only", self.lang(request)))
        return session

    # -- sign-in -----------------------------------------------------------------------------

    async def sign_in_page(self, request: Request) -> Response:
        return self._sign_in_form(request, "auditor")

    async def operator_sign_in_page(self, request: Request) -> Response:
        return self._sign_in_form(request, "operator")

    def _sign_in_form(self, request: Request, role: Role) -> Response:
        return self.render(
            request,
            "signin.html",
            role=role,
            action=_SIGN_IN[role],
            next=_safe_next(request.query_params.get("next"), _HOME[role]),
            message="sign_in_required" if request.query_params.get("next") else "",
        )

    async def sign_in(self, request: Request) -> Response:
        return await self._sign_in(request, "auditor")

    async def operator_sign_in(self, request: Request) -> Response:
        return await self._sign_in(request, "operator")

    async def _sign_in(self, request: Request, role: Role) -> Response:
        """A token is looked for among ``role``'s people only: an auditor's token does not
        open an operator's session, nor the reverse."""
        fields, _ = await self.form(request)
        digest = hashlib.sha256(fields.get("token", "").strip().encode("utf-8")).digest()
        people = self.settings.operators if role == "operator" else self.settings.auditors
        name = None
        for candidate in people:
            if hmac.compare_digest(candidate.token_sha256, digest):
                name = candidate.name
        if name is None:
            log.info("sign-in refused", extra={"role": role})
            return self.render(
                request,
                "signin.html",
                status=401,
                role=role,
                action=_SIGN_IN[role],
                next=_HOME[role],
                message="sign_in_failed",
            )
        self.sessions.end(request.cookies.get(SESSION_COOKIE))
        sid, _ = self.sessions.create(name, role)
        log.info("signed in", extra={"role": role, "person": name})
        response = RedirectResponse(_safe_next(fields.get("next"), _HOME[role]), status_code=303)
        self._cookie(request, response, SESSION_COOKIE, sid)
        return response

    async def sign_out(self, request: Request) -> Response:
        await self.form(request)
        self.sessions.end(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/dang-nhap", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def set_language(self, request: Request) -> Response:
        lang = language_of(request.path_params["code"])
        response = RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
        self._cookie(request, response, LANG_COOKIE, lang)
        return response

    # -- verify ------------------------------------------------------------------------------

    async def verify_page(self, request: Request) -> Response:
        self.require(request)
        return self.render(request, "verify.html", error="")

    async def verify(self, request: Request) -> Response:
        session = self.require(request)
        _, upload = await self.form(request)
        lang = self.lang(request)
        if upload is None:
            return self.render(request, "verify.html", status=400, error=translate("no_file", lang))
        data = upload.data
        try:
            report = await self.client.verify_pdf(data, language=lang, filename="document.pdf")
        except ServiceError as exc:
            return self.render(request, "verify.html", status=502, error=_service(exc, lang))
        rid = secrets.token_urlsafe(12)
        session.results[rid] = Result(
            filename=_safe_filename(upload.filename or "document.pdf"),
            pdf=data,
            report_json=report.report_json,
            report_text=report.report_text,
            document_sha256=report.document_sha256,
            language=lang,
        )
        while len(session.results) > _RESULTS_PER_SESSION:
            session.results.popitem(last=False)
        return RedirectResponse(f"/ket-qua/{rid}", status_code=303)

    def _result(self, request: Request) -> tuple[str, Result]:
        session = self.require(request)
        rid = request.path_params["rid"]
        result = session.results.get(rid)
        if result is None:
            raise HTTPException(404, "no such result in this session")
        return rid, result

    async def result_page(self, request: Request) -> Response:
        rid, result = self._result(request)
        return self.render(request, "result.html", rid=rid, **self._report_context(request, result))

    def _report_context(self, request: Request, result: Result) -> dict[str, Any]:
        lang = self.lang(request)
        report = json.loads(result.report_json)
        verdict, reason = summary.overall(report, lang)
        return {
            "result": result,
            "verdict": verdict,
            "reason": reason,
            "signatures": summary.signature_views(report, lang),
            "findings": summary.findings(report, lang),
            "timeline": summary.timeline(report, lang),
            "diagnostic": json.dumps(report, ensure_ascii=False, indent=2),
            "can_seal": bool(self.settings.report_key),
        }

    async def report_json(self, request: Request) -> Response:
        _, result = self._result(request)
        return Response(
            result.report_json,
            media_type="application/json; charset=utf-8",
            headers=_attachment(f"{result.document_sha256[:16]}-report.json"),
        )

    async def _sealed(self, result: Result) -> bytes:
        if result.sealed is None:
            pdf = report_pdf(
                report_text=result.report_text,
                report_json=result.report_json,
                document_sha256=result.document_sha256,
                title=translate("result_title", result.language).upper(),
            )
            result.sealed = await self.client.seal_pdf(
                pdf, key_alias=self.settings.report_key, filename="report.pdf"
            )
        return result.sealed

    async def report_pdf(self, request: Request) -> Response:
        _, result = self._result(request)
        if not self.settings.report_key:
            raise HTTPException(404, "no report key is configured")
        try:
            sealed = await self._sealed(result)
        except ServiceError as exc:
            raise HTTPException(502, _service(exc, self.lang(request))) from exc
        return Response(
            sealed,
            media_type="application/pdf",
            headers=_attachment(f"{result.document_sha256[:16]}-report.pdf"),
        )

    async def bundle(self, request: Request) -> Response:
        _, result = self._result(request)
        try:
            history = await self.client.document_history(sha256=result.document_sha256)
            sealed = await self._sealed(result) if self.settings.report_key else None
        except ServiceError as exc:
            raise HTTPException(502, _service(exc, self.lang(request))) from exc
        if not history.HasField("tree_head"):
            raise HTTPException(409, translate("no_head", self.lang(request)))
        head = head_from_proto(history.tree_head)
        proven = [
            EntryProof(entry=bytes(item.event.entry), proof=proof_from_proto(item.inclusion_proof))
            for item in history.events
            if item.HasField("inclusion_proof")
        ]
        if not proven:
            # An evidence bundle without evidence would not verify: say why instead.
            raise HTTPException(409, translate("bundle_no_events", self.lang(request)))
        data = build_bundle(
            pdf=result.pdf,
            report_json=result.report_json,
            sealed_report=sealed,
            head=head,
            entries=proven,
        )
        return Response(
            data,
            media_type="application/zip",
            headers=_attachment(f"{result.document_sha256[:16]}-evidence.zip"),
        )

    # -- history -----------------------------------------------------------------------------

    async def history_page(self, request: Request) -> Response:
        self.require(request)
        lang = self.lang(request)
        sha256 = request.query_params.get("sha256", "").strip().lower()
        document_id = request.query_params.get("document_id", "").strip()
        context: dict[str, Any] = {"sha256": sha256, "document_id": document_id, "error": ""}
        if sha256 or document_id:
            try:
                history = await self.client.document_history(sha256=sha256, document_id=document_id)
            except ServiceError as exc:
                context["error"] = _service(exc, lang)
            else:
                context.update(_history_context(history, lang))
        return self.render(request, "history.html", **context)

    async def history_file(self, request: Request) -> Response:
        self.require(request)
        _, upload = await self.form(request)
        if upload is None:
            return RedirectResponse("/lich-su", status_code=303)
        digest = hashlib.sha256(upload.data).hexdigest()
        return RedirectResponse(f"/lich-su?sha256={digest}", status_code=303)

    # -- ledger ------------------------------------------------------------------------------

    async def ledger_page(self, request: Request) -> Response:
        self.require(request)
        return await self._ledger(request, pasted="", outcome="")

    async def _ledger(self, request: Request, *, pasted: str, outcome: str) -> Response:
        lang = self.lang(request)
        context: dict[str, Any] = {"pasted": pasted, "outcome": outcome, "error": ""}
        try:
            head = await self.client.tree_head()
        except ServiceError as exc:
            context["error"] = _service(exc, lang) if exc.code != "NOT_FOUND" else ""
            context["head"] = None
        else:
            context["head"] = _head_view(head_from_proto(head), lang)
        return self.render(request, "ledger.html", **context)

    async def consistency(self, request: Request) -> Response:
        self.require(request)
        fields, _ = await self.form(request)
        lang = self.lang(request)
        pasted = fields.get("old_head", "").strip()
        old = _parse_head(pasted)
        if old is None:
            return await self._ledger(
                request, pasted=pasted, outcome="bad:" + translate("bad_head", lang)
            )
        try:
            head = head_from_proto(await self.client.tree_head())
            problem = await self._inconsistency(old, head, lang)
        except ServiceError as exc:
            problem = _service(exc, lang)
        if problem:
            outcome = "bad:" + translate("inconsistent", lang, why=problem)
        else:
            outcome = "ok:" + translate("consistent", lang)
        return await self._ledger(request, pasted=pasted, outcome=outcome)

    async def _inconsistency(
        self, old: tuple[int, bytes], head: audit.SignedTreeHead, lang: Language
    ) -> str:
        """Why today's head does not extend ``old`` (in words), or "" when it does."""
        old_size, old_root = old
        if old_size > head.tree_size:
            return translate("inc_larger", lang, old=old_size, new=head.tree_size)
        if old_size == head.tree_size:
            return "" if old_root == head.root_hash else translate("inc_same_size", lang)
        if old_size == 0:
            return "" if old_root == audit.merkle.EMPTY_ROOT else translate("inc_empty", lang)
        proof = await self.client.consistency_proof(old_size, head.tree_size)
        try:
            audit.ConsistencyProof(
                old_size=old_size, new_size=head.tree_size, path=tuple(proof.proof)
            ).verify(old_root=old_root, new_root=head.root_hash)
        except audit.ProofInvalid:
            return translate("inc_proof", lang, old=old_size, new=head.tree_size)
        return ""

    # -- public ------------------------------------------------------------------------------

    async def public_page(self, request: Request) -> Response:
        if not self.settings.public_page:
            raise HTTPException(404)
        return self.render(request, "public.html", error="", checked=None)

    async def public_check(self, request: Request) -> Response:
        if not self.settings.public_page:
            raise HTTPException(404)
        lang = self.lang(request)
        address = request.client.host if request.client else "?"
        if not self.public_limit.allow(address):
            return self.render(
                request,
                "public.html",
                status=429,
                error=translate("rate_limited", lang),
                checked=None,
            )
        _, upload = await self.form(request)
        if upload is None:
            return self.render(
                request, "public.html", status=400, error=translate("no_file", lang), checked=None
            )
        try:
            report = await self.client.verify_pdf(upload.data, language=lang)
        except ServiceError as exc:
            return self.render(
                request, "public.html", status=502, error=_service(exc, lang), checked=None
            )
        parsed = json.loads(report.report_json)
        verdict, reason = summary.overall(parsed, lang)
        checked = {
            "verdict": verdict,
            "reason": reason,
            "signatures": summary.signature_views(parsed, lang),
        }
        return self.render(request, "public.html", error="", checked=checked)

    async def font(self, request: Request) -> Response:
        return FileResponse(FONT, media_type="font/ttf")

    async def home(self, request: Request) -> Response:
        session = self.session(request)
        return RedirectResponse(_HOME[session.role if session else "auditor"], status_code=303)

    # -- operator ----------------------------------------------------------------------------

    async def operator_page(self, request: Request) -> Response:
        """Health and metrics read now, built into the view ``kyso admin status`` prints."""
        self.require(request, "operator")
        lang = self.lang(request)
        health, down = await self.client.health(timeout=_OPERATOR_TIMEOUT)
        samples = None
        metrics_error = ""
        if self.settings.metrics_address:
            try:
                text = await asyncio.to_thread(
                    operator_view.scrape, self.settings.metrics_address, _OPERATOR_TIMEOUT
                )
                samples = operator_view.parse_metrics(text)
            except operator_view.MetricsUnavailable as exc:
                metrics_error = translate("metrics_error", lang, why=str(exc))
        view = operator_view.build(
            server=self.settings.server, health=health, down=down, samples=samples
        )
        return self.render(
            request,
            "operator.html",
            view=view,
            metrics_configured=bool(self.settings.metrics_address),
            metrics_error=metrics_error,
            refresh_seconds=OPERATOR_REFRESH_SECONDS,
            now=summary.format_time(datetime.now(UTC).isoformat(), lang),
            when=lambda moment: summary.format_time(moment.isoformat(), lang),
            age=lambda seconds: _age(seconds, lang),
            certificate_name=lambda name: _certificate_name(name, lang),
            backlog_name=lambda name: _backlog_name(name, lang),
        )


_SIGN_IN: dict[Role, str] = {"auditor": "/dang-nhap", "operator": "/van-hanh/dang-nhap"}
_HOME: dict[Role, str] = {"auditor": "/kiem-tra", "operator": "/van-hanh"}


class _SignIn(Exception):
    def __init__(self, path: str, page: str) -> None:
        self.path = path
        self.page = page


def _age(seconds: int | None, lang: Language) -> str:
    if seconds is None:
        return translate("none", lang)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return translate(f"age_{unit}", lang, n=seconds // size)
    return translate("age_seconds", lang, n=seconds)


def _certificate_name(name: str, lang: Language) -> str:
    """``keys.ALIAS``, ``tls.certificate``, ``tsa URL`` in words."""
    if name == "tls.certificate":
        return translate("cert_tls", lang)
    if name.startswith("keys."):
        return translate("cert_key", lang, alias=name.removeprefix("keys."))
    if name.startswith("tsa "):
        return translate("cert_tsa", lang, url=name.removeprefix("tsa "))
    return name


def _backlog_name(name: str, lang: Language) -> str:
    key = f"backlog_{name}"
    return translate(key, lang) if key in MESSAGES else name


def _service(exc: ServiceError, lang: Language) -> str:
    return f"{translate('service_error', lang)} {exc.message} ({exc.code})"


def _safe_next(value: str | None, default: str = "/kiem-tra") -> str:
    """Only a local path: never an open redirect."""
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return default


def _safe_filename(name: str) -> str:
    return re.sub(r"[^\w.\- ]", "_", Path(name).name)[:100] or "document.pdf"


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def head_from_proto(head: audit_pb2.SignedTreeHead) -> audit.SignedTreeHead:
    return audit.SignedTreeHead(
        tree_size=head.tree_size,
        root_hash=bytes(head.root_hash),
        time=head.time.ToDatetime(tzinfo=UTC),
        algorithm=audit.SignatureAlgorithm(head.signature_algorithm),
        signature=bytes(head.signature),
        certificate=bytes(head.certificate),
    )


def proof_from_proto(proof: audit_pb2.InclusionProof) -> audit.InclusionProof:
    return audit.InclusionProof(
        index=proof.index,
        tree_size=proof.tree_size,
        leaf_hash=bytes(proof.leaf_hash),
        path=tuple(bytes(node) for node in proof.audit_path),
    )


def _head_view(head: audit.SignedTreeHead, lang: Language) -> dict[str, Any]:
    """A head for display, with its signature checked here against its certificate."""
    try:
        audit.verify_head(head, trusted=TrustedCertificates([head.certificate]))
        signature_ok = True
    except audit.AuditError:
        signature_ok = False
    try:
        subject = x509.load_der_x509_certificate(head.certificate).subject.rfc4514_string()
    except ValueError:
        subject = "?"
    return {
        "tree_size": head.tree_size,
        "root_hash": head.root_hash.hex(),
        "time": summary.format_time(head.time.isoformat(), lang),
        "signer": subject,
        "fingerprint": head.certificate_sha256.hex(),
        "signature_ok": signature_ok,
        "json": json.dumps({"tree_size": head.tree_size, "root_hash": head.root_hash.hex()}),
    }


def _parse_head(text: str) -> tuple[int, bytes] | None:
    try:
        raw = json.loads(text)
        if isinstance(raw, dict):
            size, root = int(raw["tree_size"]), bytes.fromhex(str(raw["root_hash"]))
        else:
            return None
    except (ValueError, KeyError, TypeError):
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit():
            return None
        try:
            size, root = int(parts[0]), bytes.fromhex(parts[1])
        except ValueError:
            return None
    if len(root) != 32 or size < 0:
        return None
    return size, root


def _history_context(history: audit_pb2.DocumentHistory, lang: Language) -> dict[str, Any]:
    """The events with each proof checked here (not trusting the server), and the route."""
    head = head_from_proto(history.tree_head) if history.HasField("tree_head") else None
    rows = []
    route = []
    for item in history.events:
        event = item.event
        state = "pending"
        if item.HasField("inclusion_proof") and head is not None:
            proof = proof_from_proto(item.inclusion_proof)
            try:
                if proof.leaf_hash != audit.merkle.leaf_hash(bytes(event.entry)):
                    raise audit.ProofInvalid("leaf hash")
                if proof.tree_size != head.tree_size or proof.index != event.index:
                    raise audit.ProofInvalid("another tree")
                proof.verify(root_hash=head.root_hash)
                state = "ok"
            except audit.ProofInvalid:
                state = "bad"
        when = summary.format_time(event.time.ToDatetime(tzinfo=UTC).isoformat(), lang)
        details = dict(event.details)
        rows.append(
            {
                "index": event.index,
                "time": when,
                "type": event.event_type,
                "actor": event.actor,
                "unit": event.unit_code,
                "details": ", ".join(f"{k}={v}" for k, v in sorted(details.items()) if v),
                "proof": state,
            }
        )
        if event.event_type.startswith("package."):
            route.append(
                {
                    "time": when,
                    "type": event.event_type,
                    "unit": event.unit_code,
                    "next_hub": details.get("next_hub", ""),
                    "status": details.get("status", ""),
                }
            )
    return {
        "events": rows,
        "route": route,
        "truncated": history.truncated,
        "head": _head_view(head, lang) if head is not None else None,
        "searched": True,
    }


_Handler = Callable[[Request], Awaitable[Response]]


def create_app(settings: WebSettings, client: KysoClient | None = None) -> Starlette:
    """The application; ``client`` defaults to one built from ``settings``."""
    kyso = client or KysoClient(
        server=settings.server, token=settings.api_token, ca_pem=settings.ca_pem
    )
    console = Console(settings, kyso)

    async def not_signed_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _SignIn)
        if request.method != "GET":
            return Response(translate("sign_in_required", console.lang(request)), status_code=403)
        return RedirectResponse(f"{exc.page}?next={exc.path}", status_code=303)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return console.render(
            request, "error.html", status=exc.status_code, message=exc.detail or ""
        )

    routes = [
        Route("/", console.home),
        Route("/dang-nhap", console.sign_in_page, methods=["GET"]),
        Route("/dang-nhap", console.sign_in, methods=["POST"]),
        Route("/dang-xuat", console.sign_out, methods=["POST"]),
        Route("/ngon-ngu/{code}", console.set_language),
        Route("/kiem-tra", console.verify_page, methods=["GET"]),
        Route("/kiem-tra", console.verify, methods=["POST"]),
        Route("/ket-qua/{rid}", console.result_page),
        Route("/ket-qua/{rid}/bao-cao.json", console.report_json),
        Route("/ket-qua/{rid}/bao-cao.pdf", console.report_pdf),
        Route("/ket-qua/{rid}/goi-bang-chung.zip", console.bundle),
        Route("/lich-su", console.history_page, methods=["GET"]),
        Route("/lich-su", console.history_file, methods=["POST"]),
        Route("/so-cai", console.ledger_page, methods=["GET"]),
        Route("/so-cai", console.consistency, methods=["POST"]),
        Route("/van-hanh", console.operator_page, methods=["GET"]),
        Route("/van-hanh/dang-nhap", console.operator_sign_in_page, methods=["GET"]),
        Route("/van-hanh/dang-nhap", console.operator_sign_in, methods=["POST"]),
        Route("/cong-khai", console.public_page, methods=["GET"]),
        Route("/cong-khai", console.public_check, methods=["POST"]),
        Route("/static/fonts/NotoSans-Regular.ttf", console.font),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        kyso.open()
        try:
            yield
        finally:
            await kyso.close()

    app = Starlette(
        routes=routes,
        exception_handlers={_SignIn: not_signed_in, HTTPException: http_error},
        lifespan=lifespan,
    )
    app.add_middleware(_Observe)
    return app


class _Observe:
    """Security headers on every response, and one log line per request (route only)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
                    (b"x-content-type-options", b"nosniff"),
                    # Not no-referrer: with it Chrome sends "Origin: null" on form posts.
                    (b"referrer-policy", b"same-origin"),
                    (b"cache-control", b"no-store"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = re.sub(r"/ket-qua/[^/]+", "/ket-qua/…", scope.get("path", ""))
            log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "route": route,
                    "status": status,
                    "ms": round((time.monotonic() - started) * 1000),
                },
            )


def serve(settings: WebSettings, *, listen: str | None = None) -> int:
    """Run the console with uvicorn until interrupted (the CLI's ``kyso web``)."""
    import uvicorn

    from kyso import logs

    logs.configure(level="INFO")
    host, _, port = (listen or settings.listen).rpartition(":")
    print(f"kyso web: the console at http://{host}:{port}/", flush=True)
    uvicorn.run(
        create_app(settings),
        host=host or "127.0.0.1",
        port=int(port),
        access_log=False,  # our own line per request, without query strings
        log_config=None,
        server_header=False,
    )
    return 0
