"""The release ledger, config and formation through the real HTTP API.

The ledger and the formation are the controller's own bookkeeping, and the refusals here
are its own checks, made before a runtime is asked; so the controller runs on
``InertRuntime``, which records what it is told (its ``run`` answers with what it would
run). Releases, scaling, restarts, runs and logs of real processes behind nginx are in
``test_cli_end_to_end.py`` and ``test_runtime_local.py``.
"""

from __future__ import annotations

import pytest

from tests.fixtures.platform import deploy_tarball, tar_of

SOURCE = {
    "Procfile": "# comment\n\nweb: python3 server.py\nworker: python3 worker.py\n",
    "server.py": "x = 1\n",
}


@pytest.fixture
def alice(controller):
    client = controller.user("alice")
    assert client.post("/v2/apps", json={"id": "shop"}).status_code == 201
    return client


def summaries(client, app="shop"):
    return [
        (r["version"], r["summary"], r["status"])
        for r in client.get(f"/v2/apps/{app}/releases").json()["results"]
    ]


def test_v1_on_create_and_each_config_change_is_a_release(alice):
    assert summaries(alice) == [(1, "alice created initial release", "succeeded")]
    r = alice.post("/v2/apps/shop/config", json={"values": {"FOO": "1", "BAR": "x"}})
    assert r.status_code == 201
    assert r.json()["values"] == {"FOO": "1", "BAR": "x"} and r.json()["release"]["version"] == 2
    alice.post("/v2/apps/shop/config", json={"values": {"FOO": "2", "BAZ": "z"}})
    alice.post("/v2/apps/shop/config", json={"values": {"BAR": None}})
    assert alice.get("/v2/apps/shop/config").json()["values"] == {"FOO": "2", "BAZ": "z"}
    assert summaries(alice) == [
        (4, "alice removed BAR", "succeeded"),
        (3, "alice added BAZ, changed FOO", "succeeded"),
        (2, "alice added BAR, FOO", "succeeded"),
        (1, "alice created initial release", "succeeded"),
    ]
    info = alice.get("/v2/apps/shop/releases/v3").json()
    assert info["config"] == {"FOO": "2", "BAR": "x", "BAZ": "z"} and info["created_by"] == "alice"


def test_unchanged_config_is_409_and_makes_no_release(alice):
    alice.post("/v2/apps/shop/config", json={"values": {"FOO": "1"}})
    for values in ({"FOO": "1"}, {"NOPE": None}):
        r = alice.post("/v2/apps/shop/config", json={"values": values})
        assert r.status_code == 409 and "nothing changed" in r.json()["message"]
    assert [v for v, _, _ in summaries(alice)] == [2, 1]


@pytest.mark.parametrize(
    "values,fragment",
    [
        ({"1FOO": "x"}, "invalid config key"),
        ({"FOO-BAR": "x"}, "invalid config key"),
        ({"": "x"}, "invalid config key"),
        ({"FOO": 1}, "must be a string"),
        ({"FOO": ["x"]}, "must be a string"),
        ({}, "give the variables"),
        ("FOO=1", "give the variables"),
    ],
)
def test_invalid_config_is_refused_and_changes_nothing(alice, values, fragment):
    r = alice.post("/v2/apps/shop/config", json={"values": values})
    assert r.status_code == 400 and fragment in r.json()["message"]
    assert len(summaries(alice)) == 1


def test_build_deploys_and_rollback_restores_build_and_config(alice, inert_runtime):
    alice.post("/v2/apps/shop/config", json={"values": {"GREETING": "hello"}})
    lines = deploy_tarball(alice, "shop", tar_of(SOURCE), source_version="3f2a9c1aaaa")
    assert any("Procfile declares types -> web, worker" in line.get("log", "") for line in lines)
    assert lines[-1]["result"]["version"] == 3
    spec = inert_runtime.deployed["shop"]
    assert spec.version == 3 and spec.processes == {"web": "python3 server.py", "worker": "python3 worker.py"}
    assert spec.env["GREETING"] == "hello" and spec.env["MOORAGE_RELEASE"] == "v3"
    assert spec.env["MOORAGE_APP"] == "shop" and spec.env["SOURCE_VERSION"] == "3f2a9c1aaaa"
    assert inert_runtime.formations["shop"] == {"web": 1}
    alice.post("/v2/apps/shop/config", json={"values": {"GREETING": "bonjour"}})
    assert inert_runtime.deployed["shop"].env["GREETING"] == "bonjour"
    r = alice.post("/v2/apps/shop/releases/rollback", json={"version": "v3"})
    assert r.status_code == 201 and r.json()["release"]["version"] == 5
    assert inert_runtime.deployed["shop"].env["GREETING"] == "hello"
    assert inert_runtime.deployed["shop"].env["MOORAGE_RELEASE"] == "v5"
    assert alice.get("/v2/apps/shop/config").json()["values"] == {"GREETING": "hello"}
    assert summaries(alice)[:3] == [
        (5, "alice rolled back to v3", "succeeded"),
        (4, "alice changed GREETING", "succeeded"),
        (3, "alice deployed 3f2a9c1", "succeeded"),
    ]
    # the default target is the release before the current one
    assert (
        alice.post("/v2/apps/shop/releases/rollback").json()["release"]["summary"]
        == "alice rolled back to v4"
    )
    for target, status in (("v1", 422), ("v99", 404), ("vx", 400), ("v²", 400), ("9" * 30, 400)):
        assert alice.post("/v2/apps/shop/releases/rollback", json={"version": target}).status_code == status
    assert alice.get("/v2/apps/shop/releases/%C2%B2").status_code == 400


