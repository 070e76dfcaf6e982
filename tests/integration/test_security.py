"""Who may call what, against the real Neo4j and a real TLS server: certificates made at test
time by a throwaway CA (trustme), tokens from a tokens file, scopes per method, the audit
trail in Neo4j."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
import trustme
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from identity.v1 import identity_service_pb2 as pb, identity_service_pb2_grpc, segment_service_pb2
from neo4j import Driver
from support import by_identifier, event, identifier

from server.access.tokens import load_tokens, token_hash
from server.api.app import RunningServer, create_server
from server.api.auth import METHOD_SCOPES
from server.config import Settings, TlsFiles
from server.errors import StorageUnavailable
from server.graph import Graph
from server.identity.stitching import suppression_hash
from server.identity.values import Identifier

SERVICES = [pb.DESCRIPTOR.services_by_name["IdentityService"],
            segment_service_pb2.DESCRIPTOR.services_by_name["SegmentService"]]


@dataclass(frozen=True)
class Pki:
    ca: bytes
    client_cert: bytes
    client_key: bytes
    files: TlsFiles  # the server's, client CA included


@dataclass(frozen=True)
class Tokens:
    ingest: str  # scope ingest, may write as source "web" only
    read: str
    admin: str
    file: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("operator@example.com")
    cert, key, client_ca = folder / "server.pem", folder / "server.key", folder / "ca.pem"
    server_cert.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in server_cert.cert_chain_pems))
    ca.cert_pem.write_to_path(str(client_ca))
    return Pki(ca.cert_pem.bytes(), b"".join(b.bytes() for b in client_cert.cert_chain_pems),
               client_cert.private_key_pem.bytes(), TlsFiles(cert, key, client_ca))


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Tokens:
    made = {name: f"idr_{secrets.token_urlsafe(32)}" for name in ("ingest", "read", "admin")}
    path = tmp_path_factory.mktemp("auth") / "tokens.yaml"
    path.write_text(
        "tokens:\n"
        f"  - {{name: web-collector, sha256: {token_hash(made['ingest'])}, scopes: [ingest], sources: [web]}}\n"
        f"  - {{name: lookup-service, sha256: {token_hash(made['read'])}, scopes: [read]}}\n"
        f"  - {{name: operator, sha256: {token_hash(made['admin'])}, scopes: [read, admin]}}\n")
    return Tokens(made["ingest"], made["read"], made["admin"], path)


def serve(settings: Settings, graph: Graph, **changes: Any) -> RunningServer:
    return create_server(replace(settings, **changes), graph)


@pytest.fixture(scope="module")
def tls_server(settings: Settings, graph: Graph, pki: Pki, tokens: Tokens) -> Iterator[RunningServer]:
    """TLS without client certificates, every call but health behind a token."""
    running = serve(settings, graph, tls=replace(pki.files, client_ca=None), tokens=load_tokens(tokens.file),
                    reflection=False)
    yield running
    running.stop(grace=2)


def secure(server: RunningServer, pki: Pki, client_cert: bool = False) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(pki.ca, pki.client_key if client_cert else None,
                                               pki.client_cert if client_cert else None)
    return grpc.secure_channel(f"127.0.0.1:{server.port}", credentials)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def channel_tls(tls_server: RunningServer, pki: Pki) -> Iterator[grpc.Channel]:
    with secure(tls_server, pki) as channel:
        yield channel


def health_of(channel: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status


# ---- TLS ---------------------------------------------------------------------------------------


def test_a_client_that_trusts_the_ca_is_served_over_tls(channel_tls: grpc.Channel, tokens: Tokens, uid: str) -> None:
    identity = identity_service_pb2_grpc.IdentityServiceStub(channel_tls)
    (ack,) = identity.Ingest(iter([event(f"{uid}-1", f"email:{uid}@example.com")]), metadata=bearer(tokens.ingest),
                             timeout=30)
    assert ack.status == pb.ACK_STATUS_ACCEPTED
    (found,) = identity.LookupProfiles(iter([pb.LookupRequest(request_id="1", ref=by_identifier(
        f"email:{uid}@example.com"))]), metadata=bearer(tokens.read), timeout=30)
    assert found.profile.profile_id == ack.profile_id


def test_a_plaintext_client_gets_nothing_from_a_tls_port(tls_server: RunningServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{tls_server.port}") as channel, pytest.raises(grpc.RpcError) as refused:
        health_of(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_serves_a_client_certificate_and_refuses_a_client_without_one(
        settings: Settings, graph: Graph, pki: Pki, tokens: Tokens) -> None:
    running = serve(settings, graph, tls=pki.files, tokens=load_tokens(tokens.file), reflection=False)
    try:
        with secure(running, pki, client_cert=True) as channel:
            assert health_of(channel) == health_pb2.HealthCheckResponse.SERVING
        with secure(running, pki, client_cert=False) as channel, pytest.raises(grpc.RpcError) as refused:
            health_of(channel)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop(grace=2)


# ---- tokens and scopes -------------------------------------------------------------------------


def test_health_is_answered_without_a_token(channel_tls: grpc.Channel) -> None:
    assert health_of(channel_tls) == health_pb2.HealthCheckResponse.SERVING


def _every_method() -> list[tuple[str, Any, bool, bool]]:
    """(full name, request class, request streaming, response streaming) of every RPC of the protos."""
    return [(f"/{service.full_name}/{method.name}", message_factory.GetMessageClass(method.input_type),
             method.client_streaming, method.server_streaming)
            for service in SERVICES for method in service.methods]


def test_the_scope_table_names_every_rpc_of_the_protos() -> None:
    assert {name for name, *_ in _every_method()} == set(METHOD_SCOPES)


def call(channel: grpc.Channel, method: str, request_class: Any, request_streaming: bool, response_streaming: bool,
         metadata: tuple[tuple[str, str], ...] = ()) -> None:
    """Calls the method with an empty request, as a client of any language could."""
    kind = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
            (True, False): channel.stream_unary, (True, True): channel.stream_stream}[
        (request_streaming, response_streaming)]
    stub: Callable[..., Any] = kind(method, request_serializer=request_class.SerializeToString,
                                    response_deserializer=lambda data: data)
    request = iter([request_class()]) if request_streaming else request_class()
    answer = stub(request, metadata=metadata, timeout=15)
    if response_streaming:
        list(answer)


@pytest.mark.parametrize("method", sorted(METHOD_SCOPES))
def test_every_rpc_is_refused_without_a_token_and_with_an_unknown_one(channel_tls: grpc.Channel, method: str) -> None:
    (_, request_class, streams_in, streams_out), = [m for m in _every_method() if m[0] == method]
    for metadata, says in (((), "needs a token"), (bearer("idr_not-a-token"), "not known")):
        with pytest.raises(grpc.RpcError) as refused:
            call(channel_tls, method, request_class, streams_in, streams_out, metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, method
        assert says in (refused.value.details() or "")


@pytest.mark.parametrize("method", sorted(METHOD_SCOPES))
def test_every_rpc_is_refused_to_a_token_without_its_scope(channel_tls: grpc.Channel, tokens: Tokens,
                                                           method: str) -> None:
    scope = METHOD_SCOPES[method]
    other = tokens.read if scope != "read" else tokens.ingest
    (_, request_class, streams_in, streams_out), = [m for m in _every_method() if m[0] == method]
    with pytest.raises(grpc.RpcError) as refused:
        call(channel_tls, method, request_class, streams_in, streams_out, bearer(other))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
    assert f"needs the scope '{scope}'" in (refused.value.details() or "")


def test_an_ingest_token_writes_only_as_its_sources(channel_tls: grpc.Channel, tokens: Tokens, uid: str) -> None:
    identity = identity_service_pb2_grpc.IdentityServiceStub(channel_tls)
    acks = list(identity.Ingest(iter([event(f"{uid}-web", f"cookie:w-{uid}", source="web"),
                                      event(f"{uid}-crm", f"cookie:c-{uid}", source="crm")]),
                                metadata=bearer(tokens.ingest), timeout=30))
    assert [a.status for a in acks] == [pb.ACK_STATUS_ACCEPTED, pb.ACK_STATUS_REJECTED]
    assert acks[1].reason_code == "source_not_allowed" and "'crm'" in acks[1].reason
    records = [pb.SourceRecord(record_id=f"{uid}-r", source="crm", identifiers=[identifier(f"crm_id:{uid}")])]
    with pytest.raises(grpc.RpcError) as refused:
        list(identity.ImportRecords(iter(records), metadata=bearer(tokens.ingest), timeout=30))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED and "'crm'" in (refused.value.details() or "")


def test_reflection_is_off_when_tokens_are_on(channel_tls: grpc.Channel) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel_tls)
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


# ---- the audit trail ---------------------------------------------------------------------------


def audit(identity: Any, token: str, method: str = "", caller: str = "") -> list[pb.AuditEntry]:
    return list(identity.ListAudit(pb.ListAuditRequest(method=method, caller=caller, limit=200),
                                   metadata=bearer(token), timeout=30))


def eventually(read: Callable[[], list[pb.AuditEntry]], holds: Callable[[list[pb.AuditEntry]], bool]) -> None:
    """Refusals are written by the audit's own thread within a fraction of a second."""
    deadline = time.monotonic() + 10
    while not holds(entries := read()):
        assert time.monotonic() < deadline, entries[:5]
        time.sleep(0.2)


