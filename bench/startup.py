"""Start-up figures: Neo4j cold and warm, and the gRPC server's time to SERVING.

Runs a second local Neo4j in a temporary home on ports of its own, so it neither touches
nor depends on the one `make run` uses:
- cold: an empty Maven repository (every jar downloaded) and a fresh store;
- warm: jars cached and the store present, as for every `make run` after the first;
- server: `python -m server` from process start to health SERVING, against the warm Neo4j.
Pass --keep-maven-cache to skip the download (cold then means a fresh store only).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.common import REPO, free_port
from localneo4j import LocalNeo4j


def timed(action) -> float:
    began = time.monotonic()
    action()
    return time.monotonic() - began


def server_to_serving(neo4j: LocalNeo4j) -> float:
    port = free_port()
    env = {"IDENTITY_COLLECT_LISTEN": "off", **os.environ, "NEO4J_URI": neo4j.uri, "NEO4J_PASSWORD": neo4j.password}
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "server", "--listen", f"127.0.0.1:{port}"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        fast_retry = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.max_reconnect_backoff_ms", 100)]
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=fast_retry) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                        return time.monotonic() - began
                except grpc.RpcError:
                    time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep-maven-cache", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-neo4j-") as scratch:
        if not args.keep_maven_cache:
            os.environ["NEO4J_MAVEN_REPO"] = str(Path(scratch) / "m2")
        neo4j = LocalNeo4j(home=Path(scratch) / "home", bolt_port=free_port(), http_port=free_port())
        try:
            fetch = timed(neo4j.fetch)
            first = timed(neo4j.start)
            neo4j.stop()
            warm = timed(neo4j.start)
            serving = server_to_serving(neo4j)
        finally:
            neo4j.stop()
    download = "download from an empty Maven cache" if not args.keep_maven_cache else "copy from the Maven cache"
    print(f"neo4j fetch ({download}): {fetch:6.1f} s")
    print(f"neo4j cold start (fresh store, initial password): {first:6.1f} s")
    print(f"neo4j cold total: {fetch + first:6.1f} s")
    print(f"neo4j warm start (jars cached, store present): {warm:6.1f} s")
    print(f"server start to SERVING (warm Neo4j): {serving:6.1f} s")


if __name__ == "__main__":
    main()
