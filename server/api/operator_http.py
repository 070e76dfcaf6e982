"""The operators' HTTP port (`--http-listen`, default 127.0.0.1:9464): `/metrics` for
Prometheus, `/healthz` (the process answers), `/readyz` (Neo4j answers: 503 with the reason
while it does not), and the Neo4j Browser style and guide, with CORS so that Browser, on
another origin, may fetch them.

`/readyz`'s body adds notes for a person reading it (whether probabilistic linkage is on, as
last read); they never change its status: a server without a linkage model still ingests and
stitches, and a probe must not take it out of service for that.

A plain threading HTTP server on a thread of its own: scrapes and probes are rare and small,
and must answer even while the gRPC event loop is busy. A connection that sends nothing for
REQUEST_TIMEOUT_S is closed, so idle or slow clients cannot pile up threads. Only the Browser
assets carry CORS headers: /metrics and the probes are for Prometheus and the orchestrator,
never for a page in a browser.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)
REQUEST_TIMEOUT_S = 10.0

Asset = tuple[str, bytes]  # content type, body


@dataclass(frozen=True)
class OperatorEndpoints:
    metrics: Callable[[], bytes]
    ready: Callable[[], tuple[bool, str]]  # ready, and why not
    notes: Callable[[], list[str]]  # lines for /readyz's body that do not change its status; no Neo4j query
    assets: Callable[[str], Asset | None]  # a path's static content (the Browser style and guide)


class OperatorHttp:
    def __init__(self, listen: str, endpoints: OperatorEndpoints) -> None:
        host, port = listen.rsplit(":", 1)
        handler = type("Handler", (_Handler,), {"endpoints": endpoints})
        try:
            self.server = ThreadingHTTPServer((host.strip("[]") or "0.0.0.0", int(port)), handler)
        except OSError as exc:
            raise OSError(f"cannot listen on {listen} for HTTP (--http-listen): {exc.strerror}") from exc
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="operator-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    endpoints: OperatorEndpoints
    timeout = REQUEST_TIMEOUT_S  # the socket's: a request that stalls this long is dropped

    def do_HEAD(self) -> None:  # noqa: N802 (the standard library's name)
        self._head_only = True
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, self.endpoints.metrics())
        elif path == "/healthz":
            self._send(200, "text/plain; charset=utf-8", b"ok\n")
        elif path == "/readyz":
            ready, reason = self.endpoints.ready()
            lines = ["ready" if ready else f"not ready: {reason}", *self.endpoints.notes()]
            self._send(200 if ready else 503, "text/plain; charset=utf-8", "".join(f"{line}\n" for line in lines).encode())
        elif (asset := self.endpoints.assets(path)) is not None:
            self._send(200, *asset, cors=True)
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: /metrics, /healthz, /readyz\n")

    def do_OPTIONS(self) -> None:  # noqa: N802 (the standard library's name)
        """The CORS preflight Browser sends before it fetches a guide (with pragma and
        cache-control headers, which are not CORS-safelisted): any origin may GET an asset."""
        if self.endpoints.assets(self.path.split("?", 1)[0]) is None:
            self._send(404, "text/plain; charset=utf-8", b"no CORS here: only the Browser style and guide\n")
            return
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", self.headers.get("Access-Control-Request-Headers", "*"))
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, content_type: str, body: bytes, cors: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if cors:  # Neo4j Browser, on another origin, fetches the style and guide
            self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not getattr(self, "_head_only", False):
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the standard library's name)
        log.debug("http %s", format % args)
