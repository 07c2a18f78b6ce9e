"""`make run`-style: the development configuration (one hub, H49), `kyso serve` as a child
process, and the exchange commands: send from a commune to a department, the department's
inbox, statuses 01 then 03 at the sender, and the directory tools offline."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest

from kyso.v1 import directory_pb2, directory_pb2_grpc
from tests.kyso.served import Served, serve
from tests.signer.pdfgen import make_pdf

pytestmark = pytest.mark.slow

COMMUNE = "000.21.30.H49"  # UBND phường 01 (thành phố Hạ Long)
DEPARTMENT = "000.00.02.H49"  # Sở Nội vụ Quảng Ninh
DEPARTMENT_NAME = "Sở Nội vụ Quảng Ninh"
COMMUNE_NAME = "UBND phường 01 (thành phố Hạ Long)"


@pytest.fixture(scope="module")
def served(dev_env, tmp_path_factory) -> Iterator[Served]:
    running = serve(dev_env, tmp_path_factory.mktemp("dev-exchange"))
    try:
        yield running
    finally:
        assert running.stop() == 0


def _ok(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def _status(served, document_id: str) -> list[str]:
    argv = ["status", "--document", document_id, "--from", COMMUNE, "--json"]
    [recipient] = json.loads(_ok(served.kyso(*argv)))["recipients"]
    return [
        recipient["unit_code"],
        recipient["state"],
        recipient["status_code"],
        *([recipient["description"]] if recipient["description"] else []),
    ]


def test_send_inbox_and_statuses_with_the_dev_configuration(served, tmp_path) -> None:
    source = tmp_path / "qd.pdf"
    source.write_bytes(make_pdf())
    signed = tmp_path / "qd-signed.pdf"
    _ok(served.kyso("sign", str(source), "-o", str(signed), "--key", "seal"))

    sent = _ok(
        served.kyso(
            "send",
            "--from",
            COMMUNE,
            "--to",
            DEPARTMENT,
            "--subject",
            "Về việc báo cáo tình hình thực hiện",
            "--number",
            "15",
            "--notation",
            "UBND",
            str(signed),
            "--lang",
            "en",
        )
    ).splitlines()
    document_id = sent[0]
    assert document_id.startswith(f"{COMMUNE},")
    assert document_id.endswith(",15/UBND")
    assert sent[1].split("\t")[:3] == [
        f"{DEPARTMENT_NAME} ({DEPARTMENT})",
        "delivered",
        "01 Arrived",
    ]

    assert _status(served, document_id)[:3] == [DEPARTMENT, "delivered", "01"]

    inbox = _ok(
        served.kyso("inbox", "--unit", DEPARTMENT, "--ack", "--save", str(tmp_path), "--lang", "en")
    )
    [line, *checks] = inbox.splitlines()
    delivery_id, listed_id, sender, subject, trace = line.split("\t")
    assert (listed_id, sender) == (document_id, f"from {COMMUNE_NAME} ({COMMUNE})")
    assert subject == "Về việc báo cáo tình hình thực hiện"
    assert trace == "trace 000.00.00.H49"
    assert checks[0].startswith("\tpackage: signed by ")
    assert checks[1].startswith("\tqd-signed.pdf: ")
    assert "(1 signature(s))" in checks[1]
    assert (tmp_path / f"{delivery_id}.edxml").read_bytes().startswith(b"<?xml")
    # acknowledged: the inbox is empty now, and the sender sees it
    assert _ok(served.kyso("inbox", "--unit", DEPARTMENT)) == ""
    assert _status(served, document_id)[:3] == [DEPARTMENT, "acknowledged", "01"]

    _ok(
        served.kyso(
            "status", "--set", "03", "--document", document_id, "--unit", DEPARTMENT,
            "--from", COMMUNE, "--description", "Đã vào sổ",
        )
    )  # fmt: skip
    assert _status(served, document_id) == [DEPARTMENT, "acknowledged", "03", "Đã vào sổ"]

    again = served.kyso("status", "--set", "01", "--document", document_id, "--unit", DEPARTMENT)
    assert again.returncode == 1
    assert "INVALID_ARGUMENT" in again.stderr  # 01 is no status a recipient sets (issue 17)
    assert "recorded on delivery" in again.stderr


def test_a_unit_outside_the_clients_reach_is_refused(served) -> None:
    result = served.kyso("send", "--from", "000.00.02.H41", "--to", DEPARTMENT, "--subject", "Thử")
    assert result.returncode == 1
    assert "PERMISSION_DENIED" in result.stderr
    assert "000.00.02.H41" in result.stderr


def test_directory_export_and_import_offline(served, tmp_path) -> None:
    exported = tmp_path / "units.csv"
    assert "exported 718 units" in _ok(served.kyso("directory", "export", str(exported)))
    rows = exported.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "code,name,parent_code,level,kind,hub"
    broken = tmp_path / "broken.csv"
    broken.write_text(
        "code,name,parent_code,level,kind\n000.00.99.H49,Sở Thử,000.99.99.H49,2,department\n",
        encoding="utf-8",
    )
    result = served.kyso("directory", "import", str(broken))
    assert result.returncode == 1
    assert "line 2" in result.stderr
    assert "nothing was imported" in result.stderr
    assert "imported 718 units" in _ok(served.kyso("directory", "import", str(exported)))


def test_directory_service(served, dev_env) -> None:
    auth = [("authorization", f"Bearer {dev_env.api_token_path.read_text().strip()}")]
    with grpc.insecure_channel(served.address) as channel:
        stub = directory_pb2_grpc.DirectoryServiceStub(channel)
        unit = stub.GetUnit(directory_pb2.GetUnitRequest(code=COMMUNE), metadata=auth)
        assert (unit.name, unit.parent_code, unit.level, unit.hub) == (
            "UBND phường 01 (thành phố Hạ Long)",
            "000.00.30.H49",
            3,
            "H49",
        )
        codes, token = [], ""
        while True:
            page = stub.ListChildren(
                directory_pb2.ListChildrenRequest(
                    code="000.00.00.H49", page_size=10, page_token=token
                ),
                metadata=auth,
            )
            codes += [u.code for u in page.units]
            token = page.next_page_token
            if not token:
                break
        assert len(codes) == len(set(codes)) == 34
        assert codes == sorted(codes)
        for query in ("Hạ Long", "ha long"):
            found = stub.Search(directory_pb2.SearchRequest(query=query, limit=5), metadata=auth)
            assert found.units[0].name == "UBND thành phố Hạ Long"
        local = stub.Route(directory_pb2.RouteRequest(to_unit=DEPARTMENT), metadata=auth)
        assert (local.kind, local.next_hub) == (directory_pb2.ROUTE_KIND_LOCAL, "")
        with pytest.raises(grpc.RpcError) as caught:
            stub.Route(directory_pb2.RouteRequest(to_unit="000.00.02.H41"), metadata=auth)
        assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "no hub serves unit 000.00.02.H41" in caught.value.details()
