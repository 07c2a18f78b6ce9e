"""The clerk's commands as a văn thư uses them (issue 22), against `kyso serve` with the
development configuration: the inbox listed without taking a lease, chosen ids acknowledged,
units by name and statuses as words, a recipient's whole history, a unit found by name with or
without diacritics, the directory exported to standard output, a signature request followed and
cancelled by its id, a saved edXML package verified, and every result as JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kyso.served import Served, serve
from tests.signer.pdfgen import make_pdf

pytestmark = pytest.mark.slow

COMMUNE = "000.21.30.H49"  # UBND phường 01 (thành phố Hạ Long)
DEPARTMENT = "000.00.02.H49"  # Sở Nội vụ Quảng Ninh
DEPARTMENT_NAME = "Sở Nội vụ Quảng Ninh"


@pytest.fixture(scope="module")
def served(dev_env, tmp_path_factory) -> Iterator[Served]:
    running = serve(dev_env, tmp_path_factory.mktemp("clerk"))
    try:
        yield running
    finally:
        assert running.stop() == 0


def ok(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def as_json(result):
    return json.loads(ok(result))


def send(served, tmp_path, subject: str) -> str:
    source = tmp_path / "qd.pdf"
    source.write_bytes(make_pdf(title=subject))
    signed = tmp_path / "qd-signed.pdf"
    ok(served.kyso("sign", str(source), "-o", str(signed), "--key", "seal"))
    sent = as_json(
        served.kyso(
            "send", "--from", COMMUNE, "--to", DEPARTMENT, "--subject", subject, str(signed),
            "--json",
        )
    )  # fmt: skip
    assert sent["recipients"][0]["unit_name"] == DEPARTMENT_NAME
    assert sent["recipients"][0]["status"] == "01 Đã đến"
    return str(sent["document_id"])


def test_the_inbox_is_listed_without_a_lease_and_chosen_ids_are_acknowledged(
    served, tmp_path
) -> None:
    first = send(served, tmp_path, "Về việc thứ nhất")
    second = send(served, tmp_path, "Về việc thứ hai")

    listed = as_json(served.kyso("inbox", "--unit", DEPARTMENT, "--json"))
    assert listed["leased"] is False
    assert listed["unit_name"] == DEPARTMENT_NAME
    ids = {d["document_id"]: d["delivery_id"] for d in listed["deliveries"]}
    assert {first, second} <= set(ids)
    assert all(d["lease_until"] is None for d in listed["deliveries"])
    assert listed["deliveries"][0]["from_unit_name"].startswith("UBND phường 01")
    # listing took nothing: a second look shows the same documents
    again = as_json(served.kyso("inbox", "--unit", DEPARTMENT, "--json"))
    assert {d["delivery_id"] for d in again["deliveries"]} == {
        d["delivery_id"] for d in listed["deliveries"]
    }
    text = served.kyso("inbox", "--unit", DEPARTMENT)
    assert "Chỉ xem, chưa giữ văn bản nào" in text.stderr
    assert f"từ UBND phường 01 (thành phố Hạ Long) ({COMMUNE})" in ok(text)

    # acknowledge the first only, by its id
    acked = as_json(served.kyso("inbox", "--unit", DEPARTMENT, "--ack", ids[first], "--json"))
    assert acked["acknowledged"] == [ids[first]]
    assert acked["newly"] == 1
    left = as_json(served.kyso("inbox", "--unit", DEPARTMENT, "--json"))
    assert ids[first] not in {d["delivery_id"] for d in left["deliveries"]}
    assert ids[second] in {d["delivery_id"] for d in left["deliveries"]}

    # taking says for how long
    taken = served.kyso("inbox", "--unit", DEPARTMENT, "--take", "--lang", "en")
    assert re.search(r"leased for \d+ s: hidden from others", taken.stderr), taken.stderr
    # and --ack alone acknowledges what is listed, leased or not
    done = as_json(served.kyso("inbox", "--unit", DEPARTMENT, "--ack", "--json"))
    assert ids[second] in done["acknowledged"]
    assert as_json(served.kyso("inbox", "--unit", DEPARTMENT, "--json"))["deliveries"] == []


def test_status_shows_each_recipients_history_with_names_words_times_and_staff(
    served, tmp_path
) -> None:
    document = send(served, tmp_path, "Về việc báo cáo")
    ok(served.kyso("inbox", "--unit", DEPARTMENT, "--ack"))
    for code, note, staff in (("03", "Đã vào sổ", "Lê Văn C"), ("05", "Chuyển phòng TCCB", "")):
        argv = ["status", "--set", code, "--document", document, "--unit", DEPARTMENT]
        argv += ["--from", COMMUNE, "--description", note, "--staff", staff, "--json"]
        assert as_json(served.kyso(*argv))["status"].startswith(code)

    tracked = as_json(served.kyso("status", "--document", document, "--from", COMMUNE, "--json"))
    [recipient] = tracked["recipients"]
    assert recipient["unit"] == f"{DEPARTMENT_NAME} ({DEPARTMENT})"
    assert recipient["state_text"] == "đã nhận"
    assert recipient["status"] == "05 Đang xử lý"
    assert recipient["business_type_text"] == "văn bản mới"
    history = recipient["history"]
    assert [h["status"] for h in history] == ["01 Đã đến", "03 Đã tiếp nhận", "05 Đang xử lý"]
    assert history[1]["staff"] == "Lê Văn C"
    assert history[1]["description"] == "Đã vào sổ"
    assert all(h["at"] for h in history)

    text = ok(served.kyso("status", "--document", document, "--from", COMMUNE))
    assert f"{DEPARTMENT_NAME} ({DEPARTMENT})\tđã nhận\t05 Đang xử lý" in text
    assert "03 Đã tiếp nhận\tLê Văn C\tĐã vào sổ" in text
    assert "+07:00" in text

    wrong = served.kyso("status", "--document", document, "--from", "000.00.03.H49")
    assert wrong.returncode == 1
    assert "sent from unit 000.00.03.H49" in wrong.stderr
    assert "--from" in wrong.stderr


def test_a_unit_is_found_by_name_with_or_without_diacritics(served) -> None:
    for query in ("Sở Nội vụ", "so noi vu"):
        found = as_json(served.kyso("directory", "search", query, "--json"))
        assert DEPARTMENT in [u["code"] for u in found], found
    text = ok(served.kyso("directory", "search", "so noi vu"))
    assert f"{DEPARTMENT}\t{DEPARTMENT_NAME}" in text
    nothing = served.kyso("directory", "search", "không có đơn vị này")
    assert nothing.returncode == 1
    assert "Không tìm thấy đơn vị nào" in nothing.stderr


def test_the_directory_is_exported_to_standard_output(served, tmp_path) -> None:
    repo = str(Path(__file__).resolve().parents[2])
    result = served.kyso("directory", "export", "-", cwd=tmp_path, env={"PYTHONPATH": repo})
    rows = ok(result).splitlines()
    assert rows[0] == "code,name,parent_code,level,kind,hub"
    assert len(rows) == 719
    assert not (tmp_path / "-").exists()


def test_a_signature_request_is_followed_and_cancelled_by_its_id(served, dev_env, tmp_path) -> None:
    pdf = tmp_path / "to-trinh.pdf"
    pdf.write_bytes(make_pdf(title="To trinh"))
    certificate = dev_env.keys["official"].certificate_path
    asked = as_json(
        served.kyso("request-signature", str(pdf), "--official", str(certificate), "--json")
    )
    session = asked["session_id"]
    state = as_json(served.kyso("request-signature", "--status", session, "--json"))
    assert (state["state"], state["state_text"], state["filename"]) == (
        "open",
        "đang chờ ký",
        "to-trinh.pdf",
    )
    cancelled = as_json(
        served.kyso("request-signature", "--cancel", session, "--reason", "Gửi nhầm", "--json")
    )
    assert cancelled["state"] == "cancelled"
    text = ok(served.kyso("request-signature", "--status", session))
    assert f"Phiên {session}: đã huỷ" in text
    state = as_json(served.kyso("request-signature", "--status", session, "--json"))
    assert state["closed_by"] == "dev"
    assert state["closed_at"]
    unknown = served.kyso("request-signature", "--status", "0" * 32)
    assert unknown.returncode == 1
    assert "NOT_FOUND" in unknown.stderr


def test_a_saved_edxml_package_is_verified_as_a_package(served, tmp_path) -> None:
    send(served, tmp_path, "Về việc lưu trữ")
    saved = tmp_path / "saved"
    ok(served.kyso("inbox", "--unit", DEPARTMENT, "--ack", "--save", str(saved)))
    [package] = sorted(saved.glob("*.edxml"))
    result = served.kyso("verify", str(package), "--lang", "en")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(edXML)" in result.stdout
    assert "TOTAL-PASSED" in result.stdout
    report = served.kyso("verify", str(package), "--json")
    assert json.loads(report.stdout.splitlines()[0])["kind"] == "edxml"


def test_upload_download_and_sign_print_json(served, tmp_path) -> None:
    source = tmp_path / "bao-cao.pdf"
    source.write_bytes(make_pdf(title="Bao cao"))
    stored = as_json(served.kyso("upload", str(source), "--json"))
    assert stored["ref"].startswith("sha256/")
    assert stored["size"] == source.stat().st_size
    copy = tmp_path / "copy.pdf"
    fetched = as_json(served.kyso("download", stored["ref"], "-o", str(copy), "--json"))
    assert (fetched["ref"], fetched["size"]) == (stored["ref"], stored["size"])
    assert copy.read_bytes() == source.read_bytes()
    signed = tmp_path / "signed.pdf"
    result = as_json(served.kyso("sign", str(source), "-o", str(signed), "--key", "seal", "--json"))
    assert (result["key"], result["level"]) == ("seal", "B-B")
    assert result["ref"].startswith("sha256/")
    assert result["ledger_index"] >= 0
