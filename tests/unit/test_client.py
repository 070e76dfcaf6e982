"""The client without a server: identifiers, refs, JSON Lines, request building and the CLI's input checks."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import pytest
from identity.v1 import common_pb2, identity_service_pb2 as pb

from client import (
    IdentityClient,
    Identifier,
    JsonLinesError,
    ProfileRef,
    event_from_json,
    identifier,
    parse_channel,
    parse_identifier,
    parse_timestamp,
    profile_ref,
    read_jsonl,
    record_from_json,
    ref,
)
from client import cli

# 2026-11-28T10:00:00Z
NOON_ISH = 1795860000


# ---- identifiers and refs -------------------------------------------------------------------


def test_an_identifier_splits_on_the_first_colon_only() -> None:
    assert parse_identifier("email:ann@example.com") == Identifier(type="email", value="ann@example.com")
    assert parse_identifier("device_id:ab:cd:ef") == Identifier(type="device_id", value="ab:cd:ef")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ann@example.com", "write it as type:value"),
        (":ann@example.com", "must be non-empty"),
        ("email:", "must be non-empty"),
        ("email:   ", "must be non-empty"),
    ],
)
def test_a_malformed_identifier_says_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_identifier(text)


def test_an_identifier_needs_a_type_and_a_value() -> None:
    assert identifier("cookie", "c-1") == Identifier(type="cookie", value="c-1")
    with pytest.raises(ValueError, match="type is empty"):
        identifier("", "c-1")
    with pytest.raises(ValueError, match="empty value"):
        identifier("cookie", "")


def test_a_ref_is_an_identifier_when_it_has_a_colon_and_a_profile_id_otherwise() -> None:
    assert ref("email:ann@example.com") == ProfileRef(identifier=Identifier(type="email", value="ann@example.com"))
    assert ref("9f2c41d0") == ProfileRef(profile_id="9f2c41d0")
    assert ref(Identifier(type="cookie", value="c")) == ProfileRef(identifier=Identifier(type="cookie", value="c"))
    given = ProfileRef(profile_id="p")
    assert ref(given) is given


def test_profile_ref_takes_the_id_as_given_even_with_a_colon() -> None:
    assert profile_ref("legacy:42") == ProfileRef(profile_id="legacy:42")


def test_a_ref_of_another_type_or_an_empty_id_is_refused() -> None:
    with pytest.raises(TypeError, match="int"):
        ref(42)
    with pytest.raises(ValueError, match="profile id is empty"):
        ref("")


# ---- channels and timestamps ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("online", common_pb2.CHANNEL_ONLINE),
        ("Offline", common_pb2.CHANNEL_OFFLINE),
        ("CHANNEL_ONLINE", common_pb2.CHANNEL_ONLINE),
        ("channel_offline", common_pb2.CHANNEL_OFFLINE),
        (common_pb2.CHANNEL_OFFLINE, common_pb2.CHANNEL_OFFLINE),
        ("", common_pb2.CHANNEL_UNSPECIFIED),
        (None, common_pb2.CHANNEL_UNSPECIFIED),
    ],
)
def test_channels_are_read_by_short_name_or_enum_name(name: Any, expected: int) -> None:
    assert parse_channel(name) == expected


@pytest.mark.parametrize("name", ["web", "CHANNEL_WEB", 7, True])
def test_an_unknown_channel_lists_the_known_ones(name: Any) -> None:
    with pytest.raises(ValueError, match="online, offline"):
        parse_channel(name)


@pytest.mark.parametrize(
    ("value", "seconds", "nanos"),
    [
        ("2026-11-28T10:00:00Z", NOON_ISH, 0),
        ("2026-11-28t10:00:00z", NOON_ISH, 0),
        ("2026-11-28 10:00:00Z", NOON_ISH, 0),
        ("2026-11-28T12:00:00+02:00", NOON_ISH, 0),
        ("2026-11-28T10:00:00.123456789Z", NOON_ISH, 123456789),
        ("2026-11-28T10:00:00.5Z", NOON_ISH, 500000000),
        (NOON_ISH, NOON_ISH, 0),
        (NOON_ISH + 0.25, NOON_ISH, 250000000),
        (-1.5, -2, 500000000),
        (datetime(2026, 11, 28, 11, 0, 0, 7, tzinfo=timezone(timedelta(hours=1))), NOON_ISH, 7000),
    ],
)
def test_timestamps_from_rfc3339_epoch_seconds_and_datetimes(value: Any, seconds: int, nanos: int) -> None:
    stamp = parse_timestamp(value)
    assert (stamp.seconds, stamp.nanos) == (seconds, nanos)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-11-28T10:00:00", "UTC offset"),
        ("2026-11-28", "UTC offset"),
        ("yesterday", "RFC 3339"),
        ("2026-02-30T00:00:00Z", "not a valid time"),
        (1e13, "outside the years"),
        (float("nan"), "epoch seconds"),
        (True, "not a timestamp"),
        (datetime(2026, 11, 28, 10, 0), "no time zone"),
    ],
)
def test_an_ambiguous_or_impossible_time_is_refused(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_timestamp(value)


# ---- events and records from JSON ----------------------------------------------------------


FULL_EVENT = {
    "event_id": "e1",
    "occurred_at": "2026-11-28T10:00:00Z",
    "source": "web",
    "channel": "online",
    "type": "identify",
    "identifiers": [{"type": "cookie", "value": "c-81f"}, {"type": "email", "value": "Ann@Example.com"}],
    "traits": {"first_name": "Ann"},
    "properties": {"path": "/signup"},
}


def test_an_event_line_becomes_an_event_field_by_field() -> None:
    event = event_from_json(FULL_EVENT)
    expected = pb.Event(
        event_id="e1", source="web", channel=common_pb2.CHANNEL_ONLINE, type="identify",
        identifiers=[Identifier(type="cookie", value="c-81f"), Identifier(type="email", value="Ann@Example.com")],
        traits={"first_name": "Ann"}, properties={"path": "/signup"},
    )
    expected.occurred_at.seconds = NOON_ISH
    assert event == expected


def test_compact_identifiers_mean_the_same_as_the_list_form() -> None:
    compact = event_from_json({**FULL_EVENT, "identifiers": {"cookie": "c-81f", "email": "Ann@Example.com"}})
    assert list(compact.identifiers) == list(event_from_json(FULL_EVENT).identifiers)


def test_a_compact_identifier_may_hold_several_values_and_numbers() -> None:
    event = event_from_json({"identifiers": {"email": ["a@x.org", "b@x.org"], "loyalty_id": 4711}})
    assert [(i.type, i.value) for i in event.identifiers] == [
        ("email", "a@x.org"), ("email", "b@x.org"), ("loyalty_id", "4711")]


def test_non_string_traits_and_properties_become_text_and_null_means_absent() -> None:
    event = event_from_json({"traits": {"vip": True, "age": 41, "first_name": None},
                             "properties": {"total": 12.5, "items": ["a", 1], "meta": {"k": "v"}}})
    assert dict(event.traits) == {"vip": "true", "age": "41"}
    assert dict(event.properties) == {"total": "12.5", "items": '["a",1]', "meta": '{"k":"v"}'}


def test_a_missing_occurred_at_is_left_for_the_server_to_fill() -> None:
    event = event_from_json({"event_id": "e1", "identifiers": {"cookie": "c"}})
    assert not event.HasField("occurred_at")
    assert event.channel == common_pb2.CHANNEL_UNSPECIFIED


def test_occurred_at_may_be_epoch_seconds_and_channel_an_enum_name() -> None:
    event = event_from_json({"occurred_at": NOON_ISH, "channel": "CHANNEL_OFFLINE"})
    assert event.occurred_at.seconds == NOON_ISH
    assert event.channel == common_pb2.CHANNEL_OFFLINE


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({**FULL_EVENT, "identifier": []}, "unknown key 'identifier'"),
        ({"colour": 1, "Type": "x"}, "unknown key 'Type', 'colour'"),
        ({"occurred_at": "28/11/2026"}, "occurred_at: '28/11/2026' is not an RFC 3339"),
        ({"channel": "web"}, "channel: channel 'web'"),
        ({"event_id": 17}, "event_id must be a string, not a number"),
        ({"identifiers": "cookie:c"}, "identifiers must be a list"),
        ({"identifiers": [{"type": "cookie", "value": "c", "seen": 1}]}, r"identifiers\[0\] must be an object"),
        ({"identifiers": [{"type": "cookie"}]}, r"identifiers\[0\]"),
        ({"identifiers": {"cookie": ""}}, "empty value"),
        ({"identifiers": {"cookie": {"v": 1}}}, "must have a string value"),
        ({"traits": ["first_name", "Ann"]}, "traits must be a JSON object"),
    ],
)
def test_a_bad_event_names_what_is_wrong(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        event_from_json(obj)


def test_a_record_takes_the_default_source_only_when_it_names_none() -> None:
    own = record_from_json({"record_id": "r1", "source": "pos", "identifiers": {"crm_id": "C-1"}}, default_source="crm")
    bare = record_from_json({"record_id": "r2", "recorded_at": NOON_ISH}, default_source="crm")
    assert (own.source, bare.source) == ("pos", "crm")
    assert bare.recorded_at.seconds == NOON_ISH and not own.HasField("recorded_at")


def test_a_record_does_not_take_event_keys() -> None:
    with pytest.raises(ValueError, match="unknown key 'occurred_at' in record"):
        record_from_json({"record_id": "r1", "occurred_at": NOON_ISH})


def test_json_lines_count_blank_lines_when_naming_the_bad_one() -> None:
    lines = ['{"event_id": "e1"}', "", '{"event_id": "e2", "colour": "red"}']
    events = read_jsonl(lines, event_from_json, "events.jsonl")
    assert next(events).event_id == "e1"
    with pytest.raises(JsonLinesError, match="events.jsonl, line 3: unknown key 'colour'") as caught:
        next(events)
    assert caught.value.line == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [('{"event_id": "e1",}', "line 1: not JSON"), ('["e1"]', "line 1: each event must be a JSON object, not a list")],
)
def test_a_line_that_is_not_an_object_is_reported_with_its_number(line: str, message: str) -> None:
    with pytest.raises(JsonLinesError, match=message):
        list(read_jsonl([line], event_from_json))


# ---- the client, with its stubs' calls replaced --------------------------------------------


class Echo:
    """Stands in for a bidi call: reads every request, as gRPC's sender thread would, and answers each."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.cancelled = False
        self.timeout: float | None = None

    def __call__(self, requests: Iterable[Any], timeout: float | None = None) -> Echo:
        self.answers = [self.answer(r) for r in requests]
        self.timeout = timeout
        return self

    def __iter__(self) -> Iterator[Any]:
        return iter(self.answers)

    def cancel(self) -> bool:
        self.cancelled = True
        return False