def test_admin_calls_are_audited_with_who_what_and_outcome(channel_tls: grpc.Channel, tokens: Tokens,
                                                           settings: Settings, uid: str) -> None:
    identity = identity_service_pb2_grpc.IdentityServiceStub(channel_tls)
    cookie, email = f"cookie:k-{uid}", f"email:{uid}@example.com"
    list(identity.Ingest(iter([event(f"{uid}-1", cookie, email)]), metadata=bearer(tokens.ingest), timeout=30))
    identity.UnlinkIdentifier(pb.UnlinkIdentifierRequest(identifier=identifier(cookie), reason=f"kiosk {uid}"),
                              metadata=bearer(tokens.admin), timeout=30)
    with pytest.raises(grpc.RpcError):  # an admin call that fails is audited with its status
        identity.UnlinkIdentifier(pb.UnlinkIdentifierRequest(identifier=identifier(f"cookie:none-{uid}"),
                                                             reason=f"kiosk {uid}"),
                                  metadata=bearer(tokens.admin), timeout=30)
    entries = [e for e in audit(identity, tokens.admin, "UnlinkIdentifier") if uid in e.target]
    # each call: STARTED before it acts, then its outcome before its answer (newest first)
    assert [(e.caller, e.outcome) for e in reversed(entries)] == [
        ("operator", "STARTED"), ("operator", "OK"), ("operator", "STARTED"), ("operator", "NOT_FOUND")]
    done = next(e for e in entries if e.outcome == "OK")
    assert f"kiosk {uid}" in done.target and done.peer and done.at.seconds > 0


