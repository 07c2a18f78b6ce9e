"""``kyso agent`` in a real terminal (tmux), as an official uses it (issue 22): the list with
each document's details in Vietnamese, the same document asked twice flagged, the choice typed
in Vietnamese, a wrong PIN then the right one, Ctrl-C in the middle of a batch."""

from __future__ import annotations

import hashlib
import re
import shutil
import sys

import pytest

from kyso.cli.main import main as kyso_main
from tests.signer.pdfgen import make_pdf
from tests.support.terminal import Terminal

from .conftest import REPO, RunningServer, render
from .test_agent import pending

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


@pytest.fixture
def running(dev_env, tmp_path):
    with RunningServer(render(dev_env, tmp_path / "server")) as server:
        yield server


def ask(running, dev_env, capsys, pdf, title, **options) -> str:
    certificate = dev_env.keys["official"].certificate_path
    argv = ["request-signature", str(pdf), "--official", str(certificate), "--title", title]
    argv += ["--config", str(running.config.source), "--server", running.address]
    for name, value in options.items():
        argv += [f"--{name}", str(value)]
    assert kyso_main(argv) == 0
    return capsys.readouterr().out.strip()


def agent_terminal(running, dev_env, tmp_path, *extra, module="kyso.cli.main", pin=False):
    key = dev_env.keys["official"]
    env = {"SOFTHSM2_CONF": str(dev_env.softhsm_conf), "PYTHONPATH": str(REPO)}
    env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8", PYTHONUNBUFFERED="1")
    if pin:
        env["KYSO_TOKEN_PIN"] = key.pin_path.read_text().strip()
    argv = [sys.executable, "-m", module]
    if module != "kyso.cli.main":
        argv += [*extra, "--"]
        extra = ()
    # No --module: the configuration's hsm.module names the token's library (issue 22).
    argv += ["agent", "--token", key.token_label, "--config", str(running.config.source)]
    argv += ["--server", running.address, *extra]
    return Terminal(argv, env=env, cwd=REPO, workdir=tmp_path)


def test_the_official_reads_chooses_in_vietnamese_and_retries_the_pin(
    running, dev_env, tmp_path, capsys
):
    twice = tmp_path / "giay-phep.pdf"
    twice.write_bytes(make_pdf(title="Giay phep xay dung"))
    other = tmp_path / "cong-van.pdf"
    other.write_bytes(make_pdf(title="Cong van 12"))
    placed = {"appearance": "seal", "page": 1, "rect": "300,80,560,200"}
    ask(running, dev_env, capsys, twice, "Giấy phép xây dựng số 1", reason="Phê duyệt", **placed)
    ask(running, dev_env, capsys, other, "Công văn số 12")
    ask(running, dev_env, capsys, twice, "Giấy phép (gửi lại)", **placed)
    pin = dev_env.keys["official"].pin_path.read_text().strip()

    with agent_terminal(running, dev_env, tmp_path) as term:
        shown = term.wait_for("Ký văn bản nào?")
        assert "3 văn bản chờ ký:" in shown
        assert "Tệp: giay-phep.pdf · 1 trang · mức B-B" in shown
        assert "Người đề nghị: Trần Thị Văn Thư (văn thư) (dev)" in shown
        assert "Lý do: Phê duyệt" in shown
        assert "Vị trí chữ ký: trang 1, ô (300, 80)–(560, 200) điểm" in shown
        assert "Vị trí chữ ký: chữ ký số không hiển thị trên trang" in shown
        assert "hết hạn" in shown
        assert "CHÚ Ý: cùng một văn bản với số 3" in shown
        assert "CHÚ Ý: cùng một văn bản với số 1" in shown
        assert shown.count("CHÚ Ý") == 2  # the other document is not flagged
        assert "Đơn vị: " in shown

        term.type("mọi thứ")
        shown = term.wait_for("chọn số từ 1 đến 3")
        assert "“mọi thứ”: chọn số từ 1 đến 3" in shown
        assert "invalid literal" not in shown
        mark = term.mark()
        term.type("tất cả")
        shown = term.wait_for("Mã PIN của token:", after=mark)
        assert "Đã chọn: 1, 2, 3" in shown
        mark = term.mark()
        term.type("0000000")
        shown = term.wait_for("Nhập lại mã PIN")
        assert "Sai mã PIN. Token báo còn ít lần thử PIN." in shown
        term.wait_for("Mã PIN của token:", after=mark)
        term.type(pin)
        assert term.exit_code() == 0, term.screen()
        shown = term.screen()
    assert "đã ký 3, lỗi 0, còn lại 0" in shown
    assert pin not in shown
    assert len(re.findall(r"-> sha256/[0-9a-f]{64}", shown)) == 3
    assert pending(running, dev_env) == []


def test_two_wrong_pins_end_the_run_with_nothing_signed(running, dev_env, tmp_path, capsys):
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(make_pdf(title="A"))
    session = ask(running, dev_env, capsys, pdf, "Quyết định A")
    with agent_terminal(running, dev_env, tmp_path, "--lang", "en") as term:
        term.wait_for("Sign which?")
        term.type("all")
        term.wait_for("PIN of the token:")
        mark = term.mark()
        term.type("0000000")
        term.wait_for("Enter the PIN again")
        term.wait_for("PIN of the token:", after=mark)
        term.type("1111111")
        assert term.exit_code() == 1
        shown = term.screen()
    assert "did not accept the PIN; nothing signed" in shown
    assert shown.count("Wrong PIN.") == 2  # asked again once, never more
    assert pending(running, dev_env) == [session]


def test_ctrl_c_finishes_the_document_in_hand_then_says_what_is_left(
    running, dev_env, tmp_path, capsys
):
    ids = []
    for number in range(5):
        pdf = tmp_path / f"qd-{number}.pdf"
        pdf.write_bytes(make_pdf(title=f"Quyet dinh {number}"))
        ids.append(ask(running, dev_env, capsys, pdf, f"Quyết định số {number}"))
    with agent_terminal(
        running,
        dev_env,
        tmp_path,
        "--delay",
        "2.5",
        module="tests.twophase._faulty_agent",
        pin=True,
    ) as term:
        term.wait_for("Ký văn bản nào?")
        term.type("tat ca")  # without diacritics, as some keyboards type it
        term.wait_for("] 1/5")
        term.interrupt()
        assert term.exit_code() == 130, term.screen()
        shown = term.screen()
    assert "Ctrl-C: ký nốt văn bản đang ký rồi dừng" in shown
    assert "dừng: đã dừng theo yêu cầu (Ctrl-C) sau văn bản đang ký" in shown
    found = re.search(r"đã ký (\d), lỗi 0, còn lại (\d)", shown)
    assert found, shown
    signed, left = int(found.group(1)), int(found.group(2))
    assert signed >= 2, shown  # the one in hand when Ctrl-C came was finished
    assert left >= 1, shown
    assert signed + left == 5, shown
    assert shown.count("chưa ký: ") == left
    assert "Chạy lại kyso agent" in shown
    assert len(pending(running, dev_env)) == left
    fingerprints = {hashlib.sha256(i.encode()).hexdigest() for i in ids}
    assert len(fingerprints) == 5
