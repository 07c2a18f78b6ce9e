"""The console's settings are checked at start (unknown keys, unreadable secrets, bad values
refused with the key named), and its words exist in both languages with their diacritics."""

from __future__ import annotations

import hashlib
import string
from pathlib import Path

import pytest

from kyso.errors import ConfigError
from kyso.web.i18n import EVENT_TEXT, MESSAGES, translate
from kyso.web.settings import DEFAULT_MAX_UPLOAD, load_settings


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "api.token").write_text("token-of-the-console\n")
    (tmp_path / "auditor.token").write_text("token-of-an-auditor\n")
    path = tmp_path / "web.toml"
    path.write_text('token_file = "api.token"\n' + text)
    return path


def test_defaults_and_auditors(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"other").hexdigest()
    settings = load_settings(
        _write(
            tmp_path,
            '[auditors.a]\ntoken_file = "auditor.token"\n'
            f'[auditors.b]\ntoken_sha256 = "{digest}"\n',
        )
    )
    assert settings.listen == "127.0.0.1:8080"
    assert settings.host_port == ("127.0.0.1", 8080)
    assert settings.max_upload_bytes == DEFAULT_MAX_UPLOAD
    assert settings.api_token == "token-of-the-console"
    assert [a.name for a in settings.auditors] == ["a", "b"]
    assert settings.auditors[0].token_sha256 == hashlib.sha256(b"token-of-an-auditor").digest()
    assert "token-of" not in repr(settings)
    assert settings.metrics_address == ""
    assert settings.operators == ()


def test_operators_and_the_metrics_address(tmp_path: Path) -> None:
    (tmp_path / "operator.token").write_text("token-of-an-operator\n")
    settings = load_settings(
        _write(
            tmp_path,
            'metrics_address = "127.0.0.1:9464"\n'
            '[auditors.a]\ntoken_file = "auditor.token"\n'
            '[operators.o]\ntoken_file = "operator.token"\n',
        )
    )
    assert settings.metrics_address == "127.0.0.1:9464"
    assert [a.name for a in settings.auditors] == ["a"]
    assert [o.name for o in settings.operators] == ["o"]
    assert settings.operators[0].token_sha256 == hashlib.sha256(b"token-of-an-operator").digest()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("listn = 1\n", "'listn'"),
        ('listen = "nowhere"\n', "listen"),
        ("max_upload_bytes = 10\n", "max_upload_bytes"),
        ("public_per_minute = true\n", "public_per_minute"),
        ('[auditors.a]\ntoken_file = "absent.token"\n', "auditors.a.token_file"),
        ('[auditors.a]\ntoken_sha256 = "abcd"\n', "auditors.a.token_sha256"),
        ('[auditors.a]\npassword = "x"\n', "auditors.a"),
        ('[operators.o]\ntoken_file = "absent.token"\n', "operators.o.token_file"),
        ('[operators.o]\ntoken_sha256 = "abcd"\n', "operators.o.token_sha256"),
        ('metrics_address = "nowhere"\n', "metrics_address"),
        (
            '[auditors.a]\ntoken_file = "auditor.token"\n'
            '[operators.o]\ntoken_file = "auditor.token"\n',
            "operators.o has the same token as auditors.a",
        ),
        ("= broken\n", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, text))
    assert named in str(caught.value)


def test_every_message_has_both_languages_and_the_same_placeholders() -> None:
    for key, (vi, en) in {**MESSAGES, **EVENT_TEXT}.items():
        assert vi, key
        assert en, key
        fields = {name for _, name, _, _ in string.Formatter().parse(vi) if name}
        assert fields == {name for _, name, _, _ in string.Formatter().parse(en) if name}, key
    assert translate("not_valid", "vi") == "Không hợp lệ"
    assert translate("too_large", "en", limit=20) == "The file is too large: at most 20 MB."
