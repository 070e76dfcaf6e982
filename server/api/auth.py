"""Who may call what: every call but health checks (and reflection, where enabled) carries a
bearer token, and each method needs one scope.

The interceptor runs before the per-method limits, so refused calls never take a place. A
missing or unknown token gets UNAUTHENTICATED; a token without the method's scope gets
PERMISSION_DENIED naming the scope. Both are audited, and so is every admin call, with its
target and outcome, before its answer goes out. The caller of a call in progress is in
`current_caller()`, for the checks only the servicer can make (which sources an ingest token
may write as).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from google.protobuf import text_format
from google.protobuf.message import Message
from identity.v1 import common_pb2

from server.access.audit import AuditEntry, AuditTrail
from server.access.tokens import ADMIN, INGEST, READ, Caller, TokenRegistry
from server.api.limits import handler_kind, service_of
from server.api.status import before_abort

log = logging.getLogger(__name__)
Behaviour = Callable[..., Any]
if TYPE_CHECKING:  # generic in the type stubs only
    Handler = grpc.RpcMethodHandler[Any, Any]

_IDENTITY, _SEGMENTS = "/identity.v1.IdentityService/", "/identity.v1.SegmentService/"
# Every method of the two services. A method missing here is refused to every token (a test
# checks that the table covers the protos, so a new RPC cannot ship without a scope).
METHOD_SCOPES: Mapping[str, str] = {
    _IDENTITY + "Ingest": INGEST,
    _IDENTITY + "IngestBatches": INGEST,
    _IDENTITY + "ImportRecords": INGEST,
    _IDENTITY + "LookupProfiles": READ,
    _IDENTITY + "LookupProfile": READ,
    _IDENTITY + "GetIdentityGraph": READ,
    _IDENTITY + "TraverseJourney": READ,
    _IDENTITY + "GetLinkageStatus": READ,
    _IDENTITY + "ExplainLink": READ,
    _IDENTITY + "ForgetProfile": ADMIN,
    _IDENTITY + "UnlinkIdentifier": ADMIN,
    _IDENTITY + "ReviewMatch": ADMIN,
    _IDENTITY + "RefitLinkageModel": ADMIN,
    _IDENTITY + "RescoreLinks": ADMIN,
    _IDENTITY + "ListRejected": ADMIN,  # quarantined payloads, raw and unlinked: an operator's tool
    _IDENTITY + "ReplayRejected": ADMIN,
    _IDENTITY + "ListAudit": ADMIN,
    _SEGMENTS + "UpsertSegment": ADMIN,
    _SEGMENTS + "GetSegment": READ,
    _SEGMENTS + "ListSegmentMembers": READ,
    _SEGMENTS + "WatchSegment": READ,
}
TARGET_LIMIT = 500  # characters of a request kept as the audit entry's target
IDENTIFIER = common_pb2.Identifier.DESCRIPTOR.full_name

_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


def current_caller() -> Caller | None:
    """The authenticated caller of the call in progress; None where auth is off."""
    return _caller.get()


# Who calls where no tokens are configured (loopback, or --insecure): anyone, for everything;
# admin calls are still audited under this name.
AUTH_OFF = Caller("(auth off)", frozenset(METHOD_SCOPES.values()))


class Authorization(grpc.aio.ServerInterceptor):
    """Checks each call's token and scope (with tokens None: lets every call through as
    AUTH_OFF), and audits admin calls and refusals."""

    def __init__(self, tokens: TokenRegistry | None, audit: AuditTrail, exempt: frozenset[str],
                 hash_of: Callable[[str, str], tuple[str, str]]) -> None:
        self.tokens = tokens
        self.audit = audit
        self.exempt = exempt  # services that need no token: health checking, reflection where on
        # (type, value as sent) -> (value as stored, the salted hash forgetting keeps): how the
        # audit names identifiers
        self.hash_of = hash_of

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or service_of(method) in self.exempt:
            return handler
        scope = METHOD_SCOPES.get(method)
        if self.tokens is None:  # nothing to check: only admin calls are wrapped, for their audit
            return _as_caller(handler, AUTH_OFF, method, self) if scope == ADMIN else handler
        metadata = {key: value for key, value in handler_call_details.invocation_metadata or ()}
        authorization = metadata.get("authorization")
        caller = self.tokens.caller(authorization if isinstance(authorization, str) else None)
        if caller is None:
            who = "(no token)" if authorization is None else "(unknown token)"
            return _refusing(handler, self, who, method, grpc.StatusCode.UNAUTHENTICATED,
                             f"{_short(method)} needs a token: send the metadata 'authorization: Bearer <token>'"
                             if authorization is None else f"{_short(method)}: the token is not known to this server")
        if scope is None or scope not in caller.scopes:
            needed = f"the scope '{scope}'" if scope else "a scope no token has (the method is not in the scope table)"
            return _refusing(handler, self, caller.name, method, grpc.StatusCode.PERMISSION_DENIED,
                             f"{_short(method)} needs {needed}; the token '{caller.name}' has "
                             f"{', '.join(sorted(caller.scopes))}")
        return _as_caller(handler, caller, method, self if scope == ADMIN else None)

    def target(self, request: Any) -> AuditTarget:
        """What an admin call acted on: its request, every identifier in it by its salted hash."""
        if not isinstance(request, Message):
            return AuditTarget("", ())
        hashed = type(request)()
        hashed.CopyFrom(request)
        replacements: list[tuple[str, str]] = []
        for identifier in _identifiers_in(hashed):
            stored, digest = self.hash_of(identifier.type, identifier.value)
            replacements += [(identifier.value, "#" + digest), (stored, "#" + digest)]
            identifier.value = "#" + digest
        text = text_format.MessageToString(hashed, as_one_line=True)[:TARGET_LIMIT]
        return AuditTarget(text, tuple(sorted(set(replacements), key=lambda r: -len(r[0]))))


@dataclass(frozen=True)
class AuditTarget:
    """An admin call's target, and the identifiers it named (in clear -> "#hash"), so that an
    error message quoting one is kept with the hash instead."""

    text: str
    replacements: tuple[tuple[str, str], ...]

    def scrubbed(self, detail: str) -> str:
        for value, marker in self.replacements:
            if value:
                detail = detail.replace(value, marker)
        return detail


def _identifiers_in(message: Message) -> Iterator[Any]:
    """The Identifier messages anywhere in the message (maps hold none)."""
    for field, value in message.ListFields():
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue
        for item in (value if field.is_repeated else [value]):
            if field.message_type.full_name == IDENTIFIER:
                yield item
            else:
                yield from _identifiers_in(item)


def _short(method: str) -> str:
    return method.lstrip("/").split(".")[-1]


def _refusing(handler: Handler, auth: Authorization, who: str, method: str, code: grpc.StatusCode,
              message: str) -> Handler:
    """The handler with its behaviour replaced by a refusal, audited (queued: refusals can flood)."""
    async def refuse(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        auth.audit.record_soon(AuditEntry(who, _short(method), "", code.name, message, context.peer()))
        await context.abort(code, message)

    async def refuse_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await refuse(context)

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        await refuse(context)
        yield  # pragma: no cover (abort raised)

    kind = handler_kind(handler)
    return handler._replace(**{kind: refuse_stream if handler.response_streaming else refuse_unary})  # type: ignore[attr-defined, no-any-return]


def _as_caller(handler: Handler, caller: Caller, method: str, audited_by: Authorization | None) -> Handler:
    """The handler run as the caller (current_caller()). An admin call is audited twice: as
    STARTED before it acts (and refused UNAVAILABLE when that entry cannot be written), and
    with its outcome before its answer goes out: before the response returns, or before the
    abort that ends it."""
    kind = handler_kind(handler)
    behaviour: Behaviour = getattr(handler, kind)

    async def start(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Finish:
        """Sets the call up; returns what records its outcome (at most once)."""
        _caller.set(caller)
        if audited_by is None:
            return _nothing
        target, peer, name = audited_by.target(request), context.peer(), _short(method)

        async def write(outcome: str, detail: str) -> None:
            entry = AuditEntry(caller.name, name, target.text, outcome, target.scrubbed(detail), peer)
            await asyncio.get_running_loop().run_in_executor(None, audited_by.audit.record, entry)

        try:
            await write("STARTED", "")
        except Exception:
            log.exception("audit: cannot record %s by %s; refusing it", name, caller.name)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{name} is refused for now: admin calls are audited "
                                                             "before they act, and the audit trail cannot be written")
        done = False

        async def finish(outcome: str, detail: str) -> None:
            nonlocal done
            if done:
                return
            done = True
            try:
                await write(outcome, detail)
            except Exception:  # the call has acted; its answer must not turn into an audit error
                log.exception("audit: could not record the outcome of %s by %s", name, caller.name)

        before_abort.set(lambda code, message: finish(code.name, message))
        return finish

    async def after_error(finish: Finish, context: Any) -> None:
        code = context.code()
        await finish(code.name if isinstance(code, grpc.StatusCode) else "CANCELLED", context.details() or "")

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        finish = await start(request, context)
        try:
            response = await behaviour(request, context)
        except BaseException:
            await after_error(finish, context)
            raise
        await finish("OK", "")
        return response

    async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        finish = await start(request, context)
        try:
            async for response in behaviour(request, context):
                yield response
        except BaseException:
            await after_error(finish, context)
            raise
        await finish("OK", "")

    return handler._replace(**{kind: stream if handler.response_streaming else unary})  # type: ignore[attr-defined, no-any-return]


Finish = Callable[[str, str], Awaitable[None]]


async def _nothing(outcome: str, detail: str) -> None:
    """The outcome of a call that is not audited."""
