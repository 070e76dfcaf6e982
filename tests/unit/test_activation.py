"""The activation package (the delivery runner) without an identity server: fake change sources, a real HTTP
receiver, real files."""

from __future__ import annotations

import json
import logging
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from loopback import loopback_server
import pytest
from identity.v1 import segment_service_pb2 as seg, segment_service_pb2_grpc

from activation import (
    ChangeSource,
    DeliveryConfig,
    DeliveryError,
    DeliveryRunner,
    DestinationsError,
    DestinationStatus,
    ExportFile,
    PositionStore,
    Webhook,
    load_destinations,
    parse_destinations,
    replay_membership,
)
from activation.backoff import backoff_delay
from client.api import Segments
from client.messages import SegmentChange

ROOT = Path(__file__).resolve().parents[2]
SEGMENT = "repeat-buyers"
# Backoff small enough that a test with retries takes a fraction of a second; a timeout that a
# loaded machine still answers well within (only a receiver told to hang reaches it).
FAST_WEBHOOK = {"batch_size": 4, "batch_seconds": 5.0, "max_attempts": 4, "backoff_seconds": 0.01,
                "max_backoff_seconds": 0.05, "timeout_seconds": 2.0}
# A feed that stays open ends after this long without a change: generous, since a loaded machine
# may take a while to bring the first one. A fake source that just ends costs nothing of it.
IDLE = 2.0
# How long a test waits for something that takes milliseconds, before it calls it a failure.
DEADLINE = 30.0


# ---- worlds: change logs, sources, configs ---------------------------------------------------


def change(position: int, profile_id: str, kind: str = "enter", segment: str = SEGMENT) -> SegmentChange:
    found = SegmentChange(position=position, segment=segment, profile_id=profile_id, cause="ingest",
                          kind=seg.CHANGE_KIND_ENTER if kind == "enter" else seg.CHANGE_KIND_EXIT)
    found.at.FromSeconds(1795860000 + position)
    return found


def change_log(count: int, profiles: int = 12, seed: int = 7) -> list[SegmentChange]:
    """A segment's plausible history: people enter and leave; positions have gaps (the log is global)."""
    chance = random.Random(seed)
    members: set[str] = set()
    changes, position = [], 0
    for _ in range(count):
        position += chance.randint(1, 3)
        profile = f"p{chance.randrange(profiles)}"
        kind = "exit" if profile in members else "enter"
        (members.discard if kind == "exit" else members.add)(profile)
        changes.append(change(position, profile, kind))
    return changes


def membership(changes: list[SegmentChange]) -> set[str]:
    members: set[str] = set()
    for c in changes:
        (members.add if c.kind == seg.CHANGE_KIND_ENTER else members.discard)(c.profile_id)
    return members


def source_of(changes: list[SegmentChange], *, fail_after: int | None = None,
              calls: list[tuple[str, int]] | None = None) -> ChangeSource:
    """Serves the log as WatchSegment would (changes after the position); fail_after raises mid-stream once."""
    failures = [fail_after]

    def watch(segment: str, after_position: int) -> Iterator[SegmentChange]:
        if calls is not None:
            calls.append((segment, after_position))
        for sent, c in enumerate(c for c in changes if c.segment == segment and c.position > after_position):
            if failures[0] is not None and sent == failures[0]:
                failures[0] = None
                raise RuntimeError("the feed broke")
            yield c

    return watch


def file_config(tmp_path: Path, format: str = "jsonl", batch_size: int = 5) -> DeliveryConfig:
    return parse_destinations({"state_dir": str(tmp_path / "state"), "destinations": [
        {"name": "ads-file", "segment": SEGMENT,
         "file": {"path": str(tmp_path / f"ads.{format}"), "format": format, "batch_size": batch_size}}]})


def run_once(config: DeliveryConfig, source: ChangeSource, **options: Any) -> list[DestinationStatus]:
    return DeliveryRunner(config, source, idle_seconds=IDLE, reconnect_seconds=0.01, **options).run()


def positions_in(path: Path) -> list[int]:
    return [json.loads(line)["position"] for line in path.read_text().splitlines()]


