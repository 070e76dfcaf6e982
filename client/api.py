"""IdentityClient: the identity resolution API as typed Python calls over the generated stubs.

Refs are accepted in every form people hold them (a ProfileRef, an Identifier, "type:value",
a profile id), so that callers never assemble oneofs by hand. Streams are Python iterators
that start on first use and cancel their call when the iterator is closed or dropped.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from identity.v1 import identity_service_pb2 as pb, identity_service_pb2_grpc, segment_service_pb2 as seg
from identity.v1 import segment_service_pb2_grpc

from client.jsonl import event_from_json, record_from_json
from client.messages import (
    Event,
    ForgetProfileResponse,
    IdentityGraph,
    Identifier,
    ImportProgress,
    IngestAck,
    InputError,
    JourneyStep,
    LookupResult,
    Profile,
    ProfileRef,
    RejectedItem,
    RejectionFilter,
    ReplayProgress,
    Rule,
    Segment,
    SegmentChange,
    SegmentMember,
    SourceRecord,
    UnlinkIdentifierResponse,
    identifier,
    parse_channel,
    parse_identifier,
    parse_rejected_kind,
    parse_timestamp,
    profile_ref,
    ref,
)

DEFAULT_ADDRESS = "127.0.0.1:50051"
ADDRESS_VARIABLE = "IDENTITY_ADDRESS"
# Unary calls get a deadline so that a hung server cannot hang a script; streams get none,
# because an ingest or a journey may rightly run for hours.
DEFAULT_TIMEOUT = 30.0
# Where a client finds its credentials when the caller passes none: a token is a secret, and the
# environment keeps it off command lines (which `ps` shows to every user) and out of scripts.
TOKEN_VARIABLE = "IDENTITY_TOKEN"
CA_VARIABLE = "IDENTITY_CA"
CERT_VARIABLE = "IDENTITY_CERT"
KEY_VARIABLE = "IDENTITY_KEY"
AUTHORIZATION = "authorization"

Ref = ProfileRef | Identifier | str
Timeish = str | int | float | datetime | Timestamp
PemFile = str | Path
Request = TypeVar("Request")
Answer = TypeVar("Answer")
Metadata = tuple[tuple[str, str | bytes], ...]

__all__ = [
    "ADDRESS_VARIABLE", "AUTHORIZATION", "BearerAuth", "CA_VARIABLE", "CERT_VARIABLE", "DEFAULT_ADDRESS",
    "IdentityClient", "KEY_VARIABLE", "PemFile", "Ref", "Relay", "Segments", "ServerStream", "TOKEN_VARIABLE",
    "event_from_json", "identifier", "parse_identifier", "profile_ref", "record_from_json", "ref", "tls_credentials",
]


class IdentityClient:
    """One connection to the identity service; a context manager that closes the channel it opened."""

    def __init__(self, target: str | grpc.Channel | None = None, *, timeout: float | None = DEFAULT_TIMEOUT,
                 credentials: grpc.ChannelCredentials | None = None, token: str | None = None,
                 ca: PemFile | None = None, cert: PemFile | None = None, key: PemFile | None = None) -> None:
        """target is an address ("host:port"; default IDENTITY_ADDRESS, then 127.0.0.1:50051) or a
        channel the caller owns and closes.

        token (default IDENTITY_TOKEN; "" for none) goes with every call as `authorization: Bearer`,
        on a channel given too. ca, cert and key are PEM files (defaults IDENTITY_CA, IDENTITY_CERT,
        IDENTITY_KEY) that turn the address into a TLS channel: ca verifies the server, cert and key
        prove this client (mutual TLS). credentials, ready-made, do the same and then take precedence
        over the environment.
        """
        bearer = _bearer_auth(os.environ.get(TOKEN_VARIABLE) if token is None else token)
        if isinstance(target, grpc.Channel):
            if (ca, cert, key) != (None, None, None):
                raise ValueError("a channel given brings its own security: pass ca, cert and key with an address")
            self.address = None
            channel, self._owns_channel = target, False
        else:
            self.address = target or os.environ.get(ADDRESS_VARIABLE) or DEFAULT_ADDRESS
            tls = _channel_credentials(credentials, ca, cert, key)
            channel, self._owns_channel = _open_channel(self.address, tls), True
        self._channel = channel if bearer is None else grpc.intercept_channel(channel, bearer)
        self.timeout = timeout
        self._identity = identity_service_pb2_grpc.IdentityServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self.segments = Segments(self._channel, timeout)

    def __enter__(self) -> IdentityClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel if this client opened it; a channel passed in belongs to its caller."""
        if self._owns_channel:
            self._channel.close()

    def ingest(self, events: Iterable[Event]) -> Iterator[IngestAck]:
        """One ack per event, in the order sent, each yielded as it arrives.

        If the events iterable raises, the events before it are still acked, and then its
        exception is raised here (gRPC alone would turn it into a bare CANCELLED).
        """
        return _bidi(self._identity.Ingest, events)

    def ingest_batches(self, batches: Iterable[Iterable[Event]]) -> Iterator[list[IngestAck]]:
        """As ingest, for events at hand in bulk: one list of acks per batch (one ack per event,
        in order), as each batch is committed. Batches of about 500 events suit the server."""
        requests = (pb.EventBatch(events=list(batch)) for batch in batches)
        answers: Iterator[pb.IngestAckBatch] = _bidi(self._identity.IngestBatches, requests)
        return (list(answer.acks) for answer in answers)

    def import_records(self, records: Iterable[SourceRecord]) -> Iterator[ImportProgress]:
        """Progress while the server links the records, then one summary, which ends the stream."""
        return _bidi(self._identity.ImportRecords, records)

    def lookup(self, refs: Iterable[Ref]) -> Iterator[LookupResult]:
        """One result per ref, in order; request_id is the ref's position ("0", "1", ...).

        A miss is a result with not_found set, never an exception, so one stream serves a batch.
        """
        requests = (pb.LookupRequest(request_id=str(n), ref=ref(target)) for n, target in enumerate(refs))
        return _bidi(self._identity.LookupProfiles, requests)

    def lookup_one(self, target: Ref) -> Profile | None:
        """The profile a ref names, or None when there is none."""
        result: pb.LookupResult = self._identity.LookupProfile(
            pb.LookupRequest(request_id="0", ref=ref(target)), timeout=self.timeout)
        return result.profile if result.WhichOneof("result") == "profile" else None

    def identity_graph(self, target: Ref) -> IdentityGraph:
        """The nodes and edges of the profile a ref names, every edge with its evidence."""
        answer: IdentityGraph = self._identity.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=ref(target)),
                                                                timeout=self.timeout)
        return answer

    def journey(self, target: Ref, *, since: Timeish | None = None, until: Timeish | None = None,
                types: Iterable[str] | str = (), channels: Iterable[str | int] | str = (),
                sources: Iterable[str] | str = (), descending: bool = False, cursor: str = "",
                limit: int = 0) -> Iterator[JourneyStep]:
        """A profile's touchpoints in time order within [since, until); pass a step's cursor to resume after it.

        Times are RFC 3339 text, epoch seconds or aware datetimes. Filters are checked here,
        before the call, so a typo fails at once rather than on first iteration.
        """
        request = pb.TraverseJourneyRequest(
            ref=ref(target), types=_names(types), channels=[parse_channel(c) for c in _names(channels)],
            sources=_names(sources), descending=descending, cursor=cursor, limit=limit,
        )
        if since is not None:
            request.since.CopyFrom(parse_timestamp(since))
        if until is not None:
            request.until.CopyFrom(parse_timestamp(until))
        return _served(self._identity.TraverseJourney, request)

    def forget(self, target: Ref) -> ForgetProfileResponse:
        """Erases the person a ref names; only salted hashes of their identifiers remain."""
        answer: ForgetProfileResponse = self._identity.ForgetProfile(pb.ForgetProfileRequest(ref=ref(target)),
                                                                     timeout=self.timeout)
        return answer

    def unlink(self, identifier: Identifier | str, linked_to: Identifier | str | None = None,
               reason: str = "") -> UnlinkIdentifierResponse:
        """Takes an identifier out of its profile, or only its link to linked_to; answers the resulting profiles."""
        request = pb.UnlinkIdentifierRequest(identifier=_identifier_of(identifier), reason=reason)
        if linked_to is not None:
            request.linked_to.CopyFrom(_identifier_of(linked_to))
        answer: UnlinkIdentifierResponse = self._identity.UnlinkIdentifier(request, timeout=self.timeout)
        return answer

    def review(self, a: Identifier | str, b: Identifier | str, confirm: bool, reason: str = "") -> pb.ReviewMatchResponse:
        """A reviewer's decision on a pair: confirm links it (through merge protection), reject never links it."""
        request = pb.ReviewMatchRequest(a=_identifier_of(a), b=_identifier_of(b), confirm=confirm, reason=reason)
        answer: pb.ReviewMatchResponse = self._identity.ReviewMatch(request, timeout=self.timeout)
        return answer

    def refit(self, sample_records: int = 0) -> pb.LinkageModelInfo:
        """Fits the linkage model anew on the graph's records; answers the new current version."""
        # a fit takes minutes on a large graph: at least 10 minutes, whatever the unary timeout
        answer: pb.LinkageModelInfo = self._identity.RefitLinkageModel(
            pb.RefitLinkageModelRequest(sample_records=sample_records), timeout=max(self.timeout or 0.0, 600.0))
        return answer

    def rescore(self, page_size: int = 0, dry_run: bool = False) -> Iterator[pb.RescoreProgress]:
        """Re-scores every probabilistic link under the current model: progress, then a summary."""
        request = pb.RescoreLinksRequest(page_size=page_size, dry_run=dry_run)
        return iter(self._identity.RescoreLinks(request, timeout=24 * 3600))

    def linkage_status(self) -> pb.LinkageStatus:
        """The current linkage model, the online linkage queue's length and oldest wait, and
        whether probabilistic linkage is on (if not, why: probabilistic_linkage_on, why_off)."""
        answer: pb.LinkageStatus = self._identity.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=self.timeout)
        return answer

    def health(self, service: str = "") -> str:
        """The standard health check's status name ("SERVING", "NOT_SERVING", ...); "" is the whole server."""
        check = self._health.Check  # type: ignore[attr-defined]  # types-grpcio-health-checking leaves the stub's methods out
        answer: health_pb2.HealthCheckResponse = check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)

    def explain(self, a: Ref, b: Ref) -> pb.LinkExplanation:
        """Whether two refs share a profile: the links that join them, or the model's score and what keeps them apart."""
        request = pb.ExplainLinkRequest(a=ref(a), b=ref(b))
        answer: pb.LinkExplanation = self._identity.ExplainLink(request, timeout=self.timeout)
        return answer

    def list_rejected(self, *, codes: Iterable[str] | str = (), since: Timeish | None = None,
                      until: Timeish | None = None, source: str = "", kind: str | int | None = None,
                      limit: int = 0) -> Iterator[RejectedItem]:
        """Quarantined events and records, newest first, each with its reason code and payload as received.

        Every filter given must hold: codes (any of), last rejected within [since, until), source,
        kind ("event" or "record"); limit 0 is all. Filters are checked here, before the call.
        """
        request = pb.ListRejectedRequest(filter=_rejection_filter(codes, since, until, source, kind), limit=limit)
        return _served(self._identity.ListRejected, request)

    def audit(self, *, since: Timeish | None = None, until: Timeish | None = None, caller: str = "",
              method: str = "", limit: int = 0) -> Iterator[pb.AuditEntry]:
        """The audit trail, newest first: admin calls and refused calls (needs the admin scope).
        caller is a token's name; method e.g. "ForgetProfile"; limit 0 is the server's (1,000)."""
        request = pb.ListAuditRequest(caller=caller, method=method, limit=limit)
        if since is not None:
            request.since.CopyFrom(parse_timestamp(since))
        if until is not None:
            request.until.CopyFrom(parse_timestamp(until))
        return _served(self._identity.ListAudit, request)

    def replay_rejected(self, *, codes: Iterable[str] | str = (), since: Timeish | None = None,
                        until: Timeish | None = None, source: str = "", kind: str | int | None = None,
                        skip_invalid_values: bool = False) -> Iterator[ReplayProgress]:
        """Feeds the quarantined items the filters select through ingest again, after the configuration
        changed: a status per phase as it advances, then one summary.

        Safe to run again after an interruption: the server accepts each event once. With
        skip_invalid_values the values kept as invalid on touchpoints are not looked at again.
        """
        request = pb.ReplayRejectedRequest(filter=_rejection_filter(codes, since, until, source, kind),
                                           skip_invalid_values=skip_invalid_values)
        return _served(self._identity.ReplayRejected, request)