def test_forget_profile_is_audited_without_the_forgotten_identifier_in_clear(
        channel_tls: grpc.Channel, tokens: Tokens, settings: Settings, driver: Driver, uid: str) -> None:
    identity = identity_service_pb2_grpc.IdentityServiceStub(channel_tls)
    email = f"{uid}@forget.example.com"
    list(identity.Ingest(iter([event(f"{uid}-1", f"email:{email}")]), metadata=bearer(tokens.ingest), timeout=30))
    identity.ForgetProfile(pb.ForgetProfileRequest(ref=by_identifier(f"email:{email}")),
                           metadata=bearer(tokens.admin), timeout=30)
    with pytest.raises(grpc.RpcError) as again:  # forgotten already: its error names the e-mail, the audit may not
        identity.ForgetProfile(pb.ForgetProfileRequest(ref=by_identifier(f"email:{email}")),
                               metadata=bearer(tokens.admin), timeout=30)
    assert email in (again.value.details() or "")
    hashed = suppression_hash(settings.suppression_salt, Identifier("email", email))
    entries = [e for e in audit(identity, tokens.admin, "ForgetProfile") if hashed in e.target]
    assert [(e.caller, e.outcome) for e in reversed(entries)] == [
        ("operator", "STARTED"), ("operator", "OK"), ("operator", "STARTED"), ("operator", "NOT_FOUND")]
    stored, _, _ = driver.execute_query("MATCH (a:AuditEntry) WHERE a.target CONTAINS $uid OR a.detail CONTAINS $uid "
                                        "RETURN count(a) AS n", uid=uid)
    assert stored[0]["n"] == 0, "the forgotten e-mail is nowhere in the audit trail"