@pytest.fixture
def identity() -> Iterator[IdentityClient]:
    """A client on an address nothing listens on; gRPC channels connect lazily, so nothing is dialled."""
    with IdentityClient("127.0.0.1:1") as client:
        yield client


def test_lookup_numbers_its_requests_and_accepts_every_ref_form(identity: IdentityClient) -> None:
    echo = Echo(lambda request: request)
    identity._identity.LookupProfiles = echo
    requests = list(identity.lookup(["email:ann@example.com", "9f2c", Identifier(type="cookie", value="c")]))
    assert [r.request_id for r in requests] == ["0", "1", "2"]
    assert [r.ref.WhichOneof("key") for r in requests] == ["identifier", "profile_id", "identifier"]


def test_a_bad_ref_mid_stream_is_raised_after_the_answers_to_the_good_ones(identity: IdentityClient) -> None:
    identity._identity.LookupProfiles = Echo(lambda request: request.request_id)
    answers = identity.lookup(["p1", "email:", "p3"])
    assert next(answers) == "0"
    with pytest.raises(ValueError, match="'email:' is not an identifier"):
        next(answers)


def test_lookup_one_is_none_for_a_miss_and_carries_a_deadline(identity: IdentityClient) -> None:
    asked: list[tuple[pb.LookupRequest, float | None]] = []

    def unary(answer: Callable[[pb.LookupRequest], pb.LookupResult]) -> Callable[..., pb.LookupResult]:
        def call(request: pb.LookupRequest, timeout: float | None = None) -> pb.LookupResult:
            asked.append((request, timeout))
            return answer(request)
        return call

    identity._identity.LookupProfile = unary(
        lambda request: pb.LookupResult(request_id=request.request_id, not_found=pb.NotFound(reason="no")))
    assert identity.lookup_one("email:nobody@example.com") is None
    assert asked[-1][1] == identity.timeout
    assert asked[-1][0].ref.identifier.value == "nobody@example.com"
    identity._identity.LookupProfile = unary(
        lambda request: pb.LookupResult(request_id=request.request_id, profile=pb.Profile(profile_id="p9")))
    assert identity.lookup_one("p9").profile_id == "p9"
    assert asked[-1][0].ref.profile_id == "p9"


