"""`kyso hsm list | keys | test-sign` against the development token (child processes: the
test process itself never loads the PKCS#11 module)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kyso.dev.setup import render_config


@pytest.fixture
def config(dev_env, tmp_path):
    path = tmp_path / "kyso.toml"
    path.write_text(render_config(dev_env, data_dir=tmp_path))
    return path


def kyso(config, *args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_list_shows_the_development_tokens(config):
    result = kyso(config, "hsm", "list")
    assert result.returncode == 0, result.stderr
    assert "'kyso-dev' serial" in result.stdout
    assert "'kyso-official' serial" in result.stdout
    assert "pkcs11:serial=" in result.stdout


def test_keys_with_and_without_pin(config, dev_env):
    public = kyso(config, "hsm", "keys", "--token", "kyso-dev")
    assert public.returncode == 0, public.stderr
    assert "public 2048-bit RSA 'seal'" in public.stdout
    private = kyso(
        config,
        "hsm",
        "keys",
        "--token",
        "kyso-dev",
        "--pin-file",
        str(dev_env.pin_paths["kyso-dev"]),
    )
    assert "private 2048-bit RSA 'seal'" in private.stdout
    assert "[certificate, sensitive]" in private.stdout
    assert "EXTRACTABLE" not in private.stdout


@pytest.mark.parametrize(("key", "mechanism"), [("seal", "RSA"), ("seal-ec", "ECDSA")])
def test_test_sign_by_alias(config, key, mechanism):
    result = kyso(config, "hsm", "test-sign", key)
    assert result.returncode == 0, result.stderr
    assert "signed and verified a probe" in result.stdout
    assert mechanism in result.stdout.split("mechanism")[1].splitlines()[0]


def test_test_sign_by_uri_with_pin_from_env(config, dev_env):
    pin = dev_env.pin_paths["kyso-official"].read_text().strip()
    result = kyso(
        config,
        "hsm",
        "test-sign",
        "pkcs11:token=kyso-official;object=official",
        env={"KYSO_TOKEN_PIN": pin},
    )
    assert result.returncode == 0, result.stderr
    assert "Nguyễn Văn A" in result.stdout
    assert pin not in result.stdout + result.stderr


def test_bad_uri_and_wrong_pin_are_one_line(config, tmp_path):
    bad = kyso(config, "hsm", "test-sign", "pkcs11:token=kyso-dev;object")
    assert bad.returncode == 1
    assert bad.stderr.startswith("kyso: invalid PKCS#11 URI")
    assert "Traceback" not in bad.stderr
    wrong = tmp_path / "wrong.pin"
    wrong.write_text("000000")
    result = kyso(
        config,
        "hsm",
        "test-sign",
        "pkcs11:token=kyso-official;object=official",
        "--pin-file",
        str(wrong),
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "000000" not in result.stderr
    assert "PIN" in result.stderr
