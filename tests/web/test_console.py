"""The auditors' console in a real browser: sign in, verify a PDF signed through the service,
read the summary and details, follow its history in the ledger, download the evidence bundle
and check it with `kyso evidence verify`; a tampered copy is "not valid" with the reason in
Vietnamese; sign-in is required; posts without the form's CSRF token are refused."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from kyso.v1 import common_pb2, exchange_pb2, exchange_pb2_grpc, signing_pb2, signing_pb2_grpc
from tests.signer.pdfgen import make_pdf
from tests.web.conftest import Console

pytestmark = pytest.mark.timeout(600)


def _signed_pdf(console: Console, title: str) -> bytes:
    """A PDF sealed through the service by the development client, with the `seal` key."""
    from kyso.config import load_config

    config = load_config(console.service.config)
    token = config.clients["dev"].token_file.read_text().strip()  # type: ignore[union-attr]
    with grpc.insecure_channel(console.service.address) as channel:
        reply = signing_pb2_grpc.SigningServiceStub(channel).SignPdf(
            signing_pb2.SignPdfRequest(
                document=common_pb2.DocumentInput(content=make_pdf(title=title), filename="qd.pdf"),
                key_alias="seal",
                # Revocation data embedded, so an offline verification can pass.
                level=signing_pb2.SIGNATURE_LEVEL_B_LT,
            ),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=120,
        )
    return bytes(reply.content)


def _send(console: Console, pdf: bytes) -> str:
    """Send ``pdf`` as an edXML attachment from the development unit to a sibling unit (a
    local delivery); return the DocumentId."""
    from kyso.config import load_config

    config = load_config(console.service.config)
    token = config.clients["dev"].token_file.read_text().strip()  # type: ignore[union-attr]
    request = exchange_pb2.SendRequest(from_unit="000.00.21.H49", to_units=["000.00.02.H49"])
    request.fields.subject = "Quyết định về việc cấp giấy phép"
    request.fields.code_number = "15"
    request.fields.code_notation = "QĐ-UBND"
    request.fields.attachments.add(name="qd.pdf", content_type="application/pdf", content=pdf)
    with grpc.insecure_channel(console.service.address) as channel:
        reply = exchange_pb2_grpc.ExchangeServiceStub(channel).Send(
            request, metadata=[("authorization", f"Bearer {token}")], timeout=120
        )
    return str(reply.document_id)


def _sign_in(driver, console: Console, token: str | None = None) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{console.url}/dang-nhap")
    driver.find_element(By.ID, "token").send_keys(token or console.auditor_token)
    _navigate(driver, "sign-in")


def _navigate(driver, element_id: str) -> None:
    """Click ``element_id`` and wait until the page it leads to has replaced this one: a
    click returns before the browser has loaded anything, so reading the page straight
    after it would read the old one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    element = driver.find_element(By.ID, element_id)
    element.click()
    WebDriverWait(driver, 60).until(_replaced(element))


def _upload(driver, form: str, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, f"{form}-file").send_keys(str(path))
    _navigate(driver, f"{form}-submit")


def _text(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, element_id).text)


def _download(driver, downloads: Path, link_id: str, suffix: str) -> Path:
    from selenium.webdriver.common.by import By

    before = set(downloads.iterdir())
    driver.find_element(By.ID, link_id).click()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        new = [p for p in set(downloads.iterdir()) - before if p.name.endswith(suffix)]
        if new:
            return new[0]
        time.sleep(0.2)
    raise AssertionError(f"no {suffix} file was downloaded; the page says: {driver.title}")


