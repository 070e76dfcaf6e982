"""Prometheus metrics of one server process, on a registry of its own.

A registry per server (not prometheus_client's global one) lets tests and `--processes N`
run several servers in one interpreter or one host. What is counted as it happens (acks,
batches, latencies) is pushed by the servicers, and refused linkage fits by the linker (the
import's, RefitLinkageModel's and the online worker's); what describes the graph's queues
(linkage and segment lag), whether probabilistic linkage is on, and the server's state (open
calls, Neo4j sessions, readiness) is read when Prometheus scrapes, by a collector, the queue
lengths at most every LAG_MAX_AGE_S (each is a Neo4j query).
"""

from __future__ import annotations

import threading
import time
from collections import Counter as CountOf
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, Summary, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.identity.linkage.linker import FIT_TRIGGERS
from server.identity.values import Ack

LAG_MAX_AGE_S = 5.0
# Seconds; a commit of a 500-event batch takes tens to hundreds of ms, a lookup a few ms.
COMMIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOOKUP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000)


@dataclass(frozen=True)
class Lag:
    """A background queue: how many wait, and the oldest one's wait in seconds."""

    waiting: int
    oldest_wait_s: float


@dataclass(frozen=True)
class StateSources:
    """Where the scrape-time collector reads the server's state."""

    open_calls: Callable[[], Mapping[str, int]]  # method -> open calls
    neo4j_sessions_in_use: Callable[[], int]
    neo4j_up: Callable[[], bool]
    linkage_lag: Callable[[], Lag]
    segment_lag: Callable[[], Lag]
    linkage_on: Callable[[], bool]  # a current model links probabilistically (read at most every few seconds)
    # the change feed's replay: changes a second catch-ups may send now, and catch-ups waiting for a grant
    replay: Callable[[], tuple[float, int]] = lambda: (0.0, 0)


class ServerMetrics:
    def observe_query(self, name: str, seconds: float) -> None:
        self.query_seconds.labels(name).observe(seconds)

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter("identity_ingest_events", "Events acked, by ack status and reject reason code",
                              ["status", "reason"], registry=self.registry)
        self.batch_size = Histogram("identity_ingest_batch_events", "Events per ingest batch (one transaction)",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.commit_seconds = Histogram("identity_ingest_commit_seconds",
                                        "Seconds from a batch's conversion to its commit", buckets=COMMIT_BUCKETS,
                                        registry=self.registry)
        self.lookup_seconds = Histogram("identity_lookup_seconds",
                                        "Seconds from a lookup's arrival to its answer", buckets=LOOKUP_BUCKETS,
                                        registry=self.registry)
        self.query_seconds = Summary("identity_neo4j_query_seconds",
                                     "Seconds of each named query (cypher/<query>.cypher), from sent to "
                                     "records read; _count is how many ran", ["query"], registry=self.registry)
        self.lookups = Counter("identity_lookups", "Lookups answered, by result (profile, not_found)", ["result"],
                               registry=self.registry)
        self.fit_refusals = Counter("identity_linkage_fit_refusals",
                                    "Linkage fits refused by their checks (after the retry on a larger sample), "
                                    "by what asked for the fit (import, refit, online)", ["trigger"],
                                    registry=self.registry)
        for trigger in FIT_TRIGGERS:  # present at 0 from the start, so that increase() sees the first
            self.fit_refusals.labels(trigger)
        self.collector_requests = Counter("identity_collector_requests", "HTTP collector requests answered, by "
                                          "HTTP status", ["status"], registry=self.registry)
        self.collector_messages = Counter("identity_collector_messages", "HTTP collector messages, by call type "
                                          "and outcome (accepted, duplicate, rejected)", ["type", "outcome"],
                                          registry=self.registry)

    def ingested(self, acks: Sequence[Ack], seconds: float) -> None:
        """One committed ingest batch (gRPC's or the collector's): its size, time and acks."""
        self.commit_seconds.observe(seconds)
        self.batch_size.observe(len(acks))
        for (status, reason), count in CountOf((ack.status.name, ack.code) for ack in acks).items():
            self.events.labels(status, reason).inc(count)

    def fit_refused(self, trigger: str) -> None:
        self.fit_refusals.labels(trigger).inc()

    def watch(self, sources: StateSources) -> None:
        """Adds the scrape-time gauges; called once the server's parts exist."""
        self.registry.register(_StateCollector(sources))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, sources: StateSources) -> None:
        self.sources = sources
        self._lags = _Cached(lambda: (sources.linkage_lag(), sources.segment_lag()), LAG_MAX_AGE_S)

    def collect(self) -> Iterator[Metric]:
        calls = GaugeMetricFamily("identity_open_calls", "Calls open now, by method (streams included)",
                                  labels=["method"])
        for method, count in sorted(self.sources.open_calls().items()):
            calls.add_metric([method.lstrip("/")], count)
        yield calls
        yield GaugeMetricFamily("identity_neo4j_sessions_in_use",
                                "Neo4j sessions (each holding a pooled connection) in use now",
                                value=self.sources.neo4j_sessions_in_use())
        rate, waiting = self.sources.replay()
        yield GaugeMetricFamily("identity_segment_replay_rate", "Segment changes a second that WatchSegment "
                                "catch-ups may send now: --replay-rate while the event loop is calm, less while "
                                "interactive calls keep it busy", value=rate)
        yield GaugeMetricFamily("identity_segment_replay_waiting", "WatchSegment catch-ups waiting for their next "
                                "grant of changes", value=waiting)
        up = self.sources.neo4j_up()
        yield GaugeMetricFamily("identity_neo4j_up", "1 while Neo4j answers the readiness probe", value=int(up))
        if not up:
            return  # the queue lengths are Neo4j queries
        try:
            linkage, segments = self._lags.get()
        except Exception:  # a scrape must answer even when Neo4j fails this moment
            return
        for name, lag, what in (("linkage", linkage, "identifiers waiting for online linkage"),
                                ("segment", segments, "profiles waiting for segment re-evaluation")):
            yield GaugeMetricFamily(f"identity_{name}_queue", f"The {what}", value=lag.waiting)
            yield GaugeMetricFamily(f"identity_{name}_oldest_wait_seconds", f"How long the oldest of the {what} "
                                    "has waited", value=lag.oldest_wait_s)
        try:
            on = self.sources.linkage_on()
        except Exception:  # as above
            return
        yield GaugeMetricFamily("identity_linkage_probabilistic_on", "1 while a current linkage model links "
                                "probabilistically; 0 while none is (GetLinkageStatus says why)", value=int(on))


class _Cached:
    """A value re-read at most every max_age seconds."""

    def __init__(self, read: Callable[[], tuple[Lag, Lag]], max_age: float) -> None:
        self.read, self.max_age = read, max_age
        self._value: tuple[float, tuple[Lag, Lag]] | None = None
        self._lock = threading.Lock()

    def get(self) -> tuple[Lag, Lag]:
        with self._lock:
            if self._value is None or time.monotonic() - self._value[0] > self.max_age:
                self._value = (time.monotonic(), self.read())
            return self._value[1]
