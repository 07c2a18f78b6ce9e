"""The ``[csc]`` and ``[remote.NAME]`` sections: checked at start, the bad key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from kyso.config import load_config
from kyso.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kyso.toml"
    path.write_text(text)
    return path


def test_a_remote_provider_loads(tmp_path):
    (tmp_path / "secret").write_text("s")
    config = load_config(
        write(
            tmp_path,
            """
[csc]
address = "127.0.0.1:8443"

[remote.vnpt]
kind = "smartca"
url = "https://gateway.example/sca/sp769"
client_id = "sp"
client_secret_file = "secret"
""",
        )
    )
    assert config.csc.sad_seconds == 120.0
    provider = config.remote["vnpt"]
    assert (provider.kind, provider.level, provider.approval_seconds) == ("smartca", "B-LT", 300.0)
    assert provider.client_secret_file == tmp_path / "secret"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            '[remote.x]\nkind = "csc"\nurl = "ftp://h"\nclient_id = "a"\nclient_secret_env = "E"\n',
            "remote.x.url",
        ),
        ('[remote.x]\nkind = "csc"\nurl = "https://h"\nclient_id = "a"\n', "remote.x"),
        (
            '[remote.x]\nkind = "csc"\nurl = "https://h"\nclient_id = "a"\n'
            'client_secret = "inline"\n',
            "client_secret",
        ),
        (
            '[remote.x]\nkind = "other"\nurl = "https://h"\nclient_id = "a"\n'
            'client_secret_env = "E"\n',
            "remote.x.kind",
        ),
        ('[csc]\naddress = "nowhere"\n', "csc.address"),
        ("[csc]\nsad_seconds = 0\n", "csc.sad_seconds"),
        ('[csc]\ncertificate = "c.pem"\n', "csc.private_key"),
    ],
)
def test_bad_sections_are_named(tmp_path, text, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(write(tmp_path, text))
