"""HTTP/JSON of the CSC API (v2, with the v1.0.4 spellings accepted) over :class:`CscFacade`.

Each route converts JSON to one facade call and its result back, nothing more. Paths:
``GET``/``POST /oauth2/authorize`` (the official's login and consent page: authorization code),
``POST /oauth2/token`` (client credentials, or an authorization code), ``POST /csc/v2/info``
and, with a bearer access token, ``credentials/list``, ``credentials/info``,
``credentials/authorize`` and ``signatures/signHash`` under ``/csc/v2/`` (and ``/csc/v1/`` for
v1.0.4 clients).

Errors are the specification's JSON (``{"error": …, "error_description": …}``): 400
``invalid_request``, 401 ``invalid_client``/``invalid_token``, 429 and 503 with Retry-After;
anything unexpected is a 500 that carries a request id and none of the exception's text.
Request bodies are limited to :data:`MAX_BODY_BYTES`.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from kyso.authz import Identity
from kyso.errors import (
    AuthenticationError,
    FailedPrecondition,
    KysoError,
    NotFound,
    Overloaded,
    PermissionDenied,
    RequestInvalid,
    Unavailable,
)
from kyso.operations.csc import AuthorizationRequest, Credential, CscFacade

__all__ = ["MAX_BODY_BYTES", "SPECS", "build_app"]

log = logging.getLogger(__name__)

SPECS = "2.0.0.2"
MAX_BODY_BYTES = 1024 * 1024
"""The largest request body read (a batch of 100 SHA-512 hashes is under 10 KB)."""

_Handler = Callable[[Request], Awaitable[Response]]


def build_app(facade: CscFacade, *, name: str = "kyso") -> Starlette:
    """The Starlette application of the facade."""
    routes = [
        Route("/oauth2/token", _guard(_token(facade)), methods=["POST"]),
        Route("/oauth2/authorize", _authorize_page(facade), methods=["GET", "POST"]),
    ]
    for version in ("v1", "v2"):
        base = f"/csc/{version}"
        routes += [
            Route(f"{base}/info", _guard(_info(name, facade.mutual_tls)), methods=["POST", "GET"]),
            Route(f"{base}/credentials/list", _guard(_list(facade)), methods=["POST"]),
            Route(f"{base}/credentials/info", _guard(_cred_info(facade)), methods=["POST"]),
            Route(f"{base}/credentials/authorize", _guard(_authorize(facade)), methods=["POST"]),
            Route(f"{base}/signatures/signHash", _guard(_sign_hash(facade)), methods=["POST"]),
        ]
    return Starlette(routes=routes)


# -- routes ---------------------------------------------------------------------------------


def _info(name: str, mutual_tls: bool) -> _Handler:
    async def info(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "specs": SPECS,
                "name": name,
                "logo": "",
                "region": "VN",
                "lang": "vi-VN",
                "description": "kyso: chữ ký số với khóa trong HSM của đơn vị (CSC API)",
                "authType": ["oauth2client", "oauth2code", *(["tls"] if mutual_tls else [])],
                "oauth2": base,
                "oauth2Issuer": base,
                "methods": [
                    "oauth2/authorize",
                    "oauth2/token",
                    "credentials/list",
                    "credentials/info",
                    "credentials/authorize",
                    "signatures/signHash",
                ],
            }
        )

    return info


def _token(facade: CscFacade) -> _Handler:
    async def token(request: Request) -> Response:
        form = await _form(request)
        grant_type = form.get("grant_type")
        if grant_type not in ("client_credentials", "authorization_code"):
            return _error(
                400,
                "unsupported_grant_type",
                "grant_type must be client_credentials or authorization_code",
            )
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = _basic(request)
        if basic is not None:
            client_id, secret = basic
        if not client_id or not secret:
            return _error(401, "invalid_client", "give client_id and client_secret")
        try:
            if grant_type == "client_credentials":
                grant = facade.issue_token(client_id, secret)
            else:
                grant = facade.exchange_code(
                    client_id,
                    secret,
                    code=form.get("code", ""),
                    redirect_uri=form.get("redirect_uri", ""),
                    code_verifier=form.get("code_verifier", ""),
                )
        except AuthenticationError as exc:
            return _error(401, "invalid_client", str(exc))
        except FailedPrecondition as exc:
            return _error(400, "invalid_grant", str(exc))
        return JSONResponse(
            {"access_token": grant.value, "token_type": "Bearer", "expires_in": grant.expires_in},
            headers={"Cache-Control": "no-store"},
        )

    return token


_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
)


def _authorize_page(facade: CscFacade) -> _Handler:
    """The official's login and consent (Vietnamese first, English beside it). A request whose
    client or redirect_uri does not check out is answered here, never redirected."""

    async def authorize_page(request: Request) -> Response:
        try:
            form = await _form(request) if request.method == "POST" else {}
            source = form if request.method == "POST" else dict(request.query_params)
            params = {k: str(source.get(k, ""))[:2000] for k in _PARAMS}
            checked = facade.authorization_request(**params)
        except RequestInvalid as exc:
            return _page(
                f"<p>Yêu cầu không hợp lệ / Invalid request: {html.escape(str(exc))}</p>", 400
            )
        if request.method == "GET":
            return _consent(checked, params, "")
        if form.get("decision") != "approve":
            return _redirect(checked, error="access_denied")
        try:
            code = facade.issue_code(checked, form.get("account", ""), form.get("secret", ""))
        except AuthenticationError:
            return _consent(
                checked, params, "Tài khoản hoặc mã truy cập sai / Wrong account or token.", 401
            )
        except Overloaded as exc:
            return _page(f"<p>{html.escape(str(exc))}</p>", 429)
        return _redirect(checked, code=code)

    return authorize_page


def _redirect(checked: AuthorizationRequest, **values: str) -> Response:
    from urllib.parse import urlencode

    query = urlencode({**values, **({"state": checked.state} if checked.state else {})})
    separator = "&" if "?" in checked.redirect_uri else "?"
    return RedirectResponse(
        f"{checked.redirect_uri}{separator}{query}",
        status_code=302,
        headers={"Cache-Control": "no-store"},
    )


def _consent(
    checked: AuthorizationRequest, params: dict[str, str], message: str, status: int = 200
) -> Response:
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in params.items()
    )
    notice = f'<p role="alert">{html.escape(message)}</p>' if message else ""
    body = f"""<h1>Cấp quyền ký số / Grant signing access</h1>
