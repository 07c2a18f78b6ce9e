"""VerifyPdf online fetches nothing a caller's document points at inside the server's network
(issue 14, observation 5): a signer certificate whose AIA and OCSP addresses are on loopback
gets no request from the server unless the operator lists them in ``[trust] fetch_allow``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import http.server
import io
import threading
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from kyso.app import Application
from kyso.config import load_config
from kyso.server import Server
from kyso.v1 import common_pb2, verification_pb2, verification_pb2_grpc
from signer.verify import FetchRules
from tests.kyso.conftest import token
from tests.signer.pdfgen import make_pdf

pytestmark = pytest.mark.timeout(120)


class _Recorder(http.server.BaseHTTPRequestHandler):
    paths: list[str]

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        self.paths.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on loopback that records every request it gets."""
    paths: list[str] = []
    handler = type("Handler", (_Recorder,), {"paths": paths})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", paths
    finally:
        server.shutdown()
        server.server_close()


def _signed_pointing_at(base: str) -> bytes:
    """A PDF signed by a certificate whose issuer (absent) and OCSP responder are at ``base``."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Untrusted CA")])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Người ký")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(f"{base}/issuer.crt"),
                    ),
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(f"{base}/ocsp"),
                    ),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        signing_key=asn1_keys.PrivateKeyInfo.load(
            key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        ),
        cert_registry=SimpleCertificateStore(),
    )
    out = io.BytesIO()
    signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(make_pdf())),
        signers.PdfSignatureMetadata(field_name="Signature1"),
        signer=signer,
        output=out,
    )
    return out.getvalue()


@contextlib.asynccontextmanager
async def _verification(write_config, extra: str) -> AsyncIterator[tuple[object, list]]:
    config = load_config(write_config(extra))
    app = await asyncio.to_thread(Application.open, config)
    server = Server(config, app)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = verification_pb2_grpc.VerificationServiceStub(channel)
            yield stub, [("authorization", f"Bearer {token(config, 'auditor')}")]
    finally:
        await server.stop()


async def _verify_online(stub, auth, pdf: bytes):
    request = verification_pb2.VerifyPdfRequest(
        document=common_pb2.DocumentInput(content=pdf, filename="a.pdf"), online=True
    )
    return await stub.VerifyPdf(request, metadata=auth, timeout=60)


async def test_a_document_cannot_make_the_server_fetch_from_loopback(
    write_config, recorder
) -> None:
    base, requests = recorder
    pdf = await asyncio.to_thread(_signed_pointing_at, base)
    async with _verification(write_config, "") as (stub, auth):
        reply = await _verify_online(stub, auth, pdf)
    assert reply.indication != verification_pb2.INDICATION_TOTAL_PASSED
    assert requests == []  # the server never called its own network


async def test_a_listed_responder_is_fetched_from(write_config, recorder) -> None:
    base, requests = recorder
    pdf = await asyncio.to_thread(_signed_pointing_at, base)
    async with _verification(write_config, f'\n[trust]\nfetch_allow = ["{base}/"]\n') as (
        stub,
        auth,
    ):
        await _verify_online(stub, auth, pdf)
    assert "/issuer.crt" in requests  # the same document, now allowed: the guard is the cause


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",  # noqa: S104 (an address refused, not bound)
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_refused_unless_listed(address: str) -> None:
    assert not FetchRules().address_allowed("ocsp.example", address)
    network = "::/0" if ":" in address and "." not in address else "0.0.0.0/0"
    assert FetchRules((network,)).address_allowed("ocsp.example", address)


def test_public_addresses_and_listed_hosts() -> None:
    rules = FetchRules(("ocsp.internal.gov.vn", "http://10.0.0.5:8080/crl/"))
    assert rules.address_allowed("ca.example", "203.0.113.9") is False  # documentation range
    assert rules.address_allowed("ca.example", "8.8.8.8")
    assert rules.address_allowed("ocsp.internal.gov.vn", "10.9.9.9")
    assert rules.url_allowed("http://10.0.0.5:8080/crl/a.crl", frozenset())
    assert not rules.url_allowed("http://ca.example/x.crt", frozenset())
    assert rules.url_allowed("http://ca.example/x.crt", frozenset({"http://ca.example/x.crt"}))
    assert not rules.url_allowed("file:///etc/passwd", frozenset({"file:///etc/passwd"}))
    with pytest.raises(ValueError):
        FetchRules(("gopher://x/",))
