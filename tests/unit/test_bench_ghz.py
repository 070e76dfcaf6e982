"""bench/ghz.py reads ghz's JSON report: only answered calls count, latencies in ms."""

from __future__ import annotations

from bench.ghz import summary

REPORT = {  # the shape of `ghz --format json` (v0.120.0), trimmed
    "count": 1010, "total": 2_000_000_000, "rps": 505.0,
    "latencyDistribution": [{"percentage": 50, "latency": 4_500_000}, {"percentage": 99, "latency": 19_000_000}],
    "statusCodeDistribution": {"OK": 1000, "Unavailable": 10},
    "errorDistribution": {"rpc error: code = Unavailable desc = use of closed network connection": 10},
}


def test_only_answered_calls_count_towards_the_rate() -> None:
    figures = summary(REPORT)
    assert figures["calls"] == 1000
    assert figures["calls_per_s"] == 500.0
    assert (figures["p50_ms"], figures["p99_ms"]) == (4.5, 19.0)
    assert figures["statuses"] == {"OK": 1000, "Unavailable": 10}


def test_a_report_without_answers_has_no_rate() -> None:
    figures = summary({"count": 0, "total": 0, "statusCodeDistribution": {"Unavailable": 3}})
    assert figures["calls"] == 0 and figures["calls_per_s"] == 0.0
