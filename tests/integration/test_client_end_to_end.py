"""The Python client and the `identity` CLI against the real server and Neo4j."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from client import IdentityClient, parse_identifier
from server.api.app import RunningServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def address(grpc_server: RunningServer) -> str:
    return f"127.0.0.1:{grpc_server.port}"


def identity_cli(address: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "client", "--address", address, *args], cwd=REPO, input=stdin,
                          capture_output=True, text=True, timeout=120)


def write_events(path: Path, uid: str) -> Path:
    lines = [
        {"event_id": f"{uid}-1", "occurred_at": "2026-11-28T10:00:00Z", "source": "web", "channel": "online",
         "type": "page_view", "identifiers": {"cookie": f"c-{uid}"}},
        {"event_id": f"{uid}-2", "occurred_at": "2026-11-28T10:05:00Z", "source": "web", "type": "identify",
         "identifiers": [{"type": "cookie", "value": f"c-{uid}"}, {"type": "email", "value": f"Ann.{uid}@Example.com"}],
         "traits": {"first_name": "Ann"}},
        {"event_id": f"{uid}-3", "occurred_at": "2026-11-28T11:00:00Z", "source": "pos", "channel": "offline",
         "type": "purchase", "identifiers": {"email": f"ann.{uid}@example.com", "loyalty_id": f"L-{uid}"},
         "properties": {"amount": 19.99}},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_cli_ingests_json_lines_and_looks_the_person_up(address: str, tmp_path: Path, uid: str) -> None:
    ingested = identity_cli(address, "ingest", str(write_events(tmp_path / "events.jsonl", uid)))
    assert ingested.returncode == 0, ingested.stderr
    assert "accepted 3, duplicate 0, rejected 0" in ingested.stdout
    looked_up = identity_cli(address, "lookup", f"cookie:c-{uid}")
    assert looked_up.returncode == 0, looked_up.stderr
    profile = json.loads(looked_up.stdout)
    values = {i["identifier"]["value"] for i in profile["identifiers"]}
    assert values == {f"c-{uid}", f"ann.{uid}@example.com", f"L-{uid}"}
    assert {t["key"]: t["value"] for t in profile["traits"]} == {"first_name": "Ann"}
    journey = identity_cli(address, "journey", f"email:ann.{uid}@example.com", "--desc")
    assert [json.loads(line)["touchpoint"]["event_id"] for line in journey.stdout.splitlines()] == \
        [f"{uid}-3", f"{uid}-2", f"{uid}-1"]


def test_cli_reports_a_miss_and_a_rejected_event(address: str, tmp_path: Path, uid: str) -> None:
    missing = identity_cli(address, "lookup", f"cookie:nobody-{uid}")
    assert missing.returncode == 3 and f"no profile holds cookie:nobody-{uid}" in missing.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"event_id": f"{uid}-x", "type": "page_view", "identifiers": {"email": "nope"}}) + "\n")
    rejected = identity_cli(address, "ingest", str(bad))
    assert rejected.returncode == 1 and "not an e-mail address" in rejected.stderr


def test_cli_health_says_serving(address: str) -> None:
    answer = identity_cli(address, "health")
    assert answer.returncode == 0 and answer.stdout.strip() == "SERVING"


def test_python_client_round_trip(address: str, uid: str) -> None:
    from client import event_from_json

    with IdentityClient(address) as identity:
        events = [event_from_json({"event_id": f"{uid}-{n}", "type": "app_open",
                                   "identifiers": {"device_id": f"d-{uid}", "user_id": f"u-{uid}"}}) for n in range(3)]
        acks = list(identity.ingest(events))
        assert [a.event_id for a in acks] == [f"{uid}-0", f"{uid}-1", f"{uid}-2"]
        profile = identity.lookup_one(parse_identifier(f"user_id:u-{uid}"))
        assert profile is not None and profile.touchpoints_by_channel["online"] == 3
        graph = identity.identity_graph(f"device_id:d-{uid}")
        assert graph.profile_id == profile.profile_id
        assert identity.lookup_one(f"cookie:nobody-{uid}") is None


def test_cli_imports_records_and_reviews_a_pair(address: str, tmp_path: Path, uid: str) -> None:
    n = int(uid[:6], 16)  # values of this run's own: earlier runs' records must not match these
    person = {"given_name": "Annabel", "surname": f"Quistorp{uid[:4]}", "date_of_birth": f"19{40 + n % 50}-"
              f"{1 + n % 12:02d}-{1 + n % 28:02d}", "postcode": f"{1000 + n % 8999}", "suburb": f"weston {uid[:3]}",
              "address_1": "tuggeranong parkway", "street_number": str(n % 300)}
    typo = {**person, "given_name": "Anabel", "address_1": "tuggeranong pkwy"}
    lines = [{"record_id": "c1", "source": f"crm-{uid}", "traits": person,
              "identifiers": [{"type": "crm_id", "value": f"C-{uid}"}]},
             {"record_id": "p1", "traits": typo}]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    imported = identity_cli(address, "import", str(path), "--source", f"pos-{uid}")
    assert imported.returncode == 0, imported.stderr
    assert "records 2," in imported.stdout and "rejected 0" in imported.stdout
    crm, pos = f"record:crm-{uid}/c1", f"record:pos-{uid}/p1"
    confirmed = identity_cli(address, "review", crm, pos, "--confirm", "--reason", "same customer")
    assert confirmed.returncode == 0, confirmed.stderr
    assert len(json.loads(confirmed.stdout)["profile_ids"]) == 1
    with IdentityClient(address) as client:
        profile = client.lookup_one(parse_identifier(f"crm_id:C-{uid}"))
    assert profile is not None and pos.split(":", 1)[1] in {i.identifier.value for i in profile.identifiers}
    rejected = identity_cli(address, "review", crm, pos, "--reject", "--reason", "different people after all")
    assert rejected.returncode == 0, rejected.stderr
    assert len(set(json.loads(rejected.stdout)["profile_ids"])) == 2
    missing = identity_cli(address, "review", crm, f"record:pos-{uid}/nobody", "--confirm")
    assert missing.returncode != 0 and "no profile holds" in missing.stderr


def test_cli_defines_a_segment_from_yaml_and_lists_and_watches_it(address: str, tmp_path: Path, uid: str,
                                                                  driver) -> None:
    ingested = identity_cli(address, "ingest", str(write_events(tmp_path / "events.jsonl", uid)))
    assert ingested.returncode == 0, ingested.stderr
    example = (REPO / "config" / "segments" / "example-repeat-buyers.yaml").read_text()
    assert "name: repeat-buyers" in example
    definition = tmp_path / "segment.yaml"
    definition.write_text(example.replace("name: repeat-buyers", f"name: t-{uid}-cli").replace(
        "value: 2", "value: 1").replace("window: 2592000s", "window: 315360000s"))
    try:
        upserted = identity_cli(address, "segment", "upsert", str(definition))
        assert upserted.returncode == 0, upserted.stderr
        assert json.loads(upserted.stdout)["name"] == f"t-{uid}-cli"
        listed = identity_cli(address, "segment", "members", f"t-{uid}-cli", "--types", "email")
        assert listed.returncode == 0, listed.stderr
        members = [json.loads(line) for line in listed.stdout.splitlines()]
        mine = [m for m in members if any(i["value"] == f"ann.{uid}@example.com" for i in m.get("identifiers", []))]
        assert len(mine) == 1 and {i["type"] for i in mine[0]["identifiers"]} == {"email"}
        watched = identity_cli(address, "segment", "watch", f"t-{uid}-cli", "--no-follow")
        assert watched.returncode == 0, watched.stderr
        entered = [json.loads(line) for line in watched.stdout.splitlines()]
        assert mine[0]["profile_id"] in {c["profile_id"] for c in entered}
    finally:
        driver.execute_query("MATCH (s:Segment {name: $name}) OPTIONAL MATCH (s)-[:HAS_VERSION]->(v) "
                             "DETACH DELETE s, v", name=f"t-{uid}-cli")


def test_cli_warns_lists_the_quarantine_and_replays_it(address: str, tmp_path: Path, uid: str) -> None:
    source = f"cli-{uid}"
    lines = [
        {"event_id": f"{uid}-w", "occurred_at": "2026-11-28T10:00:00Z", "source": source, "type": "identify",
         "identifiers": {"user_id": f"u-{uid}", "phone": "(878) 017 5989"}},
        {"event_id": f"{uid}-r", "occurred_at": "2026-11-28T10:00:00Z", "source": source, "type": "page_view",
         "identifiers": {"email": "not-an-address"}},
    ]
    path = tmp_path / "flawed.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    ingested = identity_cli(address, "ingest", str(path))
    assert ingested.returncode == 1, ingested.stderr
    assert f"warning {uid}-w: identifiers.phone" in ingested.stderr
    assert f"rejected {uid}-r (no_valid_identifier)" in ingested.stderr

    listed = identity_cli(address, "rejected", "--source", source)
    assert listed.returncode == 0, listed.stderr
    (item,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (item["subject_id"], item["code"]) == (f"{uid}-r", "no_valid_identifier")
    assert item["payload"]["identifiers"] == [["email", "not-an-address"]]

    replayed = identity_cli(address, "replay", "--source", source, "--skip-invalid-values")
    assert replayed.returncode == 1, replayed.stderr  # the e-mail is still no address
    summary = json.loads(replayed.stdout)
    assert (int(summary["events_replayed"]), int(summary["events_still_rejected"])) == (1, 1)