def wait_until(condition: Callable[[], bool], deadline: float = DEADLINE) -> bool:
    """Whether condition came true within deadline seconds: tests wait for an outcome, never for a time."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def finishes(run: Callable[[], Any], deadline: float = DEADLINE) -> tuple[bool, list[Any]]:
    """Runs run() on a thread; whether it returned within deadline seconds, and what it returned."""
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(run()), daemon=True)
    thread.start()
    thread.join(deadline)
    return not thread.is_alive(), answers


# ---- the destinations file ------------------------------------------------------------------


def test_the_example_destinations_file_is_valid() -> None:
    from activation.destinations import Kafka, Tracking

    config = load_destinations(ROOT / "config" / "destinations.example.yaml")
    webhook, export, kafka, tracking, google, meta = (d.target for d in config.destinations)
    assert isinstance(webhook, Webhook) and webhook.url == "http://127.0.0.1:8080/hook"
    assert isinstance(export, ExportFile) and export.format == "jsonl"
    assert isinstance(kafka, Kafka) and kafka.topic == "audiences"
    assert isinstance(tracking, Tracking) and tracking.url == "http://127.0.0.1:8088"
    assert isinstance(google, ExportFile) and google.format == "google_customer_match"
    assert isinstance(meta, ExportFile) and meta.format == "meta_custom_audience"
    assert config.destinations[2].identifiers == ("email", "user_id")


def test_a_webhook_dead_letters_next_to_its_position_unless_told_otherwise() -> None:
    config = parse_destinations({"state_dir": "st", "destinations": [
        {"name": "crm", "segment": SEGMENT, "webhook": {"url": "https://crm.example/hook"}}]})
    (destination,) = config.destinations
    assert destination.target == Webhook(url="https://crm.example/hook", dead_letter=Path("st/crm.dead.jsonl"))


@pytest.mark.parametrize(
    ("destinations", "message"),
    [
        ([{"name": "crm", "segment": SEGMENT, "webhook": {"url": "ftp://x"}}],
         "destinations[0] (crm) webhook: url 'ftp://x' is not an http:// or https:// address"),
        ([{"name": "crm", "segment": SEGMENT, "webhook": {"url": "http://x", "batch_sise": 10}}],
         "destinations[0] (crm) webhook: unknown key 'batch_sise'"),
        ([{"name": "ok", "segment": SEGMENT, "file": {"path": "a.jsonl"}},
          {"name": "ads", "segment": SEGMENT, "file": {"path": "b.xml", "format": "xml"}}],
         "destinations[1] (ads) file: format must be one of jsonl, csv, google_customer_match, meta_custom_audience, not 'xml'"),
        ([{"name": "crm", "segment": SEGMENT, "webhook": {"url": "http://x", "max_attempts": 0}}],
         "destinations[0] (crm) webhook: max_attempts must be at least 1, not 0"),
        ([{"name": "crm", "segment": SEGMENT, "webhook": {"url": "http://x", "batch_seconds": "1s"}}],
         "destinations[0] (crm) webhook: batch_seconds must be a number, not a string"),
        ([{"name": "crm", "segment": SEGMENT, "webhook": {"url": "http://x", "headers": {"Idempotency-Key": "k"}}}],
         "headers may not set Idempotency-Key"),
        ([{"name": "crm", "segment": SEGMENT}], "destinations[0] (crm) must have exactly one of webhook, file, kafka"),
        ([{"segment": SEGMENT, "file": {"path": "a.jsonl"}}], "destinations[0]: name is missing"),
        ([{"name": "../up", "segment": SEGMENT, "file": {"path": "a.jsonl"}}], "destinations[0] (../up): name may hold"),
        ([{"name": "a", "segment": SEGMENT, "file": {"path": "x.jsonl"}},
          {"name": "b", "segment": SEGMENT, "file": {"path": "x.jsonl"}}], "destinations a and b both write x.jsonl"),
        ([{"name": "a", "segment": SEGMENT, "file": {"path": "x.jsonl"}},
          {"name": "a", "segment": SEGMENT, "file": {"path": "y.jsonl"}}], "destination name 'a' is used 2 times"),
        ([{"name": "bus", "segment": SEGMENT, "kafka": {"bootstrap": "127.0.0.1:9092"}}],
         "destinations[0] (bus) kafka: topic is missing"),
        ([{"name": "bus", "segment": SEGMENT, "kafka": {"topic": "audiences", "producer": {"acks": "1"}}}],
         "destinations[0] (bus) kafka: producer may not set acks (the runner sets it)"),
        ([{"name": "bus", "segment": SEGMENT, "kafka": {"topic": "a b"}}],
         "destinations[0] (bus) kafka: topic 'a b' is not a Kafka topic name"),
        ([{"name": "bus", "segment": SEGMENT, "identifiers": ["email", "passport"], "kafka": {"topic": "t"}}],
         "destinations[0] (bus): identifiers 'passport' are not identifier types"),
        ([{"name": "bus", "segment": SEGMENT, "identifiers": "email", "kafka": {"topic": "t"}}],
         "destinations[0] (bus): identifiers must be a list of identifier types"),
        ([{"name": "ads", "segment": SEGMENT, "identifiers": ["email"], "file": {"path": "a.csv", "format": "csv"}}],
         "destinations[0] (ads): a csv file has no column for identifiers"),
        ([{"name": "bus", "segment": SEGMENT, "sqs": {"queue": "q"}}],
         "destinations[0] (bus): unknown key 'sqs'"),
        ([], "destinations must be a non-empty list"),
        (["crm"], "destinations[0] must be a mapping, not a string"),
    ],
)
def test_a_bad_destination_is_named_in_the_error(destinations: list[Any], message: str) -> None:
    with pytest.raises(DestinationsError, match="^destinations.yaml: ") as caught:
        parse_destinations({"state_dir": "st", "destinations": destinations}, "destinations.yaml")
    assert message in str(caught.value)


def test_every_problem_of_the_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "destinations.yaml"
    path.write_text("state_dir: st\ndestinations:\n  - {name: crm, segment: s, webhook: {url: http://x, timeout_seconds: 0}}\n"
                    "  - {name: ads, file: {path: a.csv, format: tsv}}\n")
    with pytest.raises(DestinationsError) as caught:
        load_destinations(path)
    assert caught.value.problems == [
        "destinations[0] (crm) webhook: timeout_seconds must be above 0, not 0",
        "destinations[1] (ads): segment is missing",
        "destinations[1] (ads) file: format must be one of jsonl, csv, google_customer_match, meta_custom_audience, not 'tsv'",
    ]
    assert str(caught.value).startswith(f"{path}: ")


def test_a_destinations_file_that_is_not_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "destinations.yaml"
    path.write_text("destinations: [unclosed\n")
    with pytest.raises(DestinationsError, match=f"^{path}: not valid YAML"):
        load_destinations(path)


# ---- positions -------------------------------------------------------------------------------


def test_a_position_is_replaced_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = PositionStore(tmp_path / "state")
    assert store.load("crm") == 0
    store.save("crm", 41)
    store.save("crm", 42)
    assert store.load("crm") == 42
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["crm.position"]


def test_a_damaged_position_file_stops_rather_than_starts_over(tmp_path: Path) -> None:
    store = PositionStore(tmp_path)
    store.file("crm").write_text("forty-two")
    with pytest.raises(DeliveryError, match="does not hold a position"):
        store.load("crm")


def test_a_destination_is_delivered_by_one_runner_at_a_time(tmp_path: Path) -> None:
    config = file_config(tmp_path)
    with PositionStore(config.state_dir).lock("ads-file"):
        (status,) = run_once(config, source_of(change_log(3)))
    assert status.error is not None and "another runner is delivering this destination" in status.error
    assert not (tmp_path / "ads.jsonl").exists()


# ---- backoff ---------------------------------------------------------------------------------


def test_backoff_doubles_per_attempt_up_to_its_cap_and_jitters_down_to_half() -> None:
    def longest(attempt: int) -> float:
        return backoff_delay(attempt, 0.5, 3.0, jitter=lambda: 1.0)

    assert [longest(attempt) for attempt in (0, 1, 2, 3, 4, 5)] == [0.5, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_delay(3, 0.5, 3.0, jitter=lambda: 0.0) == 1.0


def test_backoff_waits_at_least_what_the_server_asked_but_never_past_its_cap() -> None:
    assert backoff_delay(1, 0.5, 30.0, retry_after=7.0, jitter=lambda: 1.0) == 7.0
    assert backoff_delay(1, 0.5, 30.0, retry_after=600.0, jitter=lambda: 1.0) == 30.0
    assert backoff_delay(4, 0.5, 30.0, retry_after=0.1, jitter=lambda: 1.0) == 4.0


# ---- the webhook, against a real HTTP server that fails now and then --------------------------


@dataclass
class Received:
    number: int
    key: str
    payload: dict[str, Any]
    status: int | None  # None: the receiver hung past the client's timeout
    saved_position: int  # the destination's saved position when the request arrived

    @property
    def positions(self) -> list[int]:
        return [c["position"] for c in self.payload["changes"]]


@contextmanager
def webhook_receiver(answer: Callable[[int, dict[str, Any]], int | None],
                     position_file: Path) -> Iterator[tuple[str, list[Received]]]:
    """A webhook on a free port; answer(request number, payload) gives the status, None to hang (until the
    receiver closes, so past any client timeout however slow the machine)."""
    received: list[Received] = []
    lock = threading.Lock()
    closing = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                status = answer(len(received) + 1, payload)
                saved = int(position_file.read_text()) if position_file.exists() else 0
                received.append(Received(len(received) + 1, self.headers["Idempotency-Key"], payload, status, saved))
            if status is None:
                closing.wait(DEADLINE)
                return
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        closing.set()
        server.shutdown()
        server.server_close()


def webhook_config(tmp_path: Path, url: str, **settings: Any) -> DeliveryConfig:
    return parse_destinations({"state_dir": str(tmp_path / "state"), "destinations": [
        {"name": "crm-webhook", "segment": SEGMENT, "webhook": {"url": url, **FAST_WEBHOOK, **settings}}]})


def test_a_flaky_webhook_gets_every_change_at_least_once_or_in_the_dead_letters(tmp_path: Path) -> None:
    changes = change_log(30)
    storm = changes[17].position  # its batch meets 500s on every attempt
    refused = changes[25].position  # its batch is refused outright (400)

    def answer(number: int, payload: dict[str, Any]) -> int | None:
        positions = {c["position"] for c in payload["changes"]}
        if storm in positions:
            return 500
        if refused in positions:
            return 400
        if number == 2:
            return None
        return 503 if number % 3 == 0 else 200

    position_file = tmp_path / "state" / "crm-webhook.position"
    before = delivery_counts()
    with webhook_receiver(answer, position_file) as (url, received):
        (status,) = run_once(webhook_config(tmp_path, url), source_of(changes))
    counted = {name: value - before[name] for name, value in delivery_counts().items()}

    delivered = {p for r in received if r.status == 200 for p in r.positions}
    dead = [json.loads(line) for line in (tmp_path / "state" / "crm-webhook.dead.jsonl").read_text().splitlines()]
    dead_positions = {c["position"] for record in dead for c in record["payload"]["changes"]}
    assert delivered | dead_positions == {c.position for c in changes}
    assert [(d["attempts"], d["error"].split(":")[0]) for d in dead] == [(4, "HTTP 500 Internal Server Error"),
                                                                        (1, "HTTP 400 Bad Request")]
    assert storm in dead_positions and refused in dead_positions and not delivered & dead_positions
    assert (status.delivered, status.dead_lettered, status.error) == (len(delivered), 2, None)
    assert status.position == changes[-1].position == int(position_file.read_text())
    # the runner's /metrics say the same: delivered changes, dead letters, and every retried attempt
    retried = sum(len(attempts) - 1 for attempts in _by_key(received).values())
    assert counted == {"changes": len(delivered), "dead_letters": 2, "retries": retried}

    # one key per batch, the same body on every retry, and the key names the batch's positions
    by_key: dict[str, list[Received]] = {}
    for r in received:
        by_key.setdefault(r.key, []).append(r)
    for key, attempts in by_key.items():
        assert all(a.payload == attempts[0].payload for a in attempts)
        positions = attempts[0].positions
        assert key == f"crm-webhook:{SEGMENT}:{positions[0]}-{positions[-1]}"
    hung = received[1]
    assert hung.status is None and [r.status for r in by_key[hung.key]] == [None, 503, 200]

    # the position moves only once a batch is delivered or dead-lettered, never before
    previous_last = 0
    for attempts in by_key.values():
        assert all(a.saved_position == previous_last for a in attempts)
        previous_last = attempts[0].positions[-1]


def delivery_counts() -> dict[str, float]:
    """The crm-webhook destination's delivery counters, as `identity deliver --metrics-listen` serves them."""
    from activation.delivery_metrics import DELIVERY

    read = DELIVERY.registry.get_sample_value
    return {name: read(f"identity_delivery_{name}_total", {"destination": "crm-webhook"}) or 0.0
            for name in ("changes", "dead_letters", "retries")}


