"""Per-method limits on open calls, so that overload of one method never starves the others.

The thread-pool server refused every call, health checks included, once its threads were
held by open streams. In the asyncio server a stream holds no thread, and this interceptor
counts the open calls of each method: a call beyond the limit of its method is refused with
RESOURCE_EXHAUSTED naming the limit, while other methods, and health checks (never counted),
go on being answered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

Behaviour = Callable[..., Any]
if TYPE_CHECKING:  # generic in the type stubs only
    Handler = grpc.RpcMethodHandler[Any, Any]


class CallLimits(grpc.aio.ServerInterceptor):
    """Refuses a call when its method's limit of open calls is reached: `limit`, unless
    `per_method` (by method name, e.g. ImportRecords) sets another."""

    def __init__(self, limit: int, exempt: frozenset[str], per_method: Mapping[str, int] | None = None) -> None:
        self.limit = limit
        self.exempt = exempt  # services never limited: health checking, reflection
        self.per_method = dict(per_method or {})
        self.open: Counter[str] = Counter()

    def limit_of(self, method: str) -> int:
        return self.per_method.get(method.rsplit("/", 1)[-1], self.limit)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or service_of(method) in self.exempt:
            return handler
        return _wrapped(handler, method, self)

    async def enter(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        limit = self.limit_of(method)
        if self.open[method] >= limit:
            flag = (f"--method-limit {method.rsplit('/', 1)[-1]}={limit}" if method.rsplit("/", 1)[-1] in self.per_method
                    else f"--max-concurrent-rpcs {limit}")
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"{method}: {self.open[method]} calls are open, the limit of this server for this "
                                f"method ({flag}); retry later or on another server")
        self.open[method] += 1

    def leave(self, method: str) -> None:
        self.open[method] -= 1
        if not self.open[method]:
            del self.open[method]


def service_of(method: str) -> str:
    """The service of a full method name: `/identity.v1.IdentityService/Ingest` -> `identity.v1.IdentityService`."""
    return method.lstrip("/").split("/")[0]


def handler_kind(handler: Handler) -> str:
    """The field of the handler that holds its behaviour, by how its requests and responses flow."""
    if handler.response_streaming:
        return "stream_stream" if handler.request_streaming else "unary_stream"
    return "stream_unary" if handler.request_streaming else "unary_unary"


def _wrapped(handler: Handler, method: str, limits: CallLimits) -> Handler:
    """The same handler, its behaviour counted in and out of the method's open calls."""
    kind = handler_kind(handler)
    counted = _counted_stream if handler.response_streaming else _counted_unary
    return handler._replace(**{kind: counted(getattr(handler, kind), method, limits)})  # type: ignore[attr-defined, no-any-return]


def _counted_unary(behaviour: Behaviour, method: str, limits: CallLimits) -> Behaviour:
    async def counted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await limits.enter(method, context)
        try:
            return await behaviour(request, context)
        finally:
            limits.leave(method)
    return counted


def _counted_stream(behaviour: Behaviour, method: str, limits: CallLimits) -> Behaviour:
    async def counted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        await limits.enter(method, context)
        try:
            async for response in behaviour(request, context):
                yield response
        finally:
            limits.leave(method)
    return counted
