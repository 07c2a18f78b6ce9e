"""Dated algorithm rules (signer.verify.algorithms) on real signed PDFs.

Documents are signed with pyHanko under the development PKI: a software key whose certificate
the dev intermediate CA issues here (with the CA's CRL as its revocation pointer), SHA-1 or
SHA-256 as the CMS digest, with or without a signature time-stamp from the dev TSA, validation
data embedded. An ECDSA document labels its signature algorithm id-ecPublicKey, as iText 5 does.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import algos, keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.policy_decl import AcceptAllAlgorithms
from pyhanko_certvalidator.registry import SimpleCertificateStore

from kyso.dev.init import DevEnvironment
from signer.verify import (
    Indication,
    SubIndication,
    VerificationPolicy,
    dev_profile,
    render_text,
    verify_pdf,
)
from signer.verify.algorithms import (
    SHIPPED_RULES,
    AlgorithmRules,
    AlgorithmRulesInvalid,
    DatedAlgorithmPolicy,
)
from tests.signer.pdfgen import make_pdf

pytestmark = pytest.mark.timeout(300)


@dataclass(frozen=True)
class Issued:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert: asn1_x509.Certificate
    intermediate: asn1_x509.Certificate
    root: asn1_x509.Certificate


def issue(dev_env: DevEnvironment, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Issued:
    """A signing certificate for ``key`` from the dev intermediate CA (its CRL as pointer)."""
    pki = dev_env.pki
    ca_cert = x509.load_pem_x509_certificate(pki.intermediate_path.read_bytes())
    ca_key = serialization.load_pem_private_key(
        (pki.key_dir / "interm.key.pem").read_bytes(), password=None
    )
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "Nguyễn Văn Kiểm Thử"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "UBND tỉnh Quảng Ninh"),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
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
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(pki.crl_url("interm"))],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(
        key=key,
        cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        intermediate=asn1_x509.Certificate.load(ca_cert.public_bytes(serialization.Encoding.DER)),
        root=asn1_x509.Certificate.load(
            x509.load_pem_x509_certificate(pki.root_path.read_bytes()).public_bytes(
                serialization.Encoding.DER
            )
        ),
    )


class _LabelledEcdsaSigner(signers.SimpleSigner):
    """Writes ECDSA values under a key-type label: id-ecPublicKey (what iText 5 does) or
    rsaEncryption (what endesive does)."""

    def __init__(self, issued: Issued, label: str) -> None:
        super().__init__(
            signing_cert=issued.cert,
            signing_key=_private_key_info(issued.key),
            cert_registry=SimpleCertificateStore.from_certs([issued.intermediate]),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": label}),
        )
        self._key = issued.key

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        assert isinstance(self._key, ec.EllipticCurvePrivateKey)
        digest = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}[digest_algorithm]  # noqa: S303
        return self._key.sign(data, ec.ECDSA(digest))


def _private_key_info(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> keys.PrivateKeyInfo:
    return keys.PrivateKeyInfo.load(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def sign(
    dev_env: DevEnvironment,
    issued: Issued,
    *,
    digest: str,
    timestamp: bool,
    ecdsa_label: str | None = None,
) -> bytes:
    if ecdsa_label is not None:
        signer: signers.Signer = _LabelledEcdsaSigner(issued, ecdsa_label)
    else:
        signer = signers.SimpleSigner(
            signing_cert=issued.cert,
            signing_key=_private_key_info(issued.key),
            cert_registry=SimpleCertificateStore.from_certs([issued.intermediate]),
        )
    meta = signers.PdfSignatureMetadata(
        field_name="Signature1",
        md_algorithm=digest,
        subfilter=SigSeedSubFilter.PADES,
        embed_validation_info=True,
        validation_context=ValidationContext(
            trust_roots=[issued.root],
            allow_fetching=True,
            other_certs=[issued.intermediate],
            # Sign with SHA-1 on purpose: the signer's own check must not refuse it.
            algorithm_usage_policy=AcceptAllAlgorithms(),
        ),
    )
    out = asyncio.run(
        signers.async_sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(make_pdf(pages=1, title="Kiem tra thuat toan"))),
            meta,
            signer=signer,
            timestamper=HTTPTimeStamper(dev_env.tsa_url) if timestamp else None,
        )
    )
    return out.getvalue()


@pytest.fixture(scope="module")
def rsa_issued(dev_env: DevEnvironment) -> Issued:
    return issue(dev_env, rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def documents(dev_env: DevEnvironment, rsa_issued: Issued) -> dict[str, bytes]:
    docs = {
        "sha1+tst": sign(dev_env, rsa_issued, digest="sha1", timestamp=True),
        "sha1": sign(dev_env, rsa_issued, digest="sha1", timestamp=False),
        "sha256+tst": sign(dev_env, rsa_issued, digest="sha256", timestamp=True),
    }
    time.sleep(1.5)  # the rules below end SHA-1 one second after these signatures
    return docs


@pytest.fixture(scope="module")
def sha1_recently_ended(tmp_path_factory: pytest.TempPathFactory, documents) -> Path:
    """Rules that end SHA-1 one second after the documents were time-stamped (and before now)."""
    end = datetime.now(UTC) - timedelta(seconds=1)
    text = SHIPPED_RULES.read_text(encoding="utf-8").replace(
        "sha1 = { until = 2014-01-01 }", f"sha1 = {{ until = {end.isoformat()} }}"
    )
    assert end.isoformat() in text
    path = tmp_path_factory.mktemp("rules") / "algorithms.toml"
    path.write_text(text, encoding="utf-8")
    return path


def verify(data: bytes, dev_env: DevEnvironment, rules: AlgorithmRules | None = None):
    policy = VerificationPolicy(
        trust=(dev_profile(dev_env.root_certificate_path),),
        **({"algorithms": rules} if rules is not None else {}),
    )
    return verify_pdf(data, policy=policy)


def test_control_sha256_passes(documents, dev_env):
    report = verify(documents["sha256+tst"], dev_env)
    assert report.indication is Indication.TOTAL_PASSED, render_text(report, lang="en")


def test_sha1_before_its_end_date_passes_with_a_trusted_timestamp(
    documents, dev_env, sha1_recently_ended
):
    rules = AlgorithmRules.load(sha1_recently_ended)
    report = verify(documents["sha1+tst"], dev_env, rules)
    assert report.indication is Indication.TOTAL_PASSED, render_text(report, lang="en")
    (signature,) = report.signatures
    assert signature.algorithm is not None
    assert signature.algorithm.digest == "sha1"
    assert signature.algorithm.acceptable
    assert [n.code for n in signature.algorithm.notes] == ["ALGORITHM_ACCEPTED_WITH_POE"]
    assert "ALGORITHM_ACCEPTED_WITH_POE" in render_text(report, lang="vi")


def test_sha1_without_timestamp_is_indeterminate_no_poe(documents, dev_env, sha1_recently_ended):
    rules = AlgorithmRules.load(sha1_recently_ended)
    report = verify(documents["sha1"], dev_env, rules)
    assert report.indication is Indication.INDETERMINATE, render_text(report, lang="en")
    assert report.sub_indication is SubIndication.CRYPTO_CONSTRAINTS_FAILURE_NO_POE
    (signature,) = report.signatures
    assert "ALGORITHM_NO_POE" in [p.code for p in signature.problems]
    assert signature.algorithm is not None
    assert not signature.algorithm.acceptable


def test_sha1_with_a_timestamp_after_the_shipped_end_date_is_no_poe(documents, dev_env):
    # Shipped rules: SHA-1 ended on 2014-01-01; this time-stamp is of today.
    report = verify(documents["sha1+tst"], dev_env)
    assert report.indication is Indication.INDETERMINATE, render_text(report, lang="en")
    assert report.sub_indication is SubIndication.CRYPTO_CONSTRAINTS_FAILURE_NO_POE
    assert "TOTAL-FAILED" not in render_text(report, lang="en")


@pytest.fixture(scope="module", params=["1.2.840.10045.2.1", "rsassa_pkcs1v15"])
def labelled_ecdsa(request, dev_env: DevEnvironment) -> bytes:
    """An ECDSA signature labelled id-ecPublicKey (iText 5) or rsaEncryption (endesive)."""
    issued = issue(dev_env, ec.generate_private_key(ec.SECP256R1()))
    return sign(dev_env, issued, digest="sha256", timestamp=True, ecdsa_label=request.param)


def test_ecdsa_labelled_ec_public_key_is_accepted_as_a_policy_decision(labelled_ecdsa, dev_env):
    report = verify(labelled_ecdsa, dev_env)
    assert report.indication is Indication.TOTAL_PASSED, render_text(report, lang="en")
    (signature,) = report.signatures
    assert signature.signature_valid
    assert signature.algorithm is not None
    assert [n.code for n in signature.algorithm.notes] == ["ECDSA_LABEL_ACCEPTED"]


def test_ecdsa_label_refused_by_rules_is_not_a_bad_value(labelled_ecdsa, dev_env):
    rules = replace(AlgorithmRules.shipped(), mislabelled_ecdsa="refuse")
    report = verify(labelled_ecdsa, dev_env, rules)
    assert report.indication is Indication.INDETERMINATE, render_text(report, lang="en")
    assert report.sub_indication is SubIndication.CRYPTO_CONSTRAINTS_FAILURE
    (signature,) = report.signatures
    assert signature.intact
    assert signature.signature_valid  # the value verifies: the refusal is the policy's
    assert "ECDSA_LABEL_REFUSED" in [p.code for p in signature.problems]
    assert "SIG_CRYPTO_FAILURE" not in render_text(report, lang="en")


# -- the rules themselves ---------------------------------------------------------------------


def _rsa_key_info(bits: int) -> keys.PublicKeyInfo:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    return keys.PublicKeyInfo.load(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def test_rsa_1024_is_dated_and_rsa_2048_is_not():
    policy = DatedAlgorithmPolicy(AlgorithmRules.shipped())
    algo = algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"})
    before = datetime(2013, 6, 1, tzinfo=UTC)
    after = datetime(2020, 1, 1, tzinfo=UTC)
    short = _rsa_key_info(1024)
    assert policy.signature_algorithm_allowed(algo, before, short)
    refused = policy.signature_algorithm_allowed(algo, after, short)
    assert not refused
    assert refused.not_allowed_after == datetime(2014, 1, 1, tzinfo=UTC)
    assert policy.signature_algorithm_allowed(algo, after, _rsa_key_info(2048))
    strict = DatedAlgorithmPolicy(
        AlgorithmRules.from_mapping(
            {"digests": {"sha256": {}}, "keys": {"rsa": [{"min_bits": 2048}]}}
        )
    )
    never = strict.signature_algorithm_allowed(algo, before, short)
    assert not never
    assert never.not_allowed_after is None  # never acceptable: no date to prove against


def test_digest_rules():
    policy = DatedAlgorithmPolicy(AlgorithmRules.shipped())
    md5 = policy.digest_algorithm_allowed(algos.DigestAlgorithm({"algorithm": "md5"}), None)
    assert not md5
    assert md5.not_allowed_after is None
    sha1 = algos.DigestAlgorithm({"algorithm": "sha1"})
    assert policy.digest_algorithm_allowed(sha1, datetime(2010, 1, 1, tzinfo=UTC))
    assert not policy.digest_algorithm_allowed(sha1, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[digest]\nsha256 = {}\n", "unknown section 'digest'"),
        ("[digests]\nsha1 = { until = 2014 }\n", "digests.sha1.until"),
        ("[digests]\nsha1 = { until = 2014-01-01T00:00:00 }\n", "give an offset"),
        ("[[keys.dsa]]\nmin_bits = 2048\n", "keys.dsa: only rsa and ec"),
        ("[[keys.rsa]]\nmin_bits = 0\n", "min_bits: a positive integer"),
        ('[signatures]\nmislabelled_ecdsa = "maybe"\n', "mislabelled_ecdsa"),
        ("[digests\n", "not valid TOML"),
    ],
)
def test_bad_rules_files_name_the_key(tmp_path, text, message):
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AlgorithmRulesInvalid, match=message.replace("[", r"\[")):
        AlgorithmRules.load(path)
