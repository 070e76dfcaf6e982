"""Server settings: flags over environment over defaults, refused with a clear message when wrong."""

from __future__ import annotations

import pytest

from server.config import parse_settings
from server.errors import ConfigurationError


def test_defaults_serve_on_loopback_against_the_local_neo4j() -> None:
    settings = parse_settings([], env={})
    assert settings.listen == "127.0.0.1:50051"
    assert settings.neo4j.uri == "bolt://127.0.0.1:7687" and settings.neo4j.database == "neo4j"
    assert settings.max_concurrent_rpcs == settings.max_workers


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    env = {"NEO4J_URI": "neo4j://db.internal:7687", "NEO4J_PASSWORD": "from-env", "IDENTITY_LISTEN": "0.0.0.0:6000"}
    settings = parse_settings(["--listen", "127.0.0.1:7000"], env=env)
    assert settings.neo4j.uri == "neo4j://db.internal:7687" and settings.neo4j.password == "from-env"
    assert settings.listen == "127.0.0.1:7000"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--listen", "50051"], "must be host:port"),
        (["--max-workers", "0"], "--max-workers must be at least 1"),
        (["--neo4j-uri", "http://x:7474"], "must start with bolt:// or neo4j://"),
        (["--ingest-batch-wait", "-1"], "must not be negative"),
    ],
)
def test_bad_settings_are_refused_with_the_flag_named(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_settings(argv, env={})
