"""Builds the gRPC server: the two services, standard health checking and reflection."""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass
from datetime import timedelta

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from identity.v1 import identity_service_pb2, identity_service_pb2_grpc, segment_service_pb2, segment_service_pb2_grpc

from server.api.identity_servicer import IdentityServicer
from server.api.segment_servicer import SegmentServicer
from server.config import Settings
from server.graph import Graph
from server.identity.ingest import Ingestor
from server.identity.linkage.candidates import OnlineQueue
from server.identity.linkage.linker import Linker
from server.identity.linkage.online import LinkageWorker
from server.identity.profiles import Profiles
from server.identity.records import RecordImporter
from server.identity.replay import Replayer, RetentionWorker
from server.identity.segments.catalog import SegmentCatalog
from server.identity.segments.membership import Membership
from server.identity.segments.worker import SegmentWorker

SERVICE_NAMES = (
    identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name,
    segment_service_pb2.DESCRIPTOR.services_by_name["SegmentService"].full_name,
)


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    linkage_worker: LinkageWorker | None = None
    segment_worker: SegmentWorker | None = None
    retention_worker: RetentionWorker | None = None

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, status)

    def stop(self, grace: float) -> None:
        """Reports NOT_SERVING, refuses new RPCs and lets in-flight ones finish within grace."""
        self.set_serving(False)
        self.server.stop(grace).wait()
        if self.linkage_worker is not None:
            self.linkage_worker.stop()
        if self.segment_worker is not None:
            self.segment_worker.stop()
        if self.retention_worker is not None:
            self.retention_worker.stop()


def create_server(settings: Settings, graph: Graph) -> RunningServer:
    """Binds settings.listen (port 0 picks a free port) and starts serving; returns the bound port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="rpc"),
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        options=[("grpc.so_reuseport", 1)],  # several server processes may share the port
    )
    rules, linkage = settings.rules, settings.linkage
    ingestor = Ingestor(graph, rules, settings.suppression_salt, OnlineQueue(linkage) if settings.online_linkage else None)
    profiles = Profiles(graph, rules, settings.suppression_salt)
    linker = Linker(graph, rules, linkage)
    importer = RecordImporter(graph, ingestor, linker, batch_size=settings.ingest_batch_size)
    replayer = Replayer(graph, ingestor, importer)
    identity_service_pb2_grpc.add_IdentityServiceServicer_to_server(
        IdentityServicer(graph, ingestor, profiles, settings.ingest_batch_size, settings.ingest_batch_wait,
                         linker, importer, replayer), server
    )
    membership = Membership(graph, SegmentCatalog(graph, rules.strong_types()), frozenset(rules.identifier_types))
    segment_service_pb2_grpc.add_SegmentServiceServicer_to_server(SegmentServicer(membership), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(settings.listen)
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen}: the address is taken or invalid")
    server.start()
    worker = LinkageWorker(linker) if settings.online_linkage else None
    segment_worker = SegmentWorker(membership, timedelta(seconds=settings.segment_schedule),
                                   timedelta(days=settings.segment_retention_days),
                                   lag_report_every=settings.segment_lag_report)
    retention_worker = RetentionWorker(replayer, timedelta(days=settings.quarantine_retention_days))
    running = RunningServer(server, port, health_servicer, worker, segment_worker, retention_worker)
    if worker is not None:
        worker.start()
    segment_worker.start()
    retention_worker.start()
    running.set_serving(True)
    return running
