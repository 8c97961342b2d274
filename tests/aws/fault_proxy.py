"""A small HTTP proxy in front of the moto server that can misbehave on purpose.

Why: moto answers every call at once and never fails, but the AWS providers must cope
with throttling, 5xx answers and RDS instances that take minutes to become available.
The proxy forwards requests byte for byte (the Host header is kept, so SigV4 signatures
still verify and IAM enforcement stays on) and, for the actions a test names, answers with
an AWS-shaped error or rewrites ``DescribeDBInstances`` to say ``creating``.
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Fault:
    action: str
    times: int
    status: int
    code: str
    message: str


@dataclass
class ProxyState:
    faults: list[Fault] = field(default_factory=list)
    creating: int = 0
    status: str = "creating"
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def action_of(method: str, path: str, headers: dict[str, str], body: bytes) -> str:
    """``CreateUser``, ``CreateQueue``, … or ``S3 PUT /bucket`` for S3's REST calls."""
    target = headers.get("x-amz-target", "")
    if target:
        return target.rpartition(".")[2]
    parts = urlsplit(path)
    query = parse_qs(parts.query)
    if "Action" in query:
        return query["Action"][0]
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = parse_qs(body.decode("utf-8", "replace"))
        if "Action" in form:
            return form["Action"][0]
    segments = [s for s in parts.path.split("/") if s]
    kind = ["service", "bucket", "object"][min(len(segments), 2)]
    subresource = "&".join(
        sorted(k for k in parse_qs(parts.query, keep_blank_values=True) if not k.startswith("x-"))
    )
    return f"S3 {method} {kind}" + (f"?{subresource}" if subresource else "")


def error_body(headers: dict[str, str], action: str, code: str, message: str) -> tuple[bytes, dict[str, str]]:
    if headers.get("x-amz-target"):
        body = json.dumps({"__type": f"com.amazonaws.error#{code}", "message": message}).encode()
        return body, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-query-error": f"{code};Sender"}
    if action.startswith("S3 "):
        body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>proxy</RequestId></Error>"
        return body.encode(), {"Content-Type": "application/xml"}
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>proxy</RequestId></ErrorResponse>"
    )
    return body.encode(), {"Content-Type": "text/xml"}


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.state = ProxyState()
        state = self.state

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return None

            def _handle(self) -> None:
                body = self._body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                action = action_of(self.command, self.path, headers, body)
                with state.lock:
                    state.counts[action] = state.counts.get(action, 0) + 1
                    fault = next((f for f in state.faults if f.action == action and f.times > 0), None)
                    if fault is not None:
                        fault.times -= 1
                if fault is not None:
                    payload, extra = error_body(headers, action, fault.code, fault.message)
                    self._reply(fault.status, extra, payload)
                    return
                conn = http.client.HTTPConnection(upstream_host, upstream_port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
                    response = conn.getresponse()
                    payload = response.read()
                    upstream_length = response.getheader("Content-Length") if self.command == "HEAD" else None
                    out_headers = {
                        k: v
                        for k, v in response.getheaders()
                        if k.lower() not in {"content-length", "transfer-encoding", "connection"}
                    }
                finally:
                    conn.close()
                if action == "DescribeDBInstances" and b"<DBInstanceStatus>available<" in payload:
                    with state.lock:
                        rewrite = state.creating > 0
                        state.creating -= 1 if rewrite else 0
                    if rewrite:
                        fake = f"<DBInstanceStatus>{state.status}<".encode()
                        payload = payload.replace(b"<DBInstanceStatus>available<", fake)
                self._reply(response.status, out_headers, payload, upstream_length)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    del self.headers["Transfer-Encoding"]
                    body = b"".join(chunks)
                    self.headers["Content-Length"] = str(len(body))
                    return body
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reply(
                self, status: int, headers: dict[str, str], payload: bytes, length: str | None = None
            ) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", length if length is not None else str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def fail(
        self,
        action: str,
        times: int,
        status: int = 500,
        code: str = "InternalError",
        message: str = "injected",
    ) -> None:
        with self.state.lock:
            self.state.faults.append(Fault(action, times, status, code, message))

    def report_creating(self, times: int, status: str = "creating") -> None:
        """The next ``times`` DescribeDBInstances answers say ``status`` instead of available."""
        with self.state.lock:
            self.state.creating = times
            self.state.status = status

    def count(self, action: str) -> int:
        with self.state.lock:
            return self.state.counts.get(action, 0)

    def reset(self) -> None:
        with self.state.lock:
            self.state.faults.clear()
            self.state.creating = 0
            self.state.counts.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