def test_identifiers_in_admin_calls_are_audited_only_by_the_hash_forgetting_keeps(
        channel_tls: grpc.Channel, tokens: Tokens, settings: Settings, driver: Driver, uid: str) -> None:
    identity = identity_service_pb2_grpc.IdentityServiceStub(channel_tls)
    email, cookie = f"Ann.{uid}@Example.com", f"k-{uid}"
    list(identity.Ingest(iter([event(f"{uid}-1", f"cookie:{cookie}", f"email:{email}")]), metadata=bearer(tokens.ingest),
                         timeout=30))
    identity.UnlinkIdentifier(pb.UnlinkIdentifierRequest(identifier=identifier(f"cookie:{cookie}"), reason="kiosk"),
                              metadata=bearer(tokens.admin), timeout=30)
    with pytest.raises(grpc.RpcError) as refused:  # its error message quotes the e-mail as stored
        identity.ReviewMatch(pb.ReviewMatchRequest(a=identifier(f"email:{email}"), b=identifier(f"cookie:none-{uid}"),
                                                   confirm=True), metadata=bearer(tokens.admin),
                             timeout=30)
    stored_email = suppression_hash(settings.suppression_salt, Identifier("email", email.lower()))
    entries = [e for e in audit(identity, tokens.admin) if stored_email in e.target or cookie in e.target
               or suppression_hash(settings.suppression_salt, Identifier("cookie", cookie)) in e.target]
    assert {(e.method.split("/")[-1], e.outcome) for e in entries} >= {
        ("UnlinkIdentifier", "OK"), ("ReviewMatch", refused.value.code().name)}
    in_clear, _, _ = driver.execute_query("MATCH (a:AuditEntry) WHERE a.target CONTAINS $uid OR a.detail CONTAINS $uid "
                                          "RETURN a.target AS target, a.detail AS detail", uid=uid)
    assert in_clear == [], "an identifier in clear in the audit trail"


def test_forgetting_a_person_scrubs_older_audit_entries_that_name_them_in_clear(
        channel_tls: grpc.Channel, tokens: Tokens, settings: Settings, driver: Driver, uid: str) -> None:
    identity = identity_service_pb2_grpc.IdentityServiceStub(channel_tls)
    email = f"{uid}@old.example.com"
    list(identity.Ingest(iter([event(f"{uid}-1", f"email:{email}")]), metadata=bearer(tokens.ingest), timeout=30))
    # an entry written before identifiers were hashed, and another person's, untouched
    driver.execute_query("CREATE (:AuditEntry {id: $uid, at: datetime(), caller: 'ops', method: 'UnlinkIdentifier', "
                         "target: $target, outcome: 'NOT_FOUND', detail: $detail, peer: ''}), "
                         "(:AuditEntry {id: $uid + '-other', at: datetime(), caller: 'ops', method: 'UnlinkIdentifier', "
                         "target: $other, outcome: 'OK', detail: '', peer: ''})", uid=uid,
                         target=f'identifier {{ type: "email" value: "{email}" }}', detail=f"{email} is not linked",
                         other=f'identifier {{ type: "email" value: "other-{uid}@example.com" }}')
    identity.ForgetProfile(pb.ForgetProfileRequest(ref=by_identifier(f"email:{email}")),
                           metadata=bearer(tokens.admin), timeout=30)
    records, _, _ = driver.execute_query("MATCH (a:AuditEntry) WHERE a.id STARTS WITH $uid "
                                         "RETURN a.id AS id, a.target AS target, a.detail AS detail", uid=uid)
    hashed = "#" + suppression_hash(settings.suppression_salt, Identifier("email", email))
    kept = {r["id"]: (r["target"], r["detail"]) for r in records}
    assert kept[uid] == (f'identifier {{ type: "email" value: "{hashed}" }}', f"{hashed} is not linked")
    assert f"other-{uid}@example.com" in kept[f"{uid}-other"][0]


