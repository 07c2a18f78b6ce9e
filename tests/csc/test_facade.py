"""kyso's CSC v2 facade, driven by a client we did not write (pyHanko's ``CSCSigner``), and
refusals: a replayed SAD, a SAD for other hashes, another caller's credential."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys

import aiohttp
import pytest
from asn1crypto import pem, x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.csc_signer import (
    CSCAuthorizationInfo,
    CSCAuthorizationManager,
    CSCServiceSessionInfo,
    CSCSigner,
    fetch_certs_in_csc_credential,
)

import audit
from signer import Level
from signer.verify import Indication
from tests.signer.checks import nss_db, pdfsig, validate
from tests.signer.pdfgen import make_pdf

from .conftest import access_token

pytestmark = pytest.mark.timeout(120)

SHA256 = "2.16.840.1.101.3.4.2.1"
RSA_SHA256 = "1.2.840.113549.1.1.11"


class HashBoundAuthorization(CSCAuthorizationManager):
    """Asks ``credentials/authorize`` for a SAD bound to exactly the hashes about to be signed
    (pyHanko leaves the authorisation step to its user; this uses its request formatter)."""

    def __init__(self, session, info, credential) -> None:
        super().__init__(info, credential)
        self.session = session

    async def authorize_signature(self, hash_b64s: list[str]) -> CSCAuthorizationInfo:
        request = self.format_csc_auth_request(hash_b64s=hash_b64s)
        async with self.session.post(
            self.csc_session_info.endpoint_url("credentials/authorize"),
            json=request,
            headers=self.auth_headers,
            raise_for_status=True,
        ) as response:
            return self.parse_csc_auth_response(await response.json())


def kyso_verify(path, anchor) -> str:
    """``kyso verify`` (a child process) on ``path``: its overall indication (exit 0 = passed)."""
    done = subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", "verify", str(path), "--trust", str(anchor)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode in (0, 1, 2, 3), done.stderr
    return "TOTAL-PASSED" if done.returncode == 0 else done.stdout


def root(dev_env) -> x509.Certificate:
    return x509.Certificate.load(pem.unarmor(dev_env.root_certificate_path.read_bytes())[2])


@pytest.mark.parametrize("alias", ["seal", "seal-ec"])
async def test_pyhanko_signs_through_the_facade(facade, dev_env, tmp_path, alias):
    async with aiohttp.ClientSession() as session:
        token = await access_token(session, facade, "dev")
        info = CSCServiceSessionInfo(
            service_url=facade.url, credential_id=alias, oauth_token=token, api_ver="v2"
        )
        credential = await fetch_certs_in_csc_credential(session, info)
        assert credential.hash_pinning_required  # SCAL 2
        signer = CSCSigner(session, HashBoundAuthorization(session, info, credential))
        meta = signers.PdfSignatureMetadata(
            field_name="Signature1", subfilter=fields.SigSeedSubFilter.PADES
        )
        out = await signers.PdfSigner(meta, signer).async_sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(make_pdf()))
        )
    signed = out.getvalue()
    await validate(signed, root(dev_env), level=Level.B_B)
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    [report] = pdfsig(path, nss_db(tmp_path / "nss", dev_env.root_certificate_path))
    assert report["Signature Validation"] == "Signature is Valid."
    # kyso's verifier, online (a B-B signature carries no revocation data of its own)
    assert facade.app.verifier is not None
    verdict = facade.app.verifier.verify(signed, facade.app.verification_policy(online=True))
    assert verdict.indication is Indication.TOTAL_PASSED
    # the signature is in the ledger, with its hash
    latest = facade.app.ledger.size()
    event = facade.app.ledger.get_entry(latest - 1).event
    assert event.type is audit.EventType.SIGNATURE_SEALED
    assert event.key == alias
    assert event.details["via"] == "csc"


async def post(session, facade, token, path, body):
    async with session.post(
        f"{facade.url}/csc/v2/{path}", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        return response.status, await response.json()


async def authorize(session, facade, token, hashes, *, credential="seal"):
    status, body = await post(
        session,
        facade,
        token,
        "credentials/authorize",
        {
            "credentialID": credential,
            "numSignatures": len(hashes),
            "hashes": [base64.b64encode(h).decode() for h in hashes],
            "hashAlgorithmOID": SHA256,
        },
    )
    assert status == 200, body
    return body["SAD"]


async def sign_hash(session, facade, token, sad, hashes, *, credential="seal"):
    return await post(
        session,
        facade,
        token,
        "signatures/signHash",
        {
            "credentialID": credential,
            "SAD": sad,
            "hashes": [base64.b64encode(h).decode() for h in hashes],
            "hashAlgorithmOID": SHA256,
            "signAlgo": RSA_SHA256,
        },
    )


async def test_refusals(facade):
    one, two = hashlib.sha256(b"one").digest(), hashlib.sha256(b"two").digest()
    async with aiohttp.ClientSession() as session:
        token = await access_token(session, facade, "dev")
        # the SAD signs what it was given for, once
        sad = await authorize(session, facade, token, [one])
        status, body = await sign_hash(session, facade, token, sad, [one])
        assert status == 200, body
        assert len(body["signatures"]) == 1
        status, body = await sign_hash(session, facade, token, sad, [one])
        assert status == 400
        assert "SAD" in body["error_description"]
        # a SAD for other hashes: refused and consumed
        sad = await authorize(session, facade, token, [one])
        status, body = await sign_hash(session, facade, token, sad, [two])
        assert (status, body["error"]) == (400, "invalid_request")
        assert "not those the SAD authorises" in body["error_description"]
        status, _ = await sign_hash(session, facade, token, sad, [one])
        assert status == 400
        # a count mismatch: two hashes against a SAD for one
        sad = await authorize(session, facade, token, [one])
        status, body = await sign_hash(session, facade, token, sad, [one, one])
        assert status == 400
        # numSignatures must match the hashes
        status, body = await post(
            session,
            facade,
            token,
            "credentials/authorize",
            {
                "credentialID": "seal",
                "numSignatures": 2,
                "hashes": [base64.b64encode(one).decode()],
            },
        )
        assert status == 400
        assert "numSignatures" in body["error_description"]

        # another caller: sees no credential, may not use dev's, nor its SAD
        other = await access_token(session, facade, "other")
        status, body = await post(session, facade, other, "credentials/list", {})
        assert (status, body["credentialIDs"]) == (200, [])
        status, body = await post(
            session, facade, other, "credentials/info", {"credentialID": "seal"}
        )
        assert status == 400
        sad = await authorize(session, facade, token, [one])
        status, body = await sign_hash(session, facade, other, sad, [one])
        assert status == 400
        assert "no credential" in body["error_description"]
        # the ledger's key is nobody's credential
        status, body = await post(session, facade, token, "credentials/list", {})
        assert sorted(body["credentialIDs"]) == ["seal", "seal-ec"]

        # no token, a bad token, a bad secret
        async with session.post(f"{facade.url}/csc/v2/credentials/list", json={}) as response:
            assert response.status == 401
        status, body = await post(session, facade, "not-a-token", "credentials/list", {})
        assert (status, body["error"]) == (401, "invalid_token")
        async with session.post(
            f"{facade.url}/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": "dev", "client_secret": "x"},
        ) as response:
            assert response.status == 401
            assert "x" not in (await response.json())["error_description"].split()
    # Refusals reach the ledger summarised per caller and minute; end the minute now.
    assert facade.app.refusals is not None
    await facade.app.refusals.flush(everything=True)
    denied = [
        facade.app.ledger.get_entry(i).event
        for i in range(facade.app.ledger.size())
        if facade.app.ledger.get_entry(i).event.type is audit.EventType.AUTHZ_DENIED
    ]
    assert denied
    assert all(e.actor == "other" for e in denied)
