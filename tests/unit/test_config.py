"""Server settings: flags over environment over defaults, refused with a clear message when wrong."""

from __future__ import annotations

import re

import pytest

from server.config import parse_settings
from server.errors import ConfigurationError


def test_defaults_serve_on_loopback_against_the_local_neo4j() -> None:
    settings = parse_settings([], env={})
    assert settings.listen == "127.0.0.1:50051"
    assert settings.neo4j.uri == "bolt://127.0.0.1:7687" and settings.neo4j.database == "neo4j"
    # streams hold no thread: the per-method limit on open calls is far above the pool size
    assert settings.max_concurrent_rpcs > 100 * settings.max_workers and settings.watch_buffer >= 1000


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
        (["--watch-buffer", "0"], "--watch-buffer must be at least 1"),
        (["--neo4j-uri", "http://x:7474"], "must start with bolt:// or neo4j://"),
        (["--ingest-batch-wait", "-1"], "must not be negative"),
    ],
)
def test_bad_settings_are_refused_with_the_flag_named(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_settings(argv, env={})


def test_configuration_files_are_read_and_validated_with_the_settings(tmp_path) -> None:
    settings = parse_settings([], env={"IDENTITY_SEGMENT_LAG_REPORT": "12"})
    assert settings.rules.type_named("anonymousId") is not None and settings.linkage.field_names
    assert settings.segment_lag_report == 12
    broken = tmp_path / "identity.yaml"
    broken.write_text("identifier_types: {email: {rule: regex}}\n")
    with pytest.raises(ConfigurationError, match="identifier_types.email.rule is 'regex'"):
        parse_settings(["--rules", str(broken)], env={})
    with pytest.raises(ConfigurationError, match="does not exist"):
        parse_settings([], env={"IDENTITY_LINKAGE": str(tmp_path / "missing.yaml")})


def test_settings_reach_server_processes_started_with_spawn() -> None:
    """--processes N pickles Settings, parsed rules included, into each process."""
    import pickle

    settings = parse_settings([], env={})
    copy = pickle.loads(pickle.dumps(settings))
    assert copy.rules == settings.rules and copy.linkage == settings.linkage


def test_every_environment_variable_read_anywhere_is_documented_in_the_readme() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r'(?:env|environ)\.get\("([A-Z][A-Z0-9_]+)"|environ\["([A-Z][A-Z0-9_]+)"\]|'
                         r'VARIABLE = "([A-Z][A-Z0-9_]+)"|environ.get\("([A-Z][A-Z0-9_]+)"')
    read = {name for folder in ("server", "client", "localneo4j", "localkafka", "bench", "activation")
            for path in (root / folder).rglob("*.py")
            for match in pattern.finditer(path.read_text(encoding="utf-8")) for name in match.groups() if name}
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert len(read) > 20 and sorted(name for name in read if f"`{name}`" not in readme) == []


def test_an_identifier_type_whose_label_is_the_graphs_own_is_refused(tmp_path) -> None:
    """Ingest labels identifiers by type (:Email); a type `profile` would put :Profile on them."""
    import yaml

    from server.identity.identity_config import DEFAULT_RULES_FILE

    rules = yaml.safe_load(DEFAULT_RULES_FILE.read_text())
    for name in ("profile", "segments_dirty", "--"):
        rules["identifier_types"][name] = {"rule": "id"}
        broken = tmp_path / f"identity-{len(name)}.yaml"
        broken.write_text(yaml.safe_dump(rules))
        with pytest.raises(ConfigurationError, match=rf"identifier_types\.{re.escape(name)}: its label would be"):
            parse_settings(["--rules", str(broken)], env={})
        del rules["identifier_types"][name]


def test_method_limits_name_real_methods_and_whole_numbers() -> None:
    settings = parse_settings(["--method-limit", "WatchSegment=2000", "--method-limit", "ImportRecords=3"], env={})
    assert dict(settings.method_limits) == {"WatchSegment": 2000, "ImportRecords": 3}
    assert dict(parse_settings([], env={"IDENTITY_METHOD_LIMITS": "Ingest=50, LookupProfiles=70"}).method_limits) == {
        "Ingest": 50, "LookupProfiles": 70}
    with pytest.raises(ConfigurationError, match="no method 'Watch'"):
        parse_settings(["--method-limit", "Watch=1"], env={})
    with pytest.raises(ConfigurationError, match="at least 1"):
        parse_settings(["--method-limit", "Ingest=0"], env={})
