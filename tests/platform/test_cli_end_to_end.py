"""End to end through the CLI: a Procfile app on the real LocalRuntime and nginx router."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time

import pytest

from tests.fixtures.platform import APPS_DIR
from tests.polling import wait_for

HOST = "shop.moorage.localhost"


def served(live, host: str = HOST) -> dict:
    status, body = live.get(host)
    assert status == 200, body
    return json.loads(body)


def use_source(cli, name: str) -> None:
    for child in cli.cwd.iterdir():
        if child.name != ".moorage":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.copytree(APPS_DIR / name, cli.cwd, dirs_exist_ok=True)


@pytest.mark.slow
def test_an_app_lives_through_the_cli(live_platform, live_cli):
    live, cli = live_platform, live_cli
    cli.logged_in_as("alice")
    cli.ok("apps:create", "shop")
    use_source(cli, "echo")
    out = cli.ok("deploy")
    assert "Done, shop v2 deployed" in out
    first = served(live)
    assert first["greeting"] == "hello" and first["release"] == "v2"

    # config:set → a new release, and the new value is served
    assert "alice added GREETING -> shop v3" in cli.ok("config:set", "GREETING=bonjour")
    assert served(live) == {**served(live), "greeting": "bonjour", "release": "v3"}

    # scale web=3 → answers come from three different processes
    assert "web=3" in cli.ok("scale", "web=3")

    def three_pids():
        pids = {served(live)["pid"] for _ in range(12)}
        return pids if len(pids) == 3 else None

    wait_for(three_pids, what="three different web processes answering")
    ps = json.loads(cli.ok("ps", "--json"))
    assert sorted(p["name"] for p in ps) == ["web.1", "web.2", "web.3"]
    assert all(p["state"] == "up" and p["release"] == "v3" for p in ps)

    # rollback restores the old value
    assert "alice rolled back to v2 -> shop v4" in cli.ok("rollback", "v2")
    assert served(live)["greeting"] == "hello"

    # logs show the app's output
    wait_for(lambda: "echo app listening on" in cli.ok("logs", "-n", "200"), what="app output in logs")
    assert "app[web." in cli.ok("logs", "-n", "200")

    # run: output and exit code
    result = cli("run", "echo from-run $MOORAGE_RELEASE; exit 3")
    assert result.exit_code == 3 and "from-run v4" in result.output

    # killing a process → it is restarted
    victim = json.loads(cli.ok("ps", "--json"))[0]
    os.killpg(victim["pid"], signal.SIGKILL)
    wait_for(
        lambda: any(p["restarts"] >= 1 and p["state"] == "up" for p in json.loads(cli.ok("ps", "--json"))),
        what="the killed process to be restarted",
    )

    # an app that crashes on boot → release failed, the old one still serves
    use_source(cli, "crasher")
    result = cli("deploy")
    assert result.exit_code == 1 and "failed to deploy" in result.output
    assert "boom: refusing to start" in result.output
    releases = json.loads(cli.ok("releases", "--json"))
    assert (releases[0]["version"], releases[0]["status"]) == (5, "failed")
    assert served(live)["greeting"] == "hello" and served(live)["release"] == "v4"
    assert json.loads(cli.ok("config", "--json")) == {}

    # custom domains are routed
    cli.ok("domains:add", "www.example.com")
    assert served(live, "www.example.com")["release"] == "v4"
    cli.ok("domains:remove", "www.example.com")
    assert live.get("www.example.com")[0] == 404

    # destroy stops everything
    cli.ok("apps:destroy", "--confirm", "shop")
    assert live.get(HOST)[0] == 404
    assert live.runtime.status("shop") == []


@pytest.mark.slow
def test_apps_come_back_after_a_controller_restart(live_platform, live_cli):
    from moorage.platform.runtime.local import LocalRuntime
    from tests.fixtures.platform import serve_controller

    live, cli = live_platform, live_cli
    cli.logged_in_as("alice")
    cli.ok("apps:create", "shop")
    use_source(cli, "echo")
    cli.ok("deploy")
    cli.ok("config:set", "GREETING=persisted")
    cli.ok("scale", "web=2")
    cli.ok("domains:add", "shop.example.com")
    assert served(live, "shop.example.com")["greeting"] == "persisted"

    live.runtime.close()  # the controller process stops, and its app processes with it
    wait_for(lambda: live.get(HOST)[0] in (502, 503), what="the app to be down")

    settings = live.controller.settings
    runtime = LocalRuntime(settings, live.router)
    try:
        with serve_controller(settings, runtime) as again:
            again.flask_app.extensions["moorage.resume"].join(timeout=30)
            data = served(live, "shop.example.com")
            assert (data["greeting"], data["release"]) == ("persisted", "v3")
            assert sorted((p.name, p.state) for p in runtime.status("shop")) == [
                ("web.1", "up"),
                ("web.2", "up"),
            ]
            token = json.loads((cli.home / ".moorage" / "cli.json").read_text())["token"]
            releases = again.client(token).get("/v2/apps/shop/releases").json()["results"]
            assert [r["version"] for r in releases] == [3, 2, 1]  # restarting made no release
    finally:
        runtime.close()


@pytest.mark.slow
def test_no_request_fails_during_ten_config_changes_and_deploys(live_platform, live_cli):
    live, cli = live_platform, live_cli
    cli.logged_in_as("alice")
    cli.ok("apps:create", "shop")
    use_source(cli, "echo")
    cli.ok("deploy")
    cli.ok("scale", "web=2")
    failures: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                status, body = live.get(HOST)
            except Exception as exc:  # a refused or reset connection is a failed request
                failures.append(repr(exc))
                continue
            if status != 200:
                failures.append(f"{status} {body[:80]!r}")
            else:
                seen.add(json.loads(body)["greeting"])

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for n in range(5):
            cli.ok("config:set", f"GREETING=g{n}")
            cli.ok("deploy")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert {"g0", "g4"} <= seen
    assert served(live)["release"] == "v12"


@pytest.mark.slow
def test_logs_follow_streams_new_lines(live_platform, live_cli):
    live, cli = live_platform, live_cli
    cli.logged_in_as("alice")
    cli.ok("apps:create", "shop")
    use_source(cli, "echo")
    cli.ok("deploy")
    token = json.loads((cli.home / ".moorage" / "cli.json").read_text())["token"]
    client = live.controller.client(token)
    changer = threading.Timer(0.5, lambda: cli.ok("config:set", "GREETING=streamed"))
    with client.stream("GET", "/v2/apps/shop/logs", params={"lines": 1, "follow": 1}) as response:
        assert response.status_code == 200
        changer.start()
        deadline = time.monotonic() + 20
        for line in response.iter_lines():
            if "moorage[deploy]" in line and "v3" in line:
                break
            assert time.monotonic() < deadline, "no deploy line streamed"
        else:
            pytest.fail("the log stream ended before the deploy of v3 was streamed")
    changer.join()


def test_scale_ps_restart_of_one_type_and_refusals_through_the_cli(live_platform, live_cli):
    cli = live_cli
    cli.logged_in_as("alice")
    cli.ok("apps:create", "shop")
    use_source(cli, "echo")
    cli.ok("deploy")
    assert "Scaled shop: web=2 worker=1" in cli.ok("scale", "web=2", "worker=1")
    before = {p["name"]: p for p in json.loads(cli.ok("ps", "--json"))}
    assert sorted(before) == ["web.1", "web.2", "worker.1"]
    assert all(p["state"] == "up" for p in before.values())
    assert "worker.1" in cli.ok("ps")

    result = cli("scale", "clock=1")
    assert result.exit_code == 1 and "no process type 'clock'" in result.output
    assert sorted(p["name"] for p in json.loads(cli.ok("ps", "--json"))) == sorted(before)

    assert "Restarted web processes of shop" in cli.ok("ps:restart", "web")
    after = {p["name"]: p for p in json.loads(cli.ok("ps", "--json"))}
    assert all(after[n]["pid"] != before[n]["pid"] for n in ("web.1", "web.2")), "web was restarted"
    assert after["worker.1"]["pid"] == before["worker.1"]["pid"], "the worker was left alone"
    wait_for(lambda: "worker up" in cli.ok("logs", "-n", "200"), what="the worker's output in the logs")