def test_failed_deploy_is_marked_and_the_previous_release_stays_current(alice, inert_runtime):
    deploy_tarball(alice, "shop", tar_of(SOURCE))
    alice.post("/v2/apps/shop/config", json={"values": {"GREETING": "hello"}})
    inert_runtime.fail_deploys = True
    r = alice.post("/v2/apps/shop/config", json={"values": {"GREETING": "broken"}})
    assert r.status_code == 422 and "v4 of shop failed to deploy" in r.json()["message"]
    lines = deploy_tarball(alice, "shop", tar_of(SOURCE))
    assert "failed to deploy" in lines[-1]["error"]["message"]
    assert [(v, s) for v, _, s in summaries(alice)][:3] == [(5, "failed"), (4, "failed"), (3, "succeeded")]
    assert alice.get("/v2/apps/shop/config").json()["values"] == {"GREETING": "hello"}
    assert alice.get("/v2/apps/shop/releases/v4").json()["failure"].startswith("web.1 exited")
    assert inert_runtime.deployed["shop"].version == 3
    inert_runtime.fail_deploys = False
    r = alice.post("/v2/apps/shop/releases/rollback", json={"version": 4})
    assert r.status_code == 422 and "failed to deploy" in r.json()["message"]


def test_scale_ps_restart_run_logs(alice, inert_runtime):
    r = alice.post("/v2/apps/shop/scale", json={"web": 2})
    assert r.status_code == 422 and "not been deployed" in r.json()["message"]
    deploy_tarball(alice, "shop", tar_of(SOURCE))
    r = alice.post("/v2/apps/shop/scale", json={"web": 3, "worker": 1})
    assert r.status_code == 200 and r.json()["structure"] == {"web": 3, "worker": 1}
    assert inert_runtime.formations["shop"] == {"web": 3, "worker": 1}
    assert len(summaries(alice)) == 2  # scaling makes no release
    pods = alice.get("/v2/apps/shop/pods").json()["results"]
    assert [p["name"] for p in pods] == ["web.1", "web.2", "web.3", "worker.1"]
    assert all(p["release"] == "v2" and p["state"] == "up" for p in pods)
    for body, fragment in [
        ({"clock": 1}, "no process type 'clock'"),
        ({"web": -1}, "invalid count"),
        ({"web": 101}, "invalid count"),
        ({"web": "2"}, "invalid count"),
        ({"web": True}, "invalid count"),
        ({}, "give process counts"),
    ]:
        r = alice.post("/v2/apps/shop/scale", json=body)
        assert r.status_code == 400 and fragment in r.json()["message"], body
    assert inert_runtime.formations["shop"] == {"web": 3, "worker": 1}
    assert alice.get("/v2/apps/shop").json()["structure"] == {"web": 3, "worker": 1}
    assert alice.post("/v2/apps/shop/pods/web/restart").status_code == 200
    assert alice.post("/v2/apps/shop/pods/clock/restart").status_code == 400
    assert ("shop", "restart web") in inert_runtime.events
    r = alice.post("/v2/apps/shop/run", json={"command": "echo hi"})
    assert r.json() == {"exit_code": 0, "output": "would run 'echo hi' in v2\n"}
    assert alice.post("/v2/apps/shop/run", json={"command": " "}).status_code == 400
    text = alice.get("/v2/apps/shop/logs", params={"lines": 2}).text.splitlines()
    assert len(text) == 2 and text[-1].endswith("moorage[api]: restart web")
    assert alice.get("/v2/apps/shop/logs", params={"lines": 0}).status_code == 400


def test_a_crash_looping_live_release_shows_as_crashed(alice, inert_runtime):
    deploy_tarball(alice, "shop", tar_of(SOURCE))
    inert_runtime.crashed["shop"] = 2
    assert summaries(alice)[0][2] == "crashed"
    assert alice.get("/v2/apps/shop/releases/v2").json()["status"] == "crashed"
    alice.post("/v2/apps/shop/config", json={"values": {"FIX": "1"}})  # still the base of new releases
    inert_runtime.crashed.pop("shop")
    assert [s for _, _, s in summaries(alice)][:2] == ["succeeded", "succeeded"]
