"""The console's operator page (`/van-hanh`) in a real browser, over a real `kyso serve` and
its metrics endpoint: an operator signs in on their own page (a wrong token and an auditor's
token are refused there), sees the dependencies serving, each key's certificate with its days
left, the ledger's last signed tree head and its age, the backlogs and the hub, in Vietnamese
and in English; an operator is refused the auditors' pages and an auditor the operator page
(403, the reason in Vietnamese)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from tests.web.conftest import Console
from tests.web.test_console import _navigate, _sign_in, _text

pytestmark = pytest.mark.timeout(600)


def _operator_sign_in(driver, console: Console, token: str | None = None) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{console.url}/van-hanh/dang-nhap")
    driver.find_element(By.ID, "token").send_keys(token or console.operator_token)
    _navigate(driver, "sign-in")


def _status(url: str, session: str) -> int:
    request = urllib.request.Request(url, headers={"Cookie": f"kyso_session={session}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_an_operator_watches_the_server(browser, console: Console) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(f"{console.url}/van-hanh")
    assert driver.current_url.startswith(f"{console.url}/van-hanh/dang-nhap")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Đăng nhập người vận hành"
    assert _text(driver, "message") == "Vui lòng đăng nhập để dùng trang này."
    _operator_sign_in(driver, console, token="not-the-token")
    assert _text(driver, "message") == "Mã truy cập không đúng."
    assert driver.get_cookie("kyso_session") is None
    # An auditor's token opens no operator's session.
    _operator_sign_in(driver, console, token=console.auditor_token)
    assert _text(driver, "message") == "Mã truy cập không đúng."

    _operator_sign_in(driver, console)
    assert driver.current_url == f"{console.url}/van-hanh"
    assert driver.find_element(By.TAG_NAME, "h1").text == "Tình trạng vận hành"
    # The state gauges follow a health check and the head is signed every second: wait for
    # both (the page's own meta refresh is 30 s; reload sooner).
    deadline = time.monotonic() + 90
    while not driver.find_elements(By.ID, "head-size"):
        assert time.monotonic() < deadline, driver.find_element(By.TAG_NAME, "main").text
        time.sleep(1)
        driver.refresh()
    assert not driver.find_elements(By.ID, "metrics-error")
    assert _text(driver, "health-status") == "SERVING"
    dependencies = {
        row.get_attribute("data-dependency"): (row.get_attribute("data-state"), row.text)
        for row in driver.find_elements(By.CSS_SELECTOR, "#dependencies tbody tr")
    }
    assert set(dependencies) == {"database", "hsm", "storage"}
    for state, text in dependencies.values():
        assert state == "up"
        assert "Hoạt động" in text
    tokens = driver.find_elements(By.CSS_SELECTOR, "#tokens tbody tr[data-state='up']")
    assert tokens

    seal = driver.find_element(By.CSS_SELECTOR, "#certificates tr[data-certificate='keys.seal']")
    assert "Khóa seal" in seal.text
    assert "(+07:00)" in seal.text
    days = float(seal.find_element(By.CLASS_NAME, "days").text.split()[0])
    assert days >= 30  # the development certificates are long-lived: not marked
    assert "soon" not in (seal.get_attribute("class") or "")
    assert driver.find_elements(By.CSS_SELECTOR, "#certificates tr[data-certificate='keys.ledger']")

    assert int(_text(driver, "head-size")) >= 0
    assert int(_text(driver, "ledger-entries")) >= int(_text(driver, "head-size"))
    assert "(+07:00)" in _text(driver, "head-time")
    assert _text(driver, "head-age").split()[1] in ("giây", "phút", "giờ", "ngày")
    backlog = driver.find_element(By.CSS_SELECTOR, "#backlogs tr[data-backlog='audit_outbox']")
    assert backlog.text.startswith("Sự kiện chờ ghi vào sổ cái")
    hub = driver.find_element(By.CSS_SELECTOR, "#hubs tr[data-hub='H49']")
    assert "(trục này)" in hub.text
    assert hub.find_element(By.CLASS_NAME, "hops").text == "0"
    # The page reloads itself (no script: a meta refresh).
    refresh = driver.find_element(By.CSS_SELECTOR, "meta[http-equiv='refresh']")
    assert refresh.get_attribute("content") == "30"
    # Only the operator page in the navigation.
    links = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "nav a")]
    assert f"{console.url}/van-hanh" in links
    assert f"{console.url}/kiem-tra" not in links

    # The auditors' pages are not an operator's.
    session = driver.get_cookie("kyso_session")["value"]
    for page in ("/kiem-tra", "/lich-su", "/so-cai"):
        assert _status(f"{console.url}{page}", session) == 403
    driver.get(f"{console.url}/so-cai")
    assert _text(driver, "error") == (
        "Trang này dành cho kiểm tra viên. Bạn đang đăng nhập với vai trò người vận hành."
    )

    driver.get(f"{console.url}/van-hanh")
    _navigate(driver, "lang-switch")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Operations status"
    assert "Key seal" in driver.find_element(By.ID, "certificates").text
    assert "Up" in driver.find_element(By.ID, "dependencies").text
    _navigate(driver, "lang-switch")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Tình trạng vận hành"


def test_an_auditor_is_refused_the_operator_page(browser, console: Console) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    _sign_in(driver, console)
    assert driver.current_url == f"{console.url}/kiem-tra"
    links = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "nav a")]
    assert f"{console.url}/van-hanh" not in links
    session = driver.get_cookie("kyso_session")["value"]
    assert _status(f"{console.url}/van-hanh", session) == 403
    driver.get(f"{console.url}/van-hanh")
    assert _text(driver, "error") == (
        "Trang này chỉ dành cho người vận hành. Bạn đang đăng nhập với vai trò kiểm tra viên."
    )
    # The operator's token opens no auditor's session either.
    _sign_in(driver, console, token=console.operator_token)
    assert _text(driver, "message") == "Mã truy cập không đúng."


@pytest.mark.parametrize(
    ("metrics_address", "notice"),
    [
        ("", "metrics-missing"),
        ("127.0.0.1:{free}", "metrics-error"),
    ],
)
def test_without_metrics_the_page_says_why(
    browser, console: Console, dev_env, tmp_path, metrics_address: str, notice: str
) -> None:
    """No ``metrics_address``: the page says metrics are not configured; one that does not
    answer: the page says it cannot read them. The health answer is shown either way."""
    from selenium.webdriver.common.by import By

    from tests.kyso.served import free_port
    from tests.web.conftest import start_console

    address = metrics_address.format(free=free_port())
    with start_console(dev_env, console.service, tmp_path, metrics_address=address) as other:
        driver = browser
        _operator_sign_in(driver, other)
        assert driver.current_url == f"{other.url}/van-hanh"
        assert _text(driver, "health-status") == "SERVING"
        shown = _text(driver, notice)
        if notice == "metrics-missing":
            assert shown.startswith("Chưa cấu hình địa chỉ số liệu (metrics_address")
        else:
            assert shown.startswith(f"Không đọc được số liệu: http://{address}/metrics")
        assert not driver.find_elements(By.ID, "dependencies")
