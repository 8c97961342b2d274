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

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from moorage.platform.router import Router
from moorage.platform.runtime.base import ReleaseSpec
from moorage.platform.runtime.local import LocalRuntime
from moorage.settings import Settings
from tests.fixtures.router import CLIENTS, KEEP_ALIVE, Load, nginx_workers, router_settings
from tests.host_requests import request
from tests.polling import wait_for

APP_DIR = Path(__file__).resolve().parent.parent / "apps" / "rt_echo"
HOST = "load.moorage.localhost"


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


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return router_settings(data_dir, stop_grace_seconds=2.0, deploy_timeout_seconds=20.0)


def under_load(router: Router, keep_alive: bool, change: Callable[[], None], host: str = HOST) -> Load:
    """Run ``change`` under load; no request may fail and nginx must not be reloaded."""
    master = router.master_pid
    workers = nginx_workers(master)
    with Load(router.port, host, keep_alive) as load:
        change()
    assert load.failures == []
    assert load.count > 6 * CLIENTS
    assert router.master_pid == master
    # A reload would have replaced the workers (and cut their idle connections).
    assert nginx_workers(master) == workers
    return load


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