def _evidence_verify(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", "evidence", "verify", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_auditor_pages_need_a_sign_in(browser, console: Console) -> None:
    driver = browser
    for page in ("/kiem-tra", "/lich-su", "/so-cai"):
        driver.get(f"{console.url}{page}")
        assert driver.current_url.startswith(f"{console.url}/dang-nhap")
        assert _text(driver, "message") == "Vui lòng đăng nhập để dùng trang này."
    _sign_in(driver, console, token="not-the-token")
    assert _text(driver, "message") == "Mã truy cập không đúng."
    _sign_in(driver, console)
    assert driver.current_url == f"{console.url}/kiem-tra"
    assert "Kiểm tra chữ ký số trên tệp PDF" in driver.page_source
    cookie = driver.get_cookie("kyso_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # served over plain HTTP here; Secure under TLS


def test_verify_history_and_evidence_bundle(
    browser, console: Console, downloads: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    signed = _signed_pdf(console, "Quyet dinh 15/QD-UBND")
    pdf = tmp_path / "quyet-dinh.pdf"
    pdf.write_bytes(signed)
    _sign_in(driver, console)
    _upload(driver, "verify", pdf)

    assert driver.current_url.startswith(f"{console.url}/ket-qua/")
    assert _text(driver, "overall").startswith("Kết luận chung: Hợp lệ")
    first = _text(driver, "sig-1")
    assert first.startswith("Chữ ký 1: Hợp lệ")
    assert "(+07:00)" in first
    details = _text(driver, "details-1")
    for label in ("Chứng thư số", "Chuỗi chứng thư", "Mức PAdES đạt được", "Thuật toán"):
        assert label in details
    timeline = _text(driver, "timeline")
    assert "Phiên bản 0: bản gốc" in timeline
    assert "Phiên bản 1: Chữ ký 1" in timeline
    sha256 = _text(driver, "document-sha256")

    report = json.loads(_download(driver, downloads, "download-json", ".json").read_text())
    assert report["document_sha256"] == sha256
    assert report["indication"] == "TOTAL-PASSED"

    # The history: the sealing event, proven once a head covers it (heads every second).
    _navigate(driver, "see-history")
    deadline = time.monotonic() + 60
    while "đã kiểm tra ✓" not in _text(driver, "events"):
        assert time.monotonic() < deadline, _text(driver, "events")
        time.sleep(1)
        driver.refresh()
    row = driver.find_element(By.CSS_SELECTOR, "tr[data-type='signature.sealed']")
    assert "Đóng dấu số" in row.text
    assert "đã kiểm tra ✓" in row.text
    assert _text(driver, "head-signature") == "Hợp lệ"

    driver.back()
    bundle = _download(driver, downloads, "download-bundle", ".zip")
    checked = _evidence_verify(bundle)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith(f"consistent: document {sha256}")
    assert "ledger entries, sealed report)" in checked.stdout
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        assert {"document.pdf", "report.json", "report.pdf", "ledger/entries.jsonl"} <= names
        assert archive.read("document.pdf") == signed

    # A tampered bundle: one ledger entry changed (manifest left alone) is named.
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(tampered, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "ledger/entries.jsonl":
                data = data.replace(b"signature.sealed", b"signature.prepared", 1)
            target.writestr(name, data)
    refused = _evidence_verify(tampered)
    assert refused.returncode == 1
    assert "ledger/entries.jsonl does not match its SHA-256" in refused.stdout
    # A forged report (the manifest rehashed to match) breaks kyso's seal on it.
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(forged, "w") as target:
        files = {name: source.read(name) for name in source.namelist()}
        # One byte of the page size, inside the range the seal covers.
        files["report.pdf"] = files["report.pdf"].replace(b"595", b"596", 1)
        manifest = json.loads(files["manifest.json"])
        manifest["files"]["report.pdf"] = hashlib.sha256(files["report.pdf"]).hexdigest()
        files["manifest.json"] = json.dumps(manifest).encode()
        for name, data in files.items():
            target.writestr(name, data)
    forged_check = _evidence_verify(forged)
    assert forged_check.returncode == 1
    assert "report.pdf: its seal does not verify" in forged_check.stdout

    # The sealed PDF report downloads and carries kyso's signature.
    sealed = _download(driver, downloads, "download-pdf", ".pdf")
    assert b"/ByteRange" in sealed.read_bytes()


def test_a_tampered_copy_is_not_valid_with_the_reason_in_vietnamese(
    browser, console: Console, tmp_path: Path
) -> None:

    signed = _signed_pdf(console, "Quyet dinh 16/QD-UBND")
    # Change one byte of the signed page content (inside the signed byte range).
    position = signed.index(b"Quyet dinh 16")
    tampered = signed[:position] + b"X" + signed[position + 1 :]
    path = tmp_path / "sua-doi.pdf"
    path.write_bytes(tampered)
    driver = browser
    _sign_in(driver, console)
    _upload(driver, "verify", path)
    overall = _text(driver, "overall")
    assert overall.startswith("Kết luận chung: Không hợp lệ"), overall
    signature = _text(driver, "sig-1")
    assert signature.startswith("Chữ ký 1: Không hợp lệ")
    assert "nội dung đã bị thay đổi" in signature
    # The ledger knows nothing of the altered bytes: no bundle, and the reason in words.
    _navigate(driver, "download-bundle")
    assert _text(driver, "error").startswith("Chưa thể lập gói bằng chứng")
    driver.back()


def test_history_by_document_id_shows_the_route(browser, console: Console, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    signed = _signed_pdf(console, "Quyet dinh 18/QD-UBND")
    document_id = _send(console, signed)
    driver = browser
    _sign_in(driver, console)
    driver.get(f"{console.url}/lich-su")
    driver.find_element(By.ID, "document_id").send_keys(document_id)
    _navigate(driver, "look-up")
    events = _text(driver, "events")
    assert "Gửi văn bản" in events
    assert "Đến hộp thư đơn vị nhận" in events
    route = _text(driver, "route").splitlines()
    assert len(route) == 2
    assert "Gửi văn bản — 000.00.21.H49" in route[0]
    assert "Đến hộp thư đơn vị nhận — 000.00.02.H49 (01)" in route[1]
    assert all("(+07:00)" in line for line in route)
    # The dropped file finds the same package events (the PDF travelled as an attachment),
    # after its sealing.
    path = tmp_path / "qd.pdf"
    path.write_bytes(signed)
    driver.get(f"{console.url}/lich-su")
    _upload(driver, "history", path)
    kinds = [
        row.get_attribute("data-type")
        for row in driver.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    ]
    assert kinds == ["signature.sealed", "package.sent", "package.delivered"]


def test_english_switch_and_the_ledger_consistency_check(browser, console: Console) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    _sign_in(driver, console)
    driver.get(f"{console.url}/so-cai")
    deadline = time.monotonic() + 30
    while not driver.find_elements(By.ID, "head-json"):
        assert time.monotonic() < deadline
        time.sleep(1)
        driver.refresh()
    head = json.loads(_text(driver, "head-json"))
    assert _text(driver, "head-signature") == "Hợp lệ"
    _check_consistency(driver, head)
    assert _text(driver, "consistency").startswith("Nhất quán")
    _check_consistency(driver, {**head, "root_hash": "00" * 32})
    assert _text(driver, "consistency").startswith("KHÔNG nhất quán: ")
    if head["tree_size"] > 1:
        _check_consistency(driver, {"tree_size": head["tree_size"] - 1, "root_hash": "11" * 32})
        assert "các mục cũ đã bị thay đổi" in _text(driver, "consistency")
    _check_consistency(driver, "không phải đầu cây")
    assert _text(driver, "consistency").startswith("Không đọc được đầu cây đã dán")

    _navigate(driver, "lang-switch")
    assert driver.find_element(By.TAG_NAME, "h1").text == "The audit ledger"
    assert _text(driver, "head-signature") == "Valid"
    _navigate(driver, "lang-switch")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Sổ cái kiểm toán"


def _check_consistency(driver, head: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    box = driver.find_element(By.ID, "old_head")
    text = head if isinstance(head, str) else json.dumps(head)
    driver.execute_script("arguments[0].value = arguments[1];", box, text)
    driver.find_element(By.ID, "check-consistency").click()
    WebDriverWait(driver, 60).until(_replaced(box))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the status itself is what the test reads


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """The status of a POST (redirects are not followed)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=60) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _multipart(fields: dict[str, str], file: bytes | None = None) -> tuple[bytes, str]:
    boundary = "kysotestboundary"
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    if file is not None:
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n".encode()
        )
        out.write(file + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def test_posts_without_the_csrf_token_are_refused(browser, console: Console, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    _sign_in(driver, console)
    session = driver.get_cookie("kyso_session")["value"]
    csrf = driver.find_element(By.NAME, "csrf").get_attribute("value")
    cookie = f"kyso_session={session}"
    pdf = _signed_pdf(console, "Quyet dinh 17/QD-UBND")
    url = f"{console.url}/kiem-tra"

    body, kind = _multipart({}, pdf)
    assert _post(url, body, {"Content-Type": kind, "Cookie": cookie}) == 403
    body, kind = _multipart({"csrf": "guessed"}, pdf)
    assert _post(url, body, {"Content-Type": kind, "Cookie": cookie}) == 403
    body, kind = _multipart({"csrf": csrf}, pdf)
    foreign = {"Content-Type": kind, "Cookie": cookie, "Origin": "http://evil.example"}
    assert _post(url, body, foreign) == 403
    assert _post(url, body, {"Content-Type": kind, "Cookie": cookie}) == 303  # the real form
    # Signed out: the same post with a valid-looking token is refused too.
    assert _post(url, body, {"Content-Type": kind}) == 403
    # Uploads are bounded before they are read.
    huge = {"Content-Type": kind, "Cookie": cookie, "Content-Length": str(10**9)}
    assert _post(url, b"", huge) == 413
    # The public page: CSRF too, then a rate limit per address.
    public = f"{console.url}/cong-khai"
    assert _post(public, *_public(body, kind)) == 403
    driver.get(public)
    path = tmp_path / "ket-qua.pdf"
    path.write_bytes(pdf)
    _upload(driver, "public", path)
    assert _text(driver, "overall").startswith("Kết luận chung: Hợp lệ")
    statuses = []
    for _ in range(5):
        driver.get(public)
        _upload(driver, "public", path)
        statuses.append("error" if driver.find_elements(By.ID, "error") else "ok")
    assert statuses[-1] == "error"
    assert _text(driver, "error") == "Bạn đã tra cứu quá nhiều lần. Vui lòng thử lại sau một phút."


def _public(body: bytes, kind: str) -> tuple[bytes, dict[str, str]]:
    return body, {"Content-Type": kind}


def test_the_console_logs_no_document_token_or_query(console: Console) -> None:
    """Runs after the others in this module: what they did left no trace of a document, a
    DocumentId, a token, a file name or a query string in the console's log."""
    log = console.log.read_text(encoding="utf-8", errors="replace")
    assert "request method=" in log  # it does log each request
    for secret in (console.auditor_token, "quyet-dinh", "sua-doi", "ket-qua.pdf", "QĐ-UBND"):
        assert secret not in log
    assert "sha256=" not in log
    assert "%PDF" not in log
    assert "?" not in "".join(
        line.partition("route=")[2].split()[0] for line in log.splitlines() if "route=" in line
    )


def _replaced(element: Any) -> Callable[[Any], bool]:
    """Wait condition: ``element`` belongs to a page that has been replaced. Chromium reports
    an element of the old page as stale or, while the new page loads, as a node that "does not
    belong to the document": both mean the page moved on."""
    from selenium.common.exceptions import WebDriverException

    def check(_driver: Any) -> bool:
        try:
            element.is_enabled()
        except WebDriverException:
            return True
        return False

    return check
