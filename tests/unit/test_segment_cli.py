"""The `identity segment` and `identity deliver` commands, with no identity server: files are
checked before any call, answers come from a stand-in client or a fake SegmentService on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from loopback import loopback_server
import pytest
from identity.v1 import segment_service_pb2 as seg, segment_service_pb2_grpc

from client import cli
from client.cli import read_segment_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "segments" / "example-repeat-buyers.yaml"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes any attempt to connect fail the test, so each case proves it stopped before the network."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the CLI connected before checking its input")

    monkeypatch.setattr(cli, "IdentityClient", refuse)


# ---- segment files ---------------------------------------------------------------------------


def test_the_example_segment_is_email_known_and_two_purchases_in_30_days() -> None:
    request = read_segment_file(str(EXAMPLE))
    assert request.name == "repeat-buyers"
    email, purchases = request.rule.all.rules
    assert email.identifier.has_type == "email"
    condition = purchases.touchpoints
    assert list(condition.filter.types) == ["purchase"] and condition.window.seconds == 30 * 24 * 3600
    assert (condition.aggregate, condition.comparison, condition.value) == (seg.AGGREGATE_COUNT,
                                                                             seg.COMPARISON_GTE, 2)


def test_a_json_segment_file_may_use_camel_case_names(tmp_path: Path) -> None:
    path = tmp_path / "vips.json"
    path.write_text(json.dumps({"name": "vips", "rule": {"any": {"rules": [
        {"inSegment": "repeat-buyers"}, {"trait": {"key": "tier", "equals": "gold"}}]}}}))
    snake = tmp_path / "vips.yaml"
    snake.write_text("name: vips\nrule: {any: {rules: [{in_segment: repeat-buyers}, {trait: {key: tier, equals: gold}}]}}\n")
    assert read_segment_file(str(path)) == read_segment_file(str(snake))


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.yaml", "name: x\nrule: {all: [unclosed\n", "broken.yaml is not valid YAML"),
        ("broken.json", '{"name": "x",}', "broken.json is not valid JSON: Expecting property name"),
        ("list.yaml", "- name: x\n", "list.yaml must hold a mapping with the keys name, description and rule"),
        ("typo.yaml", "name: x\nrule: {alll: {}}\n", 'typo.yaml: Failed to parse rule field: Message type '
                                                     '"identity.v1.Rule" has no field named "alll"'),
        ("extra.yaml", "name: x\ncolour: red\nrule: {identifier: {has_type: email}}\n", 'no field named "colour"'),
        ("enum.yaml", "name: x\nrule: {touchpoints: {aggregate: COUNT}}\n", "Invalid enum value COUNT"),
        ("window.yaml", "name: x\nrule: {touchpoints: {window: 30d}}\n", 'Duration must end with letter "s"'),
        ("two.yaml", "name: x\nrule: {trait: {key: tier, equals: gold, exists: true}}\n",
         'should not have multiple "test" oneof fields'),
        ("noname.yaml", "rule: {identifier: {has_type: email}}\n", "noname.yaml: name is missing"),
        ("norule.yaml", "name: x\ndescription: no rule\n", "norule.yaml: rule is missing"),
    ],
)
def test_a_bad_segment_file_exits_2_naming_the_file_and_the_problem(tmp_path: Path, name: str, text: str,
                                                                    message: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert cli.main(["segment", "upsert", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"identity: {path}") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.usefixtures("offline")
def test_a_missing_segment_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["segment", "upsert", str(tmp_path / "absent.yaml")]) == 2
    assert "identity: cannot read " in capsys.readouterr().err


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["segment", "members", "s", "--types", "email,,phone"], "--types 'email,,phone' has an empty name"),
        (["segment", "members", "s", "--page-size", "-1"], "--page-size -1 is negative"),
        (["segment", "watch", "s", "--after", "-1"], "--after -1 is negative"),
        (["segment", "watch", "s", "--idle", "0"], "--idle 0.0 must be above 0"),
    ],
)
def test_a_bad_segment_option_exits_2_before_connecting(argv: list[str], message: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.usefixtures("offline")
def test_deliver_names_the_bad_destination_before_connecting(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "destinations.yaml"
    path.write_text("destinations:\n  - {name: crm, segment: s, webhook: {url: 'http://x', max_attempts: none}}\n")
    assert cli.main(["deliver", "--config", str(path), "--once"]) == 2
    assert capsys.readouterr().err == (f"identity: {path}: destinations[0] (crm) webhook: max_attempts must be a "
                                       f"whole number, not a string\n")


# ---- answers, from a stand-in client ---------------------------------------------------------


class NotFound(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.NOT_FOUND

    def details(self) -> str:
        return "no segment named 'nobody'"


class StandInSegments:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def upsert(self, name: str, rule: seg.Rule, description: str = "") -> seg.Segment:
        self.calls.append(("upsert", (name, rule, description), {}))
        return seg.Segment(name=name, version=3, description=description, rule=rule, member_count=12)

    def get(self, name: str) -> seg.Segment:
        raise NotFound()

    def members(self, name: str, identifier_types: Iterable[str] = (), page_size: int = 0) -> Iterator[Any]:
        self.calls.append(("members", (name, identifier_types, page_size), {}))
        return iter([seg.SegmentMember(profile_id="p1"), seg.SegmentMember(profile_id="p2")])

    def watch(self, name: str, after_position: int = 0, idle_seconds: float | None = None) -> Iterator[Any]:
        self.calls.append(("watch", (name, after_position), {"idle_seconds": idle_seconds}))
        return iter([seg.SegmentChange(position=after_position + 1, segment=name, profile_id="p1",
                                       kind=seg.CHANGE_KIND_ENTER, cause="ingest")])


@pytest.fixture
def segments(monkeypatch: pytest.MonkeyPatch) -> StandInSegments:
    stand_in = StandInSegments()

    class Client:
        def __init__(self, address: str | None, timeout: float | None) -> None:
            self.segments = stand_in

        def __enter__(self) -> Client:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(cli, "IdentityClient", Client)
    return stand_in


def test_upsert_sends_the_file_and_prints_the_stored_segment(segments: StandInSegments,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["segment", "upsert", str(EXAMPLE)]) == 0
    ((_, (name, rule, description), _),) = segments.calls
    assert (name, rule) == ("repeat-buyers", read_segment_file(str(EXAMPLE)).rule)
    printed = json.loads(capsys.readouterr().out)
    assert (printed["name"], printed["version"], printed["member_count"]) == ("repeat-buyers", "3", "12")
    assert printed["rule"]["all"]["rules"][1]["touchpoints"]["window"] == "2592000s"


def test_a_segment_that_does_not_exist_exits_3(segments: StandInSegments,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["segment", "get", "nobody"]) == 3
    assert capsys.readouterr().err == "identity: not found: segment nobody: no segment named 'nobody'\n"


def test_members_are_json_lines_with_the_asked_identifier_types(segments: StandInSegments,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["segment", "members", "repeat-buyers", "--types", "email, phone", "--page-size", "500"]) == 0
    assert segments.calls == [("members", ("repeat-buyers", ["email", "phone"], 500), {})]
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [{"profile_id": "p1"},
                                                                                    {"profile_id": "p2"}]


@pytest.mark.parametrize(("options", "idle"), [([], 2.0), (["--idle", "0.5"], 0.5), (["--follow"], None),
                                               (["--no-follow"], 2.0)])
def test_watch_stops_when_idle_unless_it_follows(segments: StandInSegments, options: list[str], idle: float | None,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["segment", "watch", "repeat-buyers", "--after", "41", *options]) == 0
    assert segments.calls == [("watch", ("repeat-buyers", 41), {"idle_seconds": idle})]
    assert json.loads(capsys.readouterr().out)["position"] == "42"


# ---- a fake SegmentService on loopback -------------------------------------------------------


def change(position: int, profile_id: str, kind: int = seg.CHANGE_KIND_ENTER) -> seg.SegmentChange:
    return seg.SegmentChange(position=position, segment="repeat-buyers", profile_id=profile_id, kind=kind,
                             cause="ingest")


# A stream falls idle after this long without a change. The fake sends its changes at once,
# so only a stall of the (possibly loaded) machine longer than this could end a stream early.
IDLE = "2"


class QuietAfterChanges(segment_service_pb2_grpc.SegmentServiceServicer):
    """Sends the changes after the position, then keeps the stream open with nothing to say
    until the client ends the call."""

    changes = [change(1, "p1"), change(2, "p2"), change(4, "p1", seg.CHANGE_KIND_EXIT), change(7, "p3")]

    def __init__(self) -> None:
        self.ended = threading.Event()  # set when a watch call ends: the client cancelled it

    def WatchSegment(self, request: seg.WatchSegmentRequest, context: grpc.ServicerContext) -> Iterator[Any]:
        if request.name != "repeat-buyers":
            context.abort(grpc.StatusCode.NOT_FOUND, f"no segment named {request.name!r}")
        context.add_callback(self.ended.set)
        yield from (c for c in self.changes if c.position > request.after_position)
        self.ended.wait()


@contextmanager
def serving(service: QuietAfterChanges) -> Iterator[str]:
    with loopback_server(lambda server: segment_service_pb2_grpc.add_SegmentServiceServicer_to_server(
            service, server)) as address:
        yield address


def test_watch_cancels_its_call_once_the_stream_is_idle(capsys: pytest.CaptureFixture[str]) -> None:
    """The server never ends the stream: the command ends (with every change) only because it
    fell idle, and the server sees the call cancelled rather than left open."""
    service = QuietAfterChanges()
    with serving(service) as address:
        assert cli.main(["--address", address, "segment", "watch", "repeat-buyers", "--after", "1", "--idle", IDLE]) == 0
        assert service.ended.wait(timeout=60), "the watch call was left open"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["position"], line["kind"]) for line in lines] == [
        ("2", "CHANGE_KIND_ENTER"), ("4", "CHANGE_KIND_EXIT"), ("7", "CHANGE_KIND_ENTER")]


def test_watch_of_an_unknown_segment_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    with serving(QuietAfterChanges()) as address:
        assert cli.main(["--address", address, "segment", "watch", "nobody"]) == 3
    assert capsys.readouterr().err == "identity: not found: segment nobody: no segment named 'nobody'\n"


def test_deliver_once_writes_the_changes_and_reports_each_destination(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "destinations.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\ndestinations:\n"
                      f"  - {{name: ads, segment: repeat-buyers, file: {{path: {tmp_path / 'ads.jsonl'}}}}}\n")
    with serving(QuietAfterChanges()) as address:
        assert cli.main(["--address", address, "deliver", "--config", str(config), "--once", "--idle", IDLE]) == 0
    assert json.loads(capsys.readouterr().out) == {"destination": "ads", "segment": "repeat-buyers", "position": 7,
                                                   "delivered": 4, "dead_lettered": 0, "withheld": 0,
                                                   "error": None}
    lines = [json.loads(line) for line in (tmp_path / "ads.jsonl").read_text().splitlines()]
    assert [(line["position"], line["kind"]) for line in lines] == [(1, "enter"), (2, "enter"), (4, "exit"),
                                                                   (7, "enter")]
