"""ghz, the gRPC load generator (github.com/bojand/ghz), built from the Go module proxy.

A Python load generator spends as much CPU per call as the server it measures, on the same
two cores; ghz is Go and spends far less. `ghz_binary()` builds the pinned version into
`.tools/bin` (about a minute the first time, then cached), with the machine's Go.
`run_ghz` calls one unary RPC for a fixed time over a list of requests, round-robin, and
returns ghz's own summary: count, rate, latency percentiles, status codes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import REPO, log

GHZ_MODULE = "github.com/bojand/ghz/cmd/ghz"
GHZ_VERSION = "v0.120.0"
TOOLS = REPO / ".tools" / "bin"
PROTOS = REPO / "protos"


def ghz_binary() -> Path:
    """The pinned ghz, built on first use (`go install` from the Go module proxy)."""
    binary = TOOLS / "ghz"
    if binary.exists() and GHZ_VERSION in _built_version(binary):
        return binary
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("ghz is built with Go, and `go` is not on the PATH")
    log(f"building ghz {GHZ_VERSION} from the Go module proxy into {TOOLS} ...")
    TOOLS.mkdir(parents=True, exist_ok=True)
    subprocess.run([go, "install", f"{GHZ_MODULE}@{GHZ_VERSION}"], env={**os.environ, "GOBIN": str(TOOLS)},
                   check=True)
    return binary


def _built_version(binary: Path) -> str:
    go = shutil.which("go")
    if go is None:
        return ""
    done = subprocess.run([go, "version", "-m", str(binary)], capture_output=True, text=True)
    return done.stdout


@dataclass(frozen=True)
class Load:
    """How ghz drives the server: concurrent workers over that many connections, for seconds."""

    concurrency: int
    connections: int
    seconds: float
    cpus: int = 1  # Go threads of ghz itself: it shares the cores with the server and Neo4j


def run_ghz(address: str, method: str, proto: str, requests: Sequence[Mapping[str, Any]], load: Load,
            metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
    """ghz's JSON report of calling unary `method` (package.Service.Method) at `address`,
    plaintext, with the requests round-robin (request i is requests[i % len])."""
    return _ghz(address, method, proto, json.dumps(list(requests)),
                ["--disable-template-functions", "--disable-template-data"], load, metadata)


def run_ghz_streams(address: str, method: str, proto: str, template: str, per_stream: int, load: Load,
                    metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
    """ghz's JSON report of bidi streams of `method`, each sending `per_stream` messages made
    from the template (ghz's Go template syntax, e.g. {{randomInt 0 1000}}, evaluated for each
    message) and reading every answer; a call's latency is its whole stream's."""
    return _ghz(address, method, proto, template,
                ["--stream-dynamic-messages", "--stream-call-count", str(per_stream)], load, metadata)


def _ghz(address: str, method: str, proto: str, data_text: str, options: Sequence[str], load: Load,
         metadata: Mapping[str, str] | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ghz-") as scratch:
        data = Path(scratch) / "requests.json"
        data.write_text(data_text)
        command = [str(ghz_binary()), "--insecure", "--proto", str(PROTOS / proto), "--import-paths", str(PROTOS),
                   "--call", method, "--data-file", str(data), *options, "--concurrency", str(load.concurrency),
                   "--connections", str(load.connections), "--duration", f"{load.seconds}s",
                   "--cpus", str(load.cpus), "--timeout", "10s", "--format", "json", address]
        if metadata:
            command[1:1] = ["--metadata", json.dumps(dict(metadata))]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 and not done.stdout.strip():
            raise RuntimeError(f"ghz failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        report: dict[str, Any] = json.loads(done.stdout)
        return report


def summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of a ghz report: calls, calls/s, p50/p99 in ms, and status codes."""
    percentiles = {p["percentage"]: p["latency"] / 1e6 for p in report.get("latencyDistribution") or []}
    statuses = dict(report.get("statusCodeDistribution") or {})
    seconds = report.get("total", 0) / 1e9
    # calls in flight when the duration ends are cut off (Unavailable): only answers count
    return {"calls": statuses.get("OK", 0), "calls_per_s": statuses.get("OK", 0) / seconds if seconds else 0.0,
            "p50_ms": percentiles.get(50, float("nan")), "p99_ms": percentiles.get(99, float("nan")),
            "statuses": statuses,
            "errors": dict(report.get("errorDistribution") or {})}
