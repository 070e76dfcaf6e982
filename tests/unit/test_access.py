"""Tokens, scopes and exposure settings: refused at start with the place named, never guessed."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from server.access.tokens import load_tokens, token_hash
from server.config import is_loopback, parse_settings
from server.errors import ConfigurationError


def tokens_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(body)
    return path


def test_a_token_is_known_by_its_hash_with_its_scopes_and_sources(tmp_path: Path) -> None:
    token = f"idr_{secrets.token_urlsafe(32)}"
    registry = load_tokens(tokens_file(tmp_path, f"tokens:\n  - name: web\n    sha256: {token_hash(token)}\n"
                                                 "    scopes: [ingest]\n    sources: [web, app]\n"))
    caller = registry.caller(f"Bearer {token}")
    assert caller is not None and caller.name == "web" and caller.scopes == {"ingest"}
    assert caller.may_write_as("app") and not caller.may_write_as("crm")
    assert registry.caller(f"bearer {token}") == caller  # the scheme is case-insensitive
    for wrong in (None, "", token, f"Basic {token}", f"Bearer {token}x"):
        assert registry.caller(wrong) is None


@pytest.mark.parametrize(("entry", "message"), [
    ("{name: web, sha256: idr_plain-token, scopes: [ingest]}", "never goes in this file"),
    ("{name: web, sha256: " + "a" * 64 + ", scopes: [write]}", "scopes must be a non-empty list of ingest, read, admin"),
    ("{name: web, sha256: " + "a" * 64 + ", scopes: []}", "scopes must be a non-empty list"),
    ("{name: 'a b', sha256: " + "a" * 64 + ", scopes: [read]}", "name must be"),
    ("{name: web, sha256: " + "a" * 64 + ", scopes: [read], role: x}", "unknown keys"),
])
def test_a_bad_tokens_entry_is_refused_naming_it(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_tokens(tokens_file(tmp_path, f"tokens:\n  - {entry}\n"))


def test_two_entries_with_one_name_or_one_token_are_refused(tmp_path: Path) -> None:
    one, other = "a" * 64, "b" * 64
    with pytest.raises(ConfigurationError, match="used twice"):
        load_tokens(tokens_file(tmp_path, f"tokens:\n  - {{name: x, sha256: {one}, scopes: [read]}}\n"
                                          f"  - {{name: x, sha256: {other}, scopes: [read]}}\n"))
    with pytest.raises(ConfigurationError, match="the same token as 'x'"):
        load_tokens(tokens_file(tmp_path, f"tokens:\n  - {{name: x, sha256: {one}, scopes: [read]}}\n"
                                          f"  - {{name: y, sha256: {one}, scopes: [admin]}}\n"))


@pytest.mark.parametrize(("listen", "loopback"), [
    ("127.0.0.1:50051", True), ("localhost:1", True), ("[::1]:1", True), ("0.0.0.0:50051", False),
    ("[::]:50051", False), (":50051", False), ("10.0.0.5:50051", False), ("identity.internal:1", False),
])
def test_loopback_is_told_from_everywhere_else(listen: str, loopback: bool) -> None:
    assert is_loopback(listen) is loopback


def test_serving_beyond_loopback_needs_tls_and_tokens_or_insecure(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"without TLS \(--tls-cert, --tls-key\) and tokens .*--insecure"):
        parse_settings(["--listen", "0.0.0.0:50051"], env={})
    settings = parse_settings(["--listen", "0.0.0.0:50051", "--insecure"], env={})
    assert settings.insecure and settings.tls is None and settings.tokens is None and settings.reflection
    assert parse_settings([], env={"IDENTITY_LISTEN": "0.0.0.0:1", "IDENTITY_INSECURE": "1"}).insecure


def test_tls_flags_go_together(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ConfigurationError, match="--tls-cert and --tls-key go together"):
        parse_settings(["--tls-cert", str(cert)], env={})
    with pytest.raises(ConfigurationError, match="--tls-client-ca needs --tls-cert"):
        parse_settings(["--tls-client-ca", str(cert)], env={})
    with pytest.raises(ConfigurationError, match="--tls-key .* does not exist"):
        parse_settings(["--tls-cert", str(cert), "--tls-key", str(tmp_path / "missing.key")], env={})


def test_reflection_is_off_with_tokens_unless_asked_for(tmp_path: Path) -> None:
    path = tokens_file(tmp_path, "tokens:\n  - {name: x, sha256: " + "a" * 64 + ", scopes: [read]}\n")
    assert not parse_settings(["--auth-tokens", str(path)], env={}).reflection
    assert parse_settings(["--auth-tokens", str(path), "--reflection", "on"], env={}).reflection


def test_the_neo4j_password_is_never_shown_by_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings(["--help"], env={"NEO4J_PASSWORD": "s3cret-in-env", "IDENTITY_AUTH_TOKENS": "x"})
    shown = capsys.readouterr().out
    assert "--neo4j-password-file" in shown and "s3cret-in-env" not in shown


def test_the_neo4j_password_comes_from_a_file_the_environment_or_the_flag(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    assert parse_settings(["--neo4j-password-file", str(secret)], env={"NEO4J_PASSWORD": "env"}).neo4j.password \
        == "from-file"
    assert parse_settings([], env={"NEO4J_PASSWORD": "env"}).neo4j.password == "env"
    assert parse_settings(["--neo4j-password", "flag"], env={"NEO4J_PASSWORD": "env"}).neo4j.password == "flag"
    with pytest.raises(ConfigurationError, match="cannot read") as refused:
        parse_settings(["--neo4j-password-file", str(tmp_path / "none")], env={})
    assert "from-file" not in str(refused.value)


def test_the_neo4j_password_is_not_in_the_settings_repr() -> None:
    """A settings object that ends up in a log line or a traceback must not carry the password."""
    settings = parse_settings([], env={"NEO4J_PASSWORD": "s3cret-in-env"})
    assert settings.neo4j.password == "s3cret-in-env" and "s3cret-in-env" not in repr(settings)


def test_beyond_loopback_the_public_default_salt_is_refused_too(tmp_path: Path) -> None:
    """The default salt is in the source: with it, the suppression list's hashes of forgotten
    e-mails and phones would reverse by dictionary."""
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_text("pem")
    key.write_text("pem")
    tokens = tokens_file(tmp_path, f"tokens:\n  - {{name: ops, sha256: {token_hash('t')}, scopes: [admin]}}\n")
    secured = ["--listen", "0.0.0.0:50051", "--tls-cert", str(cert), "--tls-key", str(key), "--auth-tokens", str(tokens)]
    with pytest.raises(ConfigurationError, match="secret suppression salt .*IDENTITY_SUPPRESSION_SALT"):
        parse_settings(secured, env={})
    with pytest.raises(ConfigurationError, match="--collect-listen 0.0.0.0:8088 .*suppression salt"):
        parse_settings([*secured[:2], "--listen", "127.0.0.1:50051", "--collect-listen", "0.0.0.0:8088",
                        *secured[2:]], env={})
    assert parse_settings(secured, env={"IDENTITY_SUPPRESSION_SALT": secrets.token_hex(16)}).tls is not None
    assert parse_settings(["--listen", "127.0.0.1:50051"], env={}).suppression_salt  # loopback: the default will do
