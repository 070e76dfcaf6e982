"""Builds the asyncio gRPC server: the two services, health checking and reflection.

The server runs on an event loop of its own thread (ServingLoop), so that starting and
stopping it are plain calls for the runner and the tests. Open streams are coroutines on that
loop; Neo4j work runs on the bounded work pools (server/api/work.py); each method's open
calls are limited on their own (server/api/limits.py); health checks never leave the loop and
are never limited, so they answer whatever the load.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from identity.v1 import identity_service_pb2, identity_service_pb2_grpc, segment_service_pb2, segment_service_pb2_grpc

from server.access.audit import AuditTrail
from server.api.auth import Authorization
from server.api.collector_http import Collector, CollectorDeps, CollectorSite, start_collector, stop_collector
from server.api.identity_servicer import IdentityServicer
from server.api.limits import CallLimits
from server.api.metrics import Lag, ServerMetrics, StateSources
from server.api.operator_http import OperatorEndpoints, OperatorHttp
from server.api.readiness import Readiness
from server.api.segment_servicer import SegmentServicer
from server.api.work import WorkPools
from server.config import Settings, TlsFiles
from server.graph import Graph
from server.identity.ingest import Ingestor
from server.identity.linkage.candidates import OnlineQueue
from server.identity.linkage.linkage_status import LinkageLag
from server.identity.linkage.linker import Linker
from server.identity.linkage.online import LinkageWorker
from server.identity.profiles import Profiles
from server.identity.records import RecordImporter
from server.identity.replay import Replayer, RetentionWorker
from server.identity.segments.catalog import SegmentCatalog
from server.identity.segments.change_feed import ChangeFeed
from server.identity.segments.membership import Membership
from server.identity.quarantine import stored_form
from server.identity.segments.worker import SegmentWorker
from server.identity.stitching import suppression_hash
from server.identity.values import Ack, EventInput
from server.operators import browser

SERVICE_NAMES = (
    identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name,
    segment_service_pb2.DESCRIPTOR.services_by_name["SegmentService"].full_name,
)
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
T = TypeVar("T")


class ServingLoop:
    """An asyncio event loop running on a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="grpc-loop", daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Runs the coroutine on the loop and waits for its result from any other thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    serving_loop: ServingLoop
    pools: WorkPools
    feed: ChangeFeed
    identity: IdentityServicer
    limits: CallLimits
    audit: AuditTrail
    metrics: ServerMetrics
    readiness: Readiness
    linkage_worker: LinkageWorker | None = None
    segment_worker: SegmentWorker | None = None
    retention_worker: RetentionWorker | None = None
    http: OperatorHttp | None = None
    collector: CollectorSite | None = None

    @property
    def collect_port(self) -> int:
        """The HTTP collector's bound port (0: no collector)."""
        return self.collector.port if self.collector is not None else 0

    def set_serving(self, serving: bool) -> None:
        self.serving_loop.call(self._set_serving(serving))

    async def _set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)

    def stop(self, grace: float) -> None:
        """Reports NOT_SERVING, refuses new RPCs and lets in-flight ones finish within grace."""
        self.readiness.stop()  # first: a probe must not report SERVING again while stopping
        if self.metrics.observe_query in self.identity.graph.query_observers:  # a graph outlives its server
            self.identity.graph.query_observers.remove(self.metrics.observe_query)
        self.set_serving(False)
        if self.collector is not None:  # its requests in flight finish and are acked first
            self.serving_loop.call(stop_collector(self.collector))
        self.serving_loop.call(self._stop(grace))
        self.identity.lookups.close()
        self.pools.shutdown()
        self.audit.close()
        if self.http is not None:
            self.http.stop()
        for worker in (self.linkage_worker, self.segment_worker, self.retention_worker):
            if worker is not None:
                worker.stop()
        self.serving_loop.close()

    async def _stop(self, grace: float) -> None:
        await self.feed.close()
        await self.server.stop(grace)


