"""The `identity` command: JSON Lines in, JSON out, exit codes a script can act on.

Exit codes: 0 all went well (events and records accepted with warnings included); 1 some events
or records were rejected, or are still rejected after a replay, batches of changes were
dead-lettered, or the server is not serving; 2 bad input, a gRPC error, or a destination that
stopped on an error; 3 a looked-up profile or segment does not exist. Every input is checked
before the first call, so a typo on line 9000 does not leave 8999 events sent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import secrets
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from functools import partial, wraps
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from identity.v1 import identity_service_pb2 as pb, segment_service_pb2 as seg
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TaskID

from client.api import (
    ADDRESS_VARIABLE,
    CA_VARIABLE,
    CERT_VARIABLE,
    DEFAULT_ADDRESS,
    DEFAULT_TIMEOUT,
    KEY_VARIABLE,
    TOKEN_VARIABLE,
    IdentityClient,
    rpc_error_text,
)
from client.jsonl import event_from_json, read_jsonl, record_from_json
from client.messages import InputError, describe, parse_channel, parse_identifier, parse_timestamp, ref

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_UNHEALTHY = 1
EXIT_ERROR = 2
EXIT_NOT_FOUND = 3
# Below this many lines a progress bar is only flicker.
LARGE_INPUT = 1000
EPOCH_SECONDS = re.compile(r"-?\d+(\.\d+)?")
# A feed that brought nothing for this long has nothing more to bring, for now.
IDLE_SECONDS = 2.0
# With --once, a server that stays unreachable ends the run instead of being awaited for ever.
ONCE_RECONNECTS = 5
# The server's contract for its tokens file (--auth-tokens): `idr_` tells a leaked token apart in a
# secret scanner; 32 random bytes leave nothing to guess, so the file may keep a plain SHA-256.
TOKEN_PREFIX = "idr_"
TOKEN_BYTES = 32
TOKEN_SCOPES = ("ingest", "read", "admin")
TOKEN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# Options that reach IdentityClient only when given, so that it falls back to the environment.
SECURITY_OPTIONS = ("token", "ca", "cert", "key")

Lines = Callable[[], Iterator[str]]


def main(argv: list[str] | None = None) -> int:
    """Runs one subcommand; errors become one line on stderr and an exit code, never a traceback."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        code: int = args.run(args)
        return code
    except InputError as exc:
        return fail(str(exc))
    except grpc.RpcError as exc:
        return fail(rpc_error_text(exc))
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="identity", description="Client of the identity resolution service.")
    parser.add_argument("--address",
                        help=f"host:port of the server (default ${ADDRESS_VARIABLE}, else {DEFAULT_ADDRESS})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds a single (non-streaming) call may take (default %(default)s)")
    add_security_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="send events from a JSON Lines file")
    ingest.add_argument("file", metavar="FILE.jsonl", help="one event per line; - reads stdin")
    ingest.set_defaults(run=run_ingest)

    records = commands.add_parser("import", help="import offline source records from a JSON Lines file")
    records.add_argument("file", metavar="FILE.jsonl", help="one source record per line; - reads stdin")
    records.add_argument("--source", default="", help="source of records whose line names none (e.g. crm)")
    records.set_defaults(run=run_import)

    lookup = commands.add_parser("lookup", help="print profiles as JSON, one per line")
    lookup.add_argument("refs", nargs="+", metavar="REF", help="type:value, or a profile id")
    lookup.set_defaults(run=run_lookup)

    graph = commands.add_parser("graph", help="print the identity graph of a profile as JSON")
    graph.add_argument("ref", metavar="REF", help="type:value, or a profile id")
    graph.set_defaults(run=run_graph)

    add_journey_parser(commands)

    forget = commands.add_parser("forget", help="erase a person (irreversible)")
    forget.add_argument("ref", metavar="REF", help="type:value, or a profile id")
    forget.set_defaults(run=run_forget)

    unlink = commands.add_parser("unlink", help="take an identifier out of its profile, or cut one link")
    unlink.add_argument("identifier", metavar="TYPE:VALUE")
    unlink.add_argument("--from", dest="linked_to", metavar="TYPE:VALUE", help="cut only the link to this identifier")
    unlink.add_argument("--reason", default="", help="why, kept with the rejected link")
    unlink.set_defaults(run=run_unlink)

    review = commands.add_parser("review", help="confirm or reject a possible match")
    review.add_argument("a", metavar="TYPE:VALUE")
    review.add_argument("b", metavar="TYPE:VALUE")
    decision = review.add_mutually_exclusive_group(required=True)
    decision.add_argument("--confirm", action="store_true", help="link the pair (merge protection still applies)")
    decision.add_argument("--reject", action="store_true", help="never link the pair")
    review.add_argument("--reason", default="", help="why, kept with the decision")
    review.set_defaults(run=run_review)

    refit = commands.add_parser("refit", help="fit the linkage model anew on the graph's records")
    refit.add_argument("--sample", type=int, default=0, help="records whose candidate pairs feed the fit")
    refit.set_defaults(run=run_refit)

    status = commands.add_parser("linkage-status", help="print the linkage model, its quality, the last refused "
                                                        "fit, the online linkage lag, and whether probabilistic "
                                                        "linkage is on (if not, why, also on stderr)")
    status.set_defaults(run=run_linkage_status)

    rescore = commands.add_parser("rescore", help="re-score every probabilistic link under the current model "
                                                  "(after a refit): undo the links it no longer accepts")
    rescore.add_argument("--dry-run", action="store_true", help="score and count, change nothing")
    rescore.add_argument("--page-size", type=int, default=0, help="links per transaction (default: the server's)")
    rescore.set_defaults(run=run_rescore)

    health = commands.add_parser("health", help="print the server's health status; exit 1 unless SERVING")
    health.add_argument("--service", default="", help="one service's status (default: the whole server)")
    health.set_defaults(run=run_health)

    add_segment_parser(commands)

    deliver = commands.add_parser("deliver", help="deliver segment changes to webhooks and files, until interrupted")
    deliver.add_argument("--config", required=True, metavar="FILE", help="the destinations file (YAML)")
    deliver.add_argument("--metrics-listen", metavar="HOST:PORT",
                         help="serve Prometheus /metrics of the deliveries (changes, retries, dead letters) there")
    deliver.add_argument("--once", action="store_true",
                         help="stop once every destination is idle, instead of following (for cron and tests)")
    deliver.add_argument("--idle", type=float, default=IDLE_SECONDS, metavar="SECONDS",
                         help="with --once, how long a destination waits for a change (default %(default)s)")
    deliver.set_defaults(run=run_deliver)

    explain = commands.add_parser("explain", help="print as JSON whether two refs share a profile: the links that "
                                                  "join them, or the model's score and what keeps them apart")
    explain.add_argument("a", metavar="REF", help="type:value, or a profile id")
    explain.add_argument("b", metavar="REF", help="type:value, or a profile id")
    explain.set_defaults(run=run_explain)

    add_quarantine_parsers(commands)
    add_audit_parser(commands)
    add_token_parser(commands)
    return parser


