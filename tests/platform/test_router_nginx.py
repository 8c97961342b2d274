"""The router against a real nginx and real HTTP servers on loopback ports."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.embedded.ports import free_port
from moorage.errors import ConflictError, InvalidParametersError
from moorage.platform.router import Router
from moorage.settings import Settings
from tests.fixtures.router import router_settings
from tests.host_requests import request
from tests.polling import wait_for


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return router_settings(data_dir, stop_grace_seconds=2.0, router_max_body_mb=1)


def test_unknown_host_is_404_and_app_without_processes_is_503(router: Router) -> None:
    status, body, _ = request(router.port, "nothing.example.com")
    assert status == 404
    assert b"No app" in body
    router.set_routes("sleepy", ["sleepy.moorage.localhost"], [])
    status, body, _ = request(router.port, "sleepy.moorage.localhost")
    assert status == 503
    assert b"sleepy" in body


def test_routes_round_robin_with_forwarding_headers(router: Router, backends: list[int]) -> None:
    router.set_routes(
        "web", ["web.moorage.localhost", "www.example.com"], [("127.0.0.1", p) for p in backends]
    )
    seen = set()
    for _ in range(6):
        status, body, headers = request(
            router.port, "web.moorage.localhost", headers={"X-Forwarded-Proto": "https"}
        )
        assert status == 200
        data = json.loads(body)
        seen.add(data["port"])
        assert data["headers"]["x-forwarded-for"] == "127.0.0.1"
        # Not taken from the client: this request came over plain HTTP.
        assert data["headers"]["x-forwarded-proto"] == "http"
        assert len(data["headers"]["x-request-id"]) >= 20
        assert headers["X-Request-Id"] == data["headers"]["x-request-id"]
        assert data["headers"]["host"] == "web.moorage.localhost"
    assert seen == set(backends)
    # A custom domain reaches the same app; a request id sent by the client is kept.
    status, body, _ = request(
        router.port, "www.example.com", headers={"X-Request-Id": "client-chosen-id-0123456789"}
    )
    assert status == 200
    assert json.loads(body)["headers"]["x-request-id"] == "client-chosen-id-0123456789"


def test_access_lines_are_written_per_app(router: Router, backends: list[int]) -> None:
    router.set_routes("logged", ["logged.moorage.localhost"], [("127.0.0.1", backends[0])])
    request(router.port, "logged.moorage.localhost", "/some/path?x=1")
    path = router.access_log("logged")
    line = wait_for(lambda: path.exists() and path.read_text(), what="an access log line")
    assert "app=logged" in line
    assert 'path="/some/path?x=1"' in line
    assert "status=200" in line


def test_dead_upstream_is_502(router: Router) -> None:
    router.set_routes("broken", ["broken.moorage.localhost"], [("127.0.0.1", free_port())])
    status, body, _ = request(router.port, "broken.moorage.localhost")
    assert status == 502
    assert b"broken" in body


def test_body_size_limit_is_413(router: Router, backends: list[int]) -> None:
    router.set_routes("small", ["small.moorage.localhost"], [("127.0.0.1", backends[0])])
    status, _, _ = request(
        router.port, "small.moorage.localhost", method="POST", body=b"x" * (2 * 1024 * 1024)
    )
    assert status == 413


def test_new_routes_are_live_when_set_routes_returns(router: Router, backends: list[int]) -> None:
    for port in backends * 3:
        router.set_routes("flip", ["flip.moorage.localhost"], [("127.0.0.1", port)])
        status, body, _ = request(router.port, "flip.moorage.localhost")
        assert status == 200
        assert json.loads(body)["port"] == port
    router.remove("flip")
    assert request(router.port, "flip.moorage.localhost")[0] == 404
    assert router.wait_drained(timeout=10)


def test_bad_input_is_refused_and_changes_nothing(router: Router, backends: list[int]) -> None:
    router.set_routes("one", ["one.moorage.localhost"], [("127.0.0.1", backends[0])])
    before = router.conf_path.read_text()
    bad = [
        ("two", ["evil.com; include /etc/passwd"], []),
        ("two", ["ok.example.com"], [("127.0.0.1", 70000)]),
        ("two", ["ok.example.com"], [("127.0.0.1;", 80)]),
        ("Two_", ["ok.example.com"], []),
        ("two", [], []),
        ("two", ["moorage-router.invalid"], []),
    ]
    for app, hosts, ups in bad:
        with pytest.raises(InvalidParametersError):
            router.set_routes(app, hosts, ups)
    with pytest.raises(ConflictError, match="one"):
        router.set_routes("two", ["ONE.moorage.localhost"], [])
    assert router.conf_path.read_text() == before
    assert request(router.port, "one.moorage.localhost")[0] == 200


def test_workers_do_not_run_as_root(router: Router) -> None:
    assert router._process is not None
    master = router._process.pid
    workers = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if int(fields["PPid"]) == master:
                workers.append(int(fields["Uid"].split()[0]))
    assert workers
    assert os.geteuid() == 0, "nginx drops root for its workers: this test runs as root, like the suite"
    assert all(uid != 0 for uid in workers)


def test_start_replaces_a_stale_master_and_keeps_routes(settings: Settings, backends: list[int]) -> None:
    first = Router(settings)
    first.start()
    try:
        # A Moorage that died without stopping its router: the next one takes over the port.
        second = Router(settings)
        second.set_routes("again", ["again.moorage.localhost"], [("127.0.0.1", backends[0])])
        second.start()
        try:
            assert first._process is not None
            wait_for(lambda: first._process.poll() is not None, what="the stale master to exit")
            assert request(second.port, "again.moorage.localhost")[0] == 200
        finally:
            second.stop()
    finally:
        first.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", settings.platform.router_port), timeout=0.5)


def test_slow_first_byte_is_a_clear_504(data_dir: Path) -> None:
    settings = router_settings(data_dir, router_first_byte_timeout_seconds=1.0)
    r = Router(settings)
    r.start()
    # A backend that accepts the connection and never answers.
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        r.set_routes("slow", ["slow.moorage.localhost"], [("127.0.0.1", silent.getsockname()[1])])
        started = time.monotonic()
        status, body, _ = request(r.port, "slow.moorage.localhost")
        assert status == 504
        assert body == b"Application error: slow did not start its response within 1 s.\n"
        assert time.monotonic() - started < 5
    finally:
        silent.close()
        r.stop()


def test_listens_on_every_configured_address(data_dir: Path, backends: list[int]) -> None:
    settings = router_settings(data_dir, router_addresses="127.0.0.1, 127.0.0.2")
    r = Router(settings)
    r.start()
    try:
        r.set_routes("both", ["both.moorage.localhost"], [("127.0.0.1", backends[0])])
        for address in ("127.0.0.1", "127.0.0.2"):
            conn = http.client.HTTPConnection(address, r.port, timeout=5)
            conn.request("GET", "/", headers={"Host": "both.moorage.localhost"})
            assert conn.getresponse().status == 200
            conn.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.3", r.port), timeout=1)
    finally:
        r.stop()
    with pytest.raises(InvalidParametersError, match="not an IP address"):
        Router(settings.with_group(platform={"router_addresses": "localhost"}))


def test_routes_change_through_the_control_socket_only(router: Router, backends: list[int]) -> None:
    """The config file never changes, and only Moorage (root, 0700) reaches the control socket."""
    before = router.conf_path.read_text()
    router.set_routes("ctl", ["ctl.moorage.localhost"], [("127.0.0.1", backends[0])])
    router.set_routes("ctl", ["ctl.moorage.localhost"], [("127.0.0.1", backends[1])])
    assert json.loads(request(router.port, "ctl.moorage.localhost")[1])["port"] == backends[1]
    assert router.conf_path.read_text() == before
    folder = router.root / "control"
    assert folder.stat().st_mode & 0o777 == 0o700
    assert folder.stat().st_uid == os.geteuid()


@pytest.fixture
def closing_backend() -> Iterator[int]:
    """An app server whose keep-alive has just run out each time it answers.

    It answers HTTP/1.1 without ``Connection: close`` and then closes the connection, the
    way gunicorn or Node close an idle connection when their keep-alive timeout (2 s, 5 s)
    ends just as the router reuses it. Threads in the test process, a real TCP server.
    """
    server = socket.create_server(("127.0.0.1", 0))
    body = b"answered"
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def serve(conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            conn.sendall(answer)

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_a_kept_alive_connection_the_app_closed_is_retried(router: Router, closing_backend: int) -> None:
    router.set_routes("closer", ["closer.moorage.localhost"], [("127.0.0.1", closing_backend)])
    statuses: list[int] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=10)
        for _ in range(400):
            conn.request("GET", "/", headers={"Host": "closer.moorage.localhost"})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The router reuses connections the app already closed; those are retried, never a 502.
    assert len(statuses) == 1200
    assert set(statuses) == {200}


def test_only_websocket_upgrades_reach_the_app(router: Router, backends: list[int]) -> None:
    router.set_routes("up", ["up.moorage.localhost"], [("127.0.0.1", backends[0])])
    # h2c through a proxy would let a client talk to the app past the router: not passed.
    status, body, _ = request(
        router.port,
        "up.moorage.localhost",
        headers={"Upgrade": "h2c", "Connection": "Upgrade, HTTP2-Settings"},
    )
    assert status == 200
    headers = json.loads(body)["headers"]
    assert "upgrade" not in headers
    assert headers.get("connection", "").lower() != "upgrade"


def test_an_app_with_many_domains_is_routed(router: Router, backends: list[int]) -> None:
    # About 40 KB of JSON: more than nginx keeps in memory by default.
    names = [f"shop-{i:04d}.customer-domain-number-{i:04d}.example.com" for i in range(800)]
    router.set_routes("many", names, [("127.0.0.1", backends[0])])
    for name in (names[0], names[-1]):
        assert request(router.port, name)[0] == 200


def test_failed_requests_do_not_keep_a_backend_busy(data_dir: Path, backends: list[int]) -> None:
    """A 502 or 504 page (an internal redirect in nginx) still ends the request's count."""
    settings = router_settings(data_dir, router_first_byte_timeout_seconds=1.0)
    r = Router(settings)
    r.start()
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        dead, slow = ("127.0.0.1", free_port()), ("127.0.0.1", silent.getsockname()[1])
        for upstream, status in ((dead, 502), (slow, 504)):
            r.set_routes("flaky", ["flaky.moorage.localhost"], [upstream])
            assert request(r.port, "flaky.moorage.localhost")[0] == status
        r.set_routes("flaky", ["flaky.moorage.localhost"], [("127.0.0.1", backends[0])])
        started = time.monotonic()
        assert r.wait_drained(timeout=5)
        assert time.monotonic() - started < 1
    finally:
        silent.close()
        r.stop()
