"""Settings of the server, from flags or the environment, validated once at start.

Every environment variable and configuration file the server reads is read here, once, and
validated: a wrong value stops the start with a message naming it, never a surprise later.
The parsed identity and linkage rules travel in Settings to whoever needs them.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from server.access.tokens import TokenRegistry, load_tokens
from server.errors import ConfigurationError
from server.graph import Neo4jSettings
from server.identity.identity_config import DEFAULT_RULES_FILE, IdentityRules, load_rules
from server.identity.linkage.linkage_config import DEFAULT_LINKAGE_FILE, LinkageRules, load_linkage_rules
from server.yaml_config import FrozenMapping
from server.identity.tracking_config import DEFAULT_COLLECTOR_FILE, CollectorConfig, load_collector_config
DEFAULT_PASSWORD = "identity-local"  # the local Neo4j's documented default (see README)
DEFAULT_SALT = "identity-local-salt"  # for local runs only: set IDENTITY_SUPPRESSION_SALT in production
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Settings:
    listen: str
    neo4j: Neo4jSettings
    rules_file: Path
    max_workers: int
    max_concurrent_rpcs: int
    watch_buffer: int
    ingest_batch_size: int
    ingest_batch_wait: float
    shutdown_grace: float
    log_level: str
    suppression_salt: str
    processes: int
    linkage_file: Path
    online_linkage: bool
    segment_schedule: float
    segment_retention_days: float
    quarantine_retention_days: float
    audit_retention_days: float
    segment_lag_report: float
    rules: IdentityRules
    linkage: LinkageRules
    tls: TlsFiles | None = None
    tokens: TokenRegistry | None = None  # None: no authentication (loopback or --insecure only)
    reflection: bool = True
    insecure: bool = False
    http_listen: str = ""  # the operators' HTTP port (metrics, probes, Browser assets); "" none
    collect_listen: str = ""  # the HTTP collector (Segment's tracking API); "" none
    collector: CollectorConfig | None = None  # config/collector.yaml, read when collect_listen is set
    method_limits: Mapping[str, int] = field(default_factory=FrozenMapping)  # method name -> open calls
    replay_rate: float = 5_000.0  # segment changes a second that WatchSegment catch-ups send, all together


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of the gRPC port's TLS; with client_ca, clients must present a certificate it signed."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def read(self) -> tuple[bytes, bytes, bytes | None]:
        return self.cert.read_bytes(), self.key.read_bytes(), self.client_ca.read_bytes() if self.client_ca else None


def parse_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Flags win over environment variables, which win over defaults."""
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(prog="identity-server", description="Identity resolution gRPC server")
    add = parser.add_argument
    add("--listen", default=env.get("IDENTITY_LISTEN", "127.0.0.1:50051"), help="host:port to serve gRPC on")
    add("--neo4j-uri", default=env.get("NEO4J_URI", "bolt://127.0.0.1:7687"),
        help="bolt:// for one server, neo4j:// for a cluster with routing")
    add("--neo4j-user", default=env.get("NEO4J_USER", "neo4j"))
    add("--neo4j-password", default=None,
        help="prefer NEO4J_PASSWORD or --neo4j-password-file: a flag shows in the process list")
    add("--neo4j-password-file", default=env.get("NEO4J_PASSWORD_FILE"), metavar="FILE",
        help="a file holding the Neo4j password (e.g. a mounted secret)")
    add("--neo4j-database", default=env.get("NEO4J_DATABASE", "neo4j"))
    add("--neo4j-retry-seconds", type=float, default=float(env.get("IDENTITY_NEO4J_RETRY_SECONDS", "30")),
        help="how long a write retries through transient errors or an unreachable Neo4j before failing UNAVAILABLE")
    add("--rules", default=env.get("IDENTITY_RULES", str(DEFAULT_RULES_FILE)), help="identity rules YAML file")
    add("--max-workers", type=int, default=int(env.get("IDENTITY_MAX_WORKERS", "16")),
        help="threads per work pool (ingest, read; admin gets a quarter) running Neo4j work; open streams hold none")
    add("--max-concurrent-rpcs", type=int, default=int(env.get("IDENTITY_MAX_CONCURRENT_RPCS", "10000")),
        help="open calls per method beyond which a call is refused with RESOURCE_EXHAUSTED")
    add("--method-limit", action="append", default=_env_list(env.get("IDENTITY_METHOD_LIMITS")), metavar="METHOD=N",
        help="open calls of one method beyond which a call is refused with RESOURCE_EXHAUSTED, e.g. "
             "WatchSegment=2000 (repeatable; default --max-concurrent-rpcs, and for ImportRecords the import threads)")
    add("--replay-rate", type=float, default=float(env.get("IDENTITY_REPLAY_RATE", "5000")),
        help="segment changes a second that all WatchSegment catch-ups of a process send together: replay "
             "from an old position is paced so that health checks and lookups keep serving")
    add("--watch-buffer", type=int, default=int(env.get("IDENTITY_WATCH_BUFFER", "10000")),
        help="segment changes buffered per WatchSegment stream; a consumer further behind is cut off")
    add("--ingest-batch-size", type=int, default=int(env.get("IDENTITY_INGEST_BATCH_SIZE", "500")))
    add("--ingest-batch-wait", type=float, default=float(env.get("IDENTITY_INGEST_BATCH_WAIT", "0.01")),
        help="seconds a partial ingest batch waits for more events")
    add("--shutdown-grace", type=float, default=float(env.get("IDENTITY_SHUTDOWN_GRACE", "20")),
        help="seconds in-flight RPCs get to finish on SIGTERM")
    add("--suppression-salt", default=env.get("IDENTITY_SUPPRESSION_SALT", DEFAULT_SALT),
        help="secret salt of forgotten identifiers' hashes; the same on every server, never changed")
    add("--processes", type=int, default=int(env.get("IDENTITY_PROCESSES", "1")),
        help="server processes sharing the port (SO_REUSEPORT): Python serves one core per process")
    add("--linkage", default=env.get("IDENTITY_LINKAGE", str(DEFAULT_LINKAGE_FILE)), help="record linkage YAML file")
    add("--online-linkage", default=env.get("IDENTITY_ONLINE_LINKAGE", "on"), choices=("on", "off"),
        help="link events that describe a person (names, address, date of birth) in the background")
    add("--segment-schedule", type=float, default=float(env.get("IDENTITY_SEGMENT_SCHEDULE", "300")),
        help="seconds between re-evaluations of segments with time windows (their members age out)")
    add("--segment-retention-days", type=float, default=float(env.get("IDENTITY_SEGMENT_RETENTION_DAYS", "7")),
        help="days the segment change log keeps a change for WatchSegment consumers to resume from")
    add("--quarantine-retention-days", type=float, default=float(env.get("IDENTITY_QUARANTINE_RETENTION_DAYS", "30")),
        help="days a rejected event or record stays in quarantine (for ListRejected and ReplayRejected)")
    add("--audit-retention-days", type=float, default=float(env.get("IDENTITY_AUDIT_RETENTION_DAYS", "365")),
        help="days the audit trail keeps an entry (admin calls, counted refusals)")
    add("--segment-lag-report", type=float, default=float(env.get("IDENTITY_SEGMENT_LAG_REPORT", "30")),
        help="seconds between the segment worker's reports of how far behind it is, while busy")
    add("--log-level", default=env.get("IDENTITY_LOG_LEVEL", "INFO").upper(), choices=LOG_LEVELS)
    add("--tls-cert", default=env.get("IDENTITY_TLS_CERT"), metavar="PEM", help="the server's certificate chain")
    add("--tls-key", default=env.get("IDENTITY_TLS_KEY"), metavar="PEM", help="the server's private key")
    add("--tls-client-ca", default=env.get("IDENTITY_TLS_CLIENT_CA"), metavar="PEM",
        help="require client certificates signed by this CA (mutual TLS)")
    add("--auth-tokens", default=env.get("IDENTITY_AUTH_TOKENS"), metavar="FILE",
        help="YAML file of token hashes, names, scopes and sources; every call but health then needs a token")
    add("--reflection", choices=("on", "off"), default=env.get("IDENTITY_REFLECTION"),
        help="gRPC server reflection (default: on without --auth-tokens, off with them)")
    add("--http-listen", default=env.get("IDENTITY_HTTP_LISTEN", "127.0.0.1:9464"),
        help="host:port of the operators' HTTP port: /metrics, /healthz, /readyz, the Neo4j Browser style and "
             "guide ('off' for none; with --processes N, process k listens on port + k)")
    add("--collect-listen", default=env.get("IDENTITY_COLLECT_LISTEN", "127.0.0.1:8088"),
        help="host:port of the HTTP collector that web, app and server SDKs send to (Segment's tracking API; "
             "'off' for none; with --processes N, the processes share the port)")
    add("--collector", default=env.get("IDENTITY_COLLECTOR", str(DEFAULT_COLLECTOR_FILE)),
        help="the collector's YAML file: how tracking-spec messages map onto events, its limits and CORS origins")
    add("--insecure", action="store_true", default=env.get("IDENTITY_INSECURE", "") in ("1", "true", "yes"),
        help="allow serving beyond loopback without TLS or without tokens")
    args = parser.parse_args(argv)
    args.neo4j_password = _neo4j_password(args, env)
    return _validated(args)


