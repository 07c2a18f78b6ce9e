"""``kyso verify`` as a subprocess: exit codes and reports for each level and attack family."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from signer import Level
from tests.verify import attacks

RUNNER = (
    "import argparse, sys\n"
    "from kyso.cli import verify_cmd\n"
    "parser = argparse.ArgumentParser(prog='kyso')\n"
    "verify_cmd.register(parser.add_subparsers(dest='command', required=True))\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "sys.exit(args.func(args))\n"
)
ROOT = Path(__file__).resolve().parents[2]


def kyso_verify(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, "verify", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "KYSO_CONFIG": "/nonexistent/kyso.toml", **(env or {})},
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory, signed):
    directory = tmp_path_factory.mktemp("cli")
    original = signed.get("seal", Level.B_LT)
    documents = {
        "b-b": signed.get("seal", Level.B_B),
        "b-t": signed.get("seal", Level.B_T),
        "b-lt": original,
        "b-lta": signed.get("seal", Level.B_LTA),
        "two-signatures": signed.official_then_seal(),
        "usf": attacks.byte_range_shrunk(original),
        "isa": attacks.page_added(original),
        "swa": attacks.signature_wrapping(original),
        "shadow": attacks.shadow_replace_swap_contents(
            signed.sign(attacks.shadow_base_pdf(), "seal", Level.B_LT)
        ),
        "trailing": attacks.append_trailing_data(original),
        "garbage": attacks.garbage(),
        "bomb": attacks.decompression_bomb(),
    }
    paths = {}
    for name, data in documents.items():
        paths[name] = directory / f"{name}.pdf"
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize(
    ("name", "code", "indication"),
    [
        ("b-lt", 0, "TOTAL-PASSED"),
        ("b-lta", 0, "TOTAL-PASSED"),
        ("two-signatures", 0, "TOTAL-PASSED"),
        ("b-b", 2, "INDETERMINATE"),
        ("usf", 1, "TOTAL-FAILED"),
        ("isa", 1, "TOTAL-FAILED"),
        ("swa", 1, "TOTAL-FAILED"),
        ("shadow", 1, "TOTAL-FAILED"),
        ("trailing", 1, "TOTAL-FAILED"),
        ("bomb", 2, "INDETERMINATE"),
        ("garbage", 3, "TOTAL-FAILED"),
    ],
)
def test_exit_code_and_json(files, dev_env, name, code, indication):
    done = kyso_verify(str(files[name]), "--json", "--trust", str(dev_env.root_certificate_path))
    assert done.returncode == code, done.stderr
    report = json.loads(done.stdout)
    assert report["schema"] == "kyso.verification/1"
    assert report["indication"] == indication


@pytest.mark.parametrize("name", ["b-t", "b-b"])
def test_online_settles_short_levels(files, dev_env, name):
    done = kyso_verify(
        str(files[name]), "--online", "--lang", "en", "--trust", str(dev_env.root_certificate_path)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VALID (TOTAL-PASSED)" in done.stdout
    assert "fetched online" in done.stdout


def test_text_in_vietnamese_by_default_and_english(files, dev_env):
    trust = ("--trust", str(dev_env.root_certificate_path))
    vi = kyso_verify(str(files["isa"]), *trust)
    en = kyso_verify(str(files["isa"]), "--lang", "en", *trust)
    assert vi.returncode == en.returncode == 1
    assert "KHÔNG HỢP LỆ (TOTAL-FAILED)" in vi.stdout
    assert "tài liệu đã bị sửa đổi sau khi ký" in vi.stdout
    assert "INVALID (TOTAL-FAILED)" in en.stdout
    assert "FORBIDDEN_MODIFICATION" in en.stdout


def test_trust_from_config_and_fingerprint(files, dev_env, tmp_path):
    config = tmp_path / "kyso.toml"
    config.write_text(f'[trust]\nanchors = ["{dev_env.root_certificate_path}"]\n')
    assert kyso_verify(str(files["b-lt"]), "--config", str(config)).returncode == 0
    done = kyso_verify(str(files["b-lt"]), env={"KYSO_CONFIG": str(config)})
    assert done.returncode == 0
    from asn1crypto import pem

    from signer.verify.trust import certificate_fingerprint

    der = pem.unarmor(dev_env.intermediate_certificate_path.read_bytes())[2]
    fp = certificate_fingerprint(der)
    assert kyso_verify(str(files["b-lt"]), "--trust-fingerprint", fp).returncode == 0


def test_no_anchor_is_indeterminate_and_says_so(files):
    done = kyso_verify(str(files["b-lt"]))
    assert done.returncode == 2
    assert "no trust anchor" in done.stderr


def test_unreadable_file_and_bad_anchor(files, tmp_path):
    assert kyso_verify(str(tmp_path / "missing.pdf")).returncode == 3
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    done = kyso_verify(str(files["b-lt"]), "--trust", str(bad))
    assert done.returncode == 4
    assert "not an X.509 certificate" in done.stderr
    done = kyso_verify(str(files["b-lt"]), "--trust-fingerprint", "xyz")
    assert done.returncode == 4
