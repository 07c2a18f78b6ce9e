"""DirectoryService over a small directory imported at start: units with their serving hub,
children page by page (a page token is the last code of the previous page), search, routes,
and the errors each request gets (code, message and the BadRequest field)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from kyso.app import Application
from kyso.config import Config, load_config
from kyso.server import Server
from kyso.v1 import directory_pb2, directory_pb2_grpc
from tests.support.statuses import bad_request_field

# One server for the module: every request here only reads the directory.
pytestmark = pytest.mark.asyncio(loop_scope="module")

NATION = "000.00.00.H00"
PROVINCE = "000.00.00.H49"
OTHER_PROVINCE = "000.00.00.H41"
DEPARTMENTS = [f"000.00.{n:02d}.H49" for n in range(1, 6)]
UNITS = (
    "code,name,parent_code,level,kind\n"
    f"{NATION},Chính phủ,,1,government\n"
    f"{PROVINCE},UBND tỉnh Quảng Ninh,{NATION},2,province\n"
    f"{OTHER_PROVINCE},UBND tỉnh Nghệ An,{NATION},2,province\n"
    + "".join(
        f"{code},Sở số {code[7:9]} Quảng Ninh,{PROVINCE},3,department\n" for code in DEPARTMENTS
    )
)
AUTH = [("authorization", "Bearer token-of-the-hub")]
BASE = """
[server]
address = "127.0.0.1:0"
metrics_address = ""
grace_seconds = 1

[database]
url = "sqlite:///{home}/kyso.db"

[storage]
path = "{home}/objects"

[clients.hub]
roles = ["hub"]
token_file = "hub.token"
"""
EXCHANGE = """
[exchange]
hub_id = "H49"
directory = "units.csv"
require_signature = false

[exchange.hubs.VN]
root_unit = "000.00.00.H00"
address = "vn.hub.example:443"

