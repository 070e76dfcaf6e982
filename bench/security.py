"""What TLS and token checks cost lookups: the same lookups, in the same run, against a
plaintext server without tokens and a TLS server that checks a bearer token on every call.

Starts a Neo4j of its own, ingests --events synthetic events, and runs two servers (one
process each) side by side. Rounds alternate between them (plain, secure, plain, ...) so that
the shared machine's noise falls on both; each round runs --seconds of lookups over 8
pipelined streams, and of one closed-loop stream. Prints the median of the rounds for each
server and the ratio secure / plain (issue 14 asks for the figure, not a goal).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
from pathlib import Path

import grpc
import trustme

from bench.common import bench_neo4j, bench_server, ingest_windowed, log, save
from bench.lookup import run_streams, sample_keys
from bench.population import generate, split_by_person
from server.access.tokens import token_hash


def certificates(folder: Path) -> tuple[Path, Path, bytes]:
    """A throwaway CA and a server certificate for 127.0.0.1: (cert file, key file, CA PEM)."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = folder / "server.pem", folder / "server.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key, ca.cert_pem.bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-security-") as scratch:
        folder = Path(scratch)
        cert, key, ca = certificates(folder)
        token = f"idr_{secrets.token_urlsafe(32)}"
        tokens = folder / "tokens.yaml"
        tokens.write_text(f"tokens:\n  - {{name: bench, sha256: {token_hash(token)}, scopes: [ingest, read]}}\n")
        secure_args = ["--tls-cert", str(cert), "--tls-key", str(key), "--auth-tokens", str(tokens)]
        metadata = (("authorization", f"Bearer {token}"),)
        with bench_neo4j(folder / "neo4j") as neo4j, bench_server(neo4j) as plain, \
                bench_server(neo4j, server_args=secure_args, credentials=grpc.ssl_channel_credentials(ca)) as secure:
            population = generate(people=max(args.events // 10, 1), events=args.events, prefix="sec")
            ingest_windowed(plain.channel, split_by_person(population.events[:args.events], 2), 2000)
            keys = sample_keys(neo4j, 20_000)
            log(f"{len(keys)} identifiers sampled")
            servers = {"plain": (plain, ()), "tls+token": (secure, metadata)}
            for server, sent in servers.values():
                run_streams(server, keys, 2, 8, 3, sent)  # warm-up
            rows: dict[str, dict[str, list[dict[str, float]]]] = {name: {"pipelined": [], "closed": []}
                                                                  for name in servers}
            for n in range(args.rounds):
                for name, (server, sent) in servers.items():
                    rows[name]["pipelined"].append(run_streams(server, keys, 8, 4, args.seconds, sent))
                    rows[name]["closed"].append(run_streams(server, keys, 1, 1, args.seconds / 2, sent))
                    log(f"round {n + 1} {name}: {rows[name]['pipelined'][-1]['lookups_per_s']:.0f}/s pipelined, "
                        f"closed-loop p50 {rows[name]['closed'][-1]['p50_ms']:.2f} ms")
    summary = {name: {kind: {"lookups_per_s": statistics.median(r["lookups_per_s"] for r in runs),
                             "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                             "p99_ms": statistics.median(r["p99_ms"] for r in runs)}
                      for kind, runs in kinds.items()} for name, kinds in rows.items()}
    print(f"{'server':>10} {'8 pipelined/s':>14} {'p99 ms':>7} {'1 closed-loop/s':>16} {'p50 ms':>7} {'p99 ms':>7}")
    for name, kinds in summary.items():
        pipelined, closed = kinds["pipelined"], kinds["closed"]
        print(f"{name:>10} {pipelined['lookups_per_s']:14.0f} {pipelined['p99_ms']:7.1f} "
              f"{closed['lookups_per_s']:16.0f} {closed['p50_ms']:7.2f} {closed['p99_ms']:7.1f}")
    plain_s, secure_s = summary["plain"], summary["tls+token"]
    print(f"TLS and token checks keep {secure_s['pipelined']['lookups_per_s'] / plain_s['pipelined']['lookups_per_s']:.2f} "
          f"of pipelined throughput and {secure_s['closed']['lookups_per_s'] / plain_s['closed']['lookups_per_s']:.2f} "
          f"of closed-loop throughput (medians of {args.rounds} alternating rounds)")
    print(f"figures saved to {save('security', {'rounds': rows, 'summary': summary})}")


if __name__ == "__main__":
    main()
