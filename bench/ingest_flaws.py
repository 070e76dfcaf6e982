"""What accepting events with warnings costs ingest: the same events with and without flawed values.

Issue 11 made ingest keep what it can: an event with a malformed identifier is accepted, the
bad value is kept on its touchpoint as an invalid value (`t.invalid`, label `HasInvalid`) and
named in the ack's warnings. Goal: that costs no more than 5% ingest throughput.

The synthetic population's events (bench/population.py) go through `Ingest` in two variants,
on an emptied database each time, over --streams concurrent bidi streams that each keep at most
--window unacked events in flight (as bench/ingest.py's `service`):
- clean: the events as generated;
- flawed: the same events, where a seeded share (--flawed-share) also carry one or two flawed
  values: an e-mail with two @, a phone of possible length that no one is assigned, an
  identifier of an undeclared type, a cookie with a control character, a date of birth that
  is no date. Their good identifiers stay as they are, and no event carries more identifiers
  than the rules allow, so the flawed values are the only difference.
Each of --rounds rounds runs both, clean first in odd rounds and flawed first in even ones, so
that drift on a shared machine cancels. Prints events/s per round, the median ratio
flawed/clean and the cost (1 - ratio) against the goal, the acks by status and the warnings.
Beside events/s it gives the CPU the server and Neo4j spent per event, which neighbours on a
shared machine disturb less than wall time.

After every run the graph is checked with the driver: nothing rejected, and after a flawed run
the expected touchpoints (within 1%) keep invalid values. A run that fails these checks measured the
wrong thing: the bench then exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
from bench.common import IngestRun, bench_neo4j, bench_server, children, empty_database, ingest_windowed, log, save
from bench.population import EventSpec, generate, split_by_person
from localneo4j import LocalNeo4j
from neo4j import GraphDatabase
from server.identity.identity_config import load_rules

GOAL_COST = 0.05
# A flawed run must keep as invalid the values it was given, give or take this share.
STORED_TOLERANCE = 0.01

BAD_EMAIL = "bad_email"
UNASSIGNED_PHONE = "unassigned_phone"
UNKNOWN_TYPE = "unknown_type"
CONTROL_IN_COOKIE = "control_in_cookie"
IMPOSSIBLE_DATE_OF_BIRTH = "impossible_date_of_birth"
FLAW_KINDS = (BAD_EMAIL, UNASSIGNED_PHONE, UNKNOWN_TYPE, CONTROL_IN_COOKIE, IMPOSSIBLE_DATE_OF_BIRTH)
# The identifier type each identifier flaw is kept under on the touchpoint (t.invalid).
INVALID_TYPE = {BAD_EMAIL: "email", UNASSIGNED_PHONE: "phone", UNKNOWN_TYPE: "ga_client_id",
                CONTROL_IN_COOKIE: "cookie"}
# Area codes that exist; an exchange that starts with 0 is assigned in none of them.
AREA_CODES = (878, 212, 415, 617, 312, 718)
CONTROL_CHARACTERS = ("\x00", "\x07", "\x1b", "\x7f")
IMPOSSIBLE_DATES = ("19151311", "1985-02-30", "31/31/1990", "unknown")


@dataclass(frozen=True)
class FlawedEvents:
    """The events with flaws added, and what a server that keeps them should show."""

    events: list[EventSpec]
    flawed_events: int  # events that carry at least one flaw
    with_invalid_identifiers: int  # events that carry a flawed identifier: HasInvalid touchpoints
    flaws: Counter[str] = field(default_factory=Counter)  # by kind

    @property
    def invalid_identifiers(self) -> int:
        return sum(n for kind, n in self.flaws.items() if kind in INVALID_TYPE)

    def expected_invalid_by_type(self) -> Counter[str]:
        return Counter({INVALID_TYPE[kind]: n for kind, n in self.flaws.items() if kind in INVALID_TYPE})


def flawed_value(kind: str, event: EventSpec, rng: random.Random) -> tuple[str, str]:
    """An identifier (type, value) of the kind, or for a date of birth the trait (key, value)."""
    if kind == BAD_EMAIL:
        return "email", f"{event.event_id}@@example"
    if kind == UNASSIGNED_PHONE:
        return "phone", f"({rng.choice(AREA_CODES)}) 0{rng.randint(0, 99):02d} {rng.randint(0, 9999):04d}"
    if kind == UNKNOWN_TYPE:
        return INVALID_TYPE[UNKNOWN_TYPE], f"GA1.2.{rng.randint(10**8, 10**9 - 1)}.{rng.randint(10**9, 2 * 10**9)}"
    if kind == CONTROL_IN_COOKIE:  # inside the value: a control character at either end would be trimmed
        return "cookie", f"{event.event_id}-c{rng.choice(CONTROL_CHARACTERS)}{rng.randint(0, 999)}"
    if kind == IMPOSSIBLE_DATE_OF_BIRTH:
        return "date_of_birth", rng.choice(IMPOSSIBLE_DATES)
    raise ValueError(f"unknown flaw kind {kind!r}")


def choose_flaws(event: EventSpec, rng: random.Random, max_identifiers: int) -> list[str]:
    """One or two distinct flaw kinds that fit the event: identifier flaws only while the event
    stays within max_identifiers, a date of birth only where it has none (a good one stays)."""
    wanted = rng.choice((1, 2))
    room = max_identifiers - len(event.identifiers)
    kinds = [k for k in FLAW_KINDS if k != IMPOSSIBLE_DATE_OF_BIRTH or "date_of_birth" not in event.traits]
    chosen: list[str] = []
    while kinds and len(chosen) < wanted:
        kind = kinds.pop(rng.randrange(len(kinds)))
        if kind in INVALID_TYPE:
            if room == 0:
                continue
            room -= 1
        chosen.append(kind)
    return chosen


def add_flaws(events: Sequence[EventSpec], share: float, max_identifiers: int, seed: int = 11) -> FlawedEvents:
    """The same events (same ids, same good values), a seeded share of them with flaws added."""
    rng = random.Random(seed)
    flawed: list[EventSpec] = []
    flaws: Counter[str] = Counter()
    flawed_events = with_invalid = 0
    for event in events:
        kinds = choose_flaws(event, rng, max_identifiers) if rng.random() < share else []
        if not kinds:
            flawed.append(event)
            continue
        identifiers = list(event.identifiers)
        traits = dict(event.traits)
        for kind in kinds:
            key, value = flawed_value(kind, event, rng)
            if kind == IMPOSSIBLE_DATE_OF_BIRTH:
                traits[key] = value
            else:
                identifiers.append((key, value))
        flaws.update(kinds)
        flawed_events += 1
        with_invalid += any(kind in INVALID_TYPE for kind in kinds)
        flawed.append(replace(event, identifiers=tuple(identifiers), traits=traits))
    return FlawedEvents(flawed, flawed_events, with_invalid, flaws)


def ingest(channel: Callable[[], grpc.Channel], streams: list[list[EventSpec]], window: int) -> IngestRun:
    """Ingests all streams through gRPC the way every ingest benchmark does (bench/common.py)."""
    return ingest_windowed(channel, streams, window)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU the processes (and their children: server workers) have used so far."""
    total = 0
    for pid in {*pids, *(c for pid in pids for c in children(pid))}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stored:
    """What the graph holds after a run."""

    touchpoints: int
    has_invalid: int  # touchpoints labelled HasInvalid
    invalid_by_type: dict[str, int]  # values kept in t.invalid, by identifier type
    unparsed_date_of_birth: int  # touchpoints with a date_of_birth_unparsed trait
    quarantined: int  # Rejected nodes


