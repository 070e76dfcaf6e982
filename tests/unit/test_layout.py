"""The architecture rules a newcomer can rely on: who may import what, and the named queries."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from server.errors import ConfigurationError
from server.graph import CYPHER_DIR, load_queries, split_statements

SERVER = Path(__file__).resolve().parents[2] / "server"
CLIENT = SERVER.parent / "client"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def python_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


def test_only_the_graph_layer_imports_the_neo4j_driver() -> None:
    offenders = [p.relative_to(SERVER) for p in python_files(SERVER)
                 if p.name != "graph.py" and any(m.split(".")[0] == "neo4j" for m in imported_modules(p))]
    assert offenders == []


def test_only_the_api_imports_grpc_generated_code_and_the_http_library() -> None:
    def transport(module: str) -> bool:
        return module.split(".")[0] in {"grpc", "grpc_health", "grpc_reflection", "identity", "google", "aiohttp"}

    offenders = [p.relative_to(SERVER) for p in python_files(SERVER)
                 if "api" not in p.relative_to(SERVER).parts and any(transport(m) for m in imported_modules(p))]
    assert offenders == []


def test_the_client_does_not_import_the_server() -> None:
    offenders = [p.name for p in python_files(CLIENT) if any(m.split(".")[0] == "server" for m in imported_modules(p))]
    assert offenders == []


ACTIVATION = SERVER.parent / "activation"


def test_the_server_takes_nothing_from_the_client() -> None:
    """The client library speaks to the server over gRPC; the asyncio server reads its streams
    with coroutines and needs none of the client's reader threads."""
    used = {m for p in python_files(SERVER) for m in imported_modules(p) if m.split(".")[0] == "client"}
    assert used == set()


def test_activation_builds_on_the_client_and_the_client_does_not_load_activation() -> None:
    """activation/ is an application over client/, never over server/; the client library imports it
    nowhere but inside the `identity deliver` command, so that importing client stays light."""
    def imports_from(root: str, node: ast.AST) -> bool:
        if isinstance(node, ast.Import):
            return any(alias.name.split(".")[0] == root for alias in node.names)
        return isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == root

    offenders = [f"activation/{p.name}" for p in python_files(ACTIVATION)
                 if any(m.split(".")[0] == "server" for m in imported_modules(p))]
    for path in python_files(CLIENT):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        allowed = {id(node) for function in ast.walk(tree)
                   if isinstance(function, ast.FunctionDef) and function.name == "run_deliver" and path.name == "cli.py"
                   for node in ast.walk(function)}
        offenders += [f"client/{path.name}:{node.lineno}" for node in ast.walk(tree)
                      if imports_from("activation", node) and id(node) not in allowed]
    assert offenders == []
    assert "client.api" in {m for p in python_files(ACTIVATION) for m in imported_modules(p)}


# The four domain areas depend on the one commit operation (link_commit), never on one another.
DOMAIN_AREAS = {
    "ingest": {"server.identity.ingest"},
    "linkage": {"server.identity.linkage"},
    "segments": {"server.identity.segments"},
    "profiles": {"server.identity.profiles"},
}


def area_of(module: str) -> str | None:
    return next((area for area, roots in DOMAIN_AREAS.items()
                 if any(module == r or module.startswith(r + ".") for r in roots)), None)


def test_ingest_linkage_segments_and_profiles_do_not_import_one_another() -> None:
    offenders = []
    for path in python_files(SERVER / "identity"):
        module = ".".join(path.relative_to(SERVER.parent).with_suffix("").parts)
        own = area_of(module)
        if own is None:
            continue
        offenders += [f"{module} imports {m}" for m in imported_modules(path) if area_of(m) not in (None, own)]
    assert offenders == []


def test_no_two_modules_share_a_name() -> None:
    names = [p.name for root in (SERVER, CLIENT, ACTIVATION) for p in python_files(root)
             if p.name not in ("__init__.py", "__main__.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_every_query_file_is_loaded_by_its_path_name() -> None:
    queries = load_queries()
    files = {p.relative_to(CYPHER_DIR).with_suffix("").as_posix() for p in CYPHER_DIR.rglob("*.cypher")}
    assert set(queries) == files and "schema" in queries


def test_every_query_opens_with_a_comment_of_purpose() -> None:
    undocumented = [name for name, text in load_queries().items() if not text.startswith("//")]
    assert undocumented == []


def test_an_empty_query_file_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "broken.cypher").write_text("// only a comment\n")
    with pytest.raises(ConfigurationError, match="has no Cypher"):
        load_queries(tmp_path)


def test_schema_statements_are_split_on_line_ending_semicolons() -> None:
    text = "// comment\nCREATE INDEX a IF NOT EXISTS FOR (n:A) ON (n.x);\n\nCREATE INDEX b IF NOT EXISTS FOR (n:B) ON (n.y);\n"
    assert split_statements(text) == [
        "CREATE INDEX a IF NOT EXISTS FOR (n:A) ON (n.x)",
        "CREATE INDEX b IF NOT EXISTS FOR (n:B) ON (n.y)",
    ]


SEGMENT_RULE_COMPILER = SERVER / "identity" / "segments" / "compile.py"


def test_no_python_builds_cypher_text() -> None:
    """Query text lives in cypher/; an f-string or concatenation holding Cypher keywords is a leak."""
    keywords = ("MATCH (", "MERGE (", "CREATE (", "UNWIND $")
    offenders = []
    for path in python_files(SERVER):
        if path == SEGMENT_RULE_COMPILER:
            continue  # the one place that turns segment rules into Cypher, from constant fragments
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(k in node.value for k in keywords):
                offenders.append(f"{path.relative_to(SERVER)}:{node.lineno}")
    assert offenders == []
