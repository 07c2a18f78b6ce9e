"""The time on an official's stamp is the time of signing, not of the request (issue 22).

The official signs later than the clerk asked (here two seconds; in life up to a day): the
agent has the server prepare the document again when it claims it, so the stamp's "Thời gian
ký", the /M entry and the signature time-stamp (B-T) agree within seconds. Before the fix the
stamp showed the moment PrepareSignature ran.
"""

from __future__ import annotations

import io
import re
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from kyso.cli.main import main as kyso_main

from .test_agent import agent, request_signatures, running  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

_VIETNAM = timezone(timedelta(hours=7))
_STAMP_TIME = re.compile(r"Thời\s*gian\s*ký:\s*(\d\d)\.(\d\d)\.(\d{4})\s+(\d\d):(\d\d):(\d\d)")


def _pdf_date(text: str) -> datetime:
    """A PDF date (``D:YYYYMMDDHHmmSS+07'00'``)."""
    found = re.match(r"D:(\d{14})([+-])(\d\d)'?(\d\d)", text)
    assert found, text
    sign = 1 if found.group(2) == "+" else -1
    offset = timezone(sign * timedelta(hours=int(found.group(3)), minutes=int(found.group(4))))
    return datetime.strptime(found.group(1), "%Y%m%d%H%M%S").replace(tzinfo=offset)


def test_the_stamp_shows_the_time_of_signing(running, dev_env, tmp_path, capsys):  # noqa: F811
    [_session] = request_signatures(
        running,
        dev_env,
        tmp_path,
        capsys,
        1,
        appearance="seal",
        page=1,
        rect="300,80,560,200",
        level="B-T",
    )
    # The official comes to it later; whole seconds are shown, so two seconds make any stamp
    # made at the request older than this moment.
    time.sleep(2.0)
    signing_began = datetime.now(_VIETNAM).replace(microsecond=0)
    done = agent(running, dev_env)
    assert done.returncode == 0, done.stdout + done.stderr
    [ref] = re.findall(r"-> (sha256/[0-9a-f]{64})", done.stdout)
    out = tmp_path / "signed.pdf"
    argv = ["download", ref, "-o", str(out), "--config", str(running.config.source)]
    assert kyso_main([*argv, "--server", running.address]) == 0

    reader = PdfFileReader(io.BytesIO(out.read_bytes()))
    [signature] = reader.embedded_regular_signatures
    signed_at = _pdf_date(str(signature.sig_object["/M"]))
    token = signature.signer_info["unsigned_attrs"][0]["values"][0]
    gen_time = token["content"]["encap_content_info"]["content"].parsed["gen_time"].native

    # The stamp text as a person reads it on the page (pdftotext of the rendered appearance).
    text = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    found = _STAMP_TIME.search(text)
    assert found, text
    day, month, year, hour, minute, second = (int(v) for v in found.groups())
    on_stamp = datetime(year, month, day, hour, minute, second, tzinfo=_VIETNAM)

    assert on_stamp == signed_at
    assert on_stamp >= signing_began, (on_stamp, signing_began)
    assert abs((gen_time - on_stamp).total_seconds()) <= 60, (gen_time, on_stamp)