def stored(neo4j: LocalNeo4j) -> Stored:
    with GraphDatabase.driver(neo4j.uri, auth=(neo4j.user, neo4j.password)) as driver, driver.session() as session:
        def count(query: str) -> int:
            return int(session.run(query).single(strict=True)["n"])

        touchpoints = count("MATCH (t:Touchpoint) RETURN count(t) AS n")
        unparsed = count("MATCH (t:Touchpoint) WHERE t.traits CONTAINS '\"date_of_birth_unparsed\"' RETURN count(t) AS n")
        quarantined = count("MATCH (r:Rejected) RETURN count(r) AS n")
        has_invalid = 0
        by_type: Counter[str] = Counter()
        for record in session.run("MATCH (t:HasInvalid) RETURN t.invalid AS invalid"):
            has_invalid += 1
            by_type.update(json.loads(text)["type"] for text in record["invalid"] or [])
    return Stored(touchpoints, has_invalid, dict(by_type), unparsed, quarantined)


@dataclass(frozen=True)
class Measured:
    """One variant's run in a round: throughput, the CPU the server and Neo4j spent per event
    (less sensitive than wall time to neighbours on a shared machine), and what it left in the graph."""

    events_per_s: float
    cpu_ms_per_event: float
    run: IngestRun
    graph: Stored

    def figures(self) -> dict[str, object]:
        return {"events_per_s": self.events_per_s, "cpu_ms_per_event": self.cpu_ms_per_event,
                "seconds": self.run.seconds, "acks": dict(self.run.statuses),
                "warnings": sum(self.run.warnings.values()), "warnings_by_field": dict(self.run.warnings),
                "graph": vars(self.graph)}


