"""`identity rejected`, `identity replay`, and the warnings of `ingest` and `import`, against a fake
IdentityService on loopback: what the filters become on the wire, what a person and a script see, and
the exit codes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from loopback import loopback_server
import pytest
from identity.v1 import identity_service_pb2 as pb, identity_service_pb2_grpc

from client import IdentityClient, Identifier, InputError
from client import cli

# 2026-11-28T10:00:00Z
NOON_ISH = 1795860000


def rejected_item(subject_id: str, payload_json: str, code: str = "unknown_identifier_type") -> pb.RejectedItem:
    return pb.RejectedItem(rejection_id=f"r-{subject_id}", kind=pb.REJECTED_KIND_EVENT, code=code,
                           reason="identifier type 'loyalty' is not configured", source="web",
                           subject_id=subject_id, attempts=2, payload_json=payload_json)


def status(phase: str, done: int, total: int) -> pb.ReplayProgress:
    return pb.ReplayProgress(status=pb.ReplayStatus(phase=phase, done=done, total=total))


def summary(**counts: Any) -> pb.ReplayProgress:
    return pb.ReplayProgress(summary=pb.ReplaySummary(**counts))


class Quarantine(identity_service_pb2_grpc.IdentityServiceServicer):
    """Answers from canned messages and keeps every request it was sent."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.items: list[pb.RejectedItem] = []
        self.replay: list[pb.ReplayProgress] = []
        self.acks: dict[str, pb.IngestAck] = {}
        self.import_summary = pb.ImportSummary()
        self.graph = pb.IdentityGraph()

    def ListRejected(self, request: pb.ListRejectedRequest, context: grpc.ServicerContext) -> Iterator[Any]:
        self.requests.append(request)
        yield from self.items

    def ReplayRejected(self, request: pb.ReplayRejectedRequest, context: grpc.ServicerContext) -> Iterator[Any]:
        self.requests.append(request)
        yield from self.replay

    def Ingest(self, events: Iterator[pb.Event], context: grpc.ServicerContext) -> Iterator[Any]:
        for event in events:
            yield self.acks[event.event_id]

    def ImportRecords(self, records: Iterator[pb.SourceRecord], context: grpc.ServicerContext) -> Iterator[Any]:
        received = sum(1 for _ in records)
        yield pb.ImportProgress(status=pb.ImportStatus(phase="linking", records_received=received))
        yield pb.ImportProgress(summary=self.import_summary)

    def GetIdentityGraph(self, request: pb.GetIdentityGraphRequest, context: grpc.ServicerContext) -> Any:
        return self.graph


@pytest.fixture
def quarantine() -> Quarantine:
    return Quarantine()


@pytest.fixture
def address(quarantine: Quarantine) -> Iterator[str]:
    with loopback_server(lambda server: identity_service_pb2_grpc.add_IdentityServiceServicer_to_server(
            quarantine, server)) as served:
        yield served


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


# ---- identity rejected ---------------------------------------------------------------------


def test_rejected_sends_every_filter_as_given(address: str, quarantine: Quarantine) -> None:
    assert cli.main(["--address", address, "rejected", "--code", "unknown_identifier_type", "--code", "too_large",
                     "--since", "2026-11-28T10:00:00Z", "--until", str(NOON_ISH + 60), "--source", "web",
                     "--kind", "record", "--limit", "5"]) == 0
    (request,) = quarantine.requests
    selected = request.filter
    assert list(selected.codes) == ["unknown_identifier_type", "too_large"]
    assert (selected.since.seconds, selected.until.seconds) == (NOON_ISH, NOON_ISH + 60)
    assert (selected.source, selected.kind, request.limit) == ("web", pb.REJECTED_KIND_RECORD, 5)


def test_rejected_without_filters_asks_for_everything(address: str, quarantine: Quarantine) -> None:
    assert cli.main(["--address", address, "rejected"]) == 0
    (request,) = quarantine.requests
    assert request == pb.ListRejectedRequest(filter=pb.RejectionFilter())