def add_security_options(parser: argparse.ArgumentParser) -> None:
    """TLS and the bearer token, for every command that calls the server. The defaults are named,
    never shown: help must not print a token from the environment."""
    parser.add_argument("--token", metavar="TOKEN",
                        help=f"bearer token sent with every call (default ${TOKEN_VARIABLE}, which is safer: other "
                             "users can see a command line in ps)")
    parser.add_argument("--ca", metavar="FILE.pem",
                        help=f"CA certificate that verifies the server; turns on TLS (default ${CA_VARIABLE})")
    parser.add_argument("--cert", metavar="FILE.pem",
                        help=f"client certificate for mutual TLS, with --key (default ${CERT_VARIABLE})")
    parser.add_argument("--key", metavar="FILE.pem",
                        help=f"private key of the client certificate (default ${KEY_VARIABLE})")


def add_token_parser(commands: Any) -> None:
    token = commands.add_parser("token", help="make bearer tokens for the server's tokens file (needs no server)")
    actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="print a new token, shown this once, and its entry for the tokens "
                                               "file (which holds its SHA-256, never the token)")
    create.add_argument("--name", required=True,
                        help="who calls with it, as the audit trail names them: 1 to 100 of A-Z a-z 0-9 _ . -")
    create.add_argument("--scopes", required=True, metavar="SCOPE,...",
                        help=f"what it may call: {', '.join(TOKEN_SCOPES)}, comma-separated")
    create.add_argument("--sources", metavar="SOURCE,...",
                        help="the only sources it may write events and records as, e.g. web,app (default: any)")
    create.set_defaults(run=run_token_create)