def _by_key(received: list[Received]) -> dict[str, list[Received]]:
    by_key: dict[str, list[Received]] = {}
    for r in received:
        by_key.setdefault(r.key, []).append(r)
    return by_key


def test_the_payload_carries_each_change_with_its_kind_and_time(tmp_path: Path) -> None:
    with webhook_receiver(lambda number, payload: 200, tmp_path / "none") as (url, received):
        run_once(webhook_config(tmp_path, url), source_of([change(7, "p1"), change(9, "p2", "exit")]))
    (request,) = received
    assert request.payload == {"destination": "crm-webhook", "segment": SEGMENT, "changes": [
        {"position": 7, "profile_id": "p1", "kind": "enter", "at": "2026-11-28T10:00:07Z", "cause": "ingest"},
        {"position": 9, "profile_id": "p2", "kind": "exit", "at": "2026-11-28T10:00:09Z", "cause": "ingest"}]}


def test_a_batch_falls_due_after_batch_seconds_though_not_full(tmp_path: Path) -> None:
    first_arrived = threading.Event()
    waits: list[bool] = []

    def trickle(segment: str, after_position: int) -> Iterator[SegmentChange]:
        yield change(1, "p1")
        # the feed stays open and quiet until the first change arrives alone (or the deadline passes)
        waits.append(first_arrived.wait(DEADLINE))
        yield change(2, "p2")

    def answer(number: int, payload: dict[str, Any]) -> int:
        first_arrived.set()
        return 200

    with webhook_receiver(answer, tmp_path / "none") as (url, received):
        DeliveryRunner(webhook_config(tmp_path, url, batch_seconds=0.1), trickle, idle_seconds=IDLE).run()
    assert waits == [True]
    assert [r.positions for r in received] == [[1], [2]]


