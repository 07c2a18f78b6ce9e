"""Configuration: errors name the key and the problem; `kyso serve` exits 2 with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kyso.config import load_config
from kyso.errors import ConfigError


def test_defaults_and_relative_paths(write_config):
    config = load_config(write_config(""))
    assert config.server.address == "127.0.0.1:0"
    assert config.clients["workflow"].roles == ("workflow",)
    assert config.clients["workflow"].token_file == config.source.parent / "workflow.token"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[server]\nadress = 'x'\n", "server.adress: unknown key"),
        ("[nonsense]\n", "nonsense: unknown key"),
        ("[hsm]\nworkers = 'two'\n", "hsm.workers: expected a whole number"),
        ("[storage]\nbackend = 'ftp'\n", "storage.backend: 'ftp' is not one of"),
        (
            "[clients.x]\nroles = ['root']\ntoken_sha256 = 'aa'\n",
            "clients.x.roles[0]: 'root' is not one of",
        ),
        ("[clients.x]\nroles = ['auditor']\n", "clients.x: give token_file, token_sha256"),
        ("[keys.seal]\nuri = 'pkcs11:object=seal'\n", "keys.seal: give pin_file or pin_env"),
        ("[keys.seal]\npin_env = 'P'\n", "keys.seal.uri: required key is missing"),
        ("[ledger]\nkey = 'nope'\n", "ledger.key: 'nope' is not a configured key alias"),
        ("[trust]\nanchors = ['missing.pem']\n", "trust.anchors[0]:"),
        ("[verify]\nalgorithms = 'missing.toml'\n", "verify.algorithms:"),
        ("[verify]\nalgoritms = 'x.toml'\n", "verify.algoritms: unknown key"),
    ],
)
def test_bad_values_name_the_key(write_config, extra, message):
    with pytest.raises(ConfigError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        load_config(write_config(extra, base=False))


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("localhost", "server.address: 'localhost' is not an address of the form host:port"),
        ("127.0.0.1:99999", "server.address: port '99999' is not a number from 0 to 65535"),
        ("127.0.0.1:http", "server.address: port 'http' is not a number"),
    ],
)
def test_bad_address(write_config, address, message):
    path = write_config(f"[server]\naddress = '{address}'\n", base=False)
    with pytest.raises(ConfigError, match="^" + message):
        load_config(path)


def test_environment_overrides_are_typed_and_checked(write_config):
    path = write_config("")
    config = load_config(
        path, environ={"KYSO_SERVER__GRACE_SECONDS": "7.5", "KYSO_HSM__WORKERS": "3"}
    )
    assert config.server.grace_seconds == 7.5
    assert config.hsm.workers == 3
    with pytest.raises(ConfigError, match="^hsm.workers: expected a whole number, got 'x'"):
        load_config(path, environ={"KYSO_HSM__WORKERS": "x"})
    with pytest.raises(ConfigError, match="^server.bogus: unknown key"):
        load_config(path, environ={"KYSO_SERVER__BOGUS": "1"})


def test_missing_and_unparsable_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("[server]\nbogus = 1\n", "server.bogus: unknown key"),
        ("[server]\naddress = '127.0.0.1:70000'\n", "server.address: port '70000'"),
    ],
)
def test_serve_exits_2_with_one_line(write_config, extra, needle):
    path = write_config(extra, base=False)
    proc = subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_serve_unreadable_file_exits_2(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(tmp_path / "absent.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "does not exist" in proc.stderr


_HUB = "[exchange]\nhub_id = 'H49'\n{extra}\n[exchange.hubs.H49]\nroot_unit = '000.00.00.H49'\n"


@pytest.mark.parametrize(
    ("server", "extra", "message"),
    [
        (
            "",
            "max_package_bytes = 16777216",
            "exchange.max_package_bytes: 16777216 does not fit a Delivery under"
            " server.max_message_bytes (16777216, of which 1048576 are kept for its other"
            " fields); at most 15728640",
        ),
        (
            "[server]\nmax_message_bytes = 8388608\n",
            "",
            "exchange.max_package_bytes: 15728640 does not fit a Delivery",
        ),
        ("", "max_expanded_bytes = 0", "exchange.max_expanded_bytes: must be at least 1"),
        ("", "max_delivery_attempts = 0", "exchange.max_delivery_attempts: must be at least 1"),
    ],
)
def test_package_limits_must_let_every_package_be_delivered(write_config, server, extra, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        load_config(write_config(server + _HUB.format(extra=extra), base=False))


def test_package_limits_that_fit_are_taken(write_config):
    path = write_config(
        "[server]\nmax_message_bytes = 33554432\n"
        + _HUB.format(extra="max_package_bytes = 32505856\nmax_forward_attempts = 3"),
        base=False,
    )
    exchange = load_config(path).exchange
    assert (exchange.max_package_bytes, exchange.max_forward_attempts) == (32505856, 3)
    assert (exchange.max_expanded_bytes, exchange.max_delivery_attempts) == (64 * 1024**2, 5)


def test_verify_algorithms_reach_the_servers_policy(write_config):
    from kyso.app import verification_policy
    from signer.verify.algorithms import SHIPPED_RULES, AlgorithmRules

    assert verification_policy(load_config(write_config(""))).algorithms == AlgorithmRules.shipped()
    path = write_config("[verify]\nalgorithms = 'rules.toml'\n")
    rules = path.parent / "rules.toml"
    rules.write_text(SHIPPED_RULES.read_text().replace("2014-01-01", "2030-01-01"))
    policy = verification_policy(load_config(path))
    assert policy.algorithms.digest_until("sha1")[1].year == 2030
    rules.write_text("[digests]\nsha1 = { until = 'soon' }\n")
    with pytest.raises(ConfigError, match="^verify.algorithms: .*digests.sha1.until"):
        verification_policy(load_config(path))