def create_server(settings: Settings, graph: Graph) -> RunningServer:
    """Binds settings.listen (port 0 picks a free port) and starts serving; returns the bound port."""
    rules, linkage = settings.rules, settings.linkage
    pools = WorkPools.of_size(settings.max_workers)
    ingestor = Ingestor(graph, rules, settings.suppression_salt, OnlineQueue(linkage) if settings.online_linkage else None)
    profiles = Profiles(graph, rules, settings.suppression_salt)
    metrics = ServerMetrics()
    graph.query_observers.append(metrics.observe_query)
    linker = Linker(graph, rules, linkage, on_refusal=metrics.fit_refused)
    importer = RecordImporter(graph, ingestor, linker, batch_size=settings.ingest_batch_size,
                              queue_unlinked=settings.online_linkage)
    replayer = Replayer(graph, ingestor, importer)
    audit = AuditTrail(graph, timedelta(days=settings.audit_retention_days))
    identity = IdentityServicer(graph, ingestor, profiles, settings.ingest_batch_size, settings.ingest_batch_wait,
                                linker, importer, replayer, pools, audit, metrics)
    consent_defaults = {name: category.default for name, category in rules.consent.categories.items()}
    membership = Membership(graph, SegmentCatalog(graph, rules.strong_types(), consent_defaults),
                            frozenset(rules.identifier_types))
    feed = ChangeFeed(membership, pools.read, buffer=settings.watch_buffer, replay_rate=settings.replay_rate)
    # an import holds an import-pool thread while open: more open imports than threads would
    # only queue unseen, so the limit says so (unless --method-limit sets another)
    per_method = {"ImportRecords": pools.imports.threads, **settings.method_limits}
    limits = CallLimits(settings.max_concurrent_rpcs, exempt=frozenset({HEALTH_SERVICE, reflection.SERVICE_NAME}),
                        per_method=per_method)
    # authorization first: a refused call never takes a place under the limits
    no_token = frozenset({HEALTH_SERVICE, *([reflection.SERVICE_NAME] if settings.reflection else [])})
    interceptors: list[grpc.aio.ServerInterceptor] = [
        Authorization(settings.tokens, audit, no_token, _audit_hash(settings)), limits]
    serving_loop = ServingLoop()
    try:
        server, port, health_servicer = serving_loop.call(_start(
            settings, interceptors, identity, SegmentServicer(membership, feed, pools)))
    except BaseException:
        serving_loop.close()
        audit.close()
        raise
    worker = LinkageWorker(linker) if settings.online_linkage else None
    segment_worker = SegmentWorker(membership, timedelta(seconds=settings.segment_schedule),
                                   timedelta(days=settings.segment_retention_days),
                                   lag_report_every=settings.segment_lag_report)
    retention_worker = RetentionWorker(replayer, timedelta(days=settings.quarantine_retention_days))
    readiness = Readiness(graph.ping, lambda ready: running.set_serving(ready))
    running = RunningServer(server, port, health_servicer, serving_loop, pools, feed, identity, limits, audit,
                            metrics, readiness, worker, segment_worker, retention_worker)
    metrics.watch(StateSources(
        open_calls=lambda: dict(limits.open), neo4j_sessions_in_use=lambda: graph.sessions_in_use,
        neo4j_up=lambda: readiness.ready,
        linkage_lag=lambda: _lag(linker.lag()), segment_lag=lambda: Lag(*membership.lag()),
        linkage_on=lambda: linker.model() is not None, replay=lambda: (feed.pacer.rate, feed.pacer.waiting)))
    for background in (worker, segment_worker, retention_worker):
        if background is not None:
            background.start()
    readiness.start()
    if settings.http_listen:
        try:
            running.http = OperatorHttp(settings.http_listen, OperatorEndpoints(
                metrics=metrics.exposition, ready=lambda: (readiness.ready, readiness.reason),
                notes=lambda: [note for note in (linker.known_state(),) if note], assets=browser.asset))
        except OSError:
            running.stop(0)  # everything above is started, so everything stops
            raise
    if settings.collect_listen and settings.collector is not None:
        try:
            running.collector = serving_loop.call(start_collector(
                Collector(_collector_deps(settings, ingestor, pools, readiness, metrics)), settings.collect_listen,
                settings.tls, reuse_port=settings.processes > 1, grace=settings.shutdown_grace))
        except OSError:
            running.stop(0)
            raise
    running.set_serving(True)
    return running


def _collector_deps(settings: Settings, ingestor: Ingestor, pools: WorkPools, readiness: Readiness,
                    metrics: ServerMetrics) -> CollectorDeps:
    """The collector ingests like Ingest: on the ingest pool, with the same metrics."""
    assert settings.collector is not None

    def commit(events: list[EventInput], sources: frozenset[str] | None) -> list[Ack]:
        began = time.perf_counter()
        acks = ingestor.ingest(events, sources=sources)
        metrics.ingested(acks, time.perf_counter() - began)
        return acks

    async def ingest(events: list[EventInput], sources: frozenset[str] | None) -> list[Ack]:
        return await pools.ingest.run(commit, events, sources)

    return CollectorDeps(settings.collector.tracking, settings.collector.limits, settings.tokens, ingest,
                         lambda: (readiness.ready, readiness.reason), metrics, settings.ingest_batch_size)


def _audit_hash(settings: Settings) -> Callable[[str, str], tuple[str, str]]:
    """How the audit names an identifier: by the salted hash forgetting keeps (of its stored form)."""
    def hash_of(type_name: str, value: str) -> tuple[str, str]:
        stored = stored_form(settings.rules, type_name, value)
        return stored.value, suppression_hash(settings.suppression_salt, stored)

    return hash_of


def _lag(lag: LinkageLag) -> Lag:
    return Lag(lag.pending, lag.oldest_wait_s)



async def _start(settings: Settings, interceptors: list[grpc.aio.ServerInterceptor], identity: IdentityServicer,
                 segments: SegmentServicer) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    server = grpc.aio.server(
        interceptors=interceptors,
        # only --processes N share a port on purpose: without it, a second server started by
        # mistake on a taken port must fail, not quietly take half the calls
        options=[("grpc.so_reuseport", int(settings.processes > 1))],
    )
    identity_service_pb2_grpc.add_IdentityServiceServicer_to_server(identity, server)
    segment_service_pb2_grpc.add_SegmentServiceServicer_to_server(segments, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.reflection:
        reflection.enable_server_reflection((*SERVICE_NAMES, HEALTH_SERVICE, reflection.SERVICE_NAME), server)
    try:
        if settings.tls is None:
            port = server.add_insecure_port(settings.listen)
        else:
            port = server.add_secure_port(settings.listen, _credentials(settings.tls))
    except RuntimeError:  # grpcio's way of saying the bind failed
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen} (--listen): the address is taken or invalid")
    await server.start()
    return server, port, health_servicer


def _credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """TLS from the PEM files; with a client CA, a client without a certificate it signed is refused."""
    cert, key, client_ca = tls.read()
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)