def test_an_unreachable_webhook_is_retried_then_dead_lettered(tmp_path: Path) -> None:
    with webhook_receiver(lambda number, payload: 200, tmp_path / "none") as (url, _):
        pass  # the port is free again: nothing listens there any more
    (status,) = run_once(webhook_config(tmp_path, url, max_attempts=2), source_of([change(1, "p1")]))
    (dead,) = [json.loads(line) for line in (tmp_path / "state" / "crm-webhook.dead.jsonl").read_text().splitlines()]
    assert dead["attempts"] == 2 and "ConnectionRefusedError" in dead["error"]
    assert (status.dead_lettered, status.position) == (1, 1)


def test_a_stop_abandons_a_failing_batch_without_saving_its_position(tmp_path: Path) -> None:
    with webhook_receiver(lambda number, payload: 503, tmp_path / "none") as (url, received):
        runner = DeliveryRunner(webhook_config(tmp_path, url, max_attempts=1000, backoff_seconds=0.05),
                                source_of(change_log(3)))
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        assert wait_until(lambda: len(received) >= 3)
        runner.stop()
        thread.join(DEADLINE)
    assert not thread.is_alive()
    (status,) = [worker.status for worker in runner.workers]
    assert (status.delivered, status.dead_lettered, status.position, status.error) == (0, 0, 0, None)
    assert not (tmp_path / "state" / "crm-webhook.position").exists()
    assert not (tmp_path / "state" / "crm-webhook.dead.jsonl").exists()


