"""Three real hubs (G22 above H49 and H41), mutual TLS between them, the `kyso` command at the
provinces' unit-facing listeners: send across provinces, statuses back, SIGKILL of the central
hub mid-forward, fan-out to every commune, and refusals of bad input."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from lxml import etree

from exchange.edxml import MessageHeader, Organization, Package, TraceHeader, build_package
from kyso.v1 import common_pb2, documents_pb2, documents_pb2_grpc, exchange_pb2, exchange_pb2_grpc
from tests.hubs.topology import Hub, Topology, eventually
from tests.signer.pdfgen import make_pdf

# Each wait below ends as soon as its condition holds, or fails after topology.CROSSING
# saying what it last saw; the test timeout leaves room for several such waits in a row.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

COMMUNE = "000.21.30.H49"  # UBND phường 01 (thành phố Hạ Long), Quảng Ninh
NOI_VU_NA = "000.00.02.H41"  # Sở Nội vụ Nghệ An
NA_DEPARTMENTS = ("000.00.01.H41", "000.00.02.H41", "000.00.03.H41")
ROUTE = "000.00.00.H49→000.00.00.G22→000.00.00.H41"
E = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DS = "http://www.w3.org/2000/09/xmldsig#"


@pytest.fixture(scope="module")
def hubs(dev_env, tmp_path_factory) -> Iterator[Topology]:
    topology = Topology(dev_env, tmp_path_factory.mktemp("hubs"))
    try:
        topology.start()
        yield topology
    finally:
        codes = topology.stop()
        # every process still running at the end stops cleanly on SIGTERM
        assert all(code in (0, None, -9) for code in codes.values()), codes


def _ok(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def _lines(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.strip().splitlines() if line.strip()]


def _exchange(hub) -> exchange_pb2_grpc.ExchangeServiceStub:
    return exchange_pb2_grpc.ExchangeServiceStub(hub.channel())


def test_a_commune_sends_to_another_province_and_gets_statuses_back(hubs, tmp_path) -> None:
    h49, h41 = hubs.hubs["H49"], hubs.hubs["H41"]
    pdf = tmp_path / "bao-cao.pdf"
    pdf.write_bytes(make_pdf())
    sent = json.loads(
        _ok(
            h49.kyso(
                "send", "--from", COMMUNE, "--to", NOI_VU_NA,
                "--subject", "Về việc báo cáo tình hình thực hiện", str(pdf), "--json",
            )
        )
    )  # fmt: skip
    document_id = sent["document_id"]
    [queued] = sent["recipients"]
    assert (queued["unit_code"], queued["state"], queued["status_code"]) == (
        NOI_VU_NA,
        "queued",
        "",
    )

    inbox = eventually(
        lambda: _ok(h41.kyso("inbox", "--unit", NOI_VU_NA, "--ack", "--lang", "en")),
        what=f"document {document_id} in the inbox of {NOI_VU_NA} at H41",
    )
    [line, *checks] = inbox.splitlines()
    _, listed, sender, subject, trace = line.split("\t")
    assert listed == document_id
    assert sender.startswith("from ")
    assert sender.endswith(f"{COMMUNE})") or sender == f"from {COMMUNE}"
    assert subject == "Về việc báo cáo tình hình thực hiện"
    assert trace == f"trace {ROUTE}"
    assert checks[0].startswith("\tpackage: signed by ")
    assert checks[1].startswith("\tbao-cao.pdf: ")

    def status_at_sender() -> dict:
        argv = ["status", "--document", document_id, "--from", COMMUNE, "--json"]
        [recipient] = json.loads(_ok(h49.kyso(*argv)))["recipients"]
        return recipient

    def seen(recipient: dict) -> list[str]:
        return [
            recipient["unit_code"],
            recipient["state"],
            recipient["status_code"],
            recipient["description"],
        ]

    eventually(
        status_at_sender,
        done=lambda recipient: seen(recipient)[1:3] == ["forwarded", "01"],
        what=f"status 01 of {NOI_VU_NA} back at H49",
    )
    _ok(
        h41.kyso(
            "status", "--set", "03", "--document", document_id, "--unit", NOI_VU_NA,
            "--from", COMMUNE, "--description", "Đã vào sổ",
        )
    )  # fmt: skip
    back = eventually(
        status_at_sender,
        done=lambda recipient: seen(recipient) == [NOI_VU_NA, "forwarded", "03", "Đã vào sổ"],
        what=f"status 03 of {NOI_VU_NA} back at H49",
    )
    assert [h["code"] for h in back["history"]] == ["01", "03"]
    # the central hub saw the same history, and every hop was receipted and ledgered
    assert hubs.hubs["G22"].sql(
        "SELECT e.code FROM exchange_status_events e JOIN exchange_messages m"
        " ON m.id = e.message_id WHERE m.document_id = ? ORDER BY e.id",
        document_id,
    ) == [("01",), ("03",)]
    # the hub that relayed the 03 closes its hop when H49's receipt comes back, just after
    _all_hops_closed(hubs)
    forwarded = h49.sql(
        "SELECT count(*) FROM audit_entries WHERE instr(entry, CAST(? AS BLOB)) > 0",
        "package.forwarded",
    )
    assert forwarded[0][0] >= 1


def _open_hops(hub: Hub) -> list[tuple]:
    """The hops ``hub`` has not closed yet: id, kind, next hub, status, attempts, due, error."""
    return hub.sql(
        "SELECT id, kind, next_hub, status_code, attempts, next_attempt_at,"
        " substr(last_error, 1, 120) FROM exchange_outbox WHERE done_at IS NULL ORDER BY id"
    )


def _all_hops_closed(hubs: Topology) -> None:
    eventually(
        lambda: {hub.id: _open_hops(hub) for hub in hubs.hubs.values()},
        done=lambda open_hops: not any(open_hops.values()),
        what="every hop of every hub closed by its next hub's receipt",
    )


def _send(hub, *, number: int, to: tuple[str, ...]) -> exchange_pb2.SendResponse:
    request = exchange_pb2.SendRequest(from_unit=COMMUNE, to_units=to)
    request.fields.subject = f"Văn bản số {number}"
    request.fields.code_number = str(number)
    request.fields.code_notation = "UBND"
    return _exchange(hub).Send(request, metadata=hub.metadata(), timeout=60)


def _whereabouts(hubs: Topology, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Where each (document, recipient) stands at every hub: delivery state and status."""
    seen: dict[tuple[str, str], list[str]] = {pair: [] for pair in pairs}
    for hub in hubs.hubs.values():
        rows = hub.sql(
            "SELECT m.document_id, d.recipient, d.state, coalesce(d.status, '--')"
            " FROM exchange_deliveries d JOIN exchange_messages m ON m.id = d.message_id"
            " WHERE m.document_id LIKE ?",
            f"{COMMUNE},%,1__/UBND",
        )
        found = {(d, r): f"{hub.id} {state} {status}" for d, r, state, status in rows}
        for pair in pairs:
            seen[pair].append(found.get(pair, f"{hub.id} none"))
    return {pair: ", ".join(where) for pair, where in sorted(seen.items())}