class Segments:
    """The segment service: rule-based audiences over profiles, and their change feed."""

    def __init__(self, channel: grpc.Channel, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self._stub = segment_service_pb2_grpc.SegmentServiceStub(channel)
        self.timeout = timeout

    def upsert(self, name: str, rule: Rule, description: str = "") -> Segment:
        """Stores the rule as the segment's next version and evaluates it."""
        request = seg.UpsertSegmentRequest(name=name, description=description, rule=rule)
        answer: Segment = self._stub.UpsertSegment(request, timeout=self.timeout)
        return answer

    def get(self, name: str) -> Segment:
        answer: Segment = self._stub.GetSegment(seg.GetSegmentRequest(name=name), timeout=self.timeout)
        return answer

    def members(self, name: str, identifier_types: Iterable[str] | str = (),
                page_size: int = 0) -> Iterator[SegmentMember]:
        """Current members, each with its identifiers of identifier_types (all types when empty)."""
        request = seg.ListSegmentMembersRequest(name=name, identifier_types=_names(identifier_types),
                                                page_size=page_size)
        return _served(self._stub.ListSegmentMembers, request)

    def watch(self, name: str, after_position: int = 0,
              idle_seconds: float | None = None) -> ServerStream[SegmentChange]:
        """Enter and exit changes after a position; keep the last position seen to resume exactly once.

        The feed follows new changes for as long as it is read; with idle_seconds it ends once
        no change arrived for that long. OUT_OF_RANGE means the position was dropped by retention.
        """
        request = seg.WatchSegmentRequest(name=name, after_position=after_position)
        return ServerStream(lambda: self._stub.WatchSegment(request), idle_seconds)


class ServerStream(Generic[Answer]):
    """A server stream as an iterator that any thread may end, at once or when the stream falls idle.

    A thread blocked in next() cannot be interrupted, only its call cancelled, so cancel() and
    the idle watchdog cancel the call; the reader then sees the end of the stream rather than
    CANCELLED. Like every stream here, the call starts on first use and is cancelled when the
    stream is closed or dropped.
    """

    def __init__(self, start: Callable[[], Any], idle_seconds: float | None = None) -> None:
        if idle_seconds is not None and idle_seconds <= 0:
            raise ValueError(f"idle_seconds must be positive, not {idle_seconds}")
        self._start = start
        self._idle_seconds = idle_seconds
        self._call: Any = None
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._cancelled = threading.Event()  # set by cancel() on another thread
        # When the reader began waiting for the next answer; None while it handles one.
        self.waiting_since: float | None = None

    def __iter__(self) -> ServerStream[Answer]:
        return self

    def __next__(self) -> Answer:
        with self._lock:
            if self._cancelled.is_set() or self._ended.is_set():
                raise StopIteration
            if self._call is None:
                self._call = self._start()
                if self._idle_seconds is not None:
                    threading.Thread(target=_end_when_idle, args=(weakref.ref(self), self._ended, self._idle_seconds),
                                     name="stream-idle-watchdog", daemon=True).start()
            call = self._call
        self.waiting_since = time.monotonic()
        try:
            answer: Answer = next(call)  # the gRPC call object is untyped: its answers are Any
            return answer
        except StopIteration:
            self._ended.set()
            raise
        except grpc.RpcError as error:
            self._ended.set()
            if self._cancelled.is_set() and status_code(error) == grpc.StatusCode.CANCELLED:
                raise StopIteration from None
            raise
        finally:
            self.waiting_since = None

    def cancel(self) -> None:
        """Ends the stream from any thread; a reader blocked in next() gets the end of the stream."""
        with self._lock:
            self._cancelled.set()
            call = self._call
        self._ended.set()
        if call is not None:
            call.cancel()

    def close(self) -> None:
        self.cancel()

    def __del__(self) -> None:
        call = getattr(self, "_call", None)
        if call is not None:
            call.cancel()


def _end_when_idle(stream_ref: weakref.ref[ServerStream[Any]], ended: threading.Event, idle: float) -> None:
    """Cancels the stream once its reader has waited idle seconds for one answer; holds no strong
    reference, so a dropped stream is still collected (and its call cancelled)."""
    while True:
        stream = stream_ref()
        if stream is None:
            return
        since = stream.waiting_since
        left = idle / 4 if since is None else idle - (time.monotonic() - since)
        if left <= 0 and stream.waiting_since == since:
            stream.cancel()
            return
        del stream
        if ended.wait(max(left, 0.001)):
            return


def status_code(error: BaseException) -> grpc.StatusCode | None:
    """The status of a failed call; None for any other error (an RpcError need not be a call)."""
    code = getattr(error, "code", None) if isinstance(error, grpc.RpcError) else None
    return code() if callable(code) else None


def rpc_error_text(error: BaseException) -> str:
    """The one line a person reads about a failure: `CODE: details` for a failed call, else the
    error's own text, with its type when it is not an RpcError, so that a log says what broke."""
    code, details = status_code(error), getattr(error, "details", None)
    if code is not None and callable(details):
        return f"{code.name}: {details()}"
    return str(error) if isinstance(error, grpc.RpcError) else f"{type(error).__name__}: {error}"


class Relay(Generic[Request]):
    """Hands a caller's requests to gRPC, keeping an exception instead of letting it cancel the call.

    gRPC reads request iterators on a thread of its own and turns an exception there into a
    bare CANCELLED, losing the cause. The relay ends the request stream cleanly instead, so
    the server answers everything sent, and raise_error() passes the cause on afterwards.
    """

    def __init__(self, requests: Iterable[Request]) -> None:
        self._requests = iter(requests)
        self.error: Exception | None = None

    def __iter__(self) -> Relay[Request]:
        return self

    def __next__(self) -> Request:
        if self.error is not None:
            raise StopIteration
        try:
            return next(self._requests)
        except StopIteration:
            raise
        except Exception as exc:
            self.error = exc
            raise StopIteration from None

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


def _bidi(call: Callable[..., Any], requests: Iterable[Request], timeout: float | None = None) -> Iterator[Answer]:
    relay = Relay(requests)
    answers = call(relay, timeout=timeout)
    try:
        yield from answers
    finally:
        answers.cancel()
    relay.raise_error()


def _served(call: Callable[..., Any], request: Any) -> Iterator[Answer]:
    answers = call(request)
    try:
        yield from answers
    finally:
        answers.cancel()


def _open_channel(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, credentials)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    """The details of one call with other metadata; grpc's own kind is private."""

    method: str
    timeout: float | None
    metadata: Metadata | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class BearerAuth(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                 grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Sends `authorization: Bearer <token>` with every call, of all four kinds.

    An interceptor rather than grpc's call credentials, which gRPC sends over TLS only: the
    token must also reach a server on a plaintext loopback channel (a sidecar, a test).
    """

    def __init__(self, token: str) -> None:
        """Checks the token here because gRPC refuses a bad header value only when a call is made,
        and with a message that does not say it was the token. No message repeats the token."""
        token = token.strip()
        if not token:
            raise InputError("the token is empty")
        if not all("!" <= c <= "~" for c in token):
            raise InputError(f"the token has a space or a character that is not printable ASCII; check "
                             f"${TOKEN_VARIABLE} or --token")
        self._metadata: Metadata = ((AUTHORIZATION, f"Bearer {token}"),)

    def __repr__(self) -> str:
        return "BearerAuth(<token hidden>)"  # so that a logged client or a traceback shows no secret

    def _authorized(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = tuple(details.metadata or ()) + self._metadata
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation: Callable[[grpc.ClientCallDetails, Any], Any],
                              client_call_details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._authorized(client_call_details), request)

    def intercept_unary_stream(self, continuation: Callable[[grpc.ClientCallDetails, Any], Any],
                               client_call_details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._authorized(client_call_details), request)

    def intercept_stream_unary(self, continuation: Callable[[grpc.ClientCallDetails, Iterator[Any]], Any],
                               client_call_details: grpc.ClientCallDetails, request_iterator: Iterator[Any]) -> Any:
        return continuation(self._authorized(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation: Callable[[grpc.ClientCallDetails, Iterator[Any]], Any],
                                client_call_details: grpc.ClientCallDetails, request_iterator: Iterator[Any]) -> Any:
        return continuation(self._authorized(client_call_details), request_iterator)


def _bearer_auth(token: str | None) -> BearerAuth | None:
    """None for no token: unset, or blank, so that `token=""` turns off the environment's."""
    return BearerAuth(token) if token and token.strip() else None


def tls_credentials(ca: PemFile | None = None, cert: PemFile | None = None,
                    key: PemFile | None = None) -> grpc.ChannelCredentials:
    """TLS from PEM files: ca verifies the server (None: the system's roots), cert and key prove the
    client to a server that asks (mutual TLS). Files are read now, so that a wrong path fails here
    rather than as UNAVAILABLE on the first call."""
    if (cert is None) != (key is None):
        raise InputError(f"a client certificate needs its key: give cert and key together (${CERT_VARIABLE} and "
                         f"${KEY_VARIABLE}, or --cert and --key), or neither")
    return grpc.ssl_channel_credentials(root_certificates=_pem("CA certificate", ca),
                                        private_key=_pem("client key", key),
                                        certificate_chain=_pem("client certificate", cert))


def _channel_credentials(credentials: grpc.ChannelCredentials | None, ca: PemFile | None, cert: PemFile | None,
                         key: PemFile | None) -> grpc.ChannelCredentials | None:
    """What secures a new channel: the credentials given, else TLS from the PEM files given, else from
    the environment's, else nothing (plaintext, as before TLS existed)."""
    if credentials is not None:
        if (ca, cert, key) != (None, None, None):
            raise ValueError("give either credentials or ca, cert and key, not both")
        return credentials
    ca = ca if ca is not None else _environment_path(CA_VARIABLE)
    cert = cert if cert is not None else _environment_path(CERT_VARIABLE)
    key = key if key is not None else _environment_path(KEY_VARIABLE)
    if (ca, cert, key) == (None, None, None):
        return None
    return tls_credentials(ca, cert, key)


def _environment_path(variable: str) -> str | None:
    return os.environ.get(variable) or None


def _pem(what: str, path: PemFile | None) -> bytes | None:
    if path is None:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the {what} {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise InputError(f"the {what} {path} is not PEM (no -----BEGIN line)")
    return data


def _identifier_of(value: Identifier | str) -> Identifier:
    return value if isinstance(value, Identifier) else parse_identifier(value)


def _rejection_filter(codes: Iterable[str] | str, since: Timeish | None, until: Timeish | None, source: str,
                      kind: str | int | None) -> RejectionFilter:
    selected = RejectionFilter(codes=_names(codes), source=source, kind=parse_rejected_kind(kind))
    if since is not None:
        selected.since.CopyFrom(parse_timestamp(since))
    if until is not None:
        selected.until.CopyFrom(parse_timestamp(until))
    return selected


def _names(values: Iterable[Any] | str) -> list[Any]:
    """A lone string is one name, not a sequence of letters."""
    return [values] if isinstance(values, str) else list(values)
