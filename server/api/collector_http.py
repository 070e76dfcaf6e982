"""The HTTP collector (`--collect-listen`, default 127.0.0.1:8088): Segment's tracking API, so
that web, app and server SDKs send to the service unchanged.

A transport like the gRPC servicers: it reads the request, checks the write key and the
limits, has server/identity/tracking.py say what each message means, and hands the events to
the same Ingestor as `Ingest`. It runs on the gRPC server's event loop (aiohttp), and the
Neo4j work on the same ingest pool.

The promise is the gRPC ack's: `200 {"success": true}` goes out only after every message of
the request is committed, or kept in quarantine with its reason (listed in the answer). A
redelivered message (same messageId) is a duplicate, so an SDK's retry is always safe:
429 (too many requests at once) and 503 (Neo4j unreachable, the server stopping) say retry.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from server.access.tokens import INGEST, Caller, TokenRegistry
from server.api.metrics import ServerMetrics
from server.config import TlsFiles
from server.errors import ShuttingDown, StorageUnavailable
from server.identity.tracking import Delivery, MessageFault, call_type, to_event
from server.identity.tracking_config import CollectorLimits, TrackingRules
from server.identity.values import Ack, AckStatus, EventInput

log = logging.getLogger(__name__)

Ingest = Callable[[list[EventInput], frozenset[str] | None], Awaitable[list[Ack]]]
# Path of each endpoint -> its call type (None: a batch). The one-letter paths are those
# analytics.js posts to; /v1/import is the spec's older name of a batch.
ENDPOINTS: dict[str, str | None] = {
    "identify": "identify", "track": "track", "page": "page", "screen": "screen", "group": "group",
    "alias": "alias", "batch": None, "import": None,
    "i": "identify", "t": "track", "p": "page", "s": "screen", "g": "group", "a": "alias", "b": None,
}
RETRY_AFTER_BUSY_S = 1
RETRY_AFTER_DOWN_S = 5


@dataclass(frozen=True)
class CollectorDeps:
    tracking: TrackingRules
    limits: CollectorLimits
    tokens: TokenRegistry | None  # None: tokens off, any write key
    ingest: Ingest  # commits (or quarantines) events and acks each, in order
    ready: Callable[[], tuple[bool, str]]  # whether Neo4j answers, and why not
    metrics: ServerMetrics
    chunk: int  # events per ingest transaction


class Refused(Exception):
    """A request answered with an error status; `code` and `message` are what the SDKs read."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


