"""What gRPC alone costs this server per call and per message: the floor under every figure.

Starts a grpc.aio server in a process of its own with the service's own protos, whose
methods do nothing: unary `LookupProfile` answers a constant, and `LookupProfiles` answers
each message at once (one message in, one out: an `Ingest` event and its ack cost the same). ghz drives it (unary calls, and streams of 20 messages), and
the Python load generator of bench/lookup.py drives long streams; the server's CPU (from
/proc) divided by the calls or messages answered is the floor: the cost of the transport in
CPython's grpc.aio, before any Neo4j or domain work. Compare it with CPU per lookup in
bench/lookup.py and CPU per event in bench/ingest.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, free_port, log, save
from bench.ghz import Load, run_ghz, run_ghz_streams, summary
from bench.ingest_flaws import cpu_seconds

PROTO = "identity/v1/identity_service.proto"


def serve(address: str) -> None:
    """The do-nothing server (run as `python -m bench.grpc_floor --serve ADDRESS`)."""
    import grpc
    from identity.v1 import identity_service_pb2 as pb, identity_service_pb2_grpc as pb_grpc

    class Floor(pb_grpc.IdentityServiceServicer):
        async def LookupProfile(self, request: Any, context: Any) -> Any:
            return pb.LookupResult(request_id=request.request_id, profile=pb.Profile(profile_id="p"))

        async def LookupProfiles(self, requests: Any, context: Any) -> Any:
            async for request in requests:
                yield pb.LookupResult(request_id=request.request_id, profile=pb.Profile(profile_id="p"))

    async def run() -> None:
        server = grpc.aio.server()
        pb_grpc.add_IdentityServiceServicer_to_server(Floor(), server)
        server.add_insecure_port(address)
        await server.start()
        await server.wait_for_termination()

    asyncio.run(run())


class FloorServer:
    def __init__(self) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.process = subprocess.Popen([sys.executable, "-m", "bench.grpc_floor", "--serve", self.address], cwd=REPO)
        time.sleep(2)

    def channel(self) -> Any:
        import grpc
        return grpc.insecure_channel(self.address)

    def cpu(self) -> float:
        return cpu_seconds([self.process.pid])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def measure(server: FloorServer, seconds: float) -> list[dict[str, Any]]:
    from bench.lookup import run_streams

    rows = []
    requests = [{"request_id": str(n), "ref": {"identifier": {"type": "cookie", "value": f"c{n}"}}} for n in range(100)]
    run_ghz(server.address, "identity.v1.IdentityService.LookupProfile", PROTO, requests, Load(8, 2, 2))  # warm-up
    began = server.cpu()
    unary = summary(run_ghz(server.address, "identity.v1.IdentityService.LookupProfile", PROTO, requests,
                            Load(32, 4, seconds)))
    rows.append({"what": "unary call (ghz, 32 concurrent)", "count": unary["calls"], "per_s": unary["calls_per_s"],
                 "server_cpu_ms": (server.cpu() - began) * 1000 / max(unary["calls"], 1)})
    template = json.dumps({"request_id": "{{.RequestNumber}}",
                           "ref": {"identifier": {"type": "cookie", "value": "c{{randomInt 0 1000}}"}}})
    began = server.cpu()
    streams = summary(run_ghz_streams(server.address, "identity.v1.IdentityService.LookupProfiles", PROTO, template,
                                      20, Load(8, 4, seconds)))
    messages = streams["calls"] * 20
    rows.append({"what": "stream message (ghz, streams of 20)", "count": messages, "per_s": streams["calls_per_s"] * 20,
                 "server_cpu_ms": (server.cpu() - began) * 1000 / max(messages, 1)})
    began = server.cpu()
    piped = run_streams(server, [("cookie", f"c{n}") for n in range(100)], 8, 32, seconds)
    rows.append({"what": "stream message (Python, 8 long streams)", "count": piped["lookups"],
                 "per_s": piped["lookups_per_s"],
                 "server_cpu_ms": (server.cpu() - began) * 1000 / max(piped["lookups"], 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    server = FloorServer()
    try:
        rows = measure(server, args.seconds)
    finally:
        server.stop()
    print(f"{'gRPC alone, per':45} {'count':>8} {'per s':>8} {'server CPU ms':>14}")
    for r in rows:
        print(f"{r['what']:45} {r['count']:8d} {r['per_s']:8.0f} {r['server_cpu_ms']:14.3f}")
    log(f"figures saved to {save('grpc-floor', {'rows': rows})}")


if __name__ == "__main__":
    main()