def run_explain(args: argparse.Namespace) -> int:
    a, b = ref(args.a), ref(args.b)
    with connect(args) as identity:
        try:
            print_json(identity.explain(a, b))
        except grpc.RpcError as exc:
            if getattr(exc, "code", None) is None or exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            print(f"identity: not found: {exc.details()}", file=sys.stderr)
            return EXIT_NOT_FOUND
    return EXIT_OK


def add_journey_parser(commands: Any) -> None:
    journey = commands.add_parser("journey", help="print a profile's touchpoints in time order, one per line")
    journey.add_argument("ref", metavar="REF", help="type:value, or a profile id")
    journey.add_argument("--since", metavar="TIME", help="from this time on (RFC 3339 or epoch seconds)")
    journey.add_argument("--until", metavar="TIME", help="before this time (RFC 3339 or epoch seconds)")
    journey.add_argument("--type", dest="types", metavar="TYPE", action="append", default=[],
                         help="touchpoint type; repeatable")
    journey.add_argument("--channel", dest="channels", metavar="CHANNEL", action="append", default=[],
                         help="online or offline; repeatable")
    journey.add_argument("--source", dest="sources", metavar="SOURCE", action="append", default=[],
                         help="source; repeatable")
    journey.add_argument("--desc", action="store_true", help="newest first")
    journey.add_argument("--limit", metavar="N", type=int, default=0,
                         help="at most this many touchpoints (default: all)")
    journey.add_argument("--cursor", metavar="CURSOR", default="", help="resume after the step with this cursor")
    journey.set_defaults(run=run_journey)


def add_quarantine_parsers(commands: Any) -> None:
    rejected = commands.add_parser("rejected", help="print quarantined events and records as JSON, one per line, "
                                                    "newest first")
    add_rejection_filters(rejected)
    rejected.add_argument("--limit", metavar="N", type=int, default=0, help="at most this many items (default: all)")
    rejected.set_defaults(run=run_rejected)

    replay = commands.add_parser("replay", help="feed quarantined events and records through ingest again (after a "
                                                "configuration change); exit 1 while any stays rejected")
    add_rejection_filters(replay)
    replay.add_argument("--skip-invalid-values", action="store_true",
                        help="replay quarantined items only; leave the values kept as invalid on touchpoints alone")
    replay.set_defaults(run=run_replay)


def add_rejection_filters(parser: argparse.ArgumentParser) -> None:
    """The same filters for listing and replaying, so that a replay takes exactly what a listing showed."""
    parser.add_argument("--code", dest="codes", metavar="CODE", action="append", default=[],
                        help="reason code, e.g. unknown_identifier_type; repeatable")
    parser.add_argument("--since", metavar="TIME", help="last rejected at or after this time (RFC 3339 or epoch "
                                                        "seconds)")
    parser.add_argument("--until", metavar="TIME", help="last rejected before this time (RFC 3339 or epoch seconds)")
    parser.add_argument("--source", default="", help="only items from this source")
    parser.add_argument("--kind", choices=("event", "record"), help="only events, or only source records")


def add_segment_parser(commands: Any) -> None:
    segment = commands.add_parser("segment", help="define segments, list their members, watch their changes")
    actions = segment.add_subparsers(dest="action", required=True, metavar="ACTION")

    upsert = actions.add_parser("upsert", help="store a segment (a new version) from a file and print it")
    upsert.add_argument("file", metavar="FILE", help="YAML or JSON: name, description, and rule in the protobuf "
                                                     "JSON mapping of identity.v1.Rule")
    upsert.set_defaults(run=run_segment_upsert)

    get = actions.add_parser("get", help="print a segment as JSON")
    get.add_argument("name", metavar="NAME")
    get.set_defaults(run=run_segment_get)

    members = actions.add_parser("members", help="print a segment's current members, one per line")
    members.add_argument("name", metavar="NAME")
    members.add_argument("--types", default="", metavar="TYPE,...",
                         help="only identifiers of these types with each member, e.g. email,phone (default: all)")
    members.add_argument("--page-size", type=int, default=0, metavar="N",
                         help="members per page the server reads (default: the server's)")
    members.set_defaults(run=run_segment_members)

    watch = actions.add_parser("watch", help="print a segment's enter and exit changes, one per line")
    watch.add_argument("name", metavar="NAME")
    watch.add_argument("--after", type=int, default=0, metavar="N",
                       help="changes after this position (default: every retained change)")
    watch.add_argument("--follow", action=argparse.BooleanOptionalAction, default=False,
                       help="keep waiting for new changes until interrupted (default: stop once idle)")
    watch.add_argument("--idle", type=float, default=IDLE_SECONDS, metavar="SECONDS",
                       help="without --follow, stop after this long without a change (default %(default)s)")
    watch.set_defaults(run=run_segment_watch)