def _env_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _method_limits(entries: Sequence[str]) -> dict[str, int]:
    """--method-limit METHOD=N entries, checked against the services' methods."""
    from server.api.auth import METHOD_SCOPES  # the table of every method (a test keeps it whole)

    methods = {name.rsplit("/", 1)[-1] for name in METHOD_SCOPES}
    limits: dict[str, int] = {}
    for entry in entries:
        method, _, count = entry.partition("=")
        if method.strip() not in methods:
            raise ConfigurationError(f"--method-limit {entry!r}: no method {method.strip()!r} (one of "
                                     f"{', '.join(sorted(methods))})")
        if not count.strip().isdigit() or int(count) < 1:
            raise ConfigurationError(f"--method-limit {entry!r}: the limit must be a whole number of at least 1")
        limits[method.strip()] = int(count)
    return limits


def _neo4j_password(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    if args.neo4j_password is not None:
        return str(args.neo4j_password)
    if args.neo4j_password_file:
        try:
            return Path(args.neo4j_password_file).read_text().strip()
        except OSError as exc:
            raise ConfigurationError(f"--neo4j-password-file: cannot read {args.neo4j_password_file}: "
                                     f"{exc.strerror}") from exc
    return env.get("NEO4J_PASSWORD", DEFAULT_PASSWORD)


def http_listen_of(settings: Settings, process: int) -> str:
    """Process k of --processes N serves its own metrics on port + k: each process counts its
    own calls, and Prometheus scrapes each (port 0 stays 0: any free port)."""
    if not settings.http_listen:
        return ""
    host, port = settings.http_listen.rsplit(":", 1)
    return f"{host}:{int(port) + process if int(port) else 0}"


def is_loopback(listen: str) -> bool:
    """Whether host:port listens on loopback only (an empty host or 0.0.0.0 listens everywhere)."""
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls(args: argparse.Namespace) -> TlsFiles | None:
    if not args.tls_cert and not args.tls_key:
        if args.tls_client_ca:
            raise ConfigurationError("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first")
        return None
    if not args.tls_cert or not args.tls_key:
        raise ConfigurationError("--tls-cert and --tls-key go together: the certificate chain and its private key")
    files = TlsFiles(Path(args.tls_cert), Path(args.tls_key), Path(args.tls_client_ca) if args.tls_client_ca else None)
    for flag, path in (("--tls-cert", files.cert), ("--tls-key", files.key), ("--tls-client-ca", files.client_ca)):
        if path is not None and not path.is_file():
            raise ConfigurationError(f"{flag} {path} does not exist or is not a file")
    return files


def _exposure(args: argparse.Namespace, tls: TlsFiles | None, tokens: TokenRegistry | None) -> None:
    """Beyond loopback the service holds everyone's PII for anyone who reaches the port:
    TLS and tokens are required there, unless --insecure says otherwise on purpose."""
    if args.insecure:
        return
    missing = [what for what, present in (("TLS (--tls-cert, --tls-key)", tls), ("tokens (--auth-tokens)", tokens))
               if present is None]
    if args.suppression_salt == DEFAULT_SALT:  # public: forgotten e-mails' hashes would reverse by dictionary
        missing.append("a secret suppression salt (IDENTITY_SUPPRESSION_SALT; the default is in the source)")
    for flag, listen in (("--listen", args.listen), ("--collect-listen", args.collect_listen)):
        if missing and listen.lower() != "off" and not is_loopback(listen):
            raise ConfigurationError(f"{flag} {listen} is beyond loopback without {' and '.join(missing)}; "
                                     "configure them, or pass --insecure to serve that way on purpose")


def _validated(args: argparse.Namespace) -> Settings:
    if ":" not in args.listen:
        raise ConfigurationError(f"--listen {args.listen!r} must be host:port")
    for flag, value in (("--http-listen", args.http_listen), ("--collect-listen", args.collect_listen)):
        if value.lower() != "off" and not re.fullmatch(r".*:\d+", value):
            raise ConfigurationError(f"{flag} {value!r} must be host:port, or off")
    if args.processes > 1 and args.collect_listen.endswith(":0"):
        raise ConfigurationError("--processes above 1 needs a fixed --collect-listen port (or off): processes share it")
    for name in ("max_workers", "max_concurrent_rpcs", "watch_buffer", "ingest_batch_size"):
        if getattr(args, name) < 1:
            raise ConfigurationError(f"--{name.replace('_', '-')} must be at least 1")
    if args.processes < 1:
        raise ConfigurationError("--processes must be at least 1")
    if args.processes > 1 and args.listen.endswith(":0"):
        raise ConfigurationError("--processes above 1 needs a fixed port: processes share it, port 0 would differ")
    if args.replay_rate <= 0:
        raise ConfigurationError("--replay-rate must be positive")
    if args.neo4j_retry_seconds < 0:
        raise ConfigurationError("--neo4j-retry-seconds must not be negative")
    if args.ingest_batch_wait < 0 or args.shutdown_grace < 0:
        raise ConfigurationError("--ingest-batch-wait and --shutdown-grace must not be negative")
    for name in ("segment_schedule", "segment_retention_days", "quarantine_retention_days", "audit_retention_days",
                 "segment_lag_report"):
        if getattr(args, name) <= 0:
            raise ConfigurationError(f"--{name.replace('_', '-')} must be positive")
    if not args.neo4j_uri.split("://")[0] in {"bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"}:
        raise ConfigurationError(f"--neo4j-uri {args.neo4j_uri!r} must start with bolt:// or neo4j://")
    tls = _tls(args)
    tokens = load_tokens(Path(args.auth_tokens)) if args.auth_tokens else None
    _exposure(args, tls, tokens)
    rules = load_rules(Path(args.rules))
    collect = "" if args.collect_listen.lower() == "off" else args.collect_listen
    return Settings(
        listen=args.listen,
        neo4j=Neo4jSettings(args.neo4j_uri, args.neo4j_user, args.neo4j_password, args.neo4j_database,
                            args.neo4j_retry_seconds),
        rules_file=Path(args.rules),
        max_workers=args.max_workers,
        max_concurrent_rpcs=args.max_concurrent_rpcs,
        watch_buffer=args.watch_buffer,
        ingest_batch_size=args.ingest_batch_size,
        ingest_batch_wait=args.ingest_batch_wait,
        shutdown_grace=args.shutdown_grace,
        log_level=args.log_level,
        suppression_salt=args.suppression_salt,
        processes=args.processes,
        linkage_file=Path(args.linkage),
        online_linkage=args.online_linkage == "on",
        segment_schedule=args.segment_schedule,
        segment_retention_days=args.segment_retention_days,
        quarantine_retention_days=args.quarantine_retention_days,
        audit_retention_days=args.audit_retention_days,
        segment_lag_report=args.segment_lag_report,
        rules=rules,
        linkage=load_linkage_rules(Path(args.linkage)),
        tls=tls,
        tokens=tokens,
        reflection=args.reflection == "on" if args.reflection else tokens is None,
        insecure=args.insecure,
        http_listen="" if args.http_listen.lower() == "off" else args.http_listen,
        collect_listen=collect,
        method_limits=FrozenMapping(_method_limits(args.method_limit)),
        replay_rate=args.replay_rate,
        collector=load_collector_config(Path(args.collector), frozenset(rules.identifier_types)) if collect else None,
    )
