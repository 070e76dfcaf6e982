"""IdentityService: ingest, profiles, journeys. Translates messages; the domain does the work."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from identity.v1 import identity_service_pb2 as pb, identity_service_pb2_grpc as pb_grpc

from server.api import convert
from server.api.status import streaming, unary
from server.batching import Coalescer, batched
from server.errors import InvalidArgument
from server.graph import Graph
from server.identity import journeys
from server.identity.ingest import Ingestor
from server.identity.values import Identifier, LookupMiss, ProfileKey, ProfileView
from server.identity.linkage.linker import Linker
from server.identity.linkage.reviews import Reviews
from server.identity.profiles import Profiles
from server.identity.records import RecordImporter
from server.identity.explanations import Explainer
from server.identity.replay import Replayer
from server.identity.rescoring import Rescorer



class IdentityServicer(pb_grpc.IdentityServiceServicer):
    def __init__(self, graph: Graph, ingestor: Ingestor, profiles: Profiles, batch_size: int, batch_wait: float,
                 linker: Linker, importer: RecordImporter, replayer: Replayer) -> None:
        self.graph = graph
        self.ingestor = ingestor
        self.profiles = profiles
        self.linker = linker
        self.importer = importer
        self.replayer = replayer
        self.reviews = Reviews(graph, linker.rules)
        self.rescorer = Rescorer(linker)
        self.explainer = Explainer(linker, profiles)
        self.lookups: Coalescer[ProfileKey | InvalidArgument, ProfileView | LookupMiss] = Coalescer(
            profiles.lookup, max_size=batch_size)
        self.batch_size = batch_size
        self.batch_wait = batch_wait

    @streaming
    def Ingest(self, request_iterator: Iterator[pb.Event], context: grpc.ServicerContext) -> Iterator[pb.IngestAck]:
        for batch in batched(request_iterator, self.batch_size, self.batch_wait):
            acks = self.ingestor.ingest([convert.event_input(event) for event in batch])
            yield from (convert.ingest_ack(ack) for ack in acks)

    @streaming
    def ImportRecords(
        self, request_iterator: Iterator[pb.SourceRecord], context: grpc.ServicerContext
    ) -> Iterator[pb.ImportProgress]:
        for step in self.importer.run(convert.source_record(record) for record in request_iterator):
            yield convert.import_progress(step)

    @streaming
    def LookupProfiles(
        self, request_iterator: Iterator[pb.LookupRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.LookupResult]:
        # no waiting for a fuller batch: requests of all streams that queue meanwhile are
        # answered together by the coalescer's next query
        for request, answer in self.lookups.answer_stream(request_iterator, self._lookup_key):
            yield convert.lookup_result(request.request_id, answer)

    def _lookup_key(self, request: pb.LookupRequest) -> ProfileKey | InvalidArgument:
        """A bad reference becomes an in-stream miss: one bad request never ends the stream."""
        try:
            return self.profiles.normalize_key(convert.profile_key(request.ref))
        except InvalidArgument as exc:
            return exc

    @unary
    def GetIdentityGraph(self, request: pb.GetIdentityGraphRequest, context: grpc.ServicerContext) -> pb.IdentityGraph:
        return convert.identity_graph(self.profiles.identity_graph(convert.profile_key(request.ref)))

    @streaming
    def TraverseJourney(
        self, request: pb.TraverseJourneyRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.JourneyStep]:
        filters = convert.journey_filter(request)
        profile_id = self.profiles.resolve(convert.profile_key(request.ref))
        for touchpoint, cursor in journeys.traverse(self.graph, profile_id, filters):
            yield convert.journey_step(touchpoint, cursor)

    @unary
    def ForgetProfile(self, request: pb.ForgetProfileRequest, context: grpc.ServicerContext) -> pb.ForgetProfileResponse:
        forgotten = self.profiles.forget(convert.profile_key(request.ref))
        return pb.ForgetProfileResponse(profile_id=forgotten.profile_id, identifiers_forgotten=forgotten.identifiers,
                                        touchpoints_erased=forgotten.touchpoints)

    @unary
    def UnlinkIdentifier(
        self, request: pb.UnlinkIdentifierRequest, context: grpc.ServicerContext
    ) -> pb.UnlinkIdentifierResponse:
        if not request.HasField("identifier"):
            raise InvalidArgument("identifier is required")
        other: Identifier | None = convert.identifier(request.linked_to) if request.HasField("linked_to") else None
        parts = self.profiles.unlink(convert.identifier(request.identifier), other, request.reason)
        return pb.UnlinkIdentifierResponse(profile_ids=parts)

    @unary
    def ReviewMatch(self, request: pb.ReviewMatchRequest, context: grpc.ServicerContext) -> pb.ReviewMatchResponse:
        if not request.HasField("a") or not request.HasField("b"):
            raise InvalidArgument("a and b are required: the two identifiers of the pair")
        profile_ids = self.reviews.decide(convert.identifier(request.a), convert.identifier(request.b),
                                          request.confirm, request.reason)
        return pb.ReviewMatchResponse(profile_ids=profile_ids)

    @unary
    def RefitLinkageModel(
        self, request: pb.RefitLinkageModelRequest, context: grpc.ServicerContext
    ) -> pb.LinkageModelInfo:
        if request.sample_records < 0:
            raise InvalidArgument("sample_records must not be negative")
        return convert.linkage_model(self.linker.refit(request.sample_records), self.linker.linkage)

    @unary
    def GetLinkageStatus(self, request: pb.GetLinkageStatusRequest, context: grpc.ServicerContext) -> pb.LinkageStatus:
        lag = self.linker.lag()
        model = self.linker.model(max_age=0)
        status = pb.LinkageStatus(pending=lag.pending, oldest_wait_seconds=lag.oldest_wait_s)
        if model is not None:
            status.model.CopyFrom(convert.linkage_model(model, self.linker.linkage))
            status.current_links.CopyFrom(convert.linkage_quality(self.linker.links_of(model)))
        refused = self.linker.last_refused_fit()
        if refused is not None:
            status.last_refused_fit.CopyFrom(convert.refused_fit(refused, self.linker.linkage))
        return status

    @streaming
    def RescoreLinks(self, request: pb.RescoreLinksRequest,
                     context: grpc.ServicerContext) -> Iterator[pb.RescoreProgress]:
        if request.page_size < 0:
            raise InvalidArgument("page_size must not be negative")
        for step in self.rescorer.run(request.page_size, request.dry_run):
            yield convert.rescore_progress(step)

    @unary
    def ExplainLink(self, request: pb.ExplainLinkRequest, context: grpc.ServicerContext) -> pb.LinkExplanation:
        for name, ref in (("a", request.a), ("b", request.b)):
            if ref.WhichOneof("key") is None:
                raise InvalidArgument(f"{name} is required: an identifier {{type, value}} or a profile id")
        explanation = self.explainer.explain(convert.profile_key(request.a),
                                                                     convert.profile_key(request.b))
        return convert.link_explanation(explanation)

    @streaming
    def ListRejected(self, request: pb.ListRejectedRequest, context: grpc.ServicerContext) -> Iterator[pb.RejectedItem]:
        if request.limit < 0:
            raise InvalidArgument("limit must not be negative")
        for view in self.replayer.list(convert.rejection_filter(request.filter), request.limit):
            yield convert.rejected_item(view)

    @streaming
    def ReplayRejected(self, request: pb.ReplayRejectedRequest,
                       context: grpc.ServicerContext) -> Iterator[pb.ReplayProgress]:
        where = convert.rejection_filter(request.filter)
        for step in self.replayer.replay(where, invalid_values=not request.skip_invalid_values):
            yield convert.replay_progress(step)
