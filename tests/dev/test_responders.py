"""The responders child process: starts, answers, stops; a taken port is a clear error."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from kyso.dev.responders import Responders, RespondersError, free_port


def test_start_answer_stop(dev_env):
    pki = replace(dev_env.pki, port=free_port())
    pki = replace(pki, url_prefix=f"http://127.0.0.1:{pki.port}")
    responders = Responders(pki=pki)
    with responders:
        assert responders.running
        with urllib.request.urlopen(pki.root_certificate_url) as response:  # noqa: S310
            assert response.status == 200
    assert not responders.running
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(pki.root_certificate_url, timeout=2)  # noqa: S310


def test_a_port_in_use_is_reported(dev_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The probe goes to port 1 (nothing there) so only the child's exit can end start().
        pki = replace(dev_env.pki, port=port, url_prefix="http://127.0.0.1:1")
        responders = Responders(pki=pki)
        with pytest.raises(RespondersError, match="port"):
            responders.start(timeout=20)
        assert not responders.running