def test_ingest_batches_sends_one_message_per_batch_and_yields_its_acks(identity: IdentityClient) -> None:
    echo = Echo(lambda batch: pb.IngestAckBatch(acks=[pb.IngestAck(event_id=e.event_id) for e in batch.events]))
    identity._identity.IngestBatches = echo
    acks = list(identity.ingest_batches([[pb.Event(event_id="a"), pb.Event(event_id="b")], [], [pb.Event(event_id="c")]]))
    assert [[a.event_id for a in batch] for batch in acks] == [["a", "b"], [], ["c"]]


def test_ingest_cancels_its_call_when_the_caller_stops_reading(identity: IdentityClient) -> None:
    echo = Echo(lambda event: pb.IngestAck(event_id=event.event_id))
    identity._identity.Ingest = echo
    acks = identity.ingest(pb.Event(event_id=f"e{n}") for n in range(3))
    assert next(acks).event_id == "e0"
    acks.close()
    assert echo.cancelled


def test_a_journey_request_carries_every_filter(identity: IdentityClient) -> None:
    sent: list[pb.TraverseJourneyRequest] = []
    identity._identity.TraverseJourney = lambda request: sent.append(request) or Echo(lambda r: r)([])
    steps = identity.journey("email:ann@example.com", since="2026-11-28T10:00:00Z", until=NOON_ISH + 60,
                             types="purchase", channels=["offline"], sources=("pos", "crm"), descending=True,
                             limit=5, cursor="c7")
    assert list(steps) == []
    (request,) = sent
    assert (request.since.seconds, request.until.seconds) == (NOON_ISH, NOON_ISH + 60)
    assert list(request.types) == ["purchase"]
    assert list(request.channels) == [common_pb2.CHANNEL_OFFLINE]
    assert list(request.sources) == ["pos", "crm"]
    assert (request.descending, request.limit, request.cursor) == (True, 5, "c7")