def test_the_central_hub_killed_mid_forward_loses_and_duplicates_nothing(hubs) -> None:
    h49, g22, h41 = hubs.hubs["H49"], hubs.hubs["G22"], hubs.hubs["H41"]
    documents = [
        _send(h49, number=100 + n, to=NA_DEPARTMENTS[: 1 + n % 3]).document_id for n in range(12)
    ]
    expected = {(d, u) for n, d in enumerate(documents) for u in NA_DEPARTMENTS[: 1 + n % 3]}

    # kill G22 as soon as it holds some of them, while the rest are still on their way
    eventually(
        lambda: g22.sql(
            "SELECT count(*) FROM exchange_messages WHERE document_id LIKE ?", f"{COMMUNE},%,10_/%"
        )[0][0],
        every=0.05,
        what="the first documents at G22",
    )
    g22.hub.kill()
    hubs.start(g22.hub)

    received: dict[tuple[str, str], list[str]] = {}

    def drain() -> dict[tuple[str, str], str]:
        """Receive and acknowledge what H41 has; return where the missing pairs are."""
        for unit in NA_DEPARTMENTS:
            for delivery in _exchange(h41).Receive(
                exchange_pb2.ReceiveRequest(unit_code=unit, lease_seconds=600),
                metadata=h41.metadata(),
            ):
                if delivery.document_id in documents:
                    received.setdefault((delivery.document_id, unit), []).append(
                        "→".join(delivery.trace)
                    )
                _exchange(h41).Ack(
                    exchange_pb2.AckRequest(unit_code=unit, delivery_ids=[delivery.delivery_id]),
                    metadata=h41.metadata(),
                )
        return _whereabouts(hubs, expected - set(received))

    eventually(
        drain,
        done=lambda missing: not missing,
        what="every document at every recipient at H41 after G22's restart",
    )
    assert all(traces == [ROUTE] for traces in received.values()), received

    for document_id, unit in sorted(expected):
        _exchange(h41).UpdateStatus(
            exchange_pb2.UpdateStatusRequest(
                document_id=document_id, from_unit=COMMUNE, unit_code=unit, status_code="03"
            ),
            metadata=h41.metadata(),
        )

    def not_yet_03_at_sender() -> dict[tuple[str, str], str]:
        """The pairs whose current status the sender's hub does not give as 03, and where
        they stand at every hub."""
        accepted = set()
        for document_id in documents:
            track = _exchange(h49).Track(
                exchange_pb2.TrackRequest(document_id=document_id, from_unit=COMMUNE),
                metadata=h49.metadata(),
            )
            accepted |= {
                (document_id, r.unit_code) for r in track.recipients if r.status_code == "03"
            }
        return _whereabouts(hubs, expected - accepted)

    eventually(
        not_yet_03_at_sender,
        done=lambda missing: not missing,
        what="status 03 of every recipient back at H49",
    )
    # exactly once, counted when nothing is in flight any more (a retried 01 may arrive after
    # the 03: the current status stays the furthest one): one delivery row per (document,
    # recipient) at the recipients' hub, and the sender recorded 01 and 03 once each
    _all_hops_closed(hubs)
    rows = h41.sql(
        "SELECT m.document_id, d.recipient FROM exchange_deliveries d"
        " JOIN exchange_messages m ON m.id = d.message_id WHERE m.document_id LIKE ?",
        f"{COMMUNE},%,1__/UBND",
    )
    assert sorted(rows) == sorted(expected)
    histories = h49.sql(
        "SELECT m.document_id, e.recipient, group_concat(e.code, ',') FROM exchange_status_events e"
        " JOIN exchange_messages m ON m.id = e.message_id WHERE m.document_id LIKE ?"
        " GROUP BY m.document_id, e.recipient",
        f"{COMMUNE},%,1__/UBND",
    )
    assert {(d, r): tuple(sorted(codes.split(","))) for d, r, codes in histories} == (
        dict.fromkeys(expected, ("01", "03"))
    )
    # and H49 ledgered each status it took (a hop is receipted only after its ledger entry)
    ledgered = h49.sql(
        "SELECT count(*) FROM audit_entries WHERE instr(entry, CAST(? AS BLOB)) > 0",
        "status.changed",
    )
    assert ledgered[0][0] >= 2 * len(expected)