def test_rejected_prints_one_line_per_item_with_the_payload_as_json(address: str, quarantine: Quarantine,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    quarantine.items = [rejected_item("e1", '{"event_id": "e1", "identifiers": {"loyalty": "L-1"}}'),
                        rejected_item("e2", "", code="too_large"),
                        rejected_item("e3", "{truncated")]
    assert cli.main(["--address", address, "rejected"]) == 0
    first, too_large, broken = json_lines(capsys.readouterr().out)
    assert first == {"rejection_id": "r-e1", "kind": "REJECTED_KIND_EVENT", "code": "unknown_identifier_type",
                     "reason": "identifier type 'loyalty' is not configured", "source": "web", "subject_id": "e1",
                     "attempts": "2", "payload": {"event_id": "e1", "identifiers": {"loyalty": "L-1"}}}
    assert too_large["payload"] is None and "payload_json" not in too_large
    assert broken["payload_json"] == "{truncated" and "payload" not in broken


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rejected", "--limit", "-1"], "--limit -1 is negative"),
        (["rejected", "--since", "yesterday"], "--since: 'yesterday' is not an RFC 3339"),
        (["replay", "--until", "28/11/2026"], "--until: '28/11/2026' is not an RFC 3339"),
        (["replay", "--kind", "person"], "invalid choice: 'person'"),
    ],
)
def test_a_bad_filter_exits_2_before_connecting(argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the CLI connected before checking its filters")

    monkeypatch.setattr(cli, "IdentityClient", refuse)
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


# ---- identity replay -----------------------------------------------------------------------


def test_replay_sends_the_same_filters_and_the_invalid_values_switch(address: str, quarantine: Quarantine) -> None:
    quarantine.replay = [summary()]
    assert cli.main(["--address", address, "replay", "--code", "unknown_identifier_type", "--since", str(NOON_ISH),
                     "--source", "crm", "--kind", "event", "--skip-invalid-values"]) == 0
    (request,) = quarantine.requests
    assert list(request.filter.codes) == ["unknown_identifier_type"] and request.filter.since.seconds == NOON_ISH
    assert (request.filter.source, request.filter.kind) == ("crm", pb.REJECTED_KIND_EVENT)
    assert request.skip_invalid_values and not request.filter.HasField("until")


def test_replay_reports_each_phase_then_prints_the_whole_summary_and_exits_0(
        address: str, quarantine: Quarantine, capsys: pytest.CaptureFixture[str]) -> None:
    quarantine.replay = [status("events", 0, 3), status("events", 3, 3), status("invalid_values", 2, 2),
                         summary(events_replayed=3, events_accepted=2, events_duplicate=1, invalid_values_examined=2,
                                 invalid_values_linked=2)]
    assert cli.main(["--address", address, "replay"]) == 0
    out, err = capsys.readouterr()
    assert err == "replay events: 0 of 3\nreplay events: 3 of 3\nreplay invalid_values: 2 of 2\n"
    (printed,) = json_lines(out)
    assert printed["events_accepted"] == "2" and printed["invalid_values_linked"] == "2"
    assert (printed["events_still_rejected"], printed["not_replayable"], printed["still_rejected"]) == ("0", "0", {})


@pytest.mark.parametrize("left", [dict(events_still_rejected=2, still_rejected={"unknown_identifier_type": 2}),
                                  dict(records_still_rejected=1, still_rejected={"bad_record": 1}),
                                  dict(not_replayable=1)])
def test_replay_exits_1_while_anything_stays_rejected(left: dict[str, Any], address: str, quarantine: Quarantine,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    quarantine.replay = [summary(events_replayed=3, **left)]
    assert cli.main(["--address", address, "replay"]) == 1
    out, err = capsys.readouterr()
    assert json_lines(out)[0]["events_replayed"] == "3"
    assert err.startswith("still rejected: events ")
    assert all(f"{code} {count}" in err for code, count in left.get("still_rejected", {}).items())


def test_a_replay_that_ends_without_a_summary_exits_2(address: str, quarantine: Quarantine,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    quarantine.replay = [status("events", 1, 4)]
    assert cli.main(["--address", address, "replay"]) == 2
    assert capsys.readouterr().err.endswith("identity: the replay ended without a summary\n")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_replay_shows_a_bar_per_phase_when_a_person_watches_a_large_one(address: str, quarantine: Quarantine,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    quarantine.replay = [status("events", 700, 1500), status("events", 1500, 1500), status("records", 4, 4),
                         summary(events_replayed=1500, events_accepted=1500, records_replayed=4, records_accepted=4)]
    assert cli.main(["--address", address, "replay"]) == 0
    shown = terminal.getvalue()
    assert "1500/1500" in shown and "4/4" in shown and "records" in shown
    assert "replay events:" not in shown
    assert json_lines(capsys.readouterr().out)[0]["records_accepted"] == "4"


# ---- warnings of ingest, import and graph --------------------------------------------------


def write_lines(path: Path, *objects: Any) -> str:
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return str(path)


def warning(field: str, value: str, reason: str) -> pb.ValueWarning:
    return pb.ValueWarning(field=field, value=value, reason=reason)


def test_ingest_shows_each_warning_and_counts_the_warned_events_as_accepted(
        address: str, quarantine: Quarantine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quarantine.acks = {
        "e1": pb.IngestAck(event_id="e1", status=pb.ACK_STATUS_ACCEPTED, profile_id="p1", warnings=[
            warning("identifiers.email", "ann@@example", "not an e-mail address"),
            warning("traits.date_of_birth", "1990-02-31", "not a date")]),
        "e2": pb.IngestAck(event_id="e2", status=pb.ACK_STATUS_ACCEPTED, profile_id="p1"),
    }
    path = write_lines(tmp_path / "events.jsonl", {"event_id": "e1"}, {"event_id": "e2"})
    assert cli.main(["--address", address, "ingest", path]) == 0
    out, err = capsys.readouterr()
    assert out == "accepted 2, duplicate 0, rejected 0, accepted with warnings 1\n"
    assert err == ("warning e1: identifiers.email 'ann@@example': not an e-mail address\n"
                   "warning e1: traits.date_of_birth '1990-02-31': not a date\n")


def test_ingest_names_the_code_of_a_rejection_and_exits_1(address: str, quarantine: Quarantine, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    quarantine.acks = {"e1": pb.IngestAck(
        event_id="e1", status=pb.ACK_STATUS_REJECTED, reason_code="no_valid_identifier",
        reason="the event carries no valid identifier", warnings=[warning("identifiers.phone", "call me",
                                                                          "not a phone number")])}
    assert cli.main(["--address", address, "ingest", write_lines(tmp_path / "events.jsonl", {"event_id": "e1"})]) == 1
    out, err = capsys.readouterr()
    assert out == "accepted 0, duplicate 0, rejected 1, accepted with warnings 0\n"
    assert err == ("rejected e1 (no_valid_identifier): the event carries no valid identifier\n"
                   "warning e1: identifiers.phone 'call me': not a phone number\n")


def test_import_lists_record_warnings_and_says_how_many_records_it_left_out(
        address: str, quarantine: Quarantine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quarantine.import_summary = pb.ImportSummary(records=1500, pairs_compared=9000,
                                                 records_with_warnings=3, warnings=[
        pb.RecordWarning(record_id="r1", warning=warning("traits.date_of_birth", "31/02/1990", "not a date")),
        pb.RecordWarning(record_id="r1", warning=warning("identifiers.email", "x", "not an e-mail address"))])
    path = write_lines(tmp_path / "crm.jsonl", {"record_id": "r1"})
    assert cli.main(["--address", address, "import", path, "--source", "crm"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("records 1500, ") and out.endswith(", records with warnings 3\n")
    assert "pairs compared 9000 (6.0 per record)" in out
    assert ("warning r1: traits.date_of_birth '31/02/1990': not a date\n"
            "warning r1: identifiers.email 'x': not an e-mail address\n"
            "warnings of 2 more records not listed\n") in err


def test_graph_shows_the_values_kept_as_invalid(address: str, quarantine: Quarantine,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    quarantine.graph = pb.IdentityGraph(profile_id="p1", invalid_values=[pb.InvalidValue(
        identifier=Identifier(type="email", value="ann@@example"), reason="not an e-mail address", event_id="e1")])
    assert cli.main(["--address", address, "graph", "p1"]) == 0
    (graph,) = json_lines(capsys.readouterr().out)
    assert graph["invalid_values"] == [{"identifier": {"type": "email", "value": "ann@@example"},
                                        "reason": "not an e-mail address", "event_id": "e1"}]


# ---- the client's own checks ---------------------------------------------------------------


def test_the_client_takes_a_kind_by_short_name_enum_name_or_number(address: str, quarantine: Quarantine) -> None:
    with IdentityClient(address) as identity:
        for kind in ("Event", "REJECTED_KIND_EVENT", pb.REJECTED_KIND_EVENT):
            assert list(identity.list_rejected(kind=kind, codes="too_large")) == []
    assert [(r.filter.kind, list(r.filter.codes)) for r in quarantine.requests] == \
        [(pb.REJECTED_KIND_EVENT, ["too_large"])] * 3


@pytest.mark.parametrize(("filters", "message"), [({"kind": "person"}, "not one of: event, record"),
                                                  ({"since": "last week"}, "RFC 3339")])
def test_a_bad_filter_fails_at_the_call_not_at_first_iteration(filters: dict[str, Any], message: str) -> None:
    with IdentityClient("127.0.0.1:1") as identity:
        with pytest.raises(InputError, match=message):
            identity.replay_rejected(**filters)
