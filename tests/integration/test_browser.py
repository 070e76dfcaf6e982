"""Neo4j Browser, for real: a headless Chromium opens the Browser of the test Neo4j, connects,
and finds the operators' style and guide loaded on connect (localneo4j/neo4j.conf:
browser.post_connect_cmd); it runs the guide's profile-graph block over a profile written
through Ingest and reads the identifier captions of the rendered graph.

Needs Chromium from the system (`apt-get install -y chromium` on Debian; CHROMIUM_PATH names
another binary) and the `playwright` package, which drives it; Playwright's own browser
download is not used. Missing either fails the test, saying how to install it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

import pytest
from identity.v1 import common_pb2, identity_service_pb2 as pb
from identity.v1.identity_service_pb2_grpc import IdentityServiceStub
from neo4j import Driver
from support import event, ingest

from localneo4j import LocalNeo4j, Neo4jTarget
from server.api.app import create_server
from server.config import Settings
from server.graph import Graph
from server.operators.browser import GUIDE_PATH, STYLE_PATH, guide, saved_queries, style

ASSETS_HOST, ASSETS_PORT = "127.0.0.1", 9464  # as named by browser.post_connect_cmd
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
INSTALL_HINT = (
    "Chromium is needed for the Neo4j Browser test: `apt-get install -y chromium` (Debian; about "
    "40 s), or set CHROMIUM_PATH to a Chromium/Chrome binary; and `pip install playwright` "
    "(no `playwright install`: the system Chromium is used)."
)


# -- the operators' HTTP port, as far as Browser needs it -----------------------------------

@dataclass
class AssetsServer:
    """Where the style and the guide are served: the identity server's operator HTTP port."""

    base_url: str


@pytest.fixture(scope="module")
def operator_assets(settings: Settings, graph: Graph) -> Iterator[AssetsServer]:
    """A real identity server whose operator HTTP port listens on the address
    browser.post_connect_cmd names; where that port is taken (a `make run`), what serves there
    must serve the same style and guide, CORS and preflight included."""
    served = AssetsServer(f"http://{ASSETS_HOST}:{ASSETS_PORT}")
    try:
        running = create_server(replace(settings, http_listen=f"{ASSETS_HOST}:{ASSETS_PORT}"), graph)
    except OSError:
        _check_served_by_other(served.base_url)
        yield served
        return
    try:
        yield served
    finally:
        running.stop(grace=1)


def _check_served_by_other(base_url: str) -> None:
    """The port is taken: what listens there must serve what Browser fetches, CORS included."""
    expected = {STYLE_PATH: style(), GUIDE_PATH: guide()}
    problems = []
    for path, body in expected.items():
        try:
            with urlopen(Request(base_url + path), timeout=5) as response:
                if response.read().decode() != body:
                    problems.append(f"GET {path} answers other content")
                if response.headers.get("Access-Control-Allow-Origin") != "*":
                    problems.append(f"GET {path} has no Access-Control-Allow-Origin: *")
        except (HTTPError, URLError) as exc:
            problems.append(f"GET {path}: {exc}")
    preflight = Request(base_url + GUIDE_PATH, method="OPTIONS", headers={
        "Origin": "http://127.0.0.1:7474", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "cache-control,pragma"})
    try:
        with urlopen(preflight, timeout=5) as response:
            if response.headers.get("Access-Control-Allow-Origin") != "*":
                problems.append("the OPTIONS preflight of the guide has no Access-Control-Allow-Origin: *")
    except (HTTPError, URLError) as exc:
        problems.append(f"the OPTIONS preflight of the guide (Browser sends pragma and cache-control): {exc}")
    if problems:
        pytest.fail(f"{ASSETS_HOST}:{ASSETS_PORT}, the address browser.post_connect_cmd names, is taken by a "
                    f"server that does not serve server.operators.browser.asset() as Browser needs: "
                    + "; ".join(problems), pytrace=False)


# -- Chromium --------------------------------------------------------------------------------

def _chromium_path() -> str:
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        if not Path(configured).is_file():
            pytest.fail(f"CHROMIUM_PATH={configured} is not a file. {INSTALL_HINT}", pytrace=False)
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"no Chromium on PATH. {INSTALL_HINT}", pytrace=False)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API runs an event loop in this thread while it is open,
    and later tests that start one of their own (asyncio.run) must find none."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the playwright package is not installed. {INSTALL_HINT}", pytrace=False)
    executable = _chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


