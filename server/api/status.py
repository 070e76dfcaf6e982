"""The one table from the service's exceptions to gRPC status codes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import grpc

from server import errors

log = logging.getLogger(__name__)

STATUS_OF: dict[type[errors.IdentityError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.StorageUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.StorageFailure: grpc.StatusCode.INTERNAL,
    errors.ConfigurationError: grpc.StatusCode.INTERNAL,
}

S = TypeVar("S")  # the servicer
Req = TypeVar("Req")  # a request message, or an iterator of them
Resp = TypeVar("Resp")  # a response message


def abort_for(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    """Ends the RPC with the status for exc; anything unexpected is logged, not sent on."""
    for kind, code in STATUS_OF.items():
        if isinstance(exc, kind):
            context.abort(code, str(exc))
    log.exception("unexpected error")
    context.abort(grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the server log")


def unary(
    method: Callable[[S, Req, grpc.ServicerContext], Resp],
) -> Callable[[S, Req, grpc.ServicerContext], Resp]:
    """Maps exceptions of a unary method to status codes."""

    @functools.wraps(method)
    def wrapper(self: S, request: Req, context: grpc.ServicerContext) -> Resp:
        try:
            return method(self, request, context)
        except Exception as exc:
            _abort_unless_aborted(context, exc)

    return wrapper


def streaming(
    method: Callable[[S, Req, grpc.ServicerContext], Iterator[Resp]],
) -> Callable[[S, Req, grpc.ServicerContext], Iterator[Resp]]:
    """Maps exceptions of a response-streaming method to status codes."""

    @functools.wraps(method)
    def wrapper(self: S, request: Req, context: grpc.ServicerContext) -> Iterator[Resp]:
        try:
            yield from method(self, request, context)
        except Exception as exc:
            _abort_unless_aborted(context, exc)

    return wrapper


def _abort_unless_aborted(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    # the method aborted on purpose; grpc signals that by raising
    if context.code() is not None:  # type: ignore[attr-defined]  # grpc API since 1.38, not in types-grpcio
        raise exc
    abort_for(context, exc)

