"""Configuration an operator needs: a database password from a file or a variable (never in
the URL), fingerprints in the spellings tools print, and only database URLs kyso can open."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from kyso import db
from kyso.authz import Authenticator
from kyso.config import load_config, normalise_fingerprint
from kyso.errors import AuthenticationError, ConfigError
from tests.support.db import PG_ADMIN_URL

DIGEST = hashlib.sha256(b"a client certificate").hexdigest()


@pytest.mark.parametrize(
    "spelling",
    [
        DIGEST,
        DIGEST.upper(),
        ":".join(DIGEST[i : i + 2] for i in range(0, 64, 2)).upper(),  # openssl -fingerprint
        "SHA256 Fingerprint=" + ":".join(DIGEST[i : i + 2] for i in range(0, 64, 2)).upper(),
        "sha256:" + DIGEST,
        " ".join(DIGEST[i : i + 4] for i in range(0, 64, 4)),
    ],
)
def test_certificate_fingerprint_spellings_match(write_config, spelling: str):
    config = load_config(
        write_config(f'[clients.cert]\nroles = ["auditor"]\ncertificate_sha256 = "{spelling}"\n')
    )
    assert normalise_fingerprint(spelling) == DIGEST
    identity = Authenticator(config.clients).from_certificate(b"a client certificate")
    assert identity.name == "cert"


def test_a_fingerprint_that_is_not_one_is_refused_at_start(write_config):
    with pytest.raises(ConfigError, match=r"clients.cert.certificate_sha256: .* not a SHA-256"):
        load_config(
            write_config('[clients.cert]\nroles = ["auditor"]\ncertificate_sha256 = "AB:CD"\n')
        )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@h/d", "database.url: scheme 'mysql://' is not supported"),
        ("postgres://u@h/d", "database.url: scheme 'postgres://' is not supported"),
        ("kyso.db", "database.url: scheme 'kyso.db' is not supported"),
        ("postgresql+psycopg://u:secret@h/d", "database.url: a password is never part of the URL"),
    ],
)
def test_database_urls_kyso_cannot_open_are_refused(write_config, url: str, message: str):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(f'[database]\nurl = "{url}"\n', base=False))
    assert str(err.value).startswith(message)
    assert "secret" not in str(err.value)


@pytest.mark.postgres
@pytest.mark.parametrize("source", ["file", "env"])
def test_database_password_from_a_file_or_a_variable(
    write_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
):
    """The engine carries the password read from its source (this server trusts local TCP,
    so the connection proves the URL works, the assertion on ``engine.url`` the password)."""
    role = f"kyso_pw_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
    try:
        host = PG_ADMIN_URL.split("@", 1)[1]
        if source == "file":
            secret = tmp_path / "db.password"
            secret.write_text(password + "\n")
            extra = f'password_file = "{secret}"\n'
        else:
            monkeypatch.setenv("KYSO_TEST_DB_PASSWORD", password)
            extra = 'password_env = "KYSO_TEST_DB_PASSWORD"\n'
        config = load_config(
            write_config(f'[database]\nurl = "postgresql://{role}@{host}"\n{extra}', base=False)
        )
        engine = db.open_engine(config.database)
        try:
            assert engine.url.password == password
            assert password not in str(engine.url)  # printed URLs mask it
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT current_user")).scalar() == role
        finally:
            engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


def test_password_variable_that_is_not_set(write_config, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KYSO_TEST_NO_SUCH_VARIABLE", raising=False)
    config = load_config(
        write_config(
            '[database]\nurl = "postgresql://kyso@127.0.0.1/kyso"\n'
            'password_env = "KYSO_TEST_NO_SUCH_VARIABLE"\n',
            base=False,
        )
    )
    with pytest.raises(ConfigError, match="database.password_env: the variable"):
        db.open_engine(config.database)


def test_token_decides_when_the_certificate_is_pinned_by_no_client(write_config):
    """A token client behind mutual TLS presents a certificate the CA issued but no client
    pins: its token identifies it (the certificate no longer always wins)."""
    config = load_config(
        write_config(f'[clients.cert]\nroles = ["auditor"]\ncertificate_sha256 = "{DIGEST}"\n')
    )
    authenticator = Authenticator(config.clients)
    token_path = config.clients["workflow"].token_file
    assert token_path is not None
    token = token_path.read_text().strip()
    unpinned = b"another certificate from the same CA"
    assert authenticator.identify(certificate_der=unpinned, token=token).name == "workflow"
    assert authenticator.identify(certificate_der=None, token=token).name == "workflow"
    pinned = b"a client certificate"
    assert authenticator.identify(certificate_der=pinned, token=None).name == "cert"
    with pytest.raises(AuthenticationError, match="is not a configured client"):
        authenticator.identify(certificate_der=unpinned, token=None)
    with pytest.raises(AuthenticationError, match="send one client's credentials"):
        authenticator.identify(certificate_der=pinned, token=token)


def test_allowed_values_in_another_case_are_accepted(write_config):
    config = load_config(
        write_config(""),
        environ={"KYSO_SERVER__LOG_LEVEL": "info", "KYSO_SERVER__LOG_FORMAT": "JSON"},
    )
    assert config.server.log_level == "INFO"
    assert config.server.log_format == "json"
