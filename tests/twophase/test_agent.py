"""``kyso request-signature`` and ``kyso agent`` end to end: the agent runs as a child process
on the real kyso-official SoftHSM token against a real server."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import pytest

from kyso.cli.main import main as kyso_main
from kyso.v1 import common_pb2, signing_pb2, signing_pb2_grpc
from signer import Level
from tests.signer.checks import nss_db, pdfsig, validate
from tests.signer.pdfgen import make_pdf

from .conftest import REPO, RunningServer, auth, der, render
from .test_flow import download, root_certificate

pytestmark = pytest.mark.slow


@pytest.fixture
def running(dev_env, tmp_path):
    with RunningServer(render(dev_env, tmp_path / "server")) as server:
        yield server


def request_signatures(running, dev_env, tmp_path, capsys, count, **options):
    """``kyso request-signature`` for ``count`` PDFs; their session ids."""
    certificate = dev_env.keys["official"].certificate_path
    ids = []
    for number in range(count):
        pdf = tmp_path / f"ket-qua-{number}.pdf"
        pdf.write_bytes(make_pdf(title=f"Giay phep so {number}"))
        argv = ["request-signature", str(pdf), "--official", str(certificate)]
        argv += ["--config", str(running.config.source), "--server", running.address]
        for name, value in options.items():
            argv += [f"--{name}", str(value)]
        assert kyso_main(argv) == 0
        ids.append(capsys.readouterr().out.strip())
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), ids
    return ids


def agent(running, dev_env, *extra, pin_env=True, module="kyso.cli.main"):
    key = dev_env.keys["official"]
    env = dev_env.child_env()
    env.pop("KYSO_TOKEN_PIN", None)
    if pin_env:
        env["KYSO_TOKEN_PIN"] = key.pin_path.read_text().strip()
    argv = [sys.executable, "-m", module]
    if module != "kyso.cli.main":
        argv += [*extra, "--"]
        extra = ()
    argv += ["agent", "--yes", "--requester", "dev", "--lang", "en"]
    argv += ["--module", str(dev_env.module_path), "--token", key.token_label]
    argv += ["--config", str(running.config.source), "--server", running.address, *extra]
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=240, check=False
    )


def pending(running, dev_env):
    fingerprint = hashlib.sha256(der(dev_env.keys["official"].certificate_path)).hexdigest()
    with running.channel() as channel:
        listed = signing_pb2_grpc.SigningServiceStub(channel).ListPendingSignatures(
            signing_pb2.ListPendingSignaturesRequest(certificate_sha256=fingerprint),
            metadata=auth(running.config),
        )
    return [p.session_id for p in listed.pending]


async def test_three_documents_in_one_batch_then_the_seal(running, dev_env, tmp_path, capsys):
    ids = request_signatures(
        running, dev_env, tmp_path, capsys, 3, appearance="seal", page=1, rect="300,80,560,200"
    )
    assert sorted(pending(running, dev_env)) == sorted(ids)
    done = agent(running, dev_env)
    assert done.returncode == 0, done.stderr
    assert "3 document(s) wait" in done.stdout
    assert "signed 3, failed 0, left 0" in done.stdout
    pin = dev_env.keys["official"].pin_path.read_text().strip()
    assert pin not in done.stdout + done.stderr
    refs = re.findall(r"-> (sha256/[0-9a-f]{64})", done.stdout)
    assert len(refs) == 3
    assert pending(running, dev_env) == []

    nss = nss_db(tmp_path / "nss", dev_env.root_certificate_path)
    root = root_certificate(dev_env)
    for ref in refs:
        out = tmp_path / f"{ref[7:19]}.pdf"
        assert (
            kyso_main(
                [
                    "download",
                    ref,
                    "-o",
                    str(out),
                    "--config",
                    str(running.config.source),
                    "--server",
                    running.address,
                ]
            )
            == 0
        )
        statuses = await validate(out.read_bytes(), root, level=Level.B_B)
        assert statuses[0].signing_cert.subject.native["common_name"] == "Nguyễn Văn A"
        assert pdfsig(out, nss)[0]["Signature Validation"] == "Signature is Valid."

    # the clerk seals one of them: both signatures stay valid
    with running.channel() as channel:
        sealed = signing_pb2_grpc.SigningServiceStub(channel).SignPdf(
            signing_pb2.SignPdfRequest(
                document=common_pb2.DocumentInput(ref=common_pb2.DocumentRef(ref=refs[0])),
                key_alias="seal",
            ),
            metadata=auth(running.config),
        )
    both = tmp_path / "both.pdf"
    both.write_bytes(download(running, sealed.document.ref))
    statuses = await validate(both.read_bytes(), root, level=Level.B_B)
    assert len(statuses) == 2
    report = pdfsig(both, nss)
    assert [r["Signature Validation"] for r in report] == ["Signature is Valid."] * 2

    again = agent(running, dev_env)
    assert again.returncode == 0
    assert "Nothing waits" in again.stdout


def test_token_pulled_mid_batch_then_a_second_run_finishes(running, dev_env, tmp_path, capsys):
    ids = request_signatures(running, dev_env, tmp_path, capsys, 5, level="B-T")
    stopped = agent(running, dev_env, "--fail-after", "2", module="tests.twophase._faulty_agent")
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    assert "the token stopped signing" in stopped.stdout
    assert "signed 2, failed 0, left 3" in stopped.stdout
    assert "Run the agent again" in stopped.stdout
    left = pending(running, dev_env)
    assert len(left) == 3
    assert set(left) <= set(ids)

    # the second run reads the PIN from a file
    pin_file = dev_env.keys["official"].pin_path
    finished = agent(running, dev_env, "--pin-file", str(pin_file), pin_env=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "signed 3, failed 0, left 0" in finished.stdout
    assert pending(running, dev_env) == []


def test_server_gone_mid_batch_stops_cleanly(dev_env, tmp_path, capsys):
    """The network drops while the token is slow: the agent stops; what was completed stays
    completed, the rest stays pending for a later run."""
    config = render(dev_env, tmp_path / "server")
    running = RunningServer(config).__enter__()
    try:
        request_signatures(running, dev_env, tmp_path, capsys, 4)
        env = dev_env.child_env()
        env["KYSO_TOKEN_PIN"] = dev_env.keys["official"].pin_path.read_text().strip()
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.twophase._faulty_agent",
                "--delay",
                "1.0",
                "--",
                "--yes",
                "--requester",
                "dev",
                "--lang",
                "en",
                "--module",
                str(dev_env.module_path),
                "--token",
                "kyso-official",
                "--config",
                str(config.source),
                "--server",
                running.address,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        # wait for the first completion, then take the server away
        assert child.stderr is not None
        for line in child.stderr:
            if line.startswith("progress 1/"):
                break
    finally:
        running.__exit__(None, None, None)
    stdout, _ = child.communicate(timeout=240)
    assert child.returncode == 3, stdout
    assert "the server could not be reached" in stdout
    signed = int(re.search(r"signed (\d+), failed 0, left (\d+)", stdout).group(1))
    assert 1 <= signed < 4

    with RunningServer(config) as again:
        assert len(pending(again, dev_env)) == 4 - signed
        finished = agent(again, dev_env)
        assert f"signed {4 - signed}, failed 0, left 0" in finished.stdout, finished.stdout


def _issue_from_dev_ca(dev_env, spki_der: bytes, common_name: str) -> bytes:
    """A signing certificate from the dev PKI's issuing CA, checked by its CRL (no OCSP URL)."""
    import datetime as dt

    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    pki = dev_env.pki
    issuer = cx509.load_pem_x509_certificate(pki.intermediate_path.read_bytes())
    issuer_key = serialization.load_pem_private_key(
        (pki.key_dir / "interm.key.pem").read_bytes(), password=None
    )
    public = serialization.load_der_public_key(spki_der)
    now = dt.datetime.now(dt.UTC)
    certificate = (
        cx509.CertificateBuilder()
        .subject_name(cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer.subject)
        .public_key(public)
        .serial_number(cx509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(cx509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            cx509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            cx509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),
            critical=False,
        )
        .add_extension(
            cx509.CRLDistributionPoints(
                [
                    cx509.DistributionPoint(
                        full_name=[cx509.UniformResourceIdentifier(pki.crl_url("interm"))],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


async def test_a_key_that_wants_the_pin_for_every_signature(running, dev_env, tmp_path, capsys):
    """CKA_ALWAYS_AUTHENTICATE: the agent asks the PIN once; the token gets it per signature."""
    from kyso.dev.softhsm import generate_keypair, init_token, store_certificate
    from tests.support.tokens import SO_PIN, USER_PIN, new_token_label

    label = new_token_label("every")
    module = str(dev_env.module_path)
    init_token(label=label, so_pin=SO_PIN, user_pin=USER_PIN, module_path=module)
    spki = generate_keypair(
        module_path=module,
        token_label=label,
        user_pin=USER_PIN,
        label="official",
        key_id=b"\x01",
        kind="rsa2048",
        always_authenticate=True,
    )
    certificate = _issue_from_dev_ca(dev_env, spki, "Trần Thị B")
    store_certificate(
        module_path=module,
        token_label=label,
        user_pin=USER_PIN,
        label="official",
        key_id=b"\x01",
        certificate_der=certificate,
    )
    cert_path = tmp_path / "tran-thi-b.der"
    cert_path.write_bytes(certificate)
    for number in range(2):
        pdf = tmp_path / f"doc-{number}.pdf"
        pdf.write_bytes(make_pdf())
        argv = ["request-signature", str(pdf), "--official", str(cert_path), "--level", "B-T"]
        assert (
            kyso_main([*argv, "--config", str(running.config.source), "--server", running.address])
            == 0
        )
    capsys.readouterr()

    env = dev_env.child_env()
    env["KYSO_TOKEN_PIN"] = USER_PIN
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kyso.cli.main",
            "agent",
            "--yes",
            "--requester",
            "dev",
            "--lang",
            "en",
            "--module",
            module,
            "--token",
            label,
            "--config",
            str(running.config.source),
            "--server",
            running.address,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signed 2, failed 0, left 0" in done.stdout
    refs = re.findall(r"-> (sha256/[0-9a-f]{64})", done.stdout)
    signed = download(running, common_pb2.DocumentRef(ref=refs[0]))
    statuses = await validate(signed, root_certificate(dev_env), level=Level.B_T)
    assert statuses[0].signing_cert.subject.native["common_name"] == "Trần Thị B"
    # and the key really is one that wants the PIN per signature
    probe = subprocess.run(
        [sys.executable, "-c", _ALWAYS_AUTHENTICATE, module, label],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=True,
    )
    assert probe.stdout.strip() == "True"


_ALWAYS_AUTHENTICATE = """
import sys, hsm
keys = hsm.list_keys(sys.argv[1], token=hsm.Pkcs11Uri(token=sys.argv[2]),
                     pin=hsm.PinSource.from_env("KYSO_TOKEN_PIN"))
print(next(k.always_authenticate for k in keys if k.always_authenticate is not None))
"""
