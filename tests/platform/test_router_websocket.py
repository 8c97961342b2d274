"""WebSockets and streams through the real router, with a Node ``ws`` app built for real.

The app (``tests/apps/ws_echo``: ``ws`` pinned by its package-lock.json) is built once by
the real Node buildpack and deployed with the LocalRuntime behind the router, as the
controller does. A WebSocket must survive an unrelated ``scale`` (no reload cuts it),
get its ``Upgrade`` through, be drained — still answering — while a deploy replaces its
process, work over TLS (told `https`), and server-sent events must arrive as the app writes them.
"""

from __future__ import annotations

import http.client
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from moorage.embedded.ports import free_port
from moorage.platform.builder import Builder
from moorage.platform.router import Router
from moorage.platform.runtime.base import ReleaseSpec
from moorage.platform.runtime.local import LocalRuntime
from moorage.settings import Settings
from tests.fixtures.builder import BuildLog, world_dir
from tests.fixtures.router import router_settings
from tests.polling import wait_for

APP = Path(__file__).resolve().parent.parent / "apps" / "ws_echo"
HOST = "sock.moorage.localhost"


@pytest.fixture(scope="module")
def slug() -> Iterator[tuple[str, dict[str, str]]]:
    """The ws_echo app built by the real Node buildpack: (slug path, process types)."""
    base = world_dir("moorage-ws-build-")
    source = base / "src"
    shutil.copytree(APP, source)
    log = BuildLog()
    try:
        built = Builder(Settings(data_dir=base / "data"), environ=os.environ).build("sock", source, {}, log)
    except Exception:
        print(log.text)
        raise
    yield built.slug, built.process_types
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return router_settings(
        data_dir, router_https_port=free_port(), stop_grace_seconds=3.0, deploy_timeout_seconds=30.0
    )


def release(slug: tuple[str, dict[str, str]], version: int) -> ReleaseSpec:
    return ReleaseSpec("sock", version, slug[0], {"V": str(version)}, slug[1])


def connect(router: Router) -> websocket.WebSocket:
    return websocket.create_connection(f"ws://127.0.0.1:{router.port}/", host=HOST, timeout=10)


def quiet(_line: str) -> None:
    pass


def test_websocket_keeps_its_connection_through_an_unrelated_scale(
    runtime: LocalRuntime, router: Router, slug: tuple[str, dict[str, str]]
) -> None:
    runtime.deploy(release(slug, 1), {"web": 1}, quiet)
    master = router.master_pid
    ws = connect(router)
    try:
        hello = ws.recv()
        pid = hello.split()[2]
        assert hello == f"hello from {pid} proto=http"
        ws.send("one")
        assert ws.recv() == f"{pid}: one"
        runtime.scale("sock", {"web": 3}, quiet)
        runtime.scale("sock", {"web": 2}, quiet)
        for word in ("two", "three"):
            ws.send(word)
            assert ws.recv() == f"{pid}: {word}"
    finally:
        ws.close()
    assert router.master_pid == master


def test_websocket_is_drained_not_cut_on_deploy(
    runtime: LocalRuntime, router: Router, slug: tuple[str, dict[str, str]]
) -> None:
    runtime.deploy(release(slug, 1), {"web": 1}, quiet)
    ws = connect(router)
    old = ws.recv().split()[2]
    deploy = threading.Thread(target=runtime.deploy, args=(release(slug, 2), {"web": 1}, quiet))
    deploy.start()
    try:
        # New connections reach v2 while the old one keeps talking to its own process.
        wait_for(lambda: _new_pid(router) != old, what="the new release to take new connections")
        ws.send("still there")
        assert ws.recv() == f"{old}: still there"
        assert deploy.is_alive()  # the deploy waits for the connection (up to the grace period)
        deploy.join(timeout=30)
        assert not deploy.is_alive()
        # Past the drain timeout the old process stops, and only then the connection ends.
        with pytest.raises((websocket.WebSocketException, OSError)):
            ws.send("gone")
            ws.recv()
    finally:
        ws.close()
        deploy.join(timeout=30)


def test_websocket_over_tls_is_told_https(
    runtime: LocalRuntime, router: Router, slug: tuple[str, dict[str, str]]
) -> None:
    runtime.deploy(release(slug, 1), {"web": 1}, quiet)
    cert = str(router.root / "tls" / "default.crt")
    ws = websocket.create_connection(
        f"wss://127.0.0.1:{router.https_port}/",
        host=HOST,
        timeout=10,
        sslopt={"ca_certs": cert, "server_hostname": HOST},
    )
    try:
        hello = ws.recv()
        assert hello.endswith("proto=https")
        ws.send("secure")
        assert ws.recv() == f"{hello.split()[2]}: secure"
    finally:
        ws.close()


def _new_pid(router: Router) -> str:
    ws = connect(router)
    try:
        return ws.recv().split()[2]
    finally:
        ws.close()


def test_server_sent_events_are_not_buffered(
    runtime: LocalRuntime, router: Router, slug: tuple[str, dict[str, str]]
) -> None:
    runtime.deploy(release(slug, 1), {"web": 1}, quiet)
    conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=10)
    try:
        started = time.monotonic()
        conn.request("GET", "/events", headers={"Host": HOST})
        response = conn.getresponse()
        assert response.status == 200
        arrivals = []
        while True:
            line = response.readline()
            if not line:
                break
            if line.startswith(b"data:"):
                arrivals.append(time.monotonic() - started)
        # Five events 200 ms apart: the first long before the last was written.
        assert len(arrivals) == 5
        assert arrivals[-1] - arrivals[0] > 0.6
    finally:
        conn.close()
