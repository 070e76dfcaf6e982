"""The client's side of TLS and bearer tokens, without the identity server: token creation, the
authorization metadata on every kind of call (seen by a real gRPC server on loopback), mutual
TLS with certificates made by a throwaway CA, and the checks that fail before any connection."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
import yaml
from identity.v1 import identity_service_pb2 as pb
from loopback import loopback_server

from client import BearerAuth, IdentityClient, cli, tls_credentials
from client.api import status_code
from client.cli import TOKEN_NAME, TOKEN_SCOPES

ROOT = Path(__file__).resolve().parents[2]
ECHO = "echo.Echo"
IDENTITY = "identity.v1.IdentityService"
TOKEN = "idr_" + "A" * 43


@pytest.fixture(autouse=True)
def no_security_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the variables it is about; a developer's own must not leak into any."""
    for variable in ("IDENTITY_TOKEN", "IDENTITY_CA", "IDENTITY_CERT", "IDENTITY_KEY"):
        monkeypatch.delenv(variable, raising=False)


# ---- identity token create ------------------------------------------------------------------


def create_token(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, dict[str, Any]]:
    """The token printed and the tokens file entry printed after it, as the server would read it."""
    assert cli.main(["token", "create", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "shown this once" in lines[0]
    token, entry = lines[1], yaml.safe_load("\n".join(lines[2:]))
    (item,) = entry["tokens"]
    return token, item


def test_a_created_token_is_printed_once_and_its_entry_holds_its_sha256(capsys: pytest.CaptureFixture[str]) -> None:
    token, entry = create_token(capsys, "--name", "web-collector", "--scopes", "ingest,read", "--sources", "web,app")
    assert re.fullmatch(r"idr_[A-Za-z0-9_-]{43}", token)
    assert entry == {"name": "web-collector", "sha256": hashlib.sha256(token.encode()).hexdigest(),
                     "scopes": ["ingest", "read"], "sources": ["web", "app"]}


def test_the_entry_never_holds_the_token_and_each_token_is_new(capsys: pytest.CaptureFixture[str]) -> None:
    first, entry = create_token(capsys, "--name", "reporting", "--scopes", "read,read")
    second, _ = create_token(capsys, "--name", "reporting", "--scopes", "read")
    assert first != second
    assert first not in yaml.safe_dump(entry)
    assert entry == {"name": "reporting", "sha256": hashlib.sha256(first.encode()).hexdigest(), "scopes": ["read"]}


def test_sources_that_yaml_would_read_as_other_types_stay_strings(capsys: pytest.CaptureFixture[str]) -> None:
    _, entry = create_token(capsys, "--name", "1.0", "--scopes", "admin", "--sources", "yes,null,42")
    assert (entry["name"], entry["sources"]) == ("1.0", ["yes", "null", "42"])


def test_the_entry_pastes_under_tokens_as_a_hand_written_file_indents_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["token", "create", "--name", "crm", "--scopes", "ingest"]) == 0
    assert "tokens:\n  - name: crm\n    sha256: " in capsys.readouterr().out


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Token creation needs no server: any attempt to connect fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("token create connected to a server")

    monkeypatch.setattr(cli, "IdentityClient", refuse)


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", "crm", "--scopes", "write"], "--scopes 'write': give one or more of ingest, read, admin"),
        (["--name", "crm", "--scopes", "ingest,delete"], "--scopes 'ingest,delete'"),
        (["--name", "crm", "--scopes", ""], "--scopes '': give one or more"),
        (["--name", "crm", "--scopes", "ingest,,read"], "has an empty name"),
        (["--name", "crm", "--scopes", "Read"], "--scopes 'Read'"),
        (["--name", "web collector", "--scopes", "read"], "--name 'web collector'"),
        (["--name", "", "--scopes", "read"], "--name ''"),
        (["--name", "x" * 101, "--scopes", "read"], "1 to 100 of"),
        (["--name", "crm", "--scopes", "ingest", "--sources", ""], "--sources is empty"),
        (["--name", "crm", "--scopes", "ingest", "--sources", "web,"], "has an empty name"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_shows_no_token(argv: list[str], message: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["token", "create", *argv]) == 2
    printed = capsys.readouterr()
    assert message in printed.err
    assert printed.out == ""


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize("argv", [["--scopes", "read"], ["--name", "crm"]])
def test_name_and_scopes_are_required(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["token", "create", *argv]) == 2
    assert capsys.readouterr().out == ""


def test_the_names_and_scopes_checked_are_the_servers() -> None:
    assert TOKEN_SCOPES == ("ingest", "read", "admin")
    assert TOKEN_NAME.fullmatch("web-collector_v1.2") and not TOKEN_NAME.fullmatch("web/collector")


# ---- the authorization metadata, on a real gRPC server --------------------------------------


@dataclass
class Seen:
    """What the server saw of each call: its authorization values, and its TLS peer's common name."""

    authorization: list[list[str]] = field(default_factory=list)
    common_names: list[list[bytes]] = field(default_factory=list)

    def record(self, context: grpc.ServicerContext) -> str:
        values = [str(value) for key, value in context.invocation_metadata() if key == "authorization"]
        self.authorization.append(values)
        self.common_names.append(list(context.auth_context().get("x509_common_name", [])))
        return ",".join(values)


def echo_service(seen: Seen) -> grpc.GenericRpcHandler:
    """Answers each of the four kinds of call with the authorization it carried, as raw bytes."""

    def unary_unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        return seen.record(context).encode()

    def unary_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield seen.record(context).encode()

    def stream_unary(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        list(requests)
        return seen.record(context).encode()

    def stream_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in requests:
            yield seen.record(context).encode()

    return grpc.method_handlers_generic_handler(ECHO, {
        "UnaryUnary": grpc.unary_unary_rpc_method_handler(unary_unary),
        "UnaryStream": grpc.unary_stream_rpc_method_handler(unary_stream),
        "StreamUnary": grpc.stream_unary_rpc_method_handler(stream_unary),
        "StreamStream": grpc.stream_stream_rpc_method_handler(stream_stream),
    })


def identity_service(seen: Seen) -> grpc.GenericRpcHandler:
    """Two of the identity service's calls, a unary one and a bidirectional stream, that only record."""

    def graph(request: pb.GetIdentityGraphRequest, context: grpc.ServicerContext) -> pb.IdentityGraph:
        seen.record(context)
        return pb.IdentityGraph()

    def ingest(events: Iterator[pb.Event], context: grpc.ServicerContext) -> Iterator[pb.IngestAck]:
        seen.record(context)
        for event in events:
            yield pb.IngestAck(event_id=event.event_id, status=pb.ACK_STATUS_ACCEPTED)

    return grpc.method_handlers_generic_handler(IDENTITY, {
        "GetIdentityGraph": grpc.unary_unary_rpc_method_handler(
            graph, pb.GetIdentityGraphRequest.FromString, pb.IdentityGraph.SerializeToString),
        "Ingest": grpc.stream_stream_rpc_method_handler(
            ingest, pb.Event.FromString, pb.IngestAck.SerializeToString),
    })


def serving(*services: Callable[[Seen], grpc.GenericRpcHandler]) -> tuple[Seen, Callable[[grpc.Server], None]]:
    seen = Seen()
    return seen, lambda server: server.add_generic_rpc_handlers([service(seen) for service in services])


def test_the_interceptor_sends_the_token_with_all_four_kinds_of_call() -> None:
    seen, register = serving(echo_service)
    with loopback_server(register) as address, grpc.insecure_channel(address) as plain:
        channel = grpc.intercept_channel(plain, BearerAuth(TOKEN))
        answers = [
            channel.unary_unary(f"/{ECHO}/UnaryUnary")(b"", timeout=5),
            *channel.unary_stream(f"/{ECHO}/UnaryStream")(b"", timeout=5),
            channel.stream_unary(f"/{ECHO}/StreamUnary")(iter([b"", b""]), timeout=5),
            *channel.stream_stream(f"/{ECHO}/StreamStream")(iter([b""]), timeout=5),
        ]
    assert answers == [f"Bearer {TOKEN}".encode()] * 4


def test_metadata_of_the_call_is_kept_beside_the_token() -> None:
    seen, register = serving(echo_service)
    with loopback_server(register) as address, grpc.insecure_channel(address) as plain:
        call = grpc.intercept_channel(plain, BearerAuth(TOKEN)).unary_unary(f"/{ECHO}/UnaryUnary")
        call(b"", timeout=5, metadata=(("x-request-id", "r-1"),))
    assert seen.authorization == [[f"Bearer {TOKEN}"]]


def test_the_client_sends_its_token_on_unary_calls_and_streams() -> None:
    seen, register = serving(identity_service)
    with loopback_server(register) as address, IdentityClient(address, token=TOKEN) as identity:
        identity.identity_graph("email:ann@example.com")
        acks = list(identity.ingest([pb.Event(event_id="e1"), pb.Event(event_id="e2")]))
    assert [ack.event_id for ack in acks] == ["e1", "e2"]
    assert seen.authorization == [[f"Bearer {TOKEN}"]] * 2


def test_the_token_comes_from_the_environment_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_TOKEN", "idr_from-the-environment")
    seen, register = serving(identity_service)
    with loopback_server(register) as address:
        for token in (None, TOKEN, ""):
            with IdentityClient(address, token=token) as identity:
                identity.identity_graph("p1")
    assert seen.authorization == [["Bearer idr_from-the-environment"], [f"Bearer {TOKEN}"], []]


def test_without_a_token_no_authorization_is_sent() -> None:
    seen, register = serving(identity_service)
    with loopback_server(register) as address, IdentityClient(address) as identity:
        identity.identity_graph("p1")
    assert seen.authorization == [[]]


def test_a_channel_given_carries_the_token_and_stays_open() -> None:
    seen, register = serving(identity_service)
    with loopback_server(register) as address, grpc.insecure_channel(address) as channel:
        with IdentityClient(channel, token=TOKEN) as identity:
            identity.identity_graph("p1")
        with IdentityClient(channel) as identity:  # still open: the client did not close the caller's channel
            identity.identity_graph("p1")
    assert seen.authorization == [[f"Bearer {TOKEN}"], []]


@pytest.mark.parametrize("token", ["idr_a b", "idr_a\nb", "idr_é"])
def test_a_token_that_cannot_be_a_header_is_refused_without_repeating_it(token: str) -> None:
    with pytest.raises(ValueError, match="not printable ASCII") as caught:
        IdentityClient("127.0.0.1:1", token=token)
    assert token.strip() not in str(caught.value)


def test_a_token_read_from_a_file_loses_its_line_end() -> None:
    seen, register = serving(identity_service)
    with loopback_server(register) as address, IdentityClient(address, token=f"{TOKEN}\n") as identity:
        identity.identity_graph("p1")
    assert seen.authorization == [[f"Bearer {TOKEN}"]]


def test_the_interceptor_does_not_show_its_token() -> None:
    assert TOKEN not in repr(BearerAuth(TOKEN))


# ---- TLS: the checks before any connection --------------------------------------------------


@pytest.mark.parametrize(("given", "missing"), [({"cert": "client.pem"}, "key"), ({"key": "client.key"}, "cert")])
def test_a_client_certificate_and_its_key_come_together(given: dict[str, Any], missing: str) -> None:
    with pytest.raises(ValueError, match="give cert and key together"):
        IdentityClient("127.0.0.1:1", **given)
    with pytest.raises(ValueError, match="give cert and key together"):
        tls_credentials(**given)


def test_a_certificate_from_the_environment_needs_its_key_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_CERT", "client.pem")
    with pytest.raises(ValueError, match="IDENTITY_KEY"):
        IdentityClient("127.0.0.1:1")


def test_an_unreadable_or_non_pem_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"cannot read the CA certificate {tmp_path / 'absent.pem'}"):
        IdentityClient("127.0.0.1:1", ca=tmp_path / "absent.pem")
    (tmp_path / "ca.der").write_bytes(b"\x30\x82\x01\x0a")
    with pytest.raises(ValueError, match="is not PEM"):
        IdentityClient("127.0.0.1:1", ca=str(tmp_path / "ca.der"))


def test_tls_files_and_ready_credentials_or_a_channel_do_not_mix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either credentials or ca"):
        IdentityClient("127.0.0.1:1", credentials=grpc.ssl_channel_credentials(), ca="ca.pem")
    with grpc.insecure_channel("127.0.0.1:1") as channel, pytest.raises(ValueError, match="with an address"):
        IdentityClient(channel, ca="ca.pem")


# ---- the CLI passes its options on ----------------------------------------------------------


class Connected(Exception):
    """Raised by the stand-in client, so that a command stops right where it would connect."""


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []

    def record(address: str | None, **options: Any) -> None:
        made.append({"address": address, **options})
        raise Connected()

    monkeypatch.setattr(cli, "IdentityClient", record)
    return made


SECURITY_ARGV = ["--token", TOKEN, "--ca", "ca.pem", "--cert", "client.pem", "--key", "client.key"]
SECURITY = {"token": TOKEN, "ca": "ca.pem", "cert": "client.pem", "key": "client.key"}


def test_the_security_options_reach_the_client(connections: list[dict[str, Any]]) -> None:
    with pytest.raises(Connected):
        cli.main([*SECURITY_ARGV, "--address", "identity:443", "health"])
    assert connections == [{"address": "identity:443", "timeout": 30.0, **SECURITY}]


def test_options_not_given_are_left_to_the_environment(connections: list[dict[str, Any]]) -> None:
    with pytest.raises(Connected):
        cli.main(["--ca", "ca.pem", "health"])
    assert connections == [{"address": None, "timeout": 30.0, "ca": "ca.pem"}]


def test_the_delivery_runner_connects_with_them_too(connections: list[dict[str, Any]]) -> None:
    with pytest.raises(Connected):
        cli.main([*SECURITY_ARGV, "deliver", "--config", str(ROOT / "config" / "destinations.example.yaml")])
    assert connections == [{"address": None, "timeout": 30.0, **SECURITY}]


def test_help_names_the_token_variable_but_never_shows_its_value(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IDENTITY_TOKEN", TOKEN)
    assert cli.main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert "$IDENTITY_TOKEN" in shown
    assert TOKEN not in shown


# ---- mutual TLS end to end, with certificates made by a throwaway CA (trustme) ---------------


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, all PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def write_issued(issued: trustme.LeafCert, cert: Path, key: Path) -> None:
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    write_issued(ca.issue_cert("localhost", "127.0.0.1"), directory / "server.pem", directory / "server.key")
    write_issued(ca.issue_cert("web-collector", common_name="web-collector"), directory / "client.pem",
                 directory / "client.key")
    return Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key",
               directory / "client.pem", directory / "client.key")


@contextmanager
def tls_server(pki: Pki, register: Callable[[grpc.Server], None]) -> Iterator[str]:
    """A loopback server that requires a client certificate signed by the test CA."""
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    register(server)
    credentials = grpc.ssl_server_credentials([(pki.server_key.read_bytes(), pki.server_cert.read_bytes())],
                                              root_certificates=pki.ca.read_bytes(), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def test_mutual_tls_and_the_token_together(pki: Pki) -> None:
    seen, register = serving(identity_service)
    with tls_server(pki, register) as address:
        with IdentityClient(address, ca=pki.ca, cert=str(pki.client_cert), key=pki.client_key,
                            token=TOKEN) as identity:
            identity.identity_graph("p1")
    assert seen.authorization == [[f"Bearer {TOKEN}"]]
    assert seen.common_names == [[b"web-collector"]]


def test_tls_files_come_from_the_environment(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_CA", str(pki.ca))
    monkeypatch.setenv("IDENTITY_CERT", str(pki.client_cert))
    monkeypatch.setenv("IDENTITY_KEY", str(pki.client_key))
    seen, register = serving(identity_service)
    with tls_server(pki, register) as address, IdentityClient(address, timeout=5) as identity:
        identity.identity_graph("p1")
    assert seen.common_names == [[b"web-collector"]]


def test_a_server_that_wants_a_client_certificate_refuses_a_client_without_one(pki: Pki) -> None:
    seen, register = serving(identity_service)
    with tls_server(pki, register) as address, IdentityClient(address, ca=pki.ca, timeout=5) as identity:
        with pytest.raises(grpc.RpcError) as caught:
            identity.identity_graph("p1")
    assert status_code(caught.value) == grpc.StatusCode.UNAVAILABLE
    assert seen.authorization == []


def test_a_server_whose_certificate_the_ca_did_not_sign_is_refused(pki: Pki, tmp_path: Path) -> None:
    seen, register = serving(identity_service)
    stranger = tmp_path / "stranger.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    with tls_server(pki, register) as address, IdentityClient(address, ca=stranger, cert=pki.client_cert,
                                                              key=pki.client_key, timeout=5) as identity:
        with pytest.raises(grpc.RpcError):
            identity.identity_graph("p1")
    assert seen.authorization == []
