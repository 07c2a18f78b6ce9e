"""The authorisation tables of docs/api.md, checked cell by cell against a running server.

The roles table: every method of every kyso.v1 service (walked from the service descriptors)
has a row, the row is ``kyso.authz.ALLOWED_ROLES``, and a client with only that role is refused
for its role ("may not call") exactly where the table says deny. The relations table: for each
RPC and relation, a real request from a department's client (or a hub) naming a unit of that
relation is PERMISSION_DENIED exactly where the table says deny.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool

from exchange.adapters import HsmSigningKey
from exchange.edxml import MessageHeader, Organization, Package, TraceHeader, build_package
from kyso.app import Application
from kyso.authz import ALLOWED_ROLES
from kyso.certificates import read_certificates
from kyso.config import ROLES, Config, load_config
from kyso.server import Server
from kyso.v1 import (
    archive_pb2,  # noqa: F401 (registers the service descriptors)
    audit_pb2,  # noqa: F401
    directory_pb2,  # noqa: F401
    documents_pb2,
    documents_pb2_grpc,
    exchange_pb2,
    exchange_pb2_grpc,
    notifications_pb2,  # noqa: F401
    signing_pb2,  # noqa: F401
    verification_pb2,  # noqa: F401
)

pytestmark = pytest.mark.timeout(900)

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"
SERVICES = (
    "SigningService",
    "VerificationService",
    "DocumentService",
    "ExchangeService",
    "DirectoryService",
    "AuditService",
    "NotificationService",
    "ArchiveService",
)
ROLE_COLUMNS = ("workflow", "official", "clerk", "auditor", "hub", "operator", "inspector")
RELATIONS = (
    "own unit",
    "unit below",
    "sibling",
    "another province",
    "hub on the route",
    "hub not on the route",
)
DEPARTMENT = "000.00.02.H49"  # Sở Nội vụ Quảng Ninh: the caller's unit
TARGETS = {
    "own unit": DEPARTMENT,
    "unit below": "000.05.02.H49",  # Phòng Kế hoạch - Tài chính (Sở Nội vụ)
    "sibling": "000.00.03.H49",  # Sở Tư pháp Quảng Ninh
    "another province": "000.00.02.H41",  # Sở Nội vụ Nghệ An
}


def _table(heading: str) -> dict[str, dict[str, str]]:
    """The markdown table after ``heading`` in docs/api.md: {RPC: {column: cell}}."""
    lines = API_MD.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    table_start = next(i for i, line in enumerate(lines) if i > start and line.startswith("|"))
    rows = []
    for line in lines[table_start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    header, _, *body = rows
    return {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in body}


def _methods() -> list[tuple[str, bool, bool]]:
    pool = descriptor_pool.Default()
    found = []
    for name in SERVICES:
        service = pool.FindServiceByName(f"kyso.v1.{name}")
        for method in service.methods:
            found.append(
                (
                    f"/kyso.v1.{name}/{method.name}",
                    method.client_streaming,
                    method.server_streaming,
                )
            )
    return found


def test_the_roles_table_is_the_servers_table() -> None:
    table = _table("### Roles")
    methods = {m for m, _, _ in _methods()}
    assert set(table) == methods == set(ALLOWED_ROLES)
    assert set(ROLE_COLUMNS) == ROLES
    for method, cells in table.items():
        assert {c for c, v in cells.items() if v == "allow"} == ALLOWED_ROLES[method], method
        assert set(cells.values()) <= {"allow", "deny"}, method


@pytest.fixture
def matrix_config(dev_env, tmp_path: Path) -> Config:
    from kyso.dev.setup import render_config

    text = render_config(dev_env, address="127.0.0.1:0", data_dir=tmp_path, metrics_address="")
    seal = hashlib.sha256(
        read_certificates([dev_env.keys["seal"].certificate_path])[0].dump()
    ).hexdigest()
    text = text.replace('clients = ["dev"]', 'clients = ["dev", "dept"]')
    text = text.replace(
        'root_unit = "000.00.00.H49"\n', 'root_unit = "000.00.00.H49"\nparent = "G22"\n'
    )
    for hub, parent in (("G22", ""), ("H41", "G22")):
        text += (
            f'\n[exchange.hubs.{hub}]\nroot_unit = "000.00.00.{hub}"\n'
            + (f'parent = "{parent}"\n' if parent else "")
            + f'certificate_sha256 = ["{seal}"]\n'
        )
    clients = {f"only-{role}": (role, DEPARTMENT) for role in ROLE_COLUMNS}
    clients["dept"] = ("workflow", DEPARTMENT)
    clients.update({f"of-{k.replace(' ', '-')}": ("workflow", u) for k, u in TARGETS.items()})
    clients["G22"] = ("hub", "000.00.00.G22")
    clients["H41"] = ("hub", "000.00.00.H41")
    for name, (role, unit) in clients.items():
        (tmp_path / f"{name}.token").write_text(secrets.token_hex(16))
        text += (
            f'\n[clients.{name}]\nroles = ["{role}"]\nunit = "{unit}"\n'
            f'token_file = "{tmp_path / f"{name}.token"}"\n'
        )
    path = tmp_path / "kyso.toml"
    path.write_text(text)
    return load_config(path)


@pytest.fixture
async def running(matrix_config: Config) -> AsyncIterator[Server]:
    app = Application.open(matrix_config)
    server = Server(matrix_config, app)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _auth(config: Config, client: str) -> list[tuple[str, str]]:
    path = config.clients[client].token_file
    assert path is not None
    return [("authorization", f"Bearer {path.read_text().strip()}")]


async def _code(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    """The status a call ends with (OK when it succeeds), and its details."""
    try:
        result = call()
        if hasattr(result, "__aiter__"):
            [item async for item in result]  # type: ignore[attr-defined]
        else:
            await result  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


async def test_every_role_cell_against_the_running_server(running, matrix_config) -> None:
    table = _table("### Roles")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        for method, client_streaming, server_streaming in _methods():
            for role in ROLE_COLUMNS:
                metadata = _auth(matrix_config, f"only-{role}")
                if client_streaming:
                    stream = channel.stream_unary(
                        method, request_serializer=bytes, response_deserializer=bytes
                    )
                    call = _stream_call(stream, metadata)
                elif server_streaming:
                    out = channel.unary_stream(
                        method, request_serializer=bytes, response_deserializer=bytes
                    )
                    call = _call(out, metadata)
                else:
                    unary = channel.unary_unary(
                        method, request_serializer=bytes, response_deserializer=bytes
                    )
                    call = _call(unary, metadata)
                code, details = await _code(call)
                refused = code is grpc.StatusCode.PERMISSION_DENIED and "may not call" in details
                assert refused == (table[method][role] == "deny"), (method, role, code, details)


def _call(multicallable, metadata) -> Callable[[], object]:
    return lambda: multicallable(b"", metadata=metadata, timeout=60)


def _stream_call(multicallable, metadata) -> Callable[[], object]:
    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""

    return lambda: multicallable(nothing(), metadata=metadata, timeout=60)


async def test_every_relation_cell_against_the_running_server(running, matrix_config) -> None:
    table = _table("### Relations")
    assert set(next(iter(table.values()))) == set(RELATIONS)
    dept = _auth(matrix_config, "dept")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        exchange = exchange_pb2_grpc.ExchangeServiceStub(channel)
        documents = documents_pb2_grpc.DocumentServiceStub(channel)
        refs = {}
        for relation, unit in TARGETS.items():
            owner = _auth(matrix_config, f"of-{relation.replace(' ', '-')}")
            stored = await documents.Upload(_upload(unit.encode()), metadata=owner)
            refs[relation] = stored.ref

        def send(unit: str) -> Awaitable[object]:
            request = exchange_pb2.SendRequest(from_unit=unit, to_units=[DEPARTMENT])
            request.fields.subject = "Thử"
            return exchange.Send(request, metadata=dept)

        unit_calls: dict[str, Callable[[str, str], object]] = {
            "Send": lambda unit, _: send(unit),
            "Receive": lambda unit, _: exchange.Receive(
                exchange_pb2.ReceiveRequest(unit_code=unit), metadata=dept
            ),
            "Ack": lambda unit, _: exchange.Ack(
                exchange_pb2.AckRequest(unit_code=unit, delivery_ids=["1"]), metadata=dept
            ),
            "UpdateStatus": lambda unit, _: exchange.UpdateStatus(
                exchange_pb2.UpdateStatusRequest(
                    unit_code=unit, document_id="x", from_unit=DEPARTMENT, status_code="03"
                ),
                metadata=dept,
            ),
            "Track": lambda unit, _: exchange.Track(
                exchange_pb2.TrackRequest(from_unit=unit, document_id="x"), metadata=dept
            ),
            "Download": lambda _, relation: documents.Download(
                documents_pb2.DownloadRequest(ref=refs[relation]), metadata=dept
            ),
            "Stat": lambda _, relation: documents.Stat(
                documents_pb2.StatRequest(ref=refs[relation]), metadata=dept
            ),
            # a filesystem store: FAILED_PRECONDITION once the caller may read the document
            "GetDownloadUrl": lambda _, relation: documents.GetDownloadUrl(
                documents_pb2.GetDownloadUrlRequest(ref=refs[relation]), metadata=dept
            ),
        }
        checked = 0
        for method, cells in table.items():
            name = method.rsplit("/", 1)[1]
            for relation, cell in cells.items():
                if cell == "n/a":
                    continue
                if relation in TARGETS:
                    unit = TARGETS[relation]
                    code, details = await _code(
                        lambda u=unit, r=relation, n=name: unit_calls[n](u, r)
                    )
                else:
                    code, details = await _code(
                        lambda r=relation: _forward(exchange, running, matrix_config, r)
                    )
                denied = code is grpc.StatusCode.PERMISSION_DENIED
                assert denied == (cell == "deny"), (method, relation, code, details)
                checked += 1
    assert checked == 8 * 4 + 2


def _upload(data: bytes):
    yield documents_pb2.UploadRequest(
        metadata=documents_pb2.UploadMetadata(filename="x.txt", content_type="text/plain")
    )
    yield documents_pb2.UploadRequest(chunk=data)


def _forward(exchange, running: Server, config: Config, relation: str) -> object:
    """G22 is on the route H41 → G22 → H49 of a package from Nghệ An; H41 is not."""
    assert running.app.keyring is not None
    hub = "G22" if relation == "hub on the route" else "H41"
    now = datetime.now(UTC)
    package = Package(
        header=MessageHeader(
            from_=Organization(organ_id=TARGETS["another province"], organ_name="Sở Nội vụ"),
            to=(Organization(organ_id=DEPARTMENT),),
            document_id=f"route-{hub}",
            subject="Thử",
        ),
        traces=(TraceHeader(organ_id=TARGETS["another province"], timestamp=now),),
    )
    data = build_package(package, key=HsmSigningKey(ring=running.app.keyring, alias="seal"))
    request = exchange_pb2.ForwardRequest(
        from_hub=hub, hop_id=f"{hub}:1", package=data, to_units=[DEPARTMENT]
    )
    return exchange.Forward(request, metadata=_auth(config, hub))