class Collector:
    def __init__(self, deps: CollectorDeps) -> None:
        self.deps = deps
        self.open = 0  # requests being handled (the event loop's only: no lock)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.deps.limits.max_request_bytes + 1,
                              middlewares=[self._cors])
        for path, call in ENDPOINTS.items():
            app.router.add_post(f"/v1/{path}", self._endpoint(call))
            app.router.add_route("OPTIONS", f"/v1/{path}", self._preflight)
        app.router.add_get("/v1/projects/{write_key}/settings", self._settings)
        return app

    async def _settings(self, request: web.Request) -> web.Response:
        """What analytics.js fetches from its CDN before it sends (`cdnURL` pointed here): the
        settings that make it send to this collector. They name no secret: the key is the caller's."""
        self.deps.metrics.collector_requests.labels("200").inc()
        return web.json_response({"integrations": {"Segment.io": {
            "apiKey": request.match_info["write_key"], "apiHost": f"{request.host}/v1", "protocol": request.scheme}},
            "plan": {"track": {"__default": {"enabled": True}}, "identify": {"__default": {"enabled": True}}},
            "edgeFunction": {}, "analyticsNextEnabled": True})

    def _endpoint(self, call: str | None) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await self.collect(request, call)
        return handle

    async def collect(self, request: web.Request, call: str | None) -> web.Response:
        if self.open >= self.deps.limits.max_concurrent_requests:
            return self._answer(Refused(429, "too_many_requests", f"more than {self.deps.limits.max_concurrent_requests}"
                                        " requests at once (max_concurrent_requests); retry", RETRY_AFTER_BUSY_S))
        self.open += 1
        try:
            return self._answer(await self._collect(request, call))
        except Refused as refused:
            return self._answer(refused)
        except Exception:  # a fault of ours: logged, and a 500 the SDKs retry (messageId keeps that safe)
            log.exception("collector: %s %s failed", request.method, request.path)
            return self._answer(Refused(500, "internal", "the server failed; see its log. Retry"))
        finally:
            self.open -= 1

    async def _collect(self, request: web.Request, call: str | None) -> tuple[int, dict[str, Any]]:
        header_key = write_key_of(request.headers.get("Authorization", "")) if self.deps.tokens is not None else None
        caller = self._caller(header_key) if header_key is not None else None
        body = await read_body(request, self.deps.limits.max_request_bytes)
        document = parse(body)
        if caller is None:
            caller = self._caller(_body_key(document))
        ready, why = self.deps.ready()
        if not ready:
            raise Refused(503, "unavailable", f"Neo4j is not reachable ({why}); retry", RETRY_AFTER_DOWN_S)
        messages, calls = self._messages(document, call, len(body))
        shared = document.get("context") if call is None else None  # a batch's context: every message's
        delivery = Delivery(source_of(caller, self.deps.tracking), datetime.now(UTC), document.get("sentAt"),
                            shared if isinstance(shared, dict) else {})
        events = [to_event(message, kind, delivery, self.deps.tracking) for message, kind in zip(messages, calls)]
        acks = await self._ingest(events, caller.sources)
        self._count(calls, acks)
        return answer(acks, events, single=call is not None)

    def _caller(self, key: str | None) -> Caller:
        """The write key's token: its scope and sources apply (tokens off: anyone, any source)."""
        tokens = self.deps.tokens
        if tokens is None:
            return Caller("(auth off)", frozenset({INGEST}))
        if not key:
            raise Refused(401, "missing_write_key", "no write key: send it as the Basic auth user name or as "
                                                    "`writeKey` in the body")
        caller = tokens.caller(f"Bearer {key}")
        if caller is None:
            raise Refused(401, "unknown_write_key", "the write key is not a token of this service")
        if INGEST not in caller.scopes:
            raise Refused(403, "forbidden", f"the token {caller.name!r} lacks the ingest scope")
        return caller

    def _messages(self, document: dict[str, Any], call: str | None, size: int) -> tuple[list[Any], list[str]]:
        limits = self.deps.limits
        if call is None:
            batch = document.get("batch")
            if not isinstance(batch, list):
                raise Refused(400, "no_batch", "a batch request needs `batch`, a list of messages")
            if len(batch) > limits.max_batch_messages:
                raise Refused(413, "too_many_messages", f"the batch holds {len(batch)} messages "
                                                        f"(at most {limits.max_batch_messages})")
        else:
            batch = [document]
        calls = []
        for index, message in enumerate(batch):
            try:
                calls.append(call_type(message, call))
            except MessageFault as fault:
                raise Refused(400, fault.code, f"message {index}: {fault}") from None
        if size > limits.max_message_bytes:  # only a large body (decompressed) can hold a large message
            for index, message in enumerate(batch):
                if (length := len(json.dumps(message, ensure_ascii=False).encode())) > limits.max_message_bytes:
                    raise Refused(413, "message_too_large", f"message {index} takes {length} bytes "
                                                            f"(at most {limits.max_message_bytes})")
        return batch, calls

    async def _ingest(self, events: list[EventInput], sources: frozenset[str] | None) -> list[Ack]:
        acks: list[Ack] = []
        try:
            for start in range(0, len(events), self.deps.chunk):
                acks += await self.deps.ingest(events[start:start + self.deps.chunk], sources)
        except (StorageUnavailable, ShuttingDown) as exc:
            # what was committed before stays; the SDK's retry finds it as duplicates
            raise Refused(503, "unavailable", f"{exc}; retry", RETRY_AFTER_DOWN_S) from None
        return acks

    def _count(self, calls: Sequence[str], acks: Sequence[Ack]) -> None:
        for kind, ack in zip(calls, acks):
            self.deps.metrics.collector_messages.labels(kind, ack.status.name.lower()).inc()

    def _answer(self, result: tuple[int, dict[str, Any]] | Refused) -> web.Response:
        if isinstance(result, Refused):
            status, body = result.status, {"success": False, "code": result.code, "message": result.message}
            headers = {"Retry-After": str(result.retry_after)} if result.retry_after is not None else {}
        else:
            (status, body), headers = result, {}
        self.deps.metrics.collector_requests.labels(str(status)).inc()
        return web.json_response(body, status=status, headers=headers)

    @web.middleware
    async def _cors(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # 404, 405: answered as the spec's JSON too
            self.deps.metrics.collector_requests.labels(str(exc.status)).inc()
            response = web.json_response({"success": False, "code": exc.reason.lower().replace(" ", "_"),
                                          "message": f"{request.method} {request.path}: {exc.reason}; the "
                                          "endpoints are POST /v1/" + ", /v1/".join(list(ENDPOINTS)[:8])},
                                         status=exc.status)
        origin = request.headers.get("Origin")
        if origin and self._allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    async def _preflight(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin", "")
        if not self._allowed(origin):
            return web.json_response({"success": False, "code": "origin_not_allowed",
                                      "message": f"origin {origin[:100]!r} is not in allowed_origins"}, status=403)
        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers",
                                                                "Content-Type, Authorization, Content-Encoding"),
            "Access-Control-Max-Age": "600"})

    def _allowed(self, origin: str) -> bool:
        origins = self.deps.limits.allowed_origins
        return "*" in origins or origin in origins


