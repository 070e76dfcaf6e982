"""The collector and a real browser: Segment's analytics.js (@segment/analytics-next, its
published UMD build) in Chromium, on a page of another origin, sending to the collector
unchanged. It posts text/plain to the one-letter paths (/v1/p, /v1/i, /v1/t) across origins,
so CORS, the write key in the body and the cookie-kept anonymousId are the real ones."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from identity.v1 import identity_service_pb2_grpc
from neo4j import Driver

from server.api.app import RunningServer
from tests.integration.support import by_identifier, identifiers_of, lookup
from tests.integration.test_browser import chromium  # noqa: F401 (the module's Chromium, a fixture)
from tests.integration.test_collector import wait_for

UMD = Path(__file__).parent / "node" / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
PAGE = """<!doctype html><html><head><script src="/index.js"></script></head><body><script>
window.sent = (async () => {
  // the collector serves the settings analytics.js fetches from its CDN: cdnURL is all it needs
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
    {writeKey: "browser-key", cdnURL: "%(cdn)s"}, {initialPageview: false});
  await analytics.page("Home", {path: "/"});
  await analytics.track("Product Viewed", {sku: "S-1"});
  await analytics.identify("%(user)s", {email: "%(email)s", firstName: "Ann"});
  return analytics.user().anonymousId();
})();
</script></body></html>"""


@pytest.fixture
def shop_page(grpc_server: RunningServer, uid: str) -> Iterator[str]:
    """A shop's page on an origin of its own, loading analytics.js from the same server."""
    if not (UMD / "index.js").is_file():
        pytest.fail("@segment/analytics-next is needed: run `make node-sdks`")
    page = PAGE % {"cdn": f"http://127.0.0.1:{grpc_server.collect_port}", "user": f"{uid}-user",
                   "email": f"{uid}@example.org"}

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            if self.path.split("?")[0] in ("/", "/shop.html"):
                body = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the standard library's name)
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(UMD)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/shop.html"
    finally:
        server.shutdown()
        server.server_close()


def test_analytics_js_in_chromium_sends_to_the_collector_across_origins(
        chromium: Any, shop_page: str, driver: Driver,  # noqa: F811 (the fixture imported above)
        identity: identity_service_pb2_grpc.IdentityServiceStub, uid: str) -> None:
    context = chromium.new_context()
    try:
        tab = context.new_page()
        tab.goto(shop_page)
        anonymous_id = tab.evaluate("window.sent")
    finally:
        context.close()
    assert anonymous_id

    def stored() -> dict[str, set[str]]:
        records = driver.execute_query(
            "MATCH (t:Touchpoint)-[:CARRIED]->(:Identifier {type: 'anonymous_id', value: $anon}) "
            "MATCH (t)-[:CARRIED]->(i:Identifier) RETURN t.type AS type, collect(i.type + ':' + i.value) AS ids",
            anon=anonymous_id).records
        return {r["type"]: set(r["ids"]) for r in records}

    wait_for(lambda: len(stored()) == 3)
    touchpoints = stored()
    assert touchpoints["page_view"] == {f"anonymous_id:{anonymous_id}"}
    assert touchpoints["Product Viewed"] == {f"anonymous_id:{anonymous_id}"}
    assert touchpoints["identify"] == {f"anonymous_id:{anonymous_id}", f"user_id:{uid}-user",
                                       f"email:{uid}@example.org"}
    [result] = lookup(identity, by_identifier(f"anonymous_id:{anonymous_id}"))
    assert {f"user_id:{uid}-user", f"email:{uid}@example.org"} <= identifiers_of(result.profile)
