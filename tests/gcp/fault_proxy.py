"""An HTTP proxy in front of the BigQuery emulator or the IAM stand-in that fails on purpose.

Why: neither ever throttles or fails, but the gcp-bigquery provider must ride out 429 and
5xx answers. Requests are forwarded byte for byte; for a route a test names
(``"POST datasets"``, ``"POST serviceAccounts"``, …: the method and the last collection
in the path) the next ``times`` answers are a Google-shaped error instead
(``{"error": {"code", "message", "status", "errors": [{"reason"}]}}``).

Routes named in ``serialize`` are forwarded one at a time. local-bigquery checks a
write's ``If-Match`` etag and then saves, without a lock, so two concurrent writes can both
pass the check (and DuckDB may then fail one with "Conflict on update!"); real BigQuery's
conditional write is atomic, and serializing the writes gives the emulator that property.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

STATUS = {
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    400: "INVALID_ARGUMENT",
    412: "FAILED_PRECONDITION",
}
REASON = {
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
    400: "invalid",
    412: "conditionNotMet",
}


def route_of(method: str, path: str) -> str:
    """``POST datasets`` for ``POST /bigquery/v2/projects/p/datasets``; ``GET dataset`` for one of them."""
    segments = [s for s in urlsplit(path).path.split("/") if s]
    collections = {"datasets", "tables", "serviceAccounts", "keys", "projects", "jobs", "queries", "token"}
    for index in range(len(segments) - 1, -1, -1):
        name = re.sub(r":.*$", "", segments[index])
        if name in collections:
            item = index < len(segments) - 1
            return f"{method} {name[:-1] if item and name.endswith('s') else name}"
    return f"{method} {path}"


@dataclass
class Fault:
    route: str
    times: int
    status: int
    message: str


@dataclass
class ProxyState:
    faults: list[Fault] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    serialize: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    one_at_a_time: threading.Lock = field(default_factory=threading.Lock)


class GoogleFaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, serialize: tuple[str, ...] = ()) -> None:
        self.state = state = ProxyState(serialize=set(serialize))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return None

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                route = route_of(self.command, self.path)
                with state.lock:
                    state.counts[route] = state.counts.get(route, 0) + 1
                    fault = next((f for f in state.faults if f.route == route and f.times > 0), None)
                    if fault is not None:
                        fault.times -= 1
                if fault is not None:
                    error = {
                        "code": fault.status,
                        "message": fault.message,
                        "status": STATUS.get(fault.status, "UNKNOWN"),
                        "errors": [{"reason": REASON.get(fault.status, "unknown"), "message": fault.message}],
                    }
                    self._reply(
                        fault.status,
                        [("Content-Type", "application/json")],
                        json.dumps({"error": error}).encode(),
                    )
                    return
                if route in state.serialize:
                    with state.one_at_a_time:
                        self._forward(body)
                else:
                    self._forward(body)

            def _forward(self, body: bytes) -> None:
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in {"connection", "transfer-encoding"}
                }
                conn = http.client.HTTPConnection(upstream_host, upstream_port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                    out = [
                        (k, v)
                        for k, v in response.getheaders()
                        if k.lower() not in {"content-length", "transfer-encoding", "connection"}
                    ]
                finally:
                    conn.close()
                self._reply(response.status, out, payload)

            def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def fail(self, route: str, times: int, status: int = 500, message: str = "injected") -> None:
        with self.state.lock:
            self.state.faults.append(Fault(route, times, status, message))

    def count(self, route: str) -> int:
        with self.state.lock:
            return self.state.counts.get(route, 0)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