def _browser_url(target: Neo4jTarget) -> str:
    if os.environ.get("NEO4J_BROWSER_URL"):
        return os.environ["NEO4J_BROWSER_URL"]
    if target.origin == "local":
        return LocalNeo4j().browser_url
    return f"http://{urlsplit(target.uri).hostname}:7474/browser/"


# -- the test --------------------------------------------------------------------------------

def _ingest_profile(identity: IdentityServiceStub, uid: str) -> dict[str, str]:
    """A profile written by Ingest, with the labels the style colours by: an e-mail, a cookie
    and a login linked; a tablet seen with three other people's e-mails, which merge
    protection flags as shared (it ends in a profile of its own, its links kept but not
    counted); and a second login on the same browser, which the one-user_id limit refuses."""
    # short values: Browser cuts a caption word wider than the circle (ann.1a2b3c4d5e6f@exa…)
    short = uid[:8]
    ids = {"email": f"a{short}@x.io", "cookie": f"c-{short}", "device": f"d-{short}", "user": f"u-{short}",
           "other_user": f"v-{short}"}
    acks = ingest(identity, [
        event(f"{uid}-1", f"email:{ids['email']}", f"cookie:{ids['cookie']}"),
        event(f"{uid}-2", f"cookie:{ids['cookie']}", f"device_id:{ids['device']}", minute=1),
        event(f"{uid}-3", f"email:{ids['email']}", f"user_id:{ids['user']}", minute=2, type="login"),
        event(f"{uid}-4", f"cookie:{ids['cookie']}", f"user_id:{ids['other_user']}", minute=3, type="login"),
        *(event(f"{uid}-{5 + n}", f"device_id:{ids['device']}", f"email:{n}{short}@x.io", minute=4 + n)
          for n in range(3)),
    ])
    assert {a.status for a in acks} == {pb.ACK_STATUS_ACCEPTED}, [a.reason for a in acks]
    return ids


def test_saved_queries_run_with_their_example_parameters(driver: Driver) -> None:
    """Every guide block is a query Neo4j accepts, with the parameters of its example."""
    for saved in saved_queries():
        command = saved.param_command
        params: dict[str, Any] = {}
        if command is not None:
            example = saved.param_example or {}
            (row,), _, _ = driver.execute_query(
                "RETURN {" + ", ".join(f"`{k}`: {v}" for k, v in example.items()) + "} AS params")
            params = dict(row["params"])
        driver.execute_query("EXPLAIN " + saved.query, params)


