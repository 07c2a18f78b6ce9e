"""Three hubs in one process (G22 above H49 and H41), each with its own database and store.

The hop transport (gRPC, the lead's) is stood in for by ``pump``: it takes due outbox items
from one hub and hands their bytes to the next hub's ``accept``/``accept_status``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from exchange.adapters import StoredPackages
from exchange.directory import Directory
from exchange.edxml import CryptographyKey, StatusCode, TrustPolicy, build_package
from exchange.routing import DeliveryState, OutboxKind, Router, Submission
from storage import FilesystemStore
from tests.exchange.conftest import NOI_VU_NA, Clock, load_directory, simple_package, topology

WARD = "000.21.30.H49"


class Hubs:
    def __init__(
        self, engines: dict[str, sa.Engine], tmp: Path, policy: TrustPolicy, key, peers: bool
    ) -> None:
        self.key = key
        self.clock = Clock()
        self.routers: dict[str, Router] = {}
        self.stores: dict[str, StoredPackages] = {}
        for hub, engine in engines.items():
            directory: Directory = load_directory(engine, topo=topology(peers=peers))
            self.stores[hub] = StoredPackages(FilesystemStore(tmp / hub))
            self.routers[hub] = Router(
                engine=engine,
                directory=directory,
                hub_id=hub,
                store=self.stores[hub],
                policy=policy,
                clock=self.clock,
            )

    def pump(self, hub: str, *, acknowledge: bool = True) -> int:
        """Make every due hop of ``hub``; return how many items were sent."""
        source = self.routers[hub]
        items = source.pending_outbox()
        for item in items:
            target = self.routers[item.next_hub]
            if item.kind is OutboxKind.PACKAGE:
                target.accept(
                    Submission(
                        package=self.stores[hub].get(item.package_ref),
                        via_hub=hub,
                        recipients=item.recipients,
                        trace=item.trace,
                    )
                )
            else:
                for packet in source.status_packets(item, key=self.key):
                    target.accept_status(packet, via_hub=hub)
            if acknowledge:
                source.mark_forwarded([item.id])
        return len(items)

    def settle(self) -> None:
        while sum(self.pump(hub) for hub in self.routers):
            pass


@pytest.fixture
def hubs(sqlite_engines, tmp_path: Path, policy: TrustPolicy, rsa_key: CryptographyKey) -> Hubs:
    return Hubs(sqlite_engines, tmp_path, policy, rsa_key, peers=False)


def test_a_commune_sends_to_another_province_and_gets_statuses_back(hubs: Hubs, rsa_key) -> None:
    h49, g22, h41 = (hubs.routers[h] for h in ("H49", "G22", "H41"))
    data = build_package(simple_package(sender=WARD, to=(NOI_VU_NA,)), key=rsa_key)
    assert h49.accept(Submission(package=data)).forwarded == {"G22": (NOI_VU_NA,)}
    hubs.settle()

    [item] = h41.inbox(NOI_VU_NA)
    assert hubs.stores["H41"].get(item.package_ref) == data  # the signed bytes, unchanged
    assert [t.organ_id for t in item.trace] == ["000.00.00.H49", "000.00.00.G22", "000.00.00.H41"]
    [at_sender] = h49.track(document_id="doc-1")
    assert (at_sender.state, at_sender.status) == (DeliveryState.FORWARDED, StatusCode.ARRIVED)

    h41.ack(NOI_VU_NA, delivery_ids=[item.delivery_id])
    h41.set_status(NOI_VU_NA, document_id="doc-1", code="03", description="Đã vào sổ")
    hubs.settle()
    for router in (h49, g22, h41):
        [entry] = router.track(document_id="doc-1")
        assert entry.status is StatusCode.ACCEPTED
        assert [e.code.value for e in entry.history] == ["01", "03"]
        # every hub has the times the recipient's hub gave (the packets carry Vietnam time)
        assert [e.at for e in entry.history] == [hubs.clock.now, hubs.clock.now]
    assert h49.track(document_id="doc-1")[0].history[1].description == "Đã vào sổ"


def test_hops_retried_after_a_crash_deliver_once(hubs: Hubs, rsa_key) -> None:
    """A hub that forwarded but crashed before recording it sends again: no duplicate."""
    h49, h41 = hubs.routers["H49"], hubs.routers["H41"]
    h49.accept(
        Submission(package=build_package(simple_package(sender=WARD, to=(NOI_VU_NA,)), key=rsa_key))
    )
    assert hubs.pump("H49", acknowledge=False) == 1
    assert hubs.pump("H49") == 0  # still claimed by the worker that "crashed"
    hubs.clock.advance(minutes=2)  # the claim runs out, as after a restart
    hubs.settle()
    assert len(h41.inbox(NOI_VU_NA)) == 1
    [entry] = hubs.routers["H49"].track(document_id="doc-1")
    assert [e.code.value for e in entry.history] == ["01"]


def test_peers_carry_documents_and_statuses_across(
    sqlite_engines, tmp_path, policy, rsa_key
) -> None:
    hubs = Hubs(sqlite_engines, tmp_path, policy, rsa_key, peers=True)
    h49, h41 = hubs.routers["H49"], hubs.routers["H41"]
    data = build_package(simple_package(sender=WARD, to=(NOI_VU_NA,)), key=rsa_key)
    assert h49.accept(Submission(package=data)).forwarded == {"H41": (NOI_VU_NA,)}
    hubs.settle()
    [item] = h41.inbox(NOI_VU_NA)
    assert [t.organ_id for t in item.trace] == ["000.00.00.H49", "000.00.00.H41"]
    h41.set_status(NOI_VU_NA, document_id="doc-1", code="02", description="Sai thẩm quyền")
    hubs.settle()
    assert h49.track(document_id="doc-1")[0].status is StatusCode.REJECTED
    with pytest.raises(Exception, match="knows no document"):
        hubs.routers["G22"].track(document_id="doc-1")