def test_a_flood_of_refused_calls_is_counted_not_itemised(channel_tls: grpc.Channel, tokens: Tokens,
                                                          driver: Driver, uid: str) -> None:
    identity = identity_service_pb2_grpc.IdentityServiceStub(channel_tls)
    caller = f"refused-{uid}"
    for _ in range(300):
        with pytest.raises(grpc.RpcError):
            identity.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=by_identifier(f"cookie:{uid}")),
                                      metadata=bearer(caller), timeout=10)
    method = "IdentityService/GetIdentityGraph"

    def counted() -> list[Any]:
        records, _, _ = driver.execute_query(
            "MATCH (a:AuditEntry {caller: '(unknown token)', method: $method}) WHERE a.at > datetime() - duration('PT5M') "
            "RETURN coalesce(a.count, 1) AS count", method=method)
        return [r["count"] for r in records]

    deadline = time.monotonic() + 10
    while sum(counted()) < 300:
        assert time.monotonic() < deadline, counted()
        time.sleep(0.2)
    assert len(counted()) <= 6, "one entry per minute, caller, method and outcome (other tests refuse too)"
    listed = audit(identity, tokens.admin, "GetIdentityGraph", "(unknown token)")
    assert sum(e.count for e in listed) >= 300


def test_audit_entries_older_than_the_retention_are_deleted(tls_server: RunningServer, driver: Driver,
                                                           uid: str) -> None:
    driver.execute_query("UNWIND range(1, 3) AS n CREATE (:AuditEntry {id: $uid + n, caller: 'ops', "
                         "at: datetime() - duration({days: 400}), method: 'ForgetProfile', target: '', "
                         "outcome: 'OK', detail: '', peer: ''})", uid=uid)
    driver.execute_query("CREATE (:AuditEntry {id: $uid + '-new', caller: 'ops', at: datetime() - duration({days: 30}), "
                         "method: 'ForgetProfile', target: '', outcome: 'OK', detail: '', peer: ''})", uid=uid)
    assert tls_server.audit.retention == timedelta(days=365)
    assert tls_server.audit.expire() >= 3
    left, _, _ = driver.execute_query("MATCH (a:AuditEntry) WHERE a.id STARTS WITH $uid RETURN a.id AS id", uid=uid)
    assert [r["id"] for r in left] == [f"{uid}-new"]


def test_refused_calls_are_audited(channel_tls: grpc.Channel, tokens: Tokens, uid: str) -> None:
    identity = identity_service_pb2_grpc.IdentityServiceStub(channel_tls)
    with pytest.raises(grpc.RpcError):
        identity.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=by_identifier(f"cookie:{uid}")), timeout=10)
    with pytest.raises(grpc.RpcError):
        identity.ForgetProfile(pb.ForgetProfileRequest(ref=by_identifier(f"cookie:{uid}")),
                               metadata=bearer(tokens.read), timeout=10)
    eventually(lambda: audit(identity, tokens.admin, "GetIdentityGraph", "(no token)"),
               lambda entries: any(e.outcome == "UNAUTHENTICATED" for e in entries))
    eventually(lambda: audit(identity, tokens.admin, "ForgetProfile", "lookup-service"),
               lambda entries: any(e.outcome == "PERMISSION_DENIED" and "scope 'admin'" in e.detail for e in entries))


