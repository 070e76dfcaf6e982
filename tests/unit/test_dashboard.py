"""The Grafana dashboard in ops/grafana/ charts only metrics the server and the delivery runner export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from activation.delivery_metrics import DeliveryMetrics
from server.api.metrics import Lag, ServerMetrics, StateSources

DASHBOARD = Path(__file__).resolve().parents[2] / "ops" / "grafana" / "identity-dashboard.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exported() -> set[str]:
    """Every sample name the server's and the runner's registries produce."""
    server = ServerMetrics()
    server.watch(StateSources(open_calls=lambda: {"/x/Y": 1}, neo4j_sessions_in_use=lambda: 0, neo4j_up=lambda: True,
                              linkage_lag=lambda: Lag(0, 0.0), segment_lag=lambda: Lag(0, 0.0),
                              linkage_on=lambda: True))
    server.events.labels("ACCEPTED", "").inc()
    server.lookups.labels("profile").inc()
    runner = DeliveryMetrics()
    for counter in (runner.changes, runner.retries, runner.dead_letters):
        counter.labels("d").inc()
    names = set()
    for registry in (server.registry, runner.registry):
        for metric in registry.collect():
            names.update(sample.name for sample in metric.samples)
    return names


def test_every_metric_the_dashboard_charts_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    charted = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"\b(identity_[a-z0-9_]+)", target["expr"])}
    assert charted and sorted(charted - exported()) == []


def test_the_dashboard_charts_what_the_issue_names() -> None:
    charted = DASHBOARD.read_text()
    for wanted in ("identity_ingest_events_total", "identity_ingest_commit_seconds_bucket", "identity_lookup_seconds",
                   "identity_open_calls", "identity_linkage_queue", "identity_segment_oldest_wait_seconds",
                   "identity_delivery_dead_letters_total", "identity_neo4j_sessions_in_use",
                   "identity_linkage_probabilistic_on", "identity_linkage_fit_refusals_total"):
        assert wanted in charted, wanted