def run_ingest(args: argparse.Namespace) -> int:
    lines, name = input_lines(args.file)
    total = count_valid(lines, event_from_json, name)
    statuses: Counter[int] = Counter()
    warned = 0
    with connect(args) as identity, progress_bar(total, "ingest") as show:
        for ack in identity.ingest(read_jsonl(lines(), event_from_json, name)):
            statuses[ack.status] += 1
            if ack.status == pb.ACK_STATUS_ACCEPTED and ack.warnings:
                warned += 1
            report_ack(ack)
            if show:
                show(statuses.total(), "ingest")
    print(f"accepted {statuses[pb.ACK_STATUS_ACCEPTED]}, duplicate {statuses[pb.ACK_STATUS_DUPLICATE]}, "
          f"rejected {statuses[pb.ACK_STATUS_REJECTED]}, accepted with warnings {warned}")
    return EXIT_REJECTED if statuses[pb.ACK_STATUS_REJECTED] else EXIT_OK


def report_ack(ack: pb.IngestAck) -> None:
    """A rejection and every value not used as sent, on stderr: an accepted event may still have lost a value."""
    if ack.status == pb.ACK_STATUS_REJECTED:
        code = f" ({ack.reason_code})" if ack.reason_code else ""
        print(f"rejected {ack.event_id}{code}: {ack.reason}", file=sys.stderr)
    for warning in ack.warnings:
        print(f"warning {ack.event_id}: {describe_warning(warning)}", file=sys.stderr)


def describe_warning(warning: pb.ValueWarning) -> str:
    return f"{warning.field} {warning.value!r}: {warning.reason}"


def run_import(args: argparse.Namespace) -> int:
    lines, name = input_lines(args.file)
    convert = partial(record_from_json, default_source=args.source)
    total = count_valid(lines, convert, name)
    summary = None
    with connect(args) as identity, progress_bar(total, "import") as show:
        for progress in identity.import_records(read_jsonl(lines(), convert, name)):
            if progress.WhichOneof("kind") == "summary":
                summary = progress.summary
            elif show:
                show(progress.status.records_done, progress.status.phase)
            else:
                status = progress.status
                print(f"{status.phase}: {status.records_done} of {status.records_received} records", file=sys.stderr)
    if summary is None:
        return fail("the import ended without a summary")
    return report_import(summary)


def pairs_per_record(summary: pb.ImportSummary) -> float:
    """Candidate pairs scored per record accepted: what blocking costs, however dense the data."""
    accepted = summary.records - summary.rejected
    return summary.pairs_compared / accepted if accepted > 0 else 0.0


def report_import(summary: pb.ImportSummary) -> int:
    for rejection in summary.rejections:
        print(f"rejected {rejection.record_id}: {rejection.reason}", file=sys.stderr)
    report_record_warnings(summary)
    print(f"records {summary.records}, new profiles {summary.new_profiles}, "
          f"linked deterministic {summary.linked_deterministic}, linked probabilistic {summary.linked_probabilistic}, "
          f"possible matches {summary.possible_matches}, rejected {summary.rejected}, "
          f"pairs compared {summary.pairs_compared} ({pairs_per_record(summary):.1f} per record), "
          f"records with warnings {summary.records_with_warnings}")
    for reason in summary.model_refusals:
        print(f"linkage model refused, no probabilistic links made: {reason}", file=sys.stderr)
    if summary.records_left_unlinked:
        print(f"{summary.records_left_unlinked} records left without probabilistic linkage: {summary.why_unlinked}",
              file=sys.stderr)
    if summary.model_version:
        print(describe_quality(summary.quality, summary.model_version))
    return EXIT_REJECTED if summary.rejected else EXIT_OK


def report_record_warnings(summary: pb.ImportSummary) -> None:
    """The warnings the server listed, and how many records it left out, so that no lost value goes unmentioned."""
    for item in summary.warnings:
        print(f"warning {item.record_id}: {describe_warning(item.warning)}", file=sys.stderr)
    unlisted = summary.records_with_warnings - len({item.record_id for item in summary.warnings})
    if unlisted > 0:
        print(f"warnings of {unlisted} more records not listed", file=sys.stderr)