def test_the_cli_reads_the_audit_over_tls_with_an_admin_token_only(
        channel_tls: grpc.Channel, tls_server: RunningServer, pki: Pki, tokens: Tokens,
        settings: Settings, capsys: pytest.CaptureFixture[str], uid: str) -> None:
    from client import cli

    identity = identity_service_pb2_grpc.IdentityServiceStub(channel_tls)
    cookie = f"cookie:cli-{uid}"
    list(identity.Ingest(iter([event(f"{uid}-1", cookie)]), metadata=bearer(tokens.ingest), timeout=30))
    identity.UnlinkIdentifier(pb.UnlinkIdentifierRequest(identifier=identifier(cookie)), metadata=bearer(tokens.admin),
                              timeout=30)
    connection = ["--address", f"127.0.0.1:{tls_server.port}", "--ca", str(pki.files.client_ca)]
    assert cli.main([*connection, "--token", tokens.admin, "audit", "--method", "UnlinkIdentifier"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    hashed = suppression_hash(settings.suppression_salt, Identifier("cookie", f"cli-{uid}"))
    assert any(hashed in line.get("target", "") and line["caller"] == "operator" and line["outcome"] == "OK"
               for line in lines)
    assert cli.main([*connection, "--token", tokens.read, "audit"]) != 0
    assert "needs the scope 'admin'" in capsys.readouterr().err


def test_the_collector_serves_https_with_the_grpc_ports_certificate_and_takes_the_ingest_token(
        tls_server: RunningServer, pki: Pki, tokens: Tokens, tmp_path: Path, uid: str) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.ca)
    address = f"https://127.0.0.1:{tls_server.collect_port}/v1/track"
    message = {"userId": f"{uid}-u", "event": "x", "messageId": f"{uid}-m"}
    answer = requests.post(address, json=message, auth=(tokens.ingest, ""), verify=str(ca), timeout=10)
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    assert requests.post(address, json=message, auth=(tokens.read, ""), verify=str(ca), timeout=10).status_code == 403
    with pytest.raises(requests.exceptions.ConnectionError):  # plaintext HTTP gets no answer from a TLS port
        requests.post(address.replace("https", "http"), json=message, timeout=10)


def test_with_a_client_ca_the_collector_requires_a_client_certificate(settings: Settings, graph: Graph, pki: Pki,
                                                                      tmp_path: Path, uid: str) -> None:
    running = serve(settings, graph, tls=pki.files)
    try:
        ca, cert, key = tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key"
        ca.write_bytes(pki.ca)
        cert.write_bytes(pki.client_cert)
        key.write_bytes(pki.client_key)
        address = f"https://127.0.0.1:{running.collect_port}/v1/track"
        message = {"userId": f"{uid}-u", "event": "x", "messageId": f"{uid}-m"}
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.post(address, json=message, verify=str(ca), timeout=10)
        answer = requests.post(address, json=message, verify=str(ca), cert=(str(cert), str(key)), timeout=10)
        assert answer.status_code == 200
    finally:
        running.stop(grace=2)


def test_list_audit_refuses_a_limit_beyond_its_cap(channel_tls: grpc.Channel, tokens: Tokens) -> None:
    identity = identity_service_pb2_grpc.IdentityServiceStub(channel_tls)
    for limit in (10_001, 2_000_000_000):
        with pytest.raises(grpc.RpcError) as refused:
            list(identity.ListAudit(pb.ListAuditRequest(limit=limit), metadata=bearer(tokens.admin), timeout=30))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most 10000" in (refused.value.details() or "")
    assert len(list(identity.ListAudit(pb.ListAuditRequest(limit=10_000), metadata=bearer(tokens.admin),
                                       timeout=30))) <= 10_000


def test_an_admin_call_whose_audit_entry_cannot_be_written_is_refused_before_it_acts(
        settings: Settings, graph: Graph, driver: Driver, uid: str) -> None:
    """Admin calls are audited before they act: with the trail unwritable (here its writes
    fail as a Neo4j outage would make them), UnlinkIdentifier answers UNAVAILABLE and unlinks
    nothing."""
    running = serve(settings, graph)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            identity = identity_service_pb2_grpc.IdentityServiceStub(channel)
            list(identity.Ingest(iter([event(f"{uid}-1", f"cookie:k-{uid}", f"email:{uid}@example.com")]), timeout=30))

            def unwritable(entries: Any) -> None:
                raise StorageUnavailable("Neo4j is unavailable (the audit's writes fail in this test)")

            running.audit._write = unwritable  # type: ignore[method-assign]
            with pytest.raises(grpc.RpcError) as refused:
                identity.UnlinkIdentifier(pb.UnlinkIdentifierRequest(identifier=identifier(f"cookie:k-{uid}")),
                                          timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "audit trail cannot be written" in (refused.value.details() or "")
        records, _, _ = driver.execute_query(
            "MATCH (:Identifier {type: 'cookie', value: $cookie})-[:LINKED]-(:Identifier {type: 'email'}) "
            "RETURN count(*) AS links", cookie=f"k-{uid}")
        assert records[0]["links"] == 1, "the call was refused before it acted"
    finally:
        running.stop(grace=2)
