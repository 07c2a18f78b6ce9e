"""OAuth2 authorization code at kyso's CSC facade: the official logs in and consents on the
facade's own page, the code goes to the client's redirect_uri, and the client (here ``other``,
which has no key of its own) then acts as the official. Refusals: an unknown client or
redirect_uri (answered on the page, never redirected), a wrong login, a denial, a replayed code,
a code for another client or redirect_uri, a wrong PKCE verifier. End to end: ``kyso
request-signature --remote`` with ``grant = "authorization_code"`` prints the address, a scripted
browser approves, the driver's loopback listener takes the code, and the document is PAdES B-LT
that pdfsig reports valid."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest

import storage
from kyso.app import Application
from kyso.config import load_config
from kyso.csc.serve import FacadeServer
from kyso.dev.responders import free_port
from signer import Level
from signer.remote.csc import pkce_pair
from tests.signer.checks import nss_db, pdfsig, validate
from tests.signer.pdfgen import make_pdf

from .conftest import Running, access_token, facade_config_text
from .test_facade import root

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REDIRECT = "http://127.0.0.1:9/kyso/callback"


class _Form(HTMLParser):
    """The fields of the consent page's form, as a browser would submit them."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        elif tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")


async def consent(
    session: aiohttp.ClientSession,
    url: str,
    *,
    account: str,
    secret: str,
    decision: str = "approve",
) -> aiohttp.ClientResponse:
    """What the official's browser does: open the page, fill it in, press a button."""
    async with session.get(url) as page:
        assert page.status == 200, await page.text()
        text = await page.text()
    assert "Cấp quyền ký số" in text
    form = _Form()
    form.feed(text)
    target = urllib.parse.urljoin(url, form.action)
    fields = {**form.fields, "account": account, "secret": secret, "decision": decision}
    async with session.post(target, data=fields, allow_redirects=False) as answer:
        await answer.read()
        return answer


def authorize_url(running: Running, **params: str) -> str:
    base = {"response_type": "code", "client_id": "other", "redirect_uri": REDIRECT, "state": "s1"}
    return f"{running.url}/oauth2/authorize?{urllib.parse.urlencode(base | params)}"


async def exchange(
    session: aiohttp.ClientSession, running: Running, code: str, **form: str
) -> tuple[int, dict]:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": "other",
        "client_secret": running.secret("other"),
        **form,
    }
    async with session.post(f"{running.url}/oauth2/token", data=data) as response:
        return response.status, await response.json()


def code_of(answer: aiohttp.ClientResponse) -> str:
    assert answer.status == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert query["state"] == "s1"
    return query["code"]


