"""A fake gRPC service on loopback, for the client-side unit tests (no Neo4j, no real server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import grpc


@contextmanager
def loopback_server(register: Callable[[grpc.Server], None]) -> Iterator[str]:
    """Serves what register() adds on a free loopback port; yields its address."""
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)