def write_key_of(authorization: str) -> str | None:
    """The write key of an Authorization header: Basic's user name (the SDKs' way), or a
    Bearer token; None when there is no header."""
    scheme, _, value = authorization.strip().partition(" ")
    if not scheme:
        return None
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            raise Refused(401, "bad_authorization", "the Basic Authorization header is not base64 of "
                                                    "'writeKey:'") from None
    raise Refused(401, "bad_authorization", f"Authorization scheme {scheme[:20]!r}: use Basic (write key as the "
                                            "user name) or Bearer")


def _body_key(document: dict[str, Any]) -> str | None:
    key = document.get("writeKey")
    return key if isinstance(key, str) else None


def source_of(caller: Caller, tracking: TrackingRules) -> str:
    """The source events are stored under: the token's only source, else its name; with
    tokens off, the configured default. Never the key itself."""
    if caller.name == "(auth off)":
        return tracking.default_source
    if caller.sources is not None and len(caller.sources) == 1:
        return next(iter(caller.sources))
    return caller.name


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, decompressed (aiohttp inflates gzip and deflate in bounded steps), refused
    with 413 as soon as it holds more than limit bytes: a gzip bomb stops there."""
    if request.content_length is not None and request.content_length > limit:
        raise Refused(413, "request_too_large", f"the body takes {request.content_length} bytes (at most {limit})")
    chunks, size = [], 0
    try:
        while chunk := await request.content.read(65536):
            size += len(chunk)
            if size > limit:
                raise Refused(413, "request_too_large", f"the body holds more than {limit} bytes once "
                                                        f"decompressed (at most {limit})")
            chunks.append(chunk)
    except (ValueError, OSError) as exc:  # a body that is no gzip, a connection cut mid-body
        raise Refused(400, "bad_body", f"the body cannot be read: {exc}") from None
    return b"".join(chunks)


def parse(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise Refused(400, "invalid_json", "the body must be a JSON object")
    return document


def answer(acks: Sequence[Ack], events: Sequence[EventInput], single: bool) -> tuple[int, dict[str, Any]]:
    """The answer: success with what was stored, what was a duplicate, and each message's
    warnings and rejections (by index). A single call whose message was rejected gets 400
    (403 for a source the token may not write as), with the reason; it is kept in quarantine."""
    rejected = [{"index": n, "messageId": e.event_id, "code": a.code, "reason": a.reason}
                for n, (a, e) in enumerate(zip(acks, events)) if a.status is AckStatus.REJECTED]
    warnings = [{"index": n, "messageId": e.event_id, "field": w.field, "value": w.value, "reason": w.reason}
                for n, (a, e) in enumerate(zip(acks, events)) for w in a.warnings]
    body: dict[str, Any] = {
        "success": True,
        "accepted": sum(a.status is AckStatus.ACCEPTED for a in acks),
        "duplicates": sum(a.status is AckStatus.DUPLICATE for a in acks),
        "rejected": rejected, "warnings": warnings}
    if single and rejected:
        refused = rejected[0]
        return (403 if refused["code"] == "source_not_allowed" else 400,
                {"success": False, "code": refused["code"], "message": refused["reason"], "rejected": rejected,
                 "warnings": warnings})
    return 200, body


def ssl_context(tls: TlsFiles) -> ssl.SSLContext:
    """The gRPC port's certificate; with a client CA, clients must present a certificate it signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    if tls.client_ca is not None:
        context.load_verify_locations(tls.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass
class CollectorSite:
    runner: web.AppRunner
    port: int


async def start_collector(collector: Collector, listen: str, tls: TlsFiles | None, reuse_port: bool,
                          grace: float) -> CollectorSite:
    """Serves the collector on the running loop; returns the bound port (port 0 picks one).
    On stop, requests in flight get grace seconds to finish (and be acked)."""
    host, port = listen.rsplit(":", 1)
    runner = web.AppRunner(collector.app(), access_log=None, handle_signals=False, shutdown_timeout=grace)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]") or "0.0.0.0", int(port), reuse_port=reuse_port or None,
                       ssl_context=ssl_context(tls) if tls is not None else None)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"cannot listen on {listen} for the collector (--collect-listen): {exc.strerror}") from exc
    bound = runner.addresses[0][1] if runner.addresses else int(port)
    return CollectorSite(runner, int(bound))


async def stop_collector(site: CollectorSite) -> None:
    """Stops taking requests and lets those in flight finish (within the start's grace)."""
    began = time.monotonic()
    await site.runner.cleanup()
    log.debug("collector stopped in %.1f s", time.monotonic() - began)
