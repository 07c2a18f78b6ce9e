"""The development PKI as a relying party sees it: chains, key usage, revocation, services."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import crl, pem, tsp, x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InvalidCertificateError,
    NotYetValidError,
    RevokedError,
)
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

from kyso.dev.init import DevEnvironment
from kyso.dev.pki import DevPkiError, TestCertificate, build_pki, load_pki

SIGNING_USAGE = {"digital_signature", "non_repudiation"}


def _open(request: str | urllib.request.Request) -> Any:
    return urllib.request.urlopen(request, timeout=30)  # noqa: S310 - http://127.0.0.1 only


def _cert(path: Path) -> x509.Certificate:
    _, _, der = pem.unarmor(path.read_bytes())
    return x509.Certificate.load(der)


async def _validate(env: DevEnvironment, cert: x509.Certificate) -> Any:
    """Validate for signing with live revocation checks (OCSP/CRL from the responders)."""
    async with AIOHttpFetcherBackend() as fetchers:
        context = ValidationContext(
            trust_roots=[_cert(env.root_certificate_path)],
            other_certs=[_cert(env.intermediate_certificate_path)],
            allow_fetching=True,
            revocation_mode="require",
            fetchers=fetchers,
        )
        validator = CertificateValidator(cert, validation_context=context)
        return await validator.async_validate_usage(SIGNING_USAGE)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("alias", ["seal", "seal-ec", "official", "ledger"])
async def test_signing_certificates_validate_with_live_revocation(dev_env, alias):
    cert = _cert(dev_env.keys[alias].certificate_path)
    path = await _validate(dev_env, cert)
    assert path.first.subject == _cert(dev_env.root_certificate_path).subject
    assert cert.key_usage_value.native == SIGNING_USAGE
    assert cert.critical_extensions >= {"key_usage"}


def test_names_are_vietnamese(dev_env):
    seal = _cert(dev_env.keys["seal"].certificate_path).subject.native
    assert seal["organization_name"] == "Trung tâm Phục vụ hành chính công tỉnh Quảng Ninh"
    assert seal["country_name"] == "VN"
    official = _cert(dev_env.keys["official"].certificate_path)
    assert official.subject.native["common_name"] == "Nguyễn Văn A"
    assert official.subject.native["title"] == "Giám đốc"
    assert official.subject_alt_name_value.native == ["nguyenvana@dev.kyso.test"]


def test_seal_keys_have_the_requested_algorithms(dev_env):
    seal = _cert(dev_env.keys["seal"].certificate_path).public_key
    seal_ec = _cert(dev_env.keys["seal-ec"].certificate_path).public_key
    assert (seal.algorithm, seal.bit_size) == ("rsa", 2048)
    assert (seal_ec.algorithm, seal_ec.curve[1]) == ("ec", "secp256r1")


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (TestCertificate.EXPIRED, ExpiredError),
        (TestCertificate.NOT_YET_VALID, NotYetValidError),
        (TestCertificate.REVOKED, RevokedError),
        (TestCertificate.NO_SIGNING_USAGE, InvalidCertificateError),
    ],
)
async def test_each_test_certificate_breaks_its_rule(dev_env, kind, error):
    cert = _cert(dev_env.test_keys[kind].certificate_path)
    with pytest.raises(error):
        await _validate(dev_env, cert)


def test_the_revoked_certificate_is_on_the_served_crl(dev_env):
    with _open(dev_env.pki.crl_url("interm")) as response:
        served = crl.CertificateList.load(response.read())
    revoked = {
        entry["user_certificate"].native
        for entry in served["tbs_cert_list"]["revoked_certificates"]
    }
    expected = {
        _cert(dev_env.test_keys[TestCertificate.REVOKED].certificate_path).serial_number,
        _cert(dev_env.pki.revoked_tsa_certificate_path).serial_number,  # the revoked TSA's
    }
    assert revoked == expected
    on_disk = crl.CertificateList.load(dev_env.pki.intermediate_crl_path.read_bytes())
    assert on_disk["tbs_cert_list"]["issuer"] == served["tbs_cert_list"]["issuer"]


def test_served_certificates_are_the_ones_on_disk(dev_env):
    # Certomancer re-derives certificates from its config when serving: they must not drift.
    url = f"{dev_env.pki.url_prefix}/kyso-dev/certs/interm/issued/seal.crt"
    with _open(url) as response:
        served = response.read()
    assert served == _cert(dev_env.keys["seal"].certificate_path).dump()


def test_certificates_point_at_the_running_responders(dev_env):
    cert = _cert(dev_env.keys["seal"].certificate_path)
    assert cert.ocsp_urls == [dev_env.ocsp_url]
    assert [point.url for point in cert.crl_distribution_points] == [dev_env.pki.crl_url("interm")]


def test_the_tsa_answers_with_its_certificate(dev_env):
    request = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": b"\x00" * 32,
            },
            "cert_req": True,
        }
    )
    http = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
        dev_env.tsa_url,
        data=request.dump(),
        headers={"Content-Type": "application/timestamp-query"},
    )
    with _open(http) as response:
        reply = tsp.TimeStampResp.load(response.read())
    assert reply["status"]["status"].native == "granted"
    signed = reply["time_stamp_token"]["content"]
    tst_info = signed["encap_content_info"]["content"].parsed
    assert abs((tst_info["gen_time"].native - datetime.now(UTC)).total_seconds()) < 300
    embedded = {c.chosen.dump() for c in signed["certificates"]}
    assert _cert(dev_env.pki.tsa_certificate_path).dump() in embedded


def test_build_refuses_a_bad_port(tmp_path):
    with pytest.raises(DevPkiError, match="port"):
        build_pki(directory=tmp_path, port=70000, end_entities=())


def test_load_finds_nothing_in_an_empty_directory(tmp_path):
    assert load_pki(tmp_path) is None


def test_load_rejects_a_damaged_state_file(tmp_path):
    (tmp_path / "pki-state.json").write_text("{not json")
    with pytest.raises(DevPkiError, match="delete"):
        load_pki(tmp_path)


def test_an_ageing_pki_is_due_for_renewal_and_renews_from_now(tmp_path):
    from datetime import timedelta

    from kyso.dev.pki import RENEW_BEFORE

    built_at = datetime(2026, 12, 6, 12, tzinfo=UTC)
    first = build_pki(directory=tmp_path, port=9780, end_entities=(), now=built_at)
    assert load_pki(tmp_path).epoch == first.epoch
    root = _cert(first.root_path)
    leaf_end = first.epoch + timedelta(days=3 * 365)
    assert not first.renewal_due(built_at)
    assert not first.renewal_due(leaf_end - RENEW_BEFORE - timedelta(seconds=1))
    assert first.renewal_due(leaf_end - RENEW_BEFORE)
    assert first.renewal_due(first.epoch - timedelta(seconds=1))  # a clock set back

    later = leaf_end - timedelta(days=1)
    renewed = build_pki(directory=tmp_path, port=9780, end_entities=(), now=later, renew=True)
    assert renewed.epoch > first.epoch
    assert not renewed.renewal_due(later)
    assert _cert(renewed.root_path).not_valid_before > root.not_valid_before
    # without renew, a rebuild keeps the epoch (and so the same certificates)
    again = build_pki(directory=tmp_path, port=9780, end_entities=(), now=later)
    assert again.epoch == renewed.epoch
