"""The operator's view (``kyso.operator_view``), shared by ``kyso admin status`` and the
console's operator page, built from what a real ``kyso.metrics.Metrics`` registry publishes:
dependencies with the health answer's reasons, tokens, certificates (keys, TLS, TSA) with days
left and the "ends soon" mark, the ledger head's age, every backlog, and the hubs with their
links and waiting hops. ``now`` is fixed, so the counted days are exact (no clock is read)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest

from kyso import operator_view
from kyso.config import HubConfig
from kyso.metrics import Metrics
from kyso.status import Snapshot
from signer.fetches import FetchCounts

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def _published() -> str:
    metrics = Metrics()
    metrics.describe_hubs(
        {
            "H49": HubConfig(root_unit="000.00.00.H49", peers=("H48",)),
            "H48": HubConfig(root_unit="000.00.00.H48", address="10.0.0.48:50051"),
            "H49-1": HubConfig(root_unit="000.00.21.H49", parent="H49"),
        },
        this_hub="H49",
    )
    metrics.watch_quarantine(lambda: {"delivery": 2, "hop": 1})
    fetched = FetchCounts(
        tsa_certificate_not_after={"http://tsa.example/": NOW + timedelta(days=400)}
    )
    metrics.watch_fetches(lambda: fetched)
    metrics.observe(
        Snapshot(
            taken_at=NOW,
            dependencies={"database": "", "hsm": "", "storage": "OSError: connection refused"},
            tokens={"kyso-dev": "", "usb": "NOT_SERVING: token removed"},
            certificates={
                "keys.seal": NOW + timedelta(days=365),
                "keys.old": NOW + timedelta(days=12, hours=12),
                "tls.certificate": NOW - timedelta(days=2),
            },
            ledger_size=42,
            head_size=40,
            head_time=NOW - timedelta(seconds=90),
            audit_backlog=3,
            hop_backlog={"H48": 5, "H49-1": 1},
            delivery_backlog=7,
        )
    )
    return generate_latest(metrics.registry).decode()


def test_the_view_from_published_metrics() -> None:
    view = operator_view.build(
        server="127.0.0.1:50051",
        health="NOT_SERVING",
        down=("storage: OSError: connection refused",),
        samples=operator_view.parse_metrics(_published()),
        now=NOW,
    )
    assert view.metrics_read
    assert not view.serving
    assert view.dependencies == {"database": True, "hsm": True, "storage": False}
    assert view.reason("storage") == "OSError: connection refused"
    assert view.reason("database") == ""
    assert view.tokens == {"kyso-dev": True, "usb": False}

    certificates = {c.name: c for c in view.certificates}
    assert set(certificates) == {
        "keys.seal",
        "keys.old",
        "tls.certificate",
        "tsa http://tsa.example/",
    }
    assert certificates["keys.seal"].days_left == 365.0
    assert not certificates["keys.seal"].soon
    assert not certificates["keys.seal"].expired
    assert certificates["keys.old"].days_left == 12.5
    assert certificates["keys.old"].soon
    assert certificates["tls.certificate"].expired
    assert not certificates["tls.certificate"].soon
    assert certificates["tsa http://tsa.example/"].days_left == 400.0

    assert view.ledger == operator_view.Ledger(
        entries=42,
        head_tree_size=40,
        head_signed_at=NOW - timedelta(seconds=90),
        head_age_seconds=90,
    )
    assert list(view.backlogs) == [
        "audit_outbox",
        "hops",
        "deliveries_queued",
        "quarantined_delivery",
        "quarantined_hop",
    ]
    assert view.backlogs == {
        "audit_outbox": 3,
        "deliveries_queued": 7,
        "hops": 6,
        "quarantined_delivery": 2,
        "quarantined_hop": 1,
    }
    hubs = {hub.id: hub for hub in view.hubs}
    assert hubs["H49"].this_hub
    assert hubs["H49"].links == ("H48",)
    assert hubs["H49"].hops_waiting == 0
    assert hubs["H48"].address == "10.0.0.48:50051"
    assert hubs["H48"].hops_waiting == 5
    assert hubs["H49-1"].links == ("parent H49",)
    assert hubs["H49-1"].hops_waiting == 1
    assert not hubs["H49-1"].this_hub

    shown = view.to_json()
    assert shown["dependencies"] == {"database": "up", "hsm": "up", "storage": "DOWN"}
    assert shown["certificates"]["keys.old"] == {
        "not_after": "2027-03-14T00:00:00Z",
        "days_left": 12.5,
    }
    assert shown["ledger"]["head_signed_at"] == "2027-03-01T11:58:30Z"
    text = operator_view.render_text(view)
    assert (
        "certificate   keys.old                 until 2027-03-14T00:00:00Z (12.5 days)"
        "  expires soon" in text
    )
    assert (
        "certificate   tls.certificate          until 2027-02-27T12:00:00Z (-2.0 days)  EXPIRED"
        in text
    )
    assert (
        "hub           H49-1      root 000.00.21.H49 at -; links: parent H49; hops waiting 1"
        in text
    )
    assert "  down        storage: OSError: connection refused" in text


def test_without_metrics_only_health() -> None:
    view = operator_view.build(server="s:1", health="UNREACHABLE (UNAVAILABLE)", down=("gone",))
    assert not view.metrics_read
    assert not view.serving
    assert view.dependencies == {}
    assert view.hubs == ()
    assert (
        operator_view.render_text(view)
        == "server        s:1: UNREACHABLE (UNAVAILABLE)\n  down        gone"
    )


def test_what_is_not_metrics_is_refused() -> None:
    with pytest.raises(operator_view.MetricsUnavailable):
        operator_view.parse_metrics("<html>not metrics</html>\n")
    with pytest.raises(operator_view.MetricsUnavailable, match="cannot read the metrics"):
        operator_view.scrape("127.0.0.1:1", timeout=2)