def check(variant: str, events: int, measured: Measured, flawed: FlawedEvents) -> list[str]:
    """The problems that make a run's figure meaningless (empty when it measured what it should)."""
    run, graph = measured.run, measured.graph
    problems = []
    if run.count("REJECTED") or graph.quarantined:
        problems.append(f"{variant}: {run.count('REJECTED')} events acked REJECTED, {graph.quarantined} quarantined")
    if run.count("ACCEPTED") != events or graph.touchpoints != events:
        problems.append(f"{variant}: {run.count('ACCEPTED')} of {events} events accepted, "
                        f"{graph.touchpoints} touchpoints stored")
    warnings = sum(run.warnings.values())
    if variant == "clean":
        if graph.has_invalid or warnings:
            problems.append(f"clean: {graph.has_invalid} touchpoints keep invalid values, {warnings} warnings "
                            "(expected none)")
        return problems
    expected = flawed.with_invalid_identifiers
    if graph.has_invalid == 0:
        problems.append("flawed: no touchpoint keeps an invalid value (HasInvalid): the flaws were not stored")
    elif abs(graph.has_invalid - expected) > STORED_TOLERANCE * expected:
        problems.append(f"flawed: {graph.has_invalid} touchpoints keep invalid values, expected {expected}")
    if warnings == 0:
        problems.append("flawed: no ack carried a warning")
    return problems


def describe_checks(variant: str, measured: Measured, flawed: FlawedEvents) -> str:
    run, graph = measured.run, measured.graph
    common = f"rejected acks {run.count('REJECTED')}, quarantined {graph.quarantined}"
    if variant == "clean":
        return (f"check clean: HasInvalid {graph.has_invalid} (expected 0), "
                f"warnings {sum(run.warnings.values())} (expected 0), {common}")
    return (f"check flawed: HasInvalid {graph.has_invalid} (expected {flawed.with_invalid_identifiers}), "
            f"invalid values {sum(graph.invalid_by_type.values())} (expected {flawed.invalid_identifiers}) "
            f"{_sorted(graph.invalid_by_type)} (expected {_sorted(flawed.expected_invalid_by_type())}), "
            f"date_of_birth_unparsed {graph.unparsed_date_of_birth} (expected {flawed.flaws[IMPOSSIBLE_DATE_OF_BIRTH]}), "
            f"warnings {sum(run.warnings.values())} (expected {sum(flawed.flaws.values())}), {common}")


