"""``kyso agent --preview``: the local page shows the pages with the signature box where it
will go, and its "sign these" button hands the choice back to the agent in the terminal; the
page is gone when the agent ends (issue 22). Headless Chromium, the agent in tmux."""

from __future__ import annotations

import re
import shutil
import urllib.error
import urllib.request

import pytest

from tests.signer.pdfgen import make_pdf
from tests.web.conftest import browser, downloads  # noqa: F401 (fixtures)

from .test_agent import pending
from .test_agent_terminal import agent_terminal, ask, running  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def test_the_preview_shows_page_one_with_the_box_and_hands_back(
    running,  # noqa: F811
    dev_env,
    tmp_path,
    capsys,
    browser,  # noqa: F811
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    first = tmp_path / "quyet-dinh.pdf"
    first.write_bytes(make_pdf(title="Quyet dinh 7"))
    second = tmp_path / "cong-van.pdf"
    second.write_bytes(make_pdf(title="Cong van 8"))
    wanted = ask(
        running,
        dev_env,
        capsys,
        first,
        "Quyết định số 7",
        appearance="seal",
        page=1,
        rect="300,80,560,200",
    )
    kept = ask(running, dev_env, capsys, second, "Công văn số 8")

    with agent_terminal(running, dev_env, tmp_path, "--preview", pin=True) as term:
        shown = term.wait_for("Ký văn bản nào?")
        found = re.search(r"(http://127\.0\.0\.1:\d+/[A-Za-z0-9_-]+/)", shown)
        assert found, shown
        url = found.group(1)
        browser.get(url)
        sections = browser.find_elements(By.CSS_SELECTOR, "section.document")
        assert len(sections) == 2
        assert "Quyết định số 7" in sections[0].text
        assert "quyet-dinh.pdf" in sections[0].text
        page_one = sections[0].find_element(By.CSS_SELECTOR, ".page[data-page='1']")
        image = page_one.find_element(By.TAG_NAME, "img")
        WebDriverWait(browser, 60).until(
            lambda _d: browser.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth", image
            )
        )
        assert browser.execute_script("return arguments[0].naturalWidth", image) == 595
        box = page_one.find_element(By.CSS_SELECTOR, ".sig-box")
        frame = browser.execute_script(
            "const p = arguments[0].getBoundingClientRect(),"
            " b = arguments[1].getBoundingClientRect();"
            "return [(b.left - p.left) / p.width, (b.top - p.top) / p.height,"
            " b.width / p.width, b.height / p.height];",
            image,
            box,
        )
        # the box of rect 300,80,560,200 on an A4 page (595 x 842 pt, origin bottom left)
        expected = [300 / 595, (842 - 200) / 842, 260 / 595, 120 / 842]
        assert frame == pytest.approx(expected, abs=0.01)
        assert sections[1].find_elements(By.CSS_SELECTOR, ".invisible")

        # the official unticks the second document and presses "sign these"
        sections[1].find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
        browser.find_element(By.ID, "sign").click()
        WebDriverWait(browser, 30).until(
            expected_conditions.presence_of_element_located((By.ID, "handed-back"))
        )
        assert "nhập mã PIN" in browser.find_element(By.ID, "handed-back").text
        assert term.exit_code() == 0, term.screen()
        shown = term.screen()
    assert "Đã chọn: 1" in shown
    assert "đã ký 1, lỗi 0, còn lại 0" in shown
    assert pending(running, dev_env) == [kept]
    assert wanted != kept
    with pytest.raises(urllib.error.URLError):  # closed with the agent
        urllib.request.urlopen(url, timeout=5)  # noqa: S310 (http, loopback)
