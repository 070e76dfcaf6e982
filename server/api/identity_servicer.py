"""IdentityService: ingest, profiles, journeys. Translates messages; the domain does the work.

Methods are coroutines of the asyncio server: an open stream holds no thread. Every call into
the domain (which talks to Neo4j with the blocking driver) runs on one of the work pools.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from identity.v1 import identity_service_pb2 as pb, identity_service_pb2_grpc as pb_grpc

from server.api import convert
from server.access.audit import AuditQuery, AuditTrail
from server.access.tokens import Caller
from server.api.auth import current_caller
from server.api.metrics import ServerMetrics
from server.api.status import Context, streaming, unary
from server.api.work import BlockingReader, WorkPools
from server.batching import Coalescer, batched
from server.errors import InvalidArgument, PermissionDenied
from server.graph import Graph
from server.identity import journeys
from server.identity.ingest import Ingestor
from server.identity.values import Identifier, ProfileKey
from server.identity.linkage.linker import Linker
from server.identity.linkage.reviews import Reviews
from server.identity.profiles import Profiles
from server.identity.records import RecordImporter, SourceRecord
from server.identity.explanations import Explainer
from server.identity.replay import Replayer
from server.identity.rescoring import Rescorer

AUDIT_LIMIT = 1000  # entries ListAudit gives when the request names no limit
AUDIT_MAX = 10_000  # at most, in one call: the entries are read at once, then streamed
# Items a streamed read hands over per trip to the read pool.
JOURNEY_CHUNK = 200
LIST_CHUNK = 100
# Most events one IngestBatches message may hold (it is written in transactions of batch_size).
MAX_EVENT_BATCH = 10_000


# A lookup as the coalescer takes it: a stream's request as it came (its key is normalised on
# the coalescer's thread), or a unary call's request with the key its handler checked.
Lookup = pb.LookupRequest | tuple[pb.LookupRequest, ProfileKey]


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    def __init__(self, graph: Graph, ingestor: Ingestor, profiles: Profiles, batch_size: int, batch_wait: float,
                 linker: Linker, importer: RecordImporter, replayer: Replayer, pools: WorkPools,
                 audit: AuditTrail, metrics: ServerMetrics) -> None:
        self.graph = graph
        self.pools = pools
        self.ingestor = ingestor
        self.profiles = profiles
        self.linker = linker
        self.importer = importer
        self.replayer = replayer
        self.audit = audit
        self.reviews = Reviews(graph, linker.rules)
        self.rescorer = Rescorer(linker)
        self.explainer = Explainer(linker, profiles)
        self.metrics = metrics
        self.lookups: Coalescer[Lookup, pb.LookupResult] = Coalescer(
            self._lookup, max_size=batch_size, observe=metrics.lookup_seconds.observe)
        self.batch_size = batch_size
        self.batch_wait = batch_wait

    @streaming
    async def Ingest(self, request_iterator: AsyncIterator[pb.Event], context: Context) -> AsyncIterator[pb.IngestAck]:
        # acks go out only after ingest() returned, that is after the batch's commit
        sources = _sources_of(current_caller())
        async for batch in batched(request_iterator, self.batch_size, self.batch_wait):
            for ack in await self.pools.ingest.run(self._ingest, batch, sources):
                yield ack

    @streaming
    async def IngestBatches(self, request_iterator: AsyncIterator[pb.EventBatch],
                            context: Context) -> AsyncIterator[pb.IngestAckBatch]:
        # one message each way per batch: grpc's per-message cost is most of the server's
        # Python work per event on Ingest (bench/profile_ingest)
        sources = _sources_of(current_caller())
        async for batch in request_iterator:
            if len(batch.events) > MAX_EVENT_BATCH:
                raise InvalidArgument(f"a batch holds {len(batch.events)} events, more than {MAX_EVENT_BATCH}: "
                                      f"send at most {MAX_EVENT_BATCH} (about {self.batch_size} is one transaction)")
            acks: list[pb.IngestAck] = []
            for start in range(0, len(batch.events), self.batch_size):
                part = list(batch.events[start:start + self.batch_size])
                acks.extend(await self.pools.ingest.run(self._ingest, part, sources))
            yield pb.IngestAckBatch(acks=acks)

    def _ingest(self, events: list[pb.Event], sources: frozenset[str] | None) -> list[pb.IngestAck]:
        """One batch, converted and committed on an ingest thread: the event loop only moves messages."""
        began = time.perf_counter()
        acks = self.ingestor.ingest([convert.event_input(event) for event in events], sources=sources)
        self.metrics.ingested(acks, time.perf_counter() - began)
        return [convert.ingest_ack(ack) for ack in acks]

    @streaming
    async def ImportRecords(
        self, request_iterator: AsyncIterator[pb.SourceRecord], context: Context
    ) -> AsyncIterator[pb.ImportProgress]:
        # an import reads its records as a blocking iterator, holding an import thread for its length
        records = BlockingReader(request_iterator, asyncio.get_running_loop())
        sources = _sources_of(current_caller())
        steps = self.pools.imports.iterate(lambda: self.importer.run(
            _allowed(convert.source_record(r), sources) for r in records))
        async for step in steps:
            yield convert.import_progress(step)

    @streaming
    async def LookupProfiles(
        self, request_iterator: AsyncIterator[pb.LookupRequest], context: Context
    ) -> AsyncIterator[pb.LookupResult]:
        # no waiting for a fuller batch: requests of all streams that queue meanwhile are
        # answered together by the coalescer's next query (on its own threads)
        async for result in self.lookups.answer_stream(request_iterator):
            yield result

    @unary
    async def LookupProfile(self, request: pb.LookupRequest, context: Context) -> pb.LookupResult:
        # the key is checked here, so that a malformed one is INVALID_ARGUMENT, not a miss;
        # the answer comes from the same coalesced queries as the streams'
        key = self.profiles.normalize_key(convert.profile_key(request.ref))
        return await self.lookups.ask((request, key))

    def _lookup(self, lookups: list[Lookup]) -> list[pb.LookupResult]:
        """Answers a batch of requests, from many streams, with one query (on a coalescer thread)."""
        pairs = [(lookup, None) if isinstance(lookup, pb.LookupRequest) else lookup for lookup in lookups]
        answers = self.profiles.lookup([self._lookup_key(request) if key is None else key for request, key in pairs])
        results = [convert.lookup_result(request.request_id, answer) for (request, _), answer in zip(pairs, answers)]
        found = sum(result.HasField("profile") for result in results)
        self.metrics.lookups.labels("profile").inc(found)
        self.metrics.lookups.labels("not_found").inc(len(results) - found)
        return results

    def _lookup_key(self, request: pb.LookupRequest) -> ProfileKey | InvalidArgument:
        """A bad reference becomes an in-stream miss: one bad request never ends the stream."""
        try:
            return self.profiles.normalize_key(convert.profile_key(request.ref))
        except InvalidArgument as exc:
            return exc

    @unary
    async def GetIdentityGraph(self, request: pb.GetIdentityGraphRequest, context: Context) -> pb.IdentityGraph:
        key = convert.profile_key(request.ref)
        return convert.identity_graph(await self.pools.read.run(self.profiles.identity_graph, key))

    @streaming
    async def TraverseJourney(
        self, request: pb.TraverseJourneyRequest, context: Context
    ) -> AsyncIterator[pb.JourneyStep]:
        filters = convert.journey_filter(request)
        profile_id = await self.pools.read.run(self.profiles.resolve, convert.profile_key(request.ref))
        steps = self.pools.read.iterate(lambda: journeys.traverse(self.graph, profile_id, filters), chunk=JOURNEY_CHUNK)
        async for touchpoint, cursor in steps:
            yield convert.journey_step(touchpoint, cursor)

    @unary
    async def ForgetProfile(self, request: pb.ForgetProfileRequest, context: Context) -> pb.ForgetProfileResponse:
        forgotten = await self.pools.admin.run(self.profiles.forget, convert.profile_key(request.ref))
        return pb.ForgetProfileResponse(profile_id=forgotten.profile_id, identifiers_forgotten=forgotten.identifiers,
                                        touchpoints_erased=forgotten.touchpoints)

    @unary
    async def UnlinkIdentifier(
        self, request: pb.UnlinkIdentifierRequest, context: Context
    ) -> pb.UnlinkIdentifierResponse:
        if not request.HasField("identifier"):
            raise InvalidArgument("identifier is required")
        other: Identifier | None = convert.identifier(request.linked_to) if request.HasField("linked_to") else None
        parts = await self.pools.admin.run(self.profiles.unlink, convert.identifier(request.identifier), other,
                                           request.reason)
        return pb.UnlinkIdentifierResponse(profile_ids=parts)

    @unary
    async def ReviewMatch(self, request: pb.ReviewMatchRequest, context: Context) -> pb.ReviewMatchResponse:
        if not request.HasField("a") or not request.HasField("b"):
            raise InvalidArgument("a and b are required: the two identifiers of the pair")
        profile_ids = await self.pools.admin.run(self.reviews.decide, convert.identifier(request.a),
                                                 convert.identifier(request.b), request.confirm, request.reason)
        return pb.ReviewMatchResponse(profile_ids=profile_ids)

    @unary
    async def RefitLinkageModel(
        self, request: pb.RefitLinkageModelRequest, context: Context
    ) -> pb.LinkageModelInfo:
        if request.sample_records < 0:
            raise InvalidArgument("sample_records must not be negative")
        model = await self.pools.admin.run(self.linker.refit, request.sample_records)
        return convert.linkage_model(model, self.linker.linkage)

    @unary
    async def GetLinkageStatus(self, request: pb.GetLinkageStatusRequest, context: Context) -> pb.LinkageStatus:
        return convert.linkage_status(await self.pools.read.run(self.linker.status), self.linker.linkage)

    @streaming
    async def RescoreLinks(self, request: pb.RescoreLinksRequest,
                           context: Context) -> AsyncIterator[pb.RescoreProgress]:
        if request.page_size < 0:
            raise InvalidArgument("page_size must not be negative")
        async for step in self.pools.admin.iterate(lambda: self.rescorer.run(request.page_size, request.dry_run)):
            yield convert.rescore_progress(step)

    @unary
    async def ExplainLink(self, request: pb.ExplainLinkRequest, context: Context) -> pb.LinkExplanation:
        for name, ref in (("a", request.a), ("b", request.b)):
            if ref.WhichOneof("key") is None:
                raise InvalidArgument(f"{name} is required: an identifier {{type, value}} or a profile id")
        explanation = await self.pools.read.run(self.explainer.explain, convert.profile_key(request.a),
                                                convert.profile_key(request.b))
        return convert.link_explanation(explanation)

    @streaming
    async def ListRejected(self, request: pb.ListRejectedRequest, context: Context) -> AsyncIterator[pb.RejectedItem]:
        if request.limit < 0:
            raise InvalidArgument("limit must not be negative")
        if request.limit > AUDIT_MAX:
            raise InvalidArgument(f"limit must be at most {AUDIT_MAX} (0 means {AUDIT_LIMIT}): page with `until` "
                                  "set to the oldest entry's time")
        where = convert.rejection_filter(request.filter)
        async for view in self.pools.read.iterate(lambda: self.replayer.list(where, request.limit), chunk=LIST_CHUNK):
            yield convert.rejected_item(view)

    @streaming
    async def ListAudit(self, request: pb.ListAuditRequest, context: Context) -> AsyncIterator[pb.AuditEntry]:
        if request.limit < 0:
            raise InvalidArgument("limit must not be negative")
        if request.limit > AUDIT_MAX:
            raise InvalidArgument(f"limit must be at most {AUDIT_MAX} (0 means {AUDIT_LIMIT}): page with `until` "
                                  "set to the oldest entry's time")
        query = AuditQuery(since=convert.from_timestamp(request, "since"), until=convert.from_timestamp(request, "until"),
                           caller=request.caller, method=request.method, limit=request.limit or AUDIT_LIMIT)
        for entry in await self.pools.read.run(self.audit.read, query):
            yield convert.audit_entry(entry)

    @streaming
    async def ReplayRejected(self, request: pb.ReplayRejectedRequest,
                             context: Context) -> AsyncIterator[pb.ReplayProgress]:
        where = convert.rejection_filter(request.filter)
        steps = self.pools.admin.iterate(lambda: self.replayer.replay(where, invalid_values=not request.skip_invalid_values))
        async for step in steps:
            yield convert.replay_progress(step)


def _sources_of(caller: Caller | None) -> frozenset[str] | None:
    """The sources the caller may write as; None: any (no auth, or a token without a list)."""
    return caller.sources if caller is not None else None


def _allowed(record: SourceRecord, sources: frozenset[str] | None) -> SourceRecord:
    """The record, if its source is one the caller may write as; the import stops otherwise
    (the records before it stay imported)."""
    if sources is not None and record.source.strip() not in sources:
        raise PermissionDenied(f"record {record.record_id!r}: source '{record.source}' is not one this token may "
                               f"write as ({', '.join(sorted(sources)) or 'none'})")
    return record