def describe_quality(quality: pb.LinkageQuality, model_version: str) -> str:
    """The quality lines an operator reads to see a bad model at once."""
    bands = ", ".join(f"[{b.lower:g}, {b.upper:g}): {b.links}" for b in quality.links)
    weights = ", ".join(f"{_bound(w.lower)}..{_bound(w.upper)}: {w.pairs}" for w in quality.weights)
    guarded = ", ".join(f"{reason}: {count}" for reason, count in sorted(quality.guarded.items())) or "none"
    return (f"model {model_version}: {quality.pairs_scored} pairs scored; match weights (bits) {weights}\n"
            f"links by probability {bands}; expected precision {quality.expected_precision:.4f}; "
            f"possible matches {quality.possible_matches}; merge protection refused {quality.refused}; "
            f"stopped by guards: {guarded}")


def _bound(value: float) -> str:
    return "inf" if value == float("inf") else "-inf" if value == float("-inf") else f"{value:g}"


def run_lookup(args: argparse.Namespace) -> int:
    refs = [ref(text) for text in args.refs]
    missing = 0
    with connect(args) as identity:
        for result in identity.lookup(refs):
            if result.WhichOneof("result") == "profile":
                print_json(result.profile)
                continue
            missing += 1
            print(f"identity: not found: {describe(refs[int(result.request_id)])}: {result.not_found.reason}",
                  file=sys.stderr)
    return EXIT_NOT_FOUND if missing else EXIT_OK


def run_graph(args: argparse.Namespace) -> int:
    target = ref(args.ref)
    with connect(args) as identity:
        print_json(identity.identity_graph(target))
    return EXIT_OK


def run_journey(args: argparse.Namespace) -> int:
    target = ref(args.ref)
    if args.limit < 0:
        raise InputError(f"--limit {args.limit} is negative; use 0 for all")
    filters = dict(since=cli_time("--since", args.since), until=cli_time("--until", args.until), types=args.types,
                   channels=[parse_channel(name) for name in args.channels], sources=args.sources,
                   descending=args.desc, limit=args.limit, cursor=args.cursor)
    with connect(args) as identity:
        for step in identity.journey(target, **filters):
            print_json(step)
    return EXIT_OK


def run_forget(args: argparse.Namespace) -> int:
    target = ref(args.ref)
    with connect(args) as identity:
        print_json(identity.forget(target))
    return EXIT_OK


def run_unlink(args: argparse.Namespace) -> int:
    identifier = parse_identifier(args.identifier)
    linked_to = parse_identifier(args.linked_to) if args.linked_to is not None else None
    with connect(args) as identity:
        print_json(identity.unlink(identifier, linked_to, args.reason))
    return EXIT_OK


def run_review(args: argparse.Namespace) -> int:
    a, b = parse_identifier(args.a), parse_identifier(args.b)
    with connect(args) as identity:
        print_json(identity.review(a, b, confirm=args.confirm, reason=args.reason))
    return EXIT_OK


def run_refit(args: argparse.Namespace) -> int:
    with connect(args) as identity:
        print_json(identity.refit(args.sample))
    return EXIT_OK


def run_rescore(args: argparse.Namespace) -> int:
    if args.page_size < 0:
        raise InputError("--page-size must not be negative")
    summary = None
    with connect(args) as identity:
        stream = identity.rescore(page_size=args.page_size, dry_run=args.dry_run)
        first = next(stream, None)
        total = first.status.links_total if first is not None else 0
        with progress_bar(total, "rescore") as show:
            for progress in stream:
                if progress.WhichOneof("kind") == "summary":
                    summary = progress.summary
                elif show:
                    show(progress.status.links_done, "rescore")
                else:
                    print(f"rescored {progress.status.links_done} of {total} links", file=sys.stderr)
    if summary is None:
        return fail("the re-scoring ended without a summary")
    print_json(summary)
    return EXIT_OK


