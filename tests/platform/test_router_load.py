"""No request is lost while an app's processes change: load through the real router.

Why its own file: issue 12 found 1–2 lost requests per scale or restart, every time a
``RemoteDisconnected`` on a keep-alive connection, because every change reloaded nginx.
These tests run client threads through the router — reusing one connection each
(keep-alive) or opening one per request — while the real LocalRuntime deploys, changes
config, scales, restarts, loses a process or gains a domain, and check that every
request got a 200 and that the nginx master is the same process before and after
(the router was not reloaded, let alone restarted).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from moorage.embedded.ports import free_port
from moorage.platform.router import Router
from moorage.platform.runtime.base import ReleaseSpec
from moorage.platform.runtime.local import LocalRuntime
from moorage.settings import Settings
from tests.host_requests import request
from tests.polling import wait_for

APP_DIR = Path(__file__).resolve().parent.parent / "apps" / "rt_echo"
HOST = "load.moorage.localhost"
CLIENTS = 3


def release(version: int, **env: str) -> ReleaseSpec:
    return ReleaseSpec(
        app="load",
        version=version,
        slug=str(APP_DIR),
        env={"GREETING": f"v{version}", **env},
        processes={"web": "python3 app.py --port $PORT"},
    )


def quiet(_line: str) -> None:
    pass


class Load:
    """Client threads sending GETs to the router until stopped, counting what failed."""

    def __init__(self, port: int, host: str, keep_alive: bool) -> None:
        self.port, self.host, self.keep_alive = port, host, keep_alive
        self.failures: list[str] = []
        self.answers: list[dict] = []
        self.count = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        # Every client has been answered at least once before the change starts.
        wait_for(lambda: self.count >= 3 * CLIENTS, what="the load to be running")
        return self

    def __exit__(self, *_exc: object) -> None:
        # A little more load after the change: lost connections show up on the next request.
        settle = self.count + 3 * CLIENTS
        wait_for(lambda: self.count >= settle, what="requests after the change")
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self._stop.is_set():
            try:
                conn.request("GET", "/", headers={"Host": self.host})
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    self._fail(f"{response.status} {body[:100]!r}")
                else:
                    with self._lock:
                        self.answers.append(json.loads(body))
            except (OSError, http.client.HTTPException) as exc:
                self._fail(repr(exc))
                conn.close()
            with self._lock:
                self.count += 1
            if not self.keep_alive:
                conn.close()
        conn.close()

    def _fail(self, what: str) -> None:
        with self._lock:
            self.failures.append(what)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="moorage-rl-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir).with_group(
        platform={"router_port": free_port(), "stop_grace_seconds": 2.0, "deploy_timeout_seconds": 20.0}
    )


@pytest.fixture
def router(settings: Settings) -> Iterator[Router]:
    r = Router(settings)
    r.start()
    yield r
    r.stop()


@pytest.fixture
def runtime(settings: Settings, router: Router) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(settings, router)
    yield rt
    rt.close()


def under_load(router: Router, keep_alive: bool, change: Callable[[], None], host: str = HOST) -> Load:
    """Run ``change`` under load; no request may fail and nginx must not be reloaded."""
    master = router.master_pid
    workers = _workers(master)
    with Load(router.port, host, keep_alive) as load:
        change()
    assert load.failures == []
    assert load.count > 6 * CLIENTS
    assert router.master_pid == master
    # A reload would have replaced the workers (and cut their idle connections).
    assert _workers(master) == workers
    return load


def _workers(master: int | None) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == master:
                    found.add(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


KEEP_ALIVE = pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "new-connections"])


@KEEP_ALIVE
def test_deploy_loses_no_request(runtime: LocalRuntime, router: Router, keep_alive: bool) -> None:
    runtime.deploy(release(1), {"web": 2}, quiet)
    load = under_load(router, keep_alive, lambda: runtime.deploy(release(2), {"web": 2}, quiet))
    assert load.answers[-1]["greeting"] == "v2"


@KEEP_ALIVE
def test_config_change_loses_no_request(runtime: LocalRuntime, router: Router, keep_alive: bool) -> None:
    runtime.deploy(release(1), {"web": 1}, quiet)
    load = under_load(
        router, keep_alive, lambda: runtime.deploy(release(2, GREETING="changed"), {"web": 1}, quiet)
    )
    assert load.answers[-1]["greeting"] == "changed"


@KEEP_ALIVE
def test_scale_up_loses_no_request(runtime: LocalRuntime, router: Router, keep_alive: bool) -> None:
    runtime.deploy(release(1), {"web": 1}, quiet)
    load = under_load(router, keep_alive, lambda: runtime.scale("load", {"web": 3}, quiet))
    assert len({a["pid"] for a in load.answers[-30:]}) == 3


@KEEP_ALIVE
def test_scale_down_to_one_loses_no_request(runtime: LocalRuntime, router: Router, keep_alive: bool) -> None:
    runtime.deploy(release(1), {"web": 3}, quiet)
    load = under_load(router, keep_alive, lambda: runtime.scale("load", {"web": 1}, quiet))
    [web] = runtime.status("load")
    assert {a["pid"] for a in load.answers[-5:]} == {web.pid}


@KEEP_ALIVE
def test_restart_loses_no_request(runtime: LocalRuntime, router: Router, keep_alive: bool) -> None:
    runtime.deploy(release(1), {"web": 2}, quiet)
    before = {p.pid for p in runtime.status("load")}
    load = under_load(router, keep_alive, lambda: runtime.restart("load", None, quiet))
    assert not before & {a["pid"] for a in load.answers[-5:]}


# A request a process is answering when it is killed is lost whatever the router does
# (the client has its headers already); the app answers in one write, so a kill lands
# between answers, and requests sent to the dead process are retried on the other one.
@KEEP_ALIVE
def test_crashing_process_loses_no_request(runtime: LocalRuntime, router: Router, keep_alive: bool) -> None:
    runtime.deploy(release(1), {"web": 2}, quiet)
    victim = runtime.status("load")[0]

    def crash() -> None:
        assert victim.pid is not None
        os.killpg(victim.pid, signal.SIGKILL)
        wait_for(
            lambda: any(p.restarts == 1 and p.state == "up" for p in runtime.status("load")),
            what="the crashed process to be back",
        )
        time.sleep(0.3)  # load on the restarted process too

    under_load(router, keep_alive, crash)


@KEEP_ALIVE
def test_domains_add_loses_no_request(runtime: LocalRuntime, router: Router, keep_alive: bool) -> None:
    runtime.deploy(release(1), {"web": 1}, quiet)
    under_load(router, keep_alive, lambda: runtime.set_domains("load", ["www.load.example"]))
    assert request(router.port, "www.load.example")[0] == 200
    # The new domain is served under load too, while the app is scaled.
    under_load(router, keep_alive, lambda: runtime.scale("load", {"web": 2}, quiet), host="www.load.example")