def test_browser_shows_identity_graph_with_style_and_guide(
    chromium: Any, operator_assets: AssetsServer, neo4j_target: Neo4jTarget, driver: Driver,
    identity: IdentityServiceStub, uid: str,
) -> None:
    _check_browser_settings(driver, operator_assets.base_url)
    ARTIFACTS.mkdir(exist_ok=True)
    ids = _ingest_profile(identity, uid)
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(_browser_url(neo4j_target))
        bolt = urlsplit(neo4j_target.uri)
        page.locator('input[data-testid="boltaddress"]').fill(f"{bolt.hostname}:{bolt.port or 7687}")
        page.locator('[data-testid="username"]').fill(neo4j_target.user)
        page.locator('[data-testid="password"]').fill(neo4j_target.password)
        page.locator('[data-testid="connect"]').click()

        # The guide, played on connect: the model first, then one slide per saved query.
        slides = len(saved_queries()) + 1
        carousel = page.locator('[data-testid="carousel"]').filter(has_text=re.compile(rf"\b\d+ / {slides}\b"))
        carousel.locator('[data-slide="model"]').wait_for()
        assert carousel.get_by_text(f"1 / {slides}", exact=True).count() == 1
        # The style, applied on connect: its frame names the URL, with no error.
        style_frame = page.locator("article").filter(has_text=f":style {operator_assets.base_url}{STYLE_PATH}")
        style_frame.first.wait_for()
        assert "node.Identifier" in style_frame.first.inner_text()

        # The profile-graph slide: set the parameters to this test's profile, run its query block.
        carousel.locator('[data-testid="nextSlide"]').click()
        slide = carousel.locator('[data-slide="profile_graph"]')
        slide.wait_for()
        profile_graph = next(q for q in saved_queries() if q.name == "profile_graph")
        assert slide.locator('pre[data-query="profile_graph"]').inner_text().strip() == profile_graph.query
        _run_in_editor(page, f":param {{type: 'email', value: '{ids['email']}'}}")
        slide.locator('pre[data-query="profile_graph"] i').first.click()  # its play icon: runs it in a new frame

        graph = page.locator("article").filter(has_text="MATCH (:Identifier {type: $type").locator("svg g.node")
        expected = {"email": ids["email"], "cookie": ids["cookie"], "device_id": ids["device"],
                    "user_id": ids["user"], "refused": ids["other_user"]}
        page.wait_for_function(
            """([needles]) => needles.every(v => [...document.querySelectorAll('svg g.node')]
                   .some(g => [...g.querySelectorAll('text.caption')].map(t => t.textContent).join(' ').includes(v)))""",
            arg=[list(expected.values())],
        )
        captions = {
            " ".join(t.strip() for t in node.locator("text.caption").all_text_contents()).strip(): node
            for node in graph.all()
        }
        page.wait_for_timeout(1500)  # let the force layout settle for the screenshot
        page.screenshot(path=str(ARTIFACTS / "browser-profile-graph.png"), full_page=True)

        def caption_of(value: str) -> str:
            matching = [c for c in captions if value in c]
            assert matching, f"no node captioned with {value}: {sorted(captions)}"
            return matching[0]

        assert caption_of(ids["email"]).split() == ["email", ids["email"]]
        assert caption_of(ids["cookie"]).split() == ["cookie", ids["cookie"]]
        assert caption_of(ids["device"]).split() == ["shared", "device_id", ids["device"]]
        # a profile is captioned with its size (identifiers) and its id (cut when long): the
        # e-mail, the cookie and the first login; the shared tablet and the refused login are not in it
        assert any(c.startswith("3 ids ") for c in captions), sorted(captions)
        # coloured by the type label, the flagged one ringed in red
        email_circle = captions[caption_of(ids["email"])].locator("circle.b-outline")
        assert email_circle.get_attribute("fill").upper() == "#4C8EDA"
        device_circle = captions[caption_of(ids["device"])].locator("circle.b-outline")
        assert device_circle.get_attribute("stroke").upper() == "#E0262B"
        rel_captions = [t.strip() for t in page.locator("svg g.relationship text").all_text_contents()]
        # a refused link is captioned with its reason (Browser cuts a caption longer than its edge)
        (refused,) = [c for c in rel_captions if c.startswith("REJECTED ")]
        assert f"REJECTED {_refusal_reason(identity, ids)}".startswith(refused.rstrip("…")), rel_captions
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "browser-failure.png"), full_page=True)
        raise
    finally:
        context.close()


def _refusal_reason(identity: IdentityServiceStub, ids: dict[str, str]) -> str:
    """The reason merge protection gave for refusing the second login, as the service tells it."""
    ref = common_pb2.ProfileRef(identifier=common_pb2.Identifier(type="cookie", value=ids["cookie"]))
    graph = identity.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=ref), timeout=10)
    (edge,) = [e for e in graph.edges if e.kind == pb.LINK_KIND_REJECTED]
    assert "user_id" in edge.evidence.reason, edge.evidence.reason
    return edge.evidence.reason


def _check_browser_settings(driver: Driver, base_url: str) -> None:
    """The Neo4j must be started with localneo4j/neo4j.conf's Browser settings."""
    records, _, _ = driver.execute_query(
        "CALL dbms.clientConfig() YIELD name, value WHERE name STARTS WITH 'browser.' RETURN name, value")
    settings = {r["name"]: r["value"] for r in records}
    command = settings.get("browser.post_connect_cmd") or ""
    allowed = settings.get("browser.remote_content_hostname_whitelist") or ""
    if f"style {base_url}{STYLE_PATH}" not in command or f"play {base_url}{GUIDE_PATH}" not in command \
            or ASSETS_HOST not in [h.strip() for h in allowed.split(",")]:
        pytest.fail(
            f"this Neo4j runs without the Browser settings of localneo4j/neo4j.conf (post_connect_cmd={command!r}, "
            f"remote_content_hostname_whitelist={allowed!r}): restart it (python -m localneo4j stop, then start) "
            "or give another Neo4j browser.post_connect_cmd and browser.remote_content_hostname_whitelist as there",
            pytrace=False)


def _run_in_editor(page: Any, command: str) -> None:
    editor = page.locator('[data-testid="activeEditor"] textarea, #monaco-main-editor textarea').first
    editor.click()
    page.keyboard.insert_text(command)
    page.keyboard.press("Control+Enter")