def add_audit_parser(commands: Any) -> None:
    audit = commands.add_parser("audit", help="print the audit trail (admin calls, refused calls) as JSON, one "
                                              "entry per line, newest first; needs an admin token")
    audit.add_argument("--since", metavar="TIME", help="at or after this time (RFC 3339 or epoch seconds)")
    audit.add_argument("--until", metavar="TIME", help="before this time (RFC 3339 or epoch seconds)")
    audit.add_argument("--caller", default="", help="one token's name, e.g. ops, or '(no token)'")
    audit.add_argument("--method", default="", help="one method, e.g. ForgetProfile")
    audit.add_argument("--limit", metavar="N", type=int, default=0, help="at most this many entries (default 1,000)")
    audit.set_defaults(run=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise InputError(f"--limit {args.limit} is negative; use 0 for the server's default")
    with connect(args) as identity:
        for entry in identity.audit(since=args.since, until=args.until, caller=args.caller, method=args.method,
                                    limit=args.limit):
            print(json.dumps(MessageToDict(entry, preserving_proto_field_name=True), ensure_ascii=False), flush=True)
    return EXIT_OK


def run_rejected(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise InputError(f"--limit {args.limit} is negative; use 0 for all")
    filters = rejection_filters(args)
    with connect(args) as identity:
        for item in identity.list_rejected(**filters, limit=args.limit):
            print(json.dumps(rejected_item_json(item), ensure_ascii=False), flush=True)
    return EXIT_OK


def rejected_item_json(item: pb.RejectedItem) -> dict[str, Any]:
    """The item with its payload as JSON (null when too large to keep), not JSON in a string, so that jq can
    reach into it; a payload that is not JSON stays as text under payload_json, since nothing may be lost here."""
    data = MessageToDict(item, preserving_proto_field_name=True)
    text = data.pop("payload_json", "")
    try:
        data["payload"] = json.loads(text) if text else None
    except json.JSONDecodeError:
        data["payload_json"] = text
    return data


def run_replay(args: argparse.Namespace) -> int:
    filters = rejection_filters(args)
    summary = None
    with connect(args) as identity, phase_progress("replay") as show:
        for progress in identity.replay_rejected(**filters, skip_invalid_values=args.skip_invalid_values):
            if progress.WhichOneof("kind") == "summary":
                summary = progress.summary
            else:
                show(progress.status)
    if summary is None:
        return fail("the replay ended without a summary")
    print_json(summary, every_field=True)
    return report_still_rejected(summary)


def report_still_rejected(summary: pb.ReplaySummary) -> int:
    """Exit 1 while anything stays in quarantine, as ingest does for a rejected event: a script must see it."""
    if not summary.events_still_rejected + summary.records_still_rejected + summary.not_replayable:
        return EXIT_OK
    codes = "".join(f", {code} {count}" for code, count in sorted(summary.still_rejected.items()))
    print(f"still rejected: events {summary.events_still_rejected}, records {summary.records_still_rejected}, "
          f"not replayable {summary.not_replayable}{codes}", file=sys.stderr)
    return EXIT_REJECTED


def rejection_filters(args: argparse.Namespace) -> dict[str, Any]:
    return dict(codes=args.codes, since=cli_time("--since", args.since), until=cli_time("--until", args.until),
                source=args.source, kind=args.kind)


def run_linkage_status(args: argparse.Namespace) -> int:
    with connect(args) as identity:
        status = identity.linkage_status()
    print_json(status)
    if not status.probabilistic_linkage_on:
        print(f"probabilistic linkage is off: {status.why_off}", file=sys.stderr)
    return EXIT_OK


def run_health(args: argparse.Namespace) -> int:
    with connect(args) as identity:
        status = identity.health(args.service)
    print(status)
    return EXIT_OK if status == "SERVING" else EXIT_UNHEALTHY


def run_segment_upsert(args: argparse.Namespace) -> int:
    request = read_segment_file(args.file)
    with connect(args) as identity:
        print_json(identity.segments.upsert(request.name, request.rule, request.description))
    return EXIT_OK


def segment_lookup(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A segment that does not exist is a miss (exit 3), as a profile is, not a failure."""

    @wraps(run)
    def checked(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except grpc.RpcError as exc:
            code = getattr(exc, "code", None)
            if code is None or code() != grpc.StatusCode.NOT_FOUND:
                raise
            print(f"identity: not found: segment {args.name}: {exc.details()}", file=sys.stderr)
            return EXIT_NOT_FOUND

    return checked


@segment_lookup
def run_segment_get(args: argparse.Namespace) -> int:
    with connect(args) as identity:
        print_json(identity.segments.get(args.name))
    return EXIT_OK


@segment_lookup
def run_segment_members(args: argparse.Namespace) -> int:
    types = comma_list("--types", args.types)
    if args.page_size < 0:
        raise InputError(f"--page-size {args.page_size} is negative; use 0 for the server's")
    with connect(args) as identity:
        for member in identity.segments.members(args.name, types, args.page_size):
            print_json(member)
    return EXIT_OK


@segment_lookup
def run_segment_watch(args: argparse.Namespace) -> int:
    if args.after < 0:
        raise InputError(f"--after {args.after} is negative; use 0 for every retained change")
    idle = None if args.follow else positive("--idle", args.idle)
    with connect(args) as identity:
        for change in identity.segments.watch(args.name, args.after, idle_seconds=idle):
            print_json(change)
    return EXIT_OK


def run_deliver(args: argparse.Namespace) -> int:
    """Runs the activation package, imported here so that the client library does not load it."""
    from activation import DeliveryRunner, load_destinations, stop_on_signals
    from activation.consent_gate import lookup_consent, segment_rules
    from activation.profile_identifiers import lookup_identifiers

    config = load_destinations(args.config)
    idle = positive("--idle", args.idle) if args.once else None
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    if args.metrics_listen:
        from activation.delivery_metrics import DELIVERY

        try:
            DELIVERY.serve(args.metrics_listen)
        except (OSError, ValueError) as exc:
            raise InputError(f"--metrics-listen {args.metrics_listen}: {exc}") from exc
    with connect(args) as identity:
        runner = DeliveryRunner(config, identity.segments.watch, idle_seconds=idle,
                                max_reconnects=ONCE_RECONNECTS if args.once else None,
                                identifiers=lookup_identifiers(identity), consent=lookup_consent(identity),
                                rules=segment_rules(identity))
        with stop_on_signals(runner.stop):
            statuses = runner.run()
    for status in statuses:
        print(json.dumps(asdict(status), ensure_ascii=False), flush=True)
    if any(status.error for status in statuses):
        return EXIT_ERROR
    return EXIT_REJECTED if any(status.dead_lettered for status in statuses) else EXIT_OK


def run_token_create(args: argparse.Namespace) -> int:
    """Everything is checked before the token exists, so that a typo never shows a token that is then thrown away."""
    name, scopes = token_name(args.name), token_scopes(args.scopes)
    sources = distinct(comma_list("--sources", args.sources)) if args.sources is not None else None
    if sources == []:
        raise InputError("--sources is empty; name at least one source, or leave --sources out for any source")
    token = new_token()
    print(f"# The token for {name}, shown this once: hand it to its caller now (as ${TOKEN_VARIABLE}); "
          "it is kept nowhere.")
    print(token)
    print()
    print("# Its entry for the server's tokens file (--auth-tokens); add it under `tokens:` and restart the server.")
    print(tokens_file_entry(name, token_sha256(token), scopes, sources), end="", flush=True)
    return EXIT_OK


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_sha256(token: str) -> str:
    """What the tokens file holds: a copy of the file, a backup or a log line gives nobody a credential."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_name(name: str) -> str:
    if not TOKEN_NAME.fullmatch(name):
        raise InputError(f"--name {name!r}: a token's name is 1 to 100 of A-Z a-z 0-9 _ . -")
    return name


def token_scopes(text: str) -> list[str]:
    scopes = distinct(comma_list("--scopes", text))
    unknown = [scope for scope in scopes if scope not in TOKEN_SCOPES]
    if unknown or not scopes:
        raise InputError(f"--scopes {text!r}: give one or more of {', '.join(TOKEN_SCOPES)}, comma-separated")
    return scopes


def tokens_file_entry(name: str, sha256: str, scopes: list[str], sources: list[str] | None) -> str:
    """The entry as YAML under `tokens:`; dumped rather than formatted, so that a name or source such as
    `yes` or `1.0` stays a string."""
    entry: dict[str, Any] = {"name": name, "sha256": sha256, "scopes": scopes}
    if sources is not None:
        entry["sources"] = sources
    text: str = yaml.dump({"tokens": [entry]}, Dumper=IndentedDumper, sort_keys=False, default_flow_style=None)
    return text


class IndentedDumper(yaml.SafeDumper):
    """Indents a list under its key, as a tokens file written by hand does, so that the entry pastes into one."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def distinct(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def read_segment_file(path: str) -> seg.UpsertSegmentRequest:
    """A segment definition from a YAML or JSON file, checked whole before anything is sent.

    The keys are UpsertSegmentRequest's (name, description, rule), rule in the protobuf JSON
    mapping: enum names in full (AGGREGATE_COUNT), durations in seconds ("2592000s"), field
    names as in the proto (in_segment) or in lowerCamelCase (inSegment).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {one_line(str(exc))}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a mapping with the keys name, description and rule")
    try:
        request: seg.UpsertSegmentRequest = ParseDict(data, seg.UpsertSegmentRequest())
    except ParseError as exc:
        raise InputError(f"{path}: {one_line(str(exc))}") from None
    if not request.name.strip():
        raise InputError(f"{path}: name is missing")
    if request.rule.WhichOneof("node") is None:
        raise InputError(f"{path}: rule is missing (or empty)")
    return request


def comma_list(option: str, text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")] if text.strip() else []
    if any(not name for name in names):
        raise InputError(f"{option} {text!r} has an empty name; write e.g. email,phone")
    return names


def positive(option: str, seconds: float) -> float:
    if not seconds > 0:
        raise InputError(f"{option} {seconds} must be above 0")
    return seconds


def one_line(text: str) -> str:
    return " ".join(text.split())


def connect(args: argparse.Namespace) -> IdentityClient:
    """A client for the global options; TLS files and the token are passed only when given on the
    command line, so that IdentityClient takes the rest from the environment."""
    given = {option: getattr(args, option) for option in SECURITY_OPTIONS if getattr(args, option) is not None}
    return IdentityClient(args.address, timeout=args.timeout, **given)


def input_lines(path: str) -> tuple[Lines, str]:
    """A way to read the input twice (once to check every line, once to send) and its name for messages."""
    if path == "-":
        lines = sys.stdin.read().splitlines()
        return (lambda: iter(lines)), "<stdin>"
    return partial(file_lines, path), path


def file_lines(path: str) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8") as file:
            yield from file
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None


def count_valid(lines: Lines, convert: Callable[[Mapping[str, Any]], Any], name: str) -> int:
    """Checks every line before anything is sent; the count sizes the progress bar."""
    return sum(1 for _ in read_jsonl(lines(), convert, name))


def cli_time(option: str, text: str | None) -> Timestamp | None:
    """A time from the command line: RFC 3339, or epoch seconds when it is a plain number."""
    if text is None:
        return None
    try:
        if EPOCH_SECONDS.fullmatch(text):
            return parse_timestamp(float(text) if "." in text else int(text))
        return parse_timestamp(text)
    except InputError as exc:
        raise InputError(f"{option}: {exc}") from None


@contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[int, str], None] | None]:
    """An update function (done, phase) while a person watches a large input; None otherwise."""
    if total < LARGE_INPUT or not sys.stderr.isatty():
        yield None
        return
    with new_bar() as bar:
        task = bar.add_task(label, total=total)
        yield lambda done, phase: bar.update(task, completed=done, description=phase)


class PhaseProgress:
    """Progress of a run whose phases each announce their own total (a replay: events, records, invalid values).

    Decided per status as progress_bar decides for one total: once a phase is large and a person
    watches, a bar with one line per phase; until then one line per status on stderr.
    """

    def __init__(self, label: str, stack: ExitStack) -> None:
        self._label, self._stack = label, stack
        self._bar: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, status: pb.ReplayStatus) -> None:
        if self._bar is None and status.total >= LARGE_INPUT and sys.stderr.isatty():
            self._bar = self._stack.enter_context(new_bar())
        if self._bar is None:
            print(f"{self._label} {status.phase}: {status.done} of {status.total}", file=sys.stderr)
            return
        if status.phase not in self._tasks:
            self._tasks[status.phase] = self._bar.add_task(status.phase, total=status.total)
        self._bar.update(self._tasks[status.phase], completed=status.done, total=status.total)


@contextmanager
def phase_progress(label: str) -> Iterator[PhaseProgress]:
    """A PhaseProgress whose bar, if one was shown, is closed with the block."""
    with ExitStack() as stack:
        yield PhaseProgress(label, stack)


def new_bar() -> Progress:
    return Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=Console(stderr=True))


def print_json(message: Message, every_field: bool = False) -> None:
    """One message as one line of JSON; every_field prints zeros too, for summaries a script reads by key."""
    data = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=every_field)
    print(json.dumps(data, ensure_ascii=False), flush=True)


def fail(message: str) -> int:
    print(f"identity: {message}", file=sys.stderr)
    return EXIT_ERROR
