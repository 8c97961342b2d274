"""LocalRuntime with real processes behind a real nginx router."""

from __future__ import annotations

import json
import os
import signal
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from moorage.errors import InvalidParametersError, NotFoundError, UnprocessableError
from moorage.platform.router import Router
from moorage.platform.runtime.base import ReleaseSpec
from moorage.platform.runtime.local import LocalRuntime
from moorage.settings import Settings
from tests.fixtures.router import router_settings
from tests.host_requests import request
from tests.polling import wait_for

APP_DIR = Path(__file__).resolve().parent.parent / "apps" / "rt_echo"
PROCFILE = {
    "web": "python3 app.py --port ${PORT:-5000} && echo never  # a comment",
    "worker": "python3 -c \"import time, os; print('worker up', os.getpid(), flush=True); time.sleep(3600)\"",
}
HOST = "echo.moorage.localhost"


def release(version: int, **env: str) -> ReleaseSpec:
    return ReleaseSpec(
        app="echo",
        version=version,
        slug=str(APP_DIR),
        env={"MOORAGE_APP": "echo", "MOORAGE_RELEASE": f"v{version}", **env},
        processes=PROCFILE,
    )


def quiet(_line: str) -> None:
    pass


def running(pid: int | None) -> bool:
    """Alive and not a zombie waiting to be reaped by init."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return router_settings(
        data_dir,
        stop_grace_seconds=2.0,
        deploy_timeout_seconds=15.0,
        process_memory_mb=300,
        process_open_files=200,
    )


def get(router: Router, path: str = "/") -> dict:
    status, body, _ = request(router.port, HOST, path)
    assert status == 200, body
    return json.loads(body)


def test_deploy_serves_as_unprivileged_user_with_limits(
    runtime: LocalRuntime, router: Router, data_dir: Path
) -> None:
    lines: list[str] = []
    runtime.deploy(release(1, GREETING="hello"), {"web": 1}, lines.append)
    data = get(router)
    assert data["greeting"] == "hello"
    assert data["release"] == "v1"
    assert data["dyno"] == "web.1"
    assert data["profile"] == "profile-ran"
    assert data["env_port"] == str(data["port"])
    assert data["cwd"] == str(data_dir / "releases" / "echo" / "v1")
    assert data["uid"] != 0
    assert data["limits"] == {"data": 300 * 1024 * 1024, "nofile": 200, "nproc": 256}
    assert any("v1 is up" in line for line in lines)
    [web] = runtime.status("echo")
    assert (web.name, web.state, web.release, web.port, web.restarts) == ("web.1", "up", 1, data["port"], 0)
    # The release directory is read-only for the app.
    status = runtime.run_once(release(1), "touch app.py || echo refused; id -u")
    assert "refused" in status.output
    assert status.output.strip().endswith(str(data["uid"]))
    # Logs: the app's output, platform events and the router's access lines.
    wait_for(
        lambda: (
            {"app[web.1]", "moorage[deploy]", "moorage[router]"}
            <= {line.source for line in runtime.logs("echo", 100)}
        ),
        what="app, deploy and router log lines",
    )
    text = (data_dir / "logs" / "echo.log").read_text()
    assert "app[web.1]: listening on" in text


def test_config_change_scale_and_worker(runtime: LocalRuntime, router: Router) -> None:
    runtime.deploy(release(1, GREETING="one"), {"web": 1}, quiet)
    first = get(router)["pid"]
    runtime.deploy(release(2, GREETING="two"), {"web": 1}, quiet)
    data = get(router)
    assert data["greeting"] == "two"
    assert data["pid"] != first
    assert not running(first)
    runtime.scale("echo", {"web": 3, "worker": 1}, quiet)
    pids = {get(router)["pid"] for _ in range(9)}
    assert len(pids) == 3
    states = {(p.name, p.state, p.release) for p in runtime.status("echo")}
    assert states == {("web.1", "up", 2), ("web.2", "up", 2), ("web.3", "up", 2), ("worker.1", "up", 2)}
    assert data["pid"] in pids  # scaling up kept the running process
    runtime.scale("echo", {"web": 0}, quiet)
    status, body, _ = request(router.port, HOST)
    assert status == 503
    wait_for(
        lambda: any(line.line.startswith("worker up") for line in runtime.logs("echo")), what="worker output"
    )


def test_killed_process_is_restarted(runtime: LocalRuntime, router: Router) -> None:
    runtime.deploy(release(1), {"web": 1}, quiet)
    pid = get(router)["pid"]
    [web] = runtime.status("echo")
    os.killpg(web.pid, signal.SIGKILL)
    wait_for(lambda: [p.restarts for p in runtime.status("echo")] == [1], what="a restart")
    wait_for(lambda: runtime.status("echo")[0].state == "up", what="the restarted process to be up")
    assert get(router)["pid"] != pid
    assert any("Process exited with status" in line.line for line in runtime.logs("echo"))


def test_crash_on_boot_fails_deploy_and_old_release_serves(runtime: LocalRuntime, router: Router) -> None:
    runtime.deploy(release(1, GREETING="stable"), {"web": 1}, quiet)
    with pytest.raises(UnprocessableError) as caught:
        runtime.deploy(release(2, CRASH_ON_BOOT="1"), {"web": 1}, quiet)
    assert "web.1" in str(caught.value)
    assert "boom: refusing to start" in str(caught.value)
    assert "v1 keeps running" in str(caught.value)
    assert get(router)["greeting"] == "stable"
    assert [(p.release, p.state) for p in runtime.status("echo")] == [(1, "up")]


def test_zero_downtime_during_ten_deploys(runtime: LocalRuntime, router: Router) -> None:
    runtime.deploy(release(1, GREETING="v1"), {"web": 2}, quiet)
    failures: list[str] = []
    served: set[str] = set()
    count = 0
    stop = threading.Event()

    def hammer() -> None:
        nonlocal count
        while not stop.is_set():
            try:
                status, body, _ = request(router.port, HOST)
                if status != 200:
                    failures.append(f"{status} {body[:80]!r}")
                else:
                    served.add(json.loads(body)["greeting"])
            except OSError as exc:
                failures.append(repr(exc))
            count += 1

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for version in range(2, 12):
            runtime.deploy(release(version, GREETING=f"v{version}"), {"web": 2}, quiet)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert count > 100
    assert "v11" in served and len(served) >= 5
    assert get(router)["greeting"] == "v11"


def test_run_once_returns_output_and_exit_code(runtime: LocalRuntime) -> None:
    result = runtime.run_once(release(3, GREETING="hi"), 'echo "$GREETING $MOORAGE_RELEASE" && exit 3')
    assert (result.exit_code, result.output) == (3, "hi v3\n")
    result = runtime.run_once(release(3), "sleep 30", timeout=0.5)
    assert result.exit_code == 124
    assert "stopped after" in result.output
    # Endless output: only the tail is kept, never everything the command printed.
    from moorage.platform.runtime.local import RUN_OUTPUT_LIMIT

    result = runtime.run_once(release(3), "yes moorage", timeout=1.0)
    assert result.exit_code == 124
    assert len(result.output) <= RUN_OUTPUT_LIMIT + 100
    assert "moorage\nmoorage\n" in result.output and "stopped after" in result.output


def test_bad_input_changes_nothing(runtime: LocalRuntime, router: Router) -> None:
    with pytest.raises(NotFoundError):
        runtime.scale("echo", {"web": 2}, quiet)
    runtime.deploy(release(1), {"web": 1}, quiet)
    before = runtime.status("echo")
    for formation in ({"clock": 1}, {"web": -1}, {"web": "2"}, {"Web!": 1}, {"web": 1000}):
        with pytest.raises(InvalidParametersError):
            runtime.scale("echo", formation, quiet)
    with pytest.raises(InvalidParametersError):
        runtime.restart("echo", "clock", quiet)
    with pytest.raises(InvalidParametersError):
        runtime.deploy(release(2), {"clock": 1}, quiet)
    with pytest.raises(InvalidParametersError):
        runtime.set_domains("echo", ["bad domain"])
    assert runtime.status("echo") == before
    assert get(router)["release"] == "v1"


def test_restart_domains_and_redeploy_after_controller_restart(
    settings: Settings, runtime: LocalRuntime, router: Router
) -> None:
    runtime.deploy(release(1), {"web": 2}, quiet)
    pids = {p.pid for p in runtime.status("echo")}
    runtime.deploy(release(1), {"web": 2}, quiet)  # same release: processes are kept
    assert {p.pid for p in runtime.status("echo")} == pids
    runtime.restart("echo", "web", quiet)
    assert not pids & {p.pid for p in runtime.status("echo")}
    runtime.set_domains("echo", ["www.echo.example"])
    assert request(router.port, "www.echo.example")[0] == 200
    # A new runtime (the controller restarted) deploys again; close() stopped the old children.
    runtime.close()
    assert not any(running(p.pid) for p in runtime.status("echo"))
    again = LocalRuntime(settings, router)
    try:
        again.deploy(release(1), {"web": 1}, quiet)
        assert get(router)["release"] == "v1"
        again.destroy("echo")
        assert request(router.port, HOST)[0] == 404
        assert not (settings.data_dir / "releases" / "echo").exists()
    finally:
        again.close()


def test_follow_yields_new_lines(runtime: LocalRuntime, router: Router) -> None:
    runtime.deploy(release(1), {"web": 1}, quiet)
    stream = runtime.logs("echo", lines=0, follow=True)
    got: list[str] = []

    def read() -> None:
        for line in stream:
            got.append(line.line)
            if "/followed" in line.line:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    request(router.port, HOST, "/followed")
    reader.join(timeout=10)
    assert any("/followed" in line for line in got)


def test_web_process_that_never_listens_fails_within_the_timeout(settings: Settings, router: Router) -> None:
    quick = settings.with_group(platform={"deploy_timeout_seconds": 1.0})
    rt = LocalRuntime(quick, router)
    try:
        silent = ReleaseSpec("echo", 1, str(APP_DIR), {}, {"web": "echo 'not listening'; sleep 30"})
        with pytest.raises(UnprocessableError, match=r"web\.1 did not answer on port \d+") as caught:
            rt.deploy(silent, {"web": 1}, quiet)
        assert "not listening" in str(caught.value)
        assert rt.status("echo") == []
        assert request(router.port, HOST)[0] == 404
    finally:
        rt.close()


def test_processes_left_by_a_dead_moorage_are_killed(data_dir: Path) -> None:
    import subprocess

    from moorage.platform.runtime.orphans import kill_orphans, record_processes

    leftover = subprocess.Popen(["sleep", "60"], start_new_session=True)
    unrelated = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        record_processes(data_dir, "echo", [leftover.pid])
        assert kill_orphans(data_dir, "echo") == 1
        assert leftover.wait(timeout=5) == -signal.SIGKILL
        assert unrelated.poll() is None
        assert kill_orphans(data_dir, "echo") == 0
    finally:
        for p in (leftover, unrelated):
            p.kill()
            p.wait()


def test_each_app_runs_under_its_own_uid_and_cannot_read_another_apps_environment(
    runtime: LocalRuntime, router: Router
) -> None:
    """Needs Moorage to run as root (as the suite does here and in CI): only root can switch uids.

    The uids are the controller's (``ReleaseSpec.uid``); a release without one runs as
    ``run_as_user``.
    """
    assert os.geteuid() == 0, "this test is about uids: it runs as root, like the suite"
    echo = replace(release(1, SECRET="echo-only"), uid=47201)
    other = replace(release(1, SECRET="other-only"), app="other", uid=47202)
    runtime.deploy(echo, {"web": 1}, quiet)
    runtime.deploy(other, {"web": 1}, quiet)
    [echo_web] = runtime.status("echo")
    [other_web] = runtime.status("other")
    assert int(runtime.run_once(echo, "id -u").output.strip()) == 47201
    assert int(runtime.run_once(other, "id -u").output.strip()) == 47202
    # Another app's environment (its config and credentials) is not readable...
    peek = runtime.run_once(echo, f"cat /proc/{other_web.pid}/environ >/dev/null && echo READ || echo denied")
    assert "denied" in peek.output and "READ" not in peek.output
    # ...while its own processes' is.
    own = runtime.run_once(echo, f"tr '\\0' '\\n' < /proc/{echo_web.pid}/environ | grep SECRET")
    assert own.output.strip() == "SECRET=echo-only"
    # A release made by hand, without a uid, runs as run_as_user (nobody), never as root.
    assert int(runtime.run_once(release(1), "id -u").output.strip()) == 65534


def test_a_process_that_keeps_crashing_is_restarted_with_backoff_and_its_release_marked_crashed(
    settings: Settings, router: Router
) -> None:
    runtime = LocalRuntime(settings.with_group(platform={"restart_backoff_seconds": 0.05}), router)
    try:
        crashy = replace(release(1), processes={**PROCFILE, "worker": "echo 'starting'; sleep 1; exit 1"})
        runtime.deploy(crashy, {"web": 1, "worker": 1}, quiet)
        wait_for(lambda: runtime.crashed_release("echo") == 1, timeout=20)
        worker = next(p for p in runtime.status("echo") if p.type == "worker")
        assert worker.restarts >= 4
        assert get(router)["release"] == "v1", "the web process keeps serving"
        wait_for(
            lambda: any(
                "v1 crashed: worker.1 keeps exiting" in line.line for line in runtime.logs("echo", 200)
            ),
            timeout=10,
        )
    finally:
        runtime.close()
