"""Mutual TLS at the CSC facade, instead of OAuth2: a client certificate whose SHA-256 is a
client's ``certificate_sha256`` is that client (it lists and signs with its own credentials, no
token); a certificate from the CA that no client names, or none at all without a token, is
refused; OAuth2 still works on the same listener."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from kyso.app import Application
from kyso.config import load_config
from kyso.csc.serve import FacadeServer
from tests.hubs.topology import TlsPki

from .conftest import facade_config_text

pytestmark = pytest.mark.timeout(300)


def call(url: str, body: dict, context: ssl.SSLContext, token: str = "") -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310 (https only)
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def oauth_token(url: str, form: bytes, context: ssl.SSLContext) -> str:
    request = urllib.request.Request(url, data=form, method="POST")  # noqa: S310 (https only)
    with urllib.request.urlopen(request, context=context, timeout=30) as response:  # noqa: S310
        return str(json.loads(response.read())["access_token"])


def context(pki: TlsPki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def test_client_certificate_is_the_caller(dev_env, tmp_path: Path):
    pki = TlsPki(tmp_path / "tls")
    server_cert, server_key, _ = pki.issue("localhost", server=True)
    dev_cert, dev_key, fingerprint = pki.issue("dev", server=False)
    stranger_cert, stranger_key, _ = pki.issue("stranger", server=False)
    text = facade_config_text(dev_env, tmp_path).replace(
        f'token_file = "{dev_env.api_token_path}"',
        f'token_file = "{dev_env.api_token_path}"\ncertificate_sha256 = "{fingerprint}"',
        1,
    )
    text += f'certificate = "{server_cert}"\nprivate_key = "{server_key}"\nclient_ca = "{pki.ca}"\n'
    path = tmp_path / "kyso.toml"
    path.write_text(text)
    app = Application.open(load_config(path))
    server = FacadeServer(app)
    await server.start()
    try:
        base = f"https://127.0.0.1:{server.port}"
        dev = context(pki, dev_cert, dev_key)
        status, info = await asyncio.to_thread(call, f"{base}/csc/v2/info", {}, dev)
        assert "tls" in info["authType"]
        status, listed = await asyncio.to_thread(call, f"{base}/csc/v2/credentials/list", {}, dev)
        assert status == 200, listed
        assert "seal" in listed["credentialIDs"]

        # signs with no token at all: a SAD for one hash, then the signature
        digest = hashlib.sha256(b"van ban").digest()
        hashes = [base64.b64encode(digest).decode()]
        sha256 = "2.16.840.1.101.3.4.2.1"
        status, sad = await asyncio.to_thread(
            call,
            f"{base}/csc/v2/credentials/authorize",
            {
                "credentialID": "seal",
                "numSignatures": 1,
                "hashes": hashes,
                "hashAlgorithmOID": sha256,
            },
            dev,
        )
        assert status == 200, sad
        status, signed = await asyncio.to_thread(
            call,
            f"{base}/csc/v2/signatures/signHash",
            {
                "credentialID": "seal",
                "SAD": sad["SAD"],
                "hashes": hashes,
                "hashAlgorithmOID": sha256,
                "signAlgo": "1.2.840.113549.1.1.11",
            },
            dev,
        )
        assert status == 200, signed
        assert len(signed["signatures"]) == 1

        # a certificate of the CA that no client names; no certificate and no token
        status, body = await asyncio.to_thread(
            call, f"{base}/csc/v2/credentials/list", {}, context(pki, stranger_cert, stranger_key)
        )
        assert (status, body["error"]) == (401, "invalid_token")
        status, body = await asyncio.to_thread(
            call, f"{base}/csc/v2/credentials/list", {}, context(pki)
        )
        assert (status, body["error"]) == (401, "invalid_token")

        # OAuth2 on the same listener, without a certificate
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": "dev",
                "client_secret": dev_env.api_token_path.read_text().strip(),
            }
        ).encode()
        token = await asyncio.to_thread(oauth_token, f"{base}/oauth2/token", form, context(pki))
        status, listed = await asyncio.to_thread(
            call, f"{base}/csc/v2/credentials/list", {}, context(pki), token
        )
        assert status == 200
        assert "seal" in listed["credentialIDs"]
    finally:
        await server.stop()
        app.close()
