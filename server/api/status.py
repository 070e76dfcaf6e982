"""The one table from the service's exceptions to gRPC status codes, for asyncio servicers."""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NoReturn, TypeVar

import grpc
import grpc.aio

from server import errors

log = logging.getLogger(__name__)

STATUS_OF: dict[type[errors.IdentityError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    errors.StorageUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.StorageFailure: grpc.StatusCode.INTERNAL,
    errors.ConfigurationError: grpc.StatusCode.INTERNAL,
}

S = TypeVar("S")  # the servicer
Req = TypeVar("Req")  # a request message, or an async iterator of them
Resp = TypeVar("Resp")  # a response message
Context = grpc.aio.ServicerContext[object, object]


def status_for(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The status and message a client gets for exc; anything unexpected is logged, not sent on."""
    for kind, code in STATUS_OF.items():
        if isinstance(exc, kind):
            return code, str(exc)
    log.error("unexpected error", exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the server log"


# Awaited with the status and message just before a call is aborted: the client has its
# answer the moment abort is called, so whatever must be done first (the audit of an admin
# call, server/api/auth.py) is done here. Set per call, in the call's own context.
BeforeAbort = Callable[[grpc.StatusCode, str], Awaitable[None]]
before_abort: contextvars.ContextVar[BeforeAbort | None] = contextvars.ContextVar("before_abort", default=None)


async def abort_for(context: Context, exc: Exception) -> NoReturn:
    code, message = status_for(exc)
    hook = before_abort.get()
    if hook is not None:
        await hook(code, message)
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # it raises grpc.aio.AbortError


def unary(
    method: Callable[[S, Req, Context], Awaitable[Resp]],
) -> Callable[[S, Req, Context], Awaitable[Resp]]:
    """Maps exceptions of a unary method to status codes."""

    @functools.wraps(method)
    async def wrapper(self: S, request: Req, context: Context) -> Resp:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise  # the method aborted on purpose
        except Exception as exc:
            await abort_for(context, exc)

    return wrapper


def streaming(
    method: Callable[[S, Req, Context], AsyncIterator[Resp]],
) -> Callable[[S, Req, Context], AsyncIterator[Resp]]:
    """Maps exceptions of a response-streaming method to status codes."""

    @functools.wraps(method)
    async def wrapper(self: S, request: Req, context: Context) -> AsyncIterator[Resp]:
        try:
            async for response in method(self, request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort_for(context, exc)

    return wrapper
