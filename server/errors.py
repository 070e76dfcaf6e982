"""The service's one exception tree. `server/api/status.py` maps it to gRPC status codes."""

from __future__ import annotations


class IdentityError(Exception):
    """Base of every error the service raises on purpose; the message is safe to show clients."""


class InvalidArgument(IdentityError):
    """The request is malformed; the message names the field and what is wrong with it."""


class NotFound(IdentityError):
    """The profile, identifier or segment asked for does not exist."""


class FailedPrecondition(IdentityError):
    """The request is well-formed but the graph is not in a state that allows it."""


class OutOfRange(IdentityError):
    """A position or range the service no longer holds (e.g. changes deleted by retention)."""


class PermissionDenied(IdentityError):
    """The caller's token does not allow this (a scope, a source it may not write as); the
    message names what would."""


class ResourceExhausted(IdentityError):
    """A limit of this server was reached (calls of a method, a slow consumer's buffer); the
    message names the limit and how to carry on."""


class ShuttingDown(IdentityError):
    """The server is stopping; the client should carry on with another server (UNAVAILABLE)."""


class StorageUnavailable(IdentityError):
    """Neo4j could not be reached or kept failing transiently; the client may retry."""


class StorageFailure(IdentityError):
    """Neo4j refused a query for a reason a retry will not fix; details go to the server log only."""


class ConfigurationError(IdentityError):
    """Settings or configuration files are invalid; raised at start, never per request."""


class ModelRefused(FailedPrecondition):
    """A fitted linkage model failed its checks; it was stored as refused and never made current."""

    def __init__(self, version: str, reasons: list[str]) -> None:
        super().__init__(f"linkage model {version} was refused: {'; '.join(reasons)}")
        self.version = version
        self.reasons = reasons