# ---- the file sink: crashes and restarts ------------------------------------------------------


def test_a_file_sink_resumes_after_a_crash_between_append_and_position_save(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    changes = change_log(60)
    config = file_config(tmp_path)
    saves: list[int] = []
    original = PositionStore.save

    def save_then_crash(store: PositionStore, destination: str, position: int) -> None:
        if len(saves) == 3:
            raise OSError(28, "No space left on device")
        saves.append(position)
        original(store, destination, position)

    monkeypatch.setattr(PositionStore, "save", save_then_crash)
    (crashed,) = run_once(config, source_of(changes))
    assert crashed.error is not None and "No space left on device" in crashed.error
    written = positions_in(tmp_path / "ads.jsonl")
    assert len(written) == 20 and PositionStore(config.state_dir).load("ads-file") == written[14]

    monkeypatch.setattr(PositionStore, "save", original)
    calls: list[tuple[str, int]] = []
    (status,) = run_once(config, source_of(changes, calls=calls))
    assert status.error is None and calls == [(SEGMENT, written[-1])]
    assert positions_in(tmp_path / "ads.jsonl") == [c.position for c in changes]
    assert replay_membership(tmp_path / "ads.jsonl") == membership(changes)


def test_a_feed_that_breaks_stops_the_destination_and_the_restart_goes_on_from_there(tmp_path: Path) -> None:
    changes = change_log(40)
    config = file_config(tmp_path, batch_size=6)
    (broken,) = run_once(config, source_of(changes, fail_after=15))
    assert broken.error is not None and "RuntimeError: the feed broke" in broken.error
    assert positions_in(tmp_path / "ads.jsonl") == [c.position for c in changes[:15]]

    (status,) = run_once(config, source_of(changes))
    assert status.error is None
    assert positions_in(tmp_path / "ads.jsonl") == [c.position for c in changes]
    assert replay_membership(tmp_path / "ads.jsonl") == membership(changes)


def test_a_line_torn_by_a_crash_is_cut_off_and_written_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    changes = change_log(10)
    config = file_config(tmp_path)
    run_once(config, source_of(changes[:5]))
    path = tmp_path / "ads.jsonl"
    with open(path, "a") as file:
        file.write('{"position": %d, "segment": "repeat-bu' % changes[5].position)
    with caplog.at_level(logging.WARNING, logger="activation.file_sink"):
        run_once(config, source_of(changes))
    assert positions_in(path) == [c.position for c in changes]
    assert "ads-file" in caplog.text and "cut off mid-write" in caplog.text


def test_a_file_rotated_away_does_not_bring_back_delivered_changes(tmp_path: Path) -> None:
    changes = change_log(10)
    config = file_config(tmp_path)
    run_once(config, source_of(changes[:6]))
    (tmp_path / "ads.jsonl").rename(tmp_path / "ads.1.jsonl")
    run_once(config, source_of(changes))
    assert positions_in(tmp_path / "ads.jsonl") == [c.position for c in changes[6:]]


def test_a_csv_sink_writes_its_header_once_across_restarts(tmp_path: Path) -> None:
    changes = change_log(12)
    config = file_config(tmp_path, format="csv")
    run_once(config, source_of(changes[:7]))
    run_once(config, source_of(changes))
    lines = (tmp_path / "ads.csv").read_text().splitlines()
    assert lines[0] == "position,segment,profile_id,kind,at,cause"
    assert [int(line.split(",")[0]) for line in lines[1:]] == [c.position for c in changes]
    assert replay_membership(tmp_path / "ads.csv") == membership(changes)


KILLABLE_RUNNER = textwrap.dedent("""
    import json, random, sys, time
    from activation import DeliveryRunner, parse_destinations
    from client.messages import SegmentChange
    from identity.v1 import segment_service_pb2 as seg

    state, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    chance, members, log, position = random.Random(11), set(), [], 0
    for _ in range(count):
        position += chance.randint(1, 3)
        profile = f"p{chance.randrange(15)}"
        kind = seg.CHANGE_KIND_EXIT if profile in members else seg.CHANGE_KIND_ENTER
        (members.discard if kind == seg.CHANGE_KIND_EXIT else members.add)(profile)
        log.append(SegmentChange(position=position, segment="s", profile_id=profile, kind=kind, cause="ingest"))

    def watch(segment, after_position):
        for change in log:
            if change.position > after_position:
                time.sleep(0.001)
                yield change

    config = parse_destinations({"state_dir": state, "destinations": [
        {"name": "ads", "segment": "s", "file": {"path": out, "batch_size": 7, "batch_seconds": 0.05}}]})
    DeliveryRunner(config, watch, idle_seconds=2.0).run()
    print(json.dumps(sorted(members)))
""")


def test_a_consumer_killed_and_restarted_ends_with_exactly_the_membership(tmp_path: Path) -> None:
    out, state = tmp_path / "ads.jsonl", tmp_path / "state"
    command = [sys.executable, "-c", KILLABLE_RUNNER, str(state), str(out), "600"]
    chance = random.Random(3)
    for _ in range(3):
        before = out.stat().st_size if out.exists() else 0
        runner = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while (out.stat().st_size if out.exists() else 0) <= before and runner.poll() is None:
            time.sleep(0.005)
        time.sleep(chance.uniform(0.0, 0.15))
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    positions = positions_in(out)
    assert len(positions) == 600 and positions == sorted(set(positions))
    assert sorted(replay_membership(out)) == json.loads(finished.stdout)


# ---- the change feed: reconnects and retention -----------------------------------------------


class Unavailable(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "connection reset"


def test_an_unavailable_server_is_reconnected_after_the_delivered_position(tmp_path: Path) -> None:
    changes = change_log(20)
    calls: list[tuple[str, int]] = []
    serve = source_of(changes, calls=calls)

    def flaky(segment: str, after_position: int) -> Iterator[SegmentChange]:
        for n, c in enumerate(serve(segment, after_position)):
            if len(calls) < 3 and n == 4:
                raise Unavailable()
            yield c

    (status,) = run_once(file_config(tmp_path, batch_size=3), flaky)
    assert status.error is None
    assert positions_in(tmp_path / "ads.jsonl") == [c.position for c in changes]
    assert [after for _, after in calls] == [0, changes[3].position, changes[7].position]


class FakeSegmentService(segment_service_pb2_grpc.SegmentServiceServicer):
    """WatchSegment over a fixed log: changes after the position, then open and quiet, as a live feed is."""

    def __init__(self, changes: list[SegmentChange], retained_after: int) -> None:
        self.changes = changes
        self.retained_after = retained_after

    def WatchSegment(self, request: seg.WatchSegmentRequest, context: grpc.ServicerContext) -> Iterator[SegmentChange]:
        if 0 < request.after_position < self.retained_after:
            context.abort(grpc.StatusCode.OUT_OF_RANGE, f"changes up to position {self.retained_after} were deleted "
                                                        f"by retention")
        yield from (c for c in self.changes if c.segment == request.name and c.position > request.after_position)
        while context.is_active():
            time.sleep(0.01)


@contextmanager
def segment_server(service: FakeSegmentService) -> Iterator[grpc.Channel]:
    with loopback_server(lambda server: segment_service_pb2_grpc.add_SegmentServiceServicer_to_server(
            service, server)) as address, grpc.insecure_channel(address) as channel:
        yield channel


def test_a_position_dropped_by_retention_stops_that_destination_only(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    changes = [change(n, f"p{n}") for n in range(1, 21)]
    config = parse_destinations({"state_dir": str(tmp_path / "state"), "destinations": [
        {"name": "late", "segment": SEGMENT, "file": {"path": str(tmp_path / "late.jsonl")}},
        {"name": "fresh", "segment": SEGMENT, "file": {"path": str(tmp_path / "fresh.jsonl")}}]})
    PositionStore(config.state_dir).save("late", 3)
    with segment_server(FakeSegmentService(changes, retained_after=10)) as channel, caplog.at_level(logging.ERROR):
        ended, answers = finishes(lambda: run_once(config, Segments(channel).watch))
    assert ended  # the quiet but open feed was cancelled once idle
    late, fresh = answers[0]
    assert late.error is not None and "position 3 of segment repeat-buyers is no longer retained" in late.error
    assert "OUT_OF_RANGE: changes up to position 10 were deleted by retention" in late.error
    assert "destination late:" in caplog.text
    assert not (tmp_path / "late.jsonl").exists() and PositionStore(config.state_dir).load("late") == 3
    assert (fresh.error, fresh.delivered) == (None, 20)
    assert positions_in(tmp_path / "fresh.jsonl") == list(range(1, 21))


# ---- replay ----------------------------------------------------------------------------------


def test_replay_adds_on_enter_and_removes_on_exit(tmp_path: Path) -> None:
    path = tmp_path / "ads.jsonl"
    lines = [{"position": 1, "profile_id": "a", "kind": "enter"}, {"position": 2, "profile_id": "b", "kind": "enter"},
             {"position": 3, "profile_id": "a", "kind": "exit"}, {"position": 4, "profile_id": "c", "kind": "exit"}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert replay_membership(path) == {"b"}