def test_a_bad_journey_filter_fails_at_the_call_not_at_first_iteration(identity: IdentityClient) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        identity.journey("p1", since="last week")


def test_the_address_comes_from_the_argument_then_the_environment_then_the_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IDENTITY_ADDRESS", raising=False)
    with IdentityClient() as default:
        assert default.address == "127.0.0.1:50051"
    monkeypatch.setenv("IDENTITY_ADDRESS", "identity.internal:7000")
    with IdentityClient() as from_env, IdentityClient("10.0.0.5:50051") as given:
        assert (from_env.address, given.address) == ("identity.internal:7000", "10.0.0.5:50051")


def test_the_client_closes_its_own_channel_but_not_one_it_was_given() -> None:
    with IdentityClient("127.0.0.1:1") as own:
        pass
    with pytest.raises(ValueError, match="closed channel"):
        own.health()
    channel = grpc.insecure_channel("127.0.0.1:1")
    closes: list[bool] = []
    channel.close = lambda: closes.append(True)
    with IdentityClient(channel):
        pass
    assert closes == []


# ---- the CLI: everything that must fail before a call is made ------------------------------


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes any attempt to connect fail the test, so each case proves it stopped before the network."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the CLI connected before checking its input")

    monkeypatch.setattr(cli, "IdentityClient", refuse)


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lookup", "p1", "email:"], "'email:' is not an identifier"),
        (["graph", ":ann@example.com"], "':ann@example.com' is not an identifier"),
        (["forget", ""], "profile id is empty"),
        (["unlink", "ann@example.com"], "write it as type:value"),
        (["unlink", "email:ann@example.com", "--from", "cookie"], "'cookie' is not an identifier"),
        (["journey", "p1", "--since", "yesterday"], "--since: 'yesterday' is not an RFC 3339"),
        (["journey", "p1", "--until", "1e99"], "RFC 3339"),
        (["journey", "p1", "--channel", "web"], "channel 'web' is not one of: online, offline"),
        (["journey", "p1", "--limit", "-1"], "--limit -1 is negative"),
    ],
)
def test_a_bad_argument_exits_2_with_one_clear_line(argv: list[str], message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("identity: ") and message in err
    assert "Traceback" not in err


def write_lines(path: Path, *objects: Any) -> str:
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects), encoding="utf-8")
    return str(path)