<p>Ứng dụng <b>{html.escape(checked.client_id)}</b> xin dùng khóa ký của bạn trên máy chủ này.<br>
The application <b>{html.escape(checked.client_id)}</b> asks to use your signing keys here.</p>
{notice}<form method="post" action="/oauth2/authorize">{hidden}
<label>Tài khoản / Account <input name="account" autocomplete="username"></label><br>
<label>Mã truy cập / Access token <input name="secret" type="password"
 autocomplete="current-password"></label><br>
<button name="decision" value="approve">Đồng ý / Approve</button>
<button name="decision" value="deny">Từ chối / Deny</button></form>"""
    return _page(body, status)


def _page(body: str, status: int) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="vi"><meta charset="utf-8"><title>kyso</title>{body}</html>',
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; form-action 'self'",
            "X-Frame-Options": "DENY",
        },
    )


def _list(facade: CscFacade) -> _Handler:
    async def credentials_list(request: Request) -> Response:
        actor = _caller(facade, request)
        body = await _json(request)
        ids = facade.credential_ids(actor)
        reply: dict[str, Any] = {"credentialIDs": ids}
        if body.get("credentialInfo") is True:
            reply["credentialInfos"] = [
                {"credentialID": i, **_credential_json(await facade.credential(actor, i), "single")}
                for i in ids
            ]
        return JSONResponse(reply)

    return credentials_list


def _cred_info(facade: CscFacade) -> _Handler:
    async def credentials_info(request: Request) -> Response:
        actor = _caller(facade, request)
        body = await _json(request)
        certificates = _text(body, "certificates", required=False) or "single"
        if certificates not in ("none", "single", "chain"):
            raise RequestInvalid("certificates must be none, single or chain", field="certificates")
        credential = await facade.credential(actor, _text(body, "credentialID"))
        return JSONResponse(_credential_json(credential, certificates))

    return credentials_info


def _authorize(facade: CscFacade) -> _Handler:
    async def authorize(request: Request) -> Response:
        actor = _caller(facade, request)
        body = await _json(request)
        count = body.get("numSignatures")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise RequestInvalid("numSignatures must be a positive integer", field="numSignatures")
        grant = await facade.authorize(
            actor,
            _text(body, "credentialID"),
            count=count,
            hashes=_hashes(body, required=False),
            hash_algo=_text(body, "hashAlgorithmOID", required=False)
            or _text(body, "hashAlgo", required=False),
        )
        return JSONResponse({"SAD": grant.value, "expiresIn": grant.expires_in})

    return authorize


def _sign_hash(facade: CscFacade) -> _Handler:
    async def sign_hash(request: Request) -> Response:
        actor = _caller(facade, request)
        body = await _json(request)
        signatures = await facade.sign_hashes(
            actor,
            _text(body, "credentialID"),
            sad=_text(body, "SAD"),
            hashes=_hashes(body, required=True),
            sign_algo=_text(body, "signAlgo"),
            hash_algo=_text(body, "hashAlgorithmOID", required=False)
            or _text(body, "hashAlgo", required=False),
        )
        return JSONResponse({"signatures": [base64.b64encode(s).decode() for s in signatures]})

    return sign_hash


# -- conversion -----------------------------------------------------------------------------


def _credential_json(credential: Credential, certificates: str) -> dict[str, Any]:
    cert = credential.certificate
    chain = [cert, *credential.chain] if certificates == "chain" else [cert]
    key: dict[str, Any] = {
        "status": "enabled",
        "algo": list(credential.algorithms),
        "len": credential.key.size,
    }
    if credential.key.curve:
        key["curve"] = credential.key.curve
    cert_json: dict[str, Any] = {
        "status": "valid",
        "issuerDN": cert.issuer.human_friendly,
        "subjectDN": cert.subject.human_friendly,
        "serialNumber": format(cert.serial_number, "x"),
        "validFrom": cert["tbs_certificate"]["validity"]["not_before"].native.strftime(
            "%Y%m%d%H%M%SZ"
        ),
        "validTo": cert["tbs_certificate"]["validity"]["not_after"].native.strftime(
            "%Y%m%d%H%M%SZ"
        ),
    }
    if certificates != "none":
        cert_json["certificates"] = [base64.b64encode(c.dump()).decode() for c in chain]
    return {
        "description": credential.description,
        "key": key,
        "cert": cert_json,
        "authMode": "explicit",
        "SCAL": "2",
        "multisign": credential.multisign,
        "lang": "vi-VN",
    }


def _caller(facade: CscFacade, request: Request) -> Identity:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return facade.caller(value.strip())
    tls = request.scope.get("extensions", {}).get("tls", {})
    certificate = tls.get("client_cert_der") if isinstance(tls, dict) else None
    if isinstance(certificate, bytes) and certificate:
        return facade.caller_by_certificate(certificate)
    raise AuthenticationError(
        "send the access token as 'Authorization: Bearer …' (or a client certificate)"
    )


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise RequestInvalid(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise RequestInvalid(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    return bytes(data)


async def _json(request: Request) -> dict[str, Any]:
    data = await _body(request)
    if not data.strip():
        return {}
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise RequestInvalid("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise RequestInvalid("the request body must be a JSON object")
    return body


async def _form(request: Request) -> dict[str, str]:
    from urllib.parse import parse_qs

    data = await _body(request)
    try:
        parsed = parse_qs(data.decode("ascii"), strict_parsing=False)
    except UnicodeDecodeError:
        raise RequestInvalid("the token request is not a URL-encoded form") from None
    return {k: v[0] for k, v in parsed.items() if v}


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    from urllib.parse import unquote

    return unquote(user), unquote(password)


def _text(body: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise RequestInvalid(f"{name} is required", field=name)
        return ""
    if not isinstance(value, str) or len(value) > 4096:
        raise RequestInvalid(f"{name} must be a string (at most 4096 characters)", field=name)
    return value


def _hashes(body: dict[str, Any], *, required: bool) -> list[bytes]:
    # v2 says "hashes", v1.0.4 (and pyHanko's client) "hash".
    name = "hashes" if "hashes" in body else "hash"
    values = body.get(name)
    if values is None:
        if required:
            raise RequestInvalid("hashes is required", field="hashes")
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise RequestInvalid("hashes must be a list of base64 strings", field="hashes")
    try:
        return [base64.b64decode(v, validate=True) for v in values]
    except binascii.Error:
        raise RequestInvalid("hashes must be base64", field="hashes") from None


# -- errors ---------------------------------------------------------------------------------


def _error(status: int, code: str, description: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": code, "error_description": description}, status_code=status, headers=headers
    )


def _guard(handler: _Handler) -> _Handler:
    """Map the application's errors to the specification's error JSON (the one table here)."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except AuthenticationError as exc:
            return _error(401, "invalid_token", str(exc), **{"WWW-Authenticate": "Bearer"})
        except (RequestInvalid, NotFound, PermissionDenied, FailedPrecondition) as exc:
            return _error(400, "invalid_request", str(exc))
        except Overloaded as exc:
            return _error(429, "slow_down", str(exc), **{"Retry-After": str(int(exc.retry_after))})
        except (Unavailable, _hsm_unavailable()) as exc:
            return _error(503, "temporarily_unavailable", str(exc), **{"Retry-After": "5"})
        except KysoError as exc:
            return _error(400, "invalid_request", str(exc))
        except Exception:
            request_id = uuid.uuid4().hex
            log.exception("CSC request failed", extra={"request_id": request_id})
            return _error(500, "server_error", f"internal error (request id {request_id})")

    return guarded


def _hsm_unavailable() -> type[Exception]:
    import hsm

    return hsm.TokenUnavailable