@dataclass(frozen=True)
class Round:
    number: int
    order: tuple[str, str]
    clean: Measured
    flawed: Measured

    @property
    def ratio(self) -> float:
        return self.flawed.events_per_s / self.clean.events_per_s

    @property
    def cpu_ratio(self) -> float:
        return self.flawed.cpu_ms_per_event / self.clean.cpu_ms_per_event

    def figures(self) -> dict[str, object]:
        return {"round": self.number, "order": "/".join(self.order), "clean": self.clean.figures(),
                "flawed": self.flawed.figures(), "ratio": self.ratio, "cpu_ratio": self.cpu_ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--window", type=int, default=2000, help="unacked events in flight per stream")
    parser.add_argument("--flawed-share", type=float, default=0.5, help="share of events given flawed values")
    parser.add_argument("--processes", type=int, default=1, help="server processes")
    parser.add_argument("--seed", type=int, default=11, help="of the choice of flawed events and values")
    args = parser.parse_args()
    max_identifiers = load_rules().max_identifiers_per_event  # the server reads the same file

    population = generate(people=max(args.events // 10, 1), events=args.events, prefix="flaws")
    clean = population.events[:args.events]
    flawed = add_flaws(clean, args.flawed_share, max_identifiers, args.seed)
    variants = {"clean": split_by_person(clean, args.streams), "flawed": split_by_person(flawed.events, args.streams)}
    log(f"{len(clean)} events, {len(population.people)} people; {flawed.flawed_events} flawed "
        f"({flawed.with_invalid_identifiers} with invalid identifiers), flaws {_sorted(flawed.flaws)}")

    rounds: list[Round] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-flaws-") as scratch:
        with bench_neo4j(Path(scratch) / "neo4j") as neo4j, bench_server(neo4j, args.processes) as server:
            warm = generate(people=500, events=5000, prefix="warm").events
            for warm_events in (warm, add_flaws(warm, args.flawed_share, max_identifiers, args.seed).events):
                empty_database(neo4j)  # plans cached and both code paths warm before anything counts
                ingest(server.channel, split_by_person(warm_events, args.streams), args.window)
            log("warmed up")
            pids = [server.process.pid, *([pid] if (pid := neo4j.pid()) else [])]
            for number in range(1, args.rounds + 1):
                order = ("clean", "flawed") if number % 2 else ("flawed", "clean")
                measured: dict[str, Measured] = {}
                for variant in order:
                    empty_database(neo4j)
                    cpu_before = cpu_seconds(pids)
                    run = ingest(server.channel, variants[variant], args.window)
                    cpu_ms = (cpu_seconds(pids) - cpu_before) * 1000 / len(clean)
                    measured[variant] = Measured(len(clean) / run.seconds, cpu_ms, run, stored(neo4j))
                    log(f"round {number} {variant}: {measured[variant].events_per_s:.0f} events/s, "
                        f"server+Neo4j CPU {cpu_ms:.2f} ms/event, acks {_acks(run.statuses)}, "
                        f"warnings {sum(run.warnings.values())}")
                    log(f"  {describe_checks(variant, measured[variant], flawed)}")
                    problems += [f"round {number} {p}" for p in check(variant, len(clean), measured[variant], flawed)]
                rounds.append(Round(number, order, measured["clean"], measured["flawed"]))

    print(f"{len(clean)} events, {args.streams} streams, window {args.window}; {flawed.flawed_events} "
          f"({flawed.flawed_events / len(clean):.0%}) flawed with {sum(flawed.flaws.values())} values: "
          f"{_sorted(flawed.flaws)}")
    print(f"{'round':>5} {'order':>13} {'clean ev/s':>11} {'flawed ev/s':>12} {'ratio':>6} "
          f"{'clean CPU ms/ev':>16} {'flawed CPU ms/ev':>17} {'ratio':>6}  "
          f"{'clean acks':<15} {'flawed acks':<15} {'warnings':>8} {'HasInvalid':>10}")
    for r in rounds:
        print(f"{r.number:5d} {'/'.join(r.order):>13} {r.clean.events_per_s:11.0f} {r.flawed.events_per_s:12.0f} "
              f"{r.ratio:6.3f} {r.clean.cpu_ms_per_event:16.2f} {r.flawed.cpu_ms_per_event:17.2f} {r.cpu_ratio:6.3f}  "
              f"{_acks(r.clean.run.statuses):<15} {_acks(r.flawed.run.statuses):<15} "
              f"{sum(r.flawed.run.warnings.values()):8d} {r.flawed.graph.has_invalid:10d}")
    ratio = statistics.median(r.ratio for r in rounds)
    cost = 1 - ratio
    cpu_cost = statistics.median(r.cpu_ratio for r in rounds) - 1
    print(f"median ratio flawed/clean {ratio:.3f}: cost {cost:+.1%} of throughput (goal: cost <= {GOAL_COST:.0%}: "
          f"{'met' if cost <= GOAL_COST else 'NOT met'}); server+Neo4j CPU per event {cpu_cost:+.1%}")
    print(f"expected per flawed run: {flawed.with_invalid_identifiers} HasInvalid touchpoints, "
          f"{sum(flawed.flaws.values())} warnings; clean runs: none of either")
    for problem in problems:
        print(f"CHECK FAILED: {problem}")
    if not problems:
        print("checks: no event rejected; every flawed run stored its invalid values and warned of each flaw")
    path = save("ingest_flaws", {"events": len(clean), "streams": args.streams, "window": args.window,
                                 "processes": args.processes, "flawed_share": args.flawed_share, "seed": args.seed,
                                 "flawed_events": flawed.flawed_events,
                                 "expected_has_invalid": flawed.with_invalid_identifiers,
                                 "flaws": dict(flawed.flaws), "rounds": [r.figures() for r in rounds],
                                 "median_ratio": ratio, "cost": cost, "cpu_cost": cpu_cost, "goal_cost": GOAL_COST,
                                 "goal_met": cost <= GOAL_COST, "problems": problems})
    print(f"figures saved to {path}")
    if problems:
        sys.exit(1)


def _sorted(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items()))


def _acks(statuses: dict[str, int]) -> str:
    return " ".join(f"{name.removeprefix('ACK_STATUS_').lower()} {n}" for name, n in sorted(statuses.items()))


if __name__ == "__main__":
    main()