@pytest.mark.usefixtures("offline")
def test_ingest_names_the_bad_line_of_the_file_before_sending_any(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    good = {"event_id": "e1", "type": "page_view", "identifiers": {"cookie": "c"}}
    path = write_lines(tmp_path / "events.jsonl", good, "", {**good, "event_id": "e2", "colour": "red"}, good)
    assert cli.main(["ingest", path]) == 2
    err = capsys.readouterr().err
    assert f"identity: {path}, line 3: unknown key 'colour'" in err


@pytest.mark.usefixtures("offline")
def test_ingest_from_stdin_names_the_bad_line_too(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"event_id": "e1"}\n{"event_id": "e2"\n'))
    assert cli.main(["ingest", "-"]) == 2
    assert "<stdin>, line 2: not JSON" in capsys.readouterr().err


@pytest.mark.usefixtures("offline")
def test_import_checks_records_by_the_record_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_lines(tmp_path / "crm.jsonl", {"record_id": "r1", "identifiers": {"crm_id": "C-1"}},
                       {"record_id": "r2", "event_id": "e2"})
    assert cli.main(["import", path, "--source", "crm"]) == 2
    assert "line 2: unknown key 'event_id' in record" in capsys.readouterr().err


@pytest.mark.usefixtures("offline")
def test_a_missing_file_is_one_line_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ingest", str(tmp_path / "absent.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "absent.jsonl" in err and "Traceback" not in err


@pytest.mark.usefixtures("offline")
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert cli.main(["lookup"]) == 2
    assert cli.main(["journey", "p1", "--limit", "many"]) == 2
    assert "invalid int value" in capsys.readouterr().err


# ---- the CLI's answers, with a stand-in client ---------------------------------------------


class Unavailable(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "failed to connect to all addresses"


class StandInClient:
    """Answers the CLI's calls from canned messages, so that exit codes and output can be checked."""

    acks: list[pb.IngestAck] = []
    results: list[pb.LookupResult] = []

    def __init__(self, address: str | None, timeout: float | None) -> None:
        self.address = address

    def __enter__(self) -> StandInClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def ingest(self, events: Iterable[pb.Event]) -> Iterator[pb.IngestAck]:
        list(events)
        return iter(self.acks)

    def lookup(self, refs: Iterable[ProfileRef]) -> Iterator[pb.LookupResult]:
        list(refs)
        return iter(self.results)

    def health(self, service: str) -> str:
        raise Unavailable()


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> type[StandInClient]:
    """A fresh subclass per test, so that one test's canned answers never reach another."""

    class Client(StandInClient):
        acks: list[pb.IngestAck] = []
        results: list[pb.LookupResult] = []

    monkeypatch.setattr(cli, "IdentityClient", Client)
    return Client


def test_a_grpc_error_is_its_code_name_and_details_and_exit_2(stand_in: type[StandInClient],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["health"]) == 2
    assert capsys.readouterr().err == "identity: UNAVAILABLE: failed to connect to all addresses\n"


def test_ingest_summarises_and_exits_1_when_an_event_was_rejected(stand_in: type[StandInClient], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    stand_in.acks = [
        pb.IngestAck(event_id="e1", status=pb.ACK_STATUS_ACCEPTED, profile_id="p1"),
        pb.IngestAck(event_id="e2", status=pb.ACK_STATUS_DUPLICATE, profile_id="p1"),
        pb.IngestAck(event_id="e3", status=pb.ACK_STATUS_REJECTED, reason="the event carries no identifiers"),
    ]
    path = write_lines(tmp_path / "events.jsonl", {"event_id": "e1"}, {"event_id": "e2"}, {"event_id": "e3"})
    assert cli.main(["ingest", path]) == 1
    out, err = capsys.readouterr()
    assert out == "accepted 1, duplicate 1, rejected 1, accepted with warnings 0\n"
    assert err == "rejected e3: the event carries no identifiers\n"


def test_lookup_prints_profiles_as_json_and_exits_3_on_a_miss(stand_in: type[StandInClient],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    profile = pb.Profile(profile_id="p1", identifiers=[pb.ProfileIdentifier(
        identifier=Identifier(type="email", value="ann@example.com"))], touchpoints_by_channel={"online": 2})
    stand_in.results = [pb.LookupResult(request_id="0", profile=profile),
                        pb.LookupResult(request_id="1", not_found=pb.NotFound(reason="no such identifier"))]
    assert cli.main(["lookup", "email:ann@example.com", "cookie:zzz"]) == 3
    out, err = capsys.readouterr()
    assert json.loads(out) == {"profile_id": "p1", "identifiers": [{"identifier": {"type": "email",
                               "value": "ann@example.com"}}], "touchpoints_by_channel": {"online": "2"}}
    assert err == "identity: not found: cookie:zzz: no such identifier\n"