[exchange.hubs.H49]
root_unit = "000.00.00.H49"
parent = "VN"
address = "127.0.0.1:1"
"""


def _config(home: Path, *, exchange: bool) -> Config:
    home.mkdir()
    (home / "hub.token").write_text("token-of-the-hub")
    (home / "units.csv").write_text(UNITS, encoding="utf-8")
    path = home / "kyso.toml"
    path.write_text(BASE.format(home=home) + (EXCHANGE if exchange else ""), encoding="utf-8")
    return load_config(path)


@contextlib.asynccontextmanager
async def _serving(config: Config) -> AsyncIterator[directory_pb2_grpc.DirectoryServiceStub]:
    srv = Server(config, Application.open(config))
    await srv.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            yield directory_pb2_grpc.DirectoryServiceStub(channel)
    finally:
        await srv.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def directory(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[directory_pb2_grpc.DirectoryServiceStub]:
    async with _serving(_config(tmp_path_factory.mktemp("hub") / "h49", exchange=True)) as stub:
        yield stub


async def test_a_unit_carries_the_hub_that_serves_it(directory) -> None:
    unit = await directory.GetUnit(directory_pb2.GetUnitRequest(code=DEPARTMENTS[0]), metadata=AUTH)
    assert (unit.code, unit.name, unit.parent_code, unit.level, unit.kind, unit.hub) == (
        DEPARTMENTS[0],
        "Sở số 01 Quảng Ninh",
        PROVINCE,
        3,
        "department",
        "H49",
    )
    top = await directory.GetUnit(directory_pb2.GetUnitRequest(code=NATION), metadata=AUTH)
    assert (top.parent_code, top.hub) == ("", "VN")


@pytest.mark.parametrize(
    ("code", "status", "field"),
    [
        ("x", grpc.StatusCode.INVALID_ARGUMENT, "code"),
        ("000.00.99.H49", grpc.StatusCode.NOT_FOUND, "code"),
    ],
)
async def test_get_unit_refusals(directory, code, status, field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await directory.GetUnit(directory_pb2.GetUnitRequest(code=code), metadata=AUTH)
    assert caught.value.code() is status
    assert bad_request_field(caught.value) == field


async def test_children_page_by_page(directory) -> None:
    codes: list[str] = []
    tokens: list[str] = []
    page_token = ""
    while True:
        page = await directory.ListChildren(
            directory_pb2.ListChildrenRequest(code=PROVINCE, page_size=2, page_token=page_token),
            metadata=AUTH,
        )
        assert all(u.hub == "H49" for u in page.units)
        codes += [u.code for u in page.units]
        page_token = page.next_page_token
        if not page_token:
            break
        tokens.append(page_token)
    assert codes == DEPARTMENTS
    # the token is the code of the last unit of the page before
    assert tokens == [DEPARTMENTS[1], DEPARTMENTS[3]]
    whole = await directory.ListChildren(
        directory_pb2.ListChildrenRequest(code=PROVINCE), metadata=AUTH
    )
    assert ([u.code for u in whole.units], whole.next_page_token) == (DEPARTMENTS, "")
    exact = await directory.ListChildren(
        directory_pb2.ListChildrenRequest(code=PROVINCE, page_size=5), metadata=AUTH
    )
    assert (len(exact.units), exact.next_page_token) == (5, "")
    leaf = await directory.ListChildren(
        directory_pb2.ListChildrenRequest(code=DEPARTMENTS[0]), metadata=AUTH
    )
    assert (list(leaf.units), leaf.next_page_token) == ([], "")


@pytest.mark.parametrize(
    ("request_fields", "status", "field", "message"),
    [
        (
            {"code": PROVINCE, "page_size": -1},
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_size",
            "page_size cannot be negative",
        ),
        (
            {"code": PROVINCE, "page_token": "not-a-code"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token",
            "unit code 'not-a-code' is not of the form 000.00.00.H49",
        ),
        (
            {"code": "000.00.99.H49"},
            grpc.StatusCode.NOT_FOUND,
            "code",
            "unit 000.00.99.H49 is not in the directory",
        ),
    ],
)
async def test_list_children_refusals(directory, request_fields, status, field, message) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await directory.ListChildren(
            directory_pb2.ListChildrenRequest(**request_fields), metadata=AUTH
        )
    assert caught.value.code() is status
    assert message in caught.value.details()
    assert bad_request_field(caught.value) == field


async def test_search_by_words_of_the_name(directory) -> None:
    found = await directory.Search(directory_pb2.SearchRequest(query="quang ninh"), metadata=AUTH)
    assert [u.code for u in found.units] == [PROVINCE, *DEPARTMENTS]
    assert found.units[0].hub == "H49"
    limited = await directory.Search(
        directory_pb2.SearchRequest(query="Quảng Ninh", limit=2), metadata=AUTH
    )
    assert [u.code for u in limited.units] == [PROVINCE, DEPARTMENTS[0]]


@pytest.mark.parametrize(
    ("request_fields", "field", "message"),
    [
        ({"query": "  "}, "query", "give some words of the unit's name"),
        ({"query": "Ninh", "limit": -1}, "limit", "limit cannot be negative"),
    ],
)
async def test_search_refusals(directory, request_fields, field, message) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await directory.Search(directory_pb2.SearchRequest(**request_fields), metadata=AUTH)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == message
    assert bad_request_field(caught.value) == field


async def test_routes_local_and_up_with_the_next_hub_address(directory) -> None:
    local = await directory.Route(directory_pb2.RouteRequest(to_unit=DEPARTMENTS[2]), metadata=AUTH)
    assert (local.kind, local.next_hub, local.next_hub_address) == (
        directory_pb2.ROUTE_KIND_LOCAL,
        "",
        "",
    )
    up = await directory.Route(directory_pb2.RouteRequest(to_unit=OTHER_PROVINCE), metadata=AUTH)
    assert (up.kind, up.next_hub, up.next_hub_address) == (
        directory_pb2.ROUTE_KIND_UP,
        "VN",
        "vn.hub.example:443",
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await directory.Route(directory_pb2.RouteRequest(to_unit="000.00.99.H49"), metadata=AUTH)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_server_without_a_directory_finds_no_unit(tmp_path: Path) -> None:
    async with _serving(_config(tmp_path / "plain", exchange=False)) as stub:
        for call, request in [
            (stub.GetUnit, directory_pb2.GetUnitRequest(code=PROVINCE)),
            (stub.ListChildren, directory_pb2.ListChildrenRequest(code=PROVINCE, page_size=-1)),
            (stub.Search, directory_pb2.SearchRequest(query="")),
            (stub.Route, directory_pb2.RouteRequest(to_unit=PROVINCE)),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(request, metadata=AUTH)
            assert caught.value.code() is grpc.StatusCode.NOT_FOUND
            assert caught.value.details() == (
                "this server keeps no unit directory: set [exchange] hub_id and hubs"
            )