def test_one_send_reaches_every_commune_of_the_province(hubs) -> None:
    h49 = hubs.hubs["H49"]
    communes = [
        code for (code,) in h49.sql("SELECT code FROM exchange_units WHERE kind = 'commune'")
    ]
    assert len(communes) == 178
    request = exchange_pb2.SendRequest(from_unit="000.00.01.H49", to_units=communes)
    request.fields.subject = "Thông báo lịch tiếp công dân"
    reply = _exchange(h49).Send(request, metadata=h49.metadata(), timeout=120)
    states = {(r.unit_code, r.state, r.status_code) for r in reply.recipients}
    assert states == {(c, exchange_pb2.DELIVERY_STATE_DELIVERED, "01") for c in communes}
    [delivery] = _exchange(h49).Receive(
        exchange_pb2.ReceiveRequest(unit_code=communes[-1]), metadata=h49.metadata()
    )
    assert delivery.document_id == reply.document_id


def _refused(hub, request: exchange_pb2.SendRequest) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        _exchange(hub).Send(request, metadata=hub.metadata(), timeout=60)
    return caught.value


def _stored(hub) -> tuple[int, int]:
    return hub.sql("SELECT count(*) FROM exchange_messages")[0][0], hub.objects()


def test_bad_input_is_refused_with_the_right_code_and_nothing_stored(hubs) -> None:
    h49 = hubs.hubs["H49"]
    genuine = _send(h49, number=900, to=("000.00.02.H49",))
    with h49.channel() as channel:
        data = b"".join(
            piece.chunk
            for piece in documents_pb2_grpc.DocumentServiceStub(channel).Download(
                documents_pb2.DownloadRequest(
                    ref=common_pb2.DocumentRef(ref=genuine.package.ref.ref)
                ),
                metadata=h49.metadata(),
            )
        )
    before = _stored(h49)

    unknown = exchange_pb2.SendRequest(from_unit=COMMUNE, to_units=["000.00.99.H49"])
    unknown.fields.subject = "Thử"
    error = _refused(h49, unknown)
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "000.00.99.H49 is not in the directory" in error.details()

    error = _refused(h49, exchange_pb2.SendRequest(from_unit=COMMUNE, package=b"<edXML><oops"))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT

    unsigned = build_package(
        Package(
            header=MessageHeader(
                from_=Organization(organ_id=COMMUNE),
                to=(Organization(organ_id="000.00.02.H49"),),
                document_id="unsigned-1",
                subject="Không ký",
            ),
            traces=(TraceHeader(organ_id=COMMUNE, timestamp=datetime.now(UTC)),),
        ),
        key=None,
    )
    error = _refused(h49, exchange_pb2.SendRequest(from_unit=COMMUNE, package=unsigned))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not signed" in error.details()

    # wrapping: the signed header is moved into the Signature, a forged one takes its place
    root = etree.fromstring(data)
    header = root.find(f"{{{E}}}edXMLEnvelope/{{{E}}}edXMLHeader")
    signature = header.find(f"{{{DS}}}Signature")
    original = header.find(f"{{{E}}}MessageHeader")
    etree.SubElement(signature, f"{{{DS}}}Object").append(copy.deepcopy(original))
    original.find(f"{{{E}}}To/{{{E}}}OrganId").text = "000.00.03.H49"
    wrapped = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    error = _refused(h49, exchange_pb2.SendRequest(from_unit=COMMUNE, package=wrapped))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "does not verify" in error.details()

    assert _stored(h49) == before