async def test_authorization_code(facade: Running):
    dev = facade.secret("dev")
    async with aiohttp.ClientSession() as session:
        # checked before anything is shown, answered on the page (no redirect)
        for bad in ({"client_id": "nobody"}, {"redirect_uri": "https://evil.example/cb"}):
            async with session.get(authorize_url(facade, **bad), allow_redirects=False) as page:
                assert page.status == 400
                assert "Location" not in page.headers
        async with session.get(
            authorize_url(facade, code_challenge="x", code_challenge_method="plain")
        ) as page:
            assert page.status == 400

        # a wrong login shows the page again; a denial goes back with access_denied
        answer = await consent(session, authorize_url(facade), account="dev", secret="wrong")
        assert answer.status == 401
        answer = await consent(
            session, authorize_url(facade), account="dev", secret=dev, decision="deny"
        )
        assert answer.status == 302
        assert "error=access_denied" in answer.headers["Location"]
        assert "code=" not in answer.headers["Location"]

        # PKCE: a wrong verifier fails, and the code is spent by that attempt
        verifier, challenge = pkce_pair()
        url = authorize_url(facade, code_challenge=challenge, code_challenge_method="S256")
        code = code_of(await consent(session, url, account="dev", secret=dev))
        status, body = await exchange(session, facade, code, code_verifier=pkce_pair()[0])
        assert (status, body["error"]) == (400, "invalid_grant")
        status, body = await exchange(session, facade, code, code_verifier=verifier)
        assert (status, body["error"]) == (400, "invalid_grant")

        # bound to the redirect_uri and to the client it was issued to
        code = code_of(await consent(session, authorize_url(facade), account="dev", secret=dev))
        status, body = await exchange(session, facade, code, redirect_uri=REDIRECT + "x")
        assert (status, body["error"]) == (400, "invalid_grant")
        code = code_of(await consent(session, authorize_url(facade), account="dev", secret=dev))
        status, body = await exchange(session, facade, code, client_id="dev", client_secret=dev)
        assert (status, body["error"]) == (400, "invalid_grant")
        status, body = await exchange(session, facade, code, client_secret="not-other's-secret")
        assert status == 401

        # granted: ``other`` acts as the official and sees the official's credentials only
        verifier, challenge = pkce_pair()
        url = authorize_url(facade, code_challenge=challenge, code_challenge_method="S256")
        code = code_of(await consent(session, url, account="dev", secret=dev))
        status, body = await exchange(session, facade, code, code_verifier=verifier)
        assert status == 200, body
        granted = body["access_token"]
        replay = await exchange(session, facade, code, code_verifier=verifier)
        assert (replay[0], replay[1]["error"]) == (400, "invalid_grant")
        own = await access_token(session, facade, "other")
        listed = {}
        for name, token in (("granted", granted), ("own", own)):
            async with session.post(
                f"{facade.url}/csc/v2/credentials/list",
                json={},
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                assert response.status == 200
                listed[name] = (await response.json())["credentialIDs"]
        assert listed["own"] == []
        assert "seal" in listed["granted"]
        async with session.post(f"{facade.url}/csc/v2/info") as response:
            assert "oauth2code" in (await response.json())["authType"]


async def test_request_signature_with_the_officials_grant(dev_env, tmp_path: Path):
    port = free_port()
    config_path = tmp_path / "kyso.toml"
    text = facade_config_text(
        dev_env,
        tmp_path,
        f"""
[remote.kyso-code]
kind = "csc"
url = "http://127.0.0.1:{port}"
grant = "authorization_code"
client_id = "other"
client_secret_file = "{tmp_path / "other.token"}"
approval_seconds = 240
""",
    ).replace('address = "127.0.0.1:0"\nsad_seconds', f'address = "127.0.0.1:{port}"\nsad_seconds')
    config_path.write_text(text)
    config = load_config(config_path)
    app = Application.open(config)
    server = FacadeServer(app)
    await server.start()
    running = Running(app=app, server=server)
    pdf = tmp_path / "to-sign.pdf"
    pdf.write_bytes(make_pdf())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kyso.cli.main",
            "request-signature",
            str(pdf),
            "--remote",
            "kyso-code",
            "--user",
            "seal",
            "--client",
            "dev",
            "--json",
            "--config",
            str(config_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        seen = []
        while True:
            line = await asyncio.to_thread(proc.stderr.readline)  # type: ignore[union-attr]
            assert line, "".join(seen)
            seen.append(line)
            if line.startswith(f"http://127.0.0.1:{port}/oauth2/authorize?"):
                url = line.strip()
                break
        async with aiohttp.ClientSession() as session:
            answer = await consent(session, url, account="dev", secret=running.secret("dev"))
        assert answer.status == 302
        location = answer.headers["Location"]
        assert location.startswith("http://127.0.0.1:")
        # the browser follows the redirect to the command's loopback listener
        with await asyncio.to_thread(urllib.request.urlopen, location, timeout=30) as landed:
            assert landed.status == 200
        out, err = await asyncio.to_thread(proc.communicate, timeout=400)
        assert proc.returncode == 0, "".join(seen) + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await server.stop()
        app.close()
    assert "code=" not in err
    assert running.secret("other") not in out + err
    result = json.loads(out)
    assert result["state"] == "completed"
    [document] = result["documents"]
    assert document["level"] == "B-LT"
    with storage.FilesystemStore(tmp_path / "objects").open(document["ref"]) as reader:
        signed = reader.read()
    await validate(signed, root(dev_env), level=Level.B_LT)
    out_pdf = tmp_path / "signed.pdf"
    out_pdf.write_bytes(signed)
    [report] = pdfsig(out_pdf, nss_db(tmp_path / "nss", dev_env.root_certificate_path))
    assert report["Signature Validation"] == "Signature is Valid."
