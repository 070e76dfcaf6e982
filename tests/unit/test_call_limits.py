"""Per-method limits on open calls (server/api/limits.py), without a server: the interceptor's
own counting, and the message that names the flag to change."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from server.api.limits import CallLimits


class Aborted(Exception):
    pass


class Context:
    """What CallLimits uses of a servicer context: abort."""

    def __init__(self) -> None:
        self.aborted: tuple[Any, str] | None = None

    async def abort(self, code: Any, message: str) -> None:
        self.aborted = (code, message)
        raise Aborted(message)


INGEST, IMPORT = "/identity.v1.IdentityService/Ingest", "/identity.v1.IdentityService/ImportRecords"


def test_each_method_counts_against_its_own_limit_and_leaving_frees_a_place() -> None:
    limits = CallLimits(3, exempt=frozenset(), per_method={"ImportRecords": 1})
    assert (limits.limit_of(INGEST), limits.limit_of(IMPORT)) == (3, 1)

    async def scenario() -> None:
        await limits.enter(IMPORT, Context())  # type: ignore[arg-type]
        refused = Context()
        with pytest.raises(Aborted):
            await limits.enter(IMPORT, refused)  # type: ignore[arg-type]
        assert refused.aborted is not None and refused.aborted[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--method-limit ImportRecords=1" in refused.aborted[1]
        for _ in range(3):  # another method is not held back by the full one
            await limits.enter(INGEST, Context())  # type: ignore[arg-type]
        with pytest.raises(Aborted, match="--max-concurrent-rpcs 3"):
            await limits.enter(INGEST, Context())  # type: ignore[arg-type]
        limits.leave(IMPORT)
        await limits.enter(IMPORT, Context())  # type: ignore[arg-type]
        assert dict(limits.open) == {IMPORT: 1, INGEST: 3}

    asyncio.run(scenario())
