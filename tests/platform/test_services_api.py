"""The bridge over the controller API against real brokers (the no-op offering).

The controller runs with the inert runtime (no processes): what a binding does to the
app shows in its config and release ledger. The broker is a real one over HTTP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from moorage.settings import Settings
from moorage.store import models as broker_models
from tests.fixtures.broker import PASSWORD, RunningBroker
from tests.fixtures.platform import Cli, Controller, InertRuntime, serve_controller
from tests.polling import wait_for


def controller_for(data_dir: Path, broker: RunningBroker, runtime: InertRuntime, **platform: Any) -> Any:
    settings = Settings(data_dir=data_dir).with_group(
        broker={"port": broker.settings.broker.port, "password": PASSWORD},
        platform={"osb_max_polling_seconds": 30.0, **platform},
    )
    return serve_controller(settings, runtime)


@pytest.fixture
def noop_broker(make_broker: Any) -> RunningBroker:
    return make_broker()


@pytest.fixture
def ctl(tmp_path: Path, noop_broker: RunningBroker, inert_runtime: InertRuntime) -> Iterator[Controller]:
    with controller_for(tmp_path / "ctl", noop_broker, inert_runtime) as c:
        yield c


def create(client: httpx.Client, name: str, plan: str = "sync", **extra: Any) -> tuple[int, list[dict]]:
    body = {"service": "noop", "plan": plan, "name": name, **extra}
    with client.stream("POST", "/v2/services", json=body) as r:
        r.read()
        if r.headers.get("content-type", "").startswith("application/x-ndjson"):
            return r.status_code, [json.loads(line) for line in r.text.splitlines() if line.strip()]
        return r.status_code, [r.json()]


def config(client: httpx.Client, app: str) -> dict[str, str]:
    r = client.get(f"/v2/apps/{app}/config", params={"reveal": "1"})
    assert r.status_code == 200, r.text
    return r.json()["values"]


def broker_bindings(broker: RunningBroker) -> int:
    with broker.runtime.db.unit_of_work() as s:
        query = select(func.count()).select_from(broker_models.ServiceBinding)
        return s.scalar(query.where(broker_models.ServiceBinding.status != broker_models.GONE)) or 0


def test_builtin_broker_and_marketplace(ctl: Controller) -> None:
    admin = ctl.user("admin")
    brokers = admin.get("/v2/brokers").json()["results"]
    assert [(b["name"], b["builtin"]) for b in brokers] == [("moorage", True)]
    market = admin.get("/v2/marketplace").json()
    assert market["warnings"] == []
    (noop,) = market["results"]
    assert (noop["name"], noop["broker"], noop["bindable"]) == ("noop", "moorage", True)
    assert [p["name"] for p in noop["plans"]] == ["sync", "async", "no-maintenance"]
    detail = admin.get("/v2/marketplace/noop").json()
    assert detail["config_vars"] == ["NOOP_PASSWORD", "NOOP_URL", "NOOP_USERNAME"]
    assert "steps" in detail["plans"][0]["parameters"]["create"]["properties"]
    assert admin.get("/v2/marketplace/nosuch").json()["message"].startswith("no service 'nosuch'")
    # Brokers are for admins only.
    bob = ctl.user("bob")
    assert bob.get("/v2/brokers").status_code == 403
    assert bob.post("/v2/brokers", json={"name": "x"}).status_code == 403


def test_brokers_add_refresh_remove(ctl: Controller, make_broker: Any) -> None:
    admin = ctl.user("admin")
    other = make_broker()
    body = {"name": "other", "url": other.url, "username": "moorage", "password": PASSWORD}
    r = admin.post("/v2/brokers", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["services"] == ["noop"]
    assert admin.post("/v2/brokers", json=body).status_code == 409
    bad = admin.post("/v2/brokers", json={**body, "name": "bad", "password": "wrong"})
    assert bad.status_code == 502 and "401" in bad.json()["message"]
    assert admin.post("/v2/brokers", json={**body, "name": "x", "url": "ftp://x"}).status_code == 400
    assert [b["name"] for b in admin.get("/v2/brokers").json()["results"]] == ["moorage", "other"]
    refreshed = admin.post("/v2/brokers/other/refresh").json()
    assert refreshed["changed"] is False and refreshed["fetched"]

    # Two brokers offer noop: the user chooses.
    status, lines = create(admin, "db1")
    assert status == 400 and "choose one with --broker" in lines[0]["message"]
    status, lines = create(admin, "db1", broker="other")
    assert status == 200 and lines[-1]["result"]["broker"] == "other", lines
    assert other.client.last_operation(lines[-1]["result"]["id"]).json()["state"] == "succeeded"

    r = admin.delete("/v2/brokers/other")
    assert r.status_code == 409 and "still has 1 service instance" in r.json()["message"]
    assert admin.delete("/v2/services/db1").status_code == 200
    assert admin.delete("/v2/brokers/other").status_code == 204
    assert admin.delete("/v2/brokers/moorage").status_code == 409


def test_bind_unbind_rotate_write_config_releases(ctl: Controller, noop_broker: RunningBroker) -> None:
    alice = ctl.user("alice")
    assert alice.post("/v2/apps", json={"id": "shop"}).status_code == 201
    status, lines = create(alice, "cache")
    assert status == 200 and lines[-1]["result"]["state"] == "ready", lines
    assert create(alice, "cache")[1][0]["code"] == "conflict"
    create(alice, "cache2")

    r = alice.post("/v2/services/cache/bindings", json={"app": "shop"})
    assert r.status_code == 201, r.text
    assert r.json()["release"]["summary"] == "alice attached cache (noop) as NOOP"
    values = config(alice, "shop")
    assert sorted(values) == ["NOOP_PASSWORD", "NOOP_URL", "NOOP_USERNAME", "VCAP_SERVICES"]
    assert values["NOOP_URL"].startswith(f"noop://{values['NOOP_USERNAME']}:{values['NOOP_PASSWORD']}@")
    vcap = json.loads(values["VCAP_SERVICES"])
    assert list(vcap) == ["noop"]
    (entry,) = vcap["noop"]
    assert entry["name"] == entry["instance_name"] == "cache"
    assert (entry["label"], entry["plan"], entry["tags"]) == ("noop", "sync", ["test"])
    assert entry["credentials"]["password"] == values["NOOP_PASSWORD"]

    # Another noop binding needs its own names; it never overwrites the first binding's.
    r = alice.post("/v2/services/cache2/bindings", json={"app": "shop"})
    assert r.status_code == 409 and "--as" in r.json()["message"]
    assert config(alice, "shop") == values
    r = alice.post("/v2/services/cache2/bindings", json={"app": "shop", "as": "python"})
    assert r.status_code == 400 and "would set PYTHON_" in r.json()["message"], "a runtime's name"
    assert config(alice, "shop") == values
    r = alice.post("/v2/services/cache2/bindings", json={"app": "shop", "as": "second"})
    assert r.status_code == 201, r.text
    values2 = config(alice, "shop")
    assert values2["SECOND_URL"] != values2["NOOP_URL"]
    assert sorted(json.loads(values2["VCAP_SERVICES"])["noop"][i]["name"] for i in (0, 1)) == [
        "cache",
        "cache2",
    ]
    assert alice.post("/v2/services/cache/bindings", json={"app": "shop", "as": "x"}).status_code == 409

    # Service-provided values are masked unless revealed, and config:set needs force for them.
    shown = alice.get("/v2/apps/shop/config").json()["values"]
    assert shown["NOOP_URL"] == "********" and shown["VCAP_SERVICES"] == "********"
    r = alice.post("/v2/apps/shop/config", json={"values": {"NOOP_URL": "x", "OTHER": "y"}})
    assert r.status_code == 409 and "--force" in r.json()["message"]
    assert alice.post("/v2/apps/shop/config", json={"values": {"SECOND_URL": None}}).status_code == 409
    assert config(alice, "shop") == values2
    r = alice.post("/v2/apps/shop/config", json={"values": {"PLAIN": "1"}})
    assert r.status_code == 201 and r.json()["values"]["SECOND_URL"] == "********"
    r = alice.post("/v2/apps/shop/config", json={"values": {"PLAIN": None}})
    # The release ledger masks them the same way.
    latest = alice.get("/v2/apps/shop/releases").json()["results"][0]["version"]
    release = alice.get(f"/v2/apps/shop/releases/v{latest}").json()
    assert release["config"]["NOOP_PASSWORD"] == "********"
    revealed = alice.get(f"/v2/apps/shop/releases/v{latest}", params={"reveal": "1"}).json()
    assert revealed["config"]["NOOP_PASSWORD"] == values2["NOOP_PASSWORD"]

    listed = {i["name"]: i for i in alice.get("/v2/services").json()["results"]}
    assert listed["cache"]["apps"] == ["shop"] and listed["cache"]["state"] == "ready"

    # Rotate: same names, new credentials, one binding at the broker per service again.
    before = broker_bindings(noop_broker)
    r = alice.post("/v2/services/cache/bindings/shop/rotate")
    assert r.status_code == 200, r.text
    rotated = config(alice, "shop")
    assert sorted(rotated) == sorted(values2)
    assert rotated["NOOP_PASSWORD"] != values2["NOOP_PASSWORD"]
    assert rotated["SECOND_URL"] == values2["SECOND_URL"]
    assert broker_bindings(noop_broker) == before

    # Destroy is refused while bound.
    r = alice.delete("/v2/services/cache")
    assert r.status_code == 409 and "--unbind" in r.json()["message"]

    # Unbind removes exactly that binding's vars.
    r = alice.delete("/v2/services/cache/bindings/shop")
    assert r.status_code == 200, r.text
    assert r.json()["removed"] == ["NOOP_PASSWORD", "NOOP_URL", "NOOP_USERNAME"]
    after = config(alice, "shop")
    assert sorted(after) == ["SECOND_PASSWORD", "SECOND_URL", "SECOND_USERNAME", "VCAP_SERVICES"]
    assert [e["name"] for e in json.loads(after["VCAP_SERVICES"])["noop"]] == ["cache2"]
    assert broker_bindings(noop_broker) == before - 1
    assert alice.delete("/v2/services/cache/bindings/shop").status_code == 404

    # destroy --unbind: the release drops the vars, the broker forgets both.
    r = alice.delete("/v2/services/cache2", params={"unbind": "1"})
    assert r.status_code == 200, r.text
    assert config(alice, "shop") == {}
    assert broker_bindings(noop_broker) == 0
    summaries = [rel["summary"] for rel in alice.get("/v2/apps/shop/releases").json()["results"]]
    assert summaries[:2] == ["alice detached cache2", "alice detached cache"]


def test_other_users_cannot_see_or_bind(ctl: Controller) -> None:
    alice, bob = ctl.user("alice"), ctl.user("bob")
    create(alice, "mine")
    bob.post("/v2/apps", json={"id": "bobs"})
    assert bob.get("/v2/services/mine").status_code == 404
    assert bob.post("/v2/services/mine/bindings", json={"app": "bobs"}).status_code == 404
    assert bob.get("/v2/services").json()["results"] == []
    assert create(bob, "Bad_Name")[1][0]["code"] == "invalid"


def test_failed_bind_changes_nothing_and_is_cleaned_up(ctl: Controller, noop_broker: RunningBroker) -> None:
    alice = ctl.user("alice")
    alice.post("/v2/apps", json={"id": "shop"})
    create(alice, "svc")
    releases = alice.get("/v2/apps/shop/releases").json()["results"]
    r = alice.post(
        "/v2/services/svc/bindings", json={"app": "shop", "parameters": {"fail": "refused by test"}}
    )
    assert r.status_code == 502 and "refused by test" in r.json()["message"], r.text
    assert alice.get("/v2/apps/shop/releases").json()["results"] == releases
    assert config(alice, "shop") == {}
    assert alice.get("/v2/services/svc").json()["bindings"] == []
    assert broker_bindings(noop_broker) == 0  # the platform's DELETE removed it at the broker


def test_async_create_streams_progress_and_can_run_in_the_background(ctl: Controller) -> None:
    alice = ctl.user("alice")
    status, lines = create(alice, "slow", plan="async", parameters={"steps": 3, "step_seconds": 0.1})
    assert status == 200 and lines[-1]["result"]["state"] == "ready", lines
    # Progress lines from polling last_operation, before the result.
    assert any(line.get("log", "").startswith("moorage[services]: slow: ") for line in lines), lines
    r = alice.post(
        "/v2/services",
        json={"service": "noop", "plan": "async", "name": "bg", "wait": False, "parameters": {"steps": 2}},
    )
    assert r.status_code == 202 and r.json()["state"] == "creating"
    wait_for(lambda: alice.get("/v2/services/bg").json()["state"] == "ready", 20, what="bg to be ready")


def test_async_provision_that_never_finishes_fails_after_the_polling_limit(
    tmp_path: Path, noop_broker: RunningBroker, inert_runtime: InertRuntime
) -> None:
    with controller_for(tmp_path / "ctl", noop_broker, inert_runtime, osb_max_polling_seconds=1.5) as ctl:
        alice = ctl.user("alice")
        started = time.monotonic()
        status, lines = create(alice, "stuck", plan="async", parameters={"steps": 1000, "step_seconds": 0.1})
        assert time.monotonic() - started < 15
        assert "error" in lines[-1], lines
        assert "did not finish within 2 s" in lines[-1]["error"]["message"]
        info = alice.get("/v2/services/stuck").json()
        assert info["state"] == "failed" and "did not finish within" in info["description"]
        # The orphan is deleted at the broker: the controller's DELETE was accepted, and the
        # broker finishes it on its own even when that takes longer than the polling limit.
        wait_for(
            lambda: noop_broker.client.last_operation(info["id"]).status_code == 410,
            what="the orphan instance to be deleted at the broker",
        )


def test_a_broker_that_is_down_fails_fast(ctl: Controller, make_broker: Any) -> None:
    admin = ctl.user("admin")
    other = make_broker()
    body = {"name": "flaky", "url": other.url, "username": "moorage", "password": PASSWORD}
    assert admin.post("/v2/brokers", json=body).status_code == 201
    other.stop()
    started = time.monotonic()
    status, lines = create(admin, "x", broker="flaky")
    assert time.monotonic() - started < 5
    assert status == 502 and "cannot be reached" in lines[0]["message"], lines
    assert admin.get("/v2/services").json()["results"] == []


def test_destroying_an_app_unbinds_its_services(ctl: Controller, noop_broker: RunningBroker) -> None:
    alice = ctl.user("alice")
    alice.post("/v2/apps", json={"id": "shop"})
    create(alice, "svc")
    assert alice.post("/v2/services/svc/bindings", json={"app": "shop"}).status_code == 201
    assert broker_bindings(noop_broker) == 1
    assert alice.delete("/v2/apps/shop").status_code == 204
    assert broker_bindings(noop_broker) == 0
    assert alice.get("/v2/services/svc").json()["bindings"] == []
    assert alice.delete("/v2/services/svc").status_code == 200


def test_cli_create_without_waiting_and_with_a_broker_that_is_down(
    ctl: Controller, make_broker: Any, tmp_path: Path
) -> None:
    from tests.fixtures.platform import Cli

    (tmp_path / "home").mkdir()
    cli = Cli(home=tmp_path / "home", cwd=tmp_path, url=ctl.url).logged_in_as("admin")
    out = cli.ok("services:create", "noop", "async", "later", "-p", '{"steps": 2}', "--wait=false")
    assert "later is creating" in out
    (tmp_path / "params.json").write_text('{"steps": 1}')
    out = cli.ok("services:create", "noop", "async", "now", "-p", "@params.json")
    assert "now is ready (noop async)" in out
    assert cli("services:create", "noop", "sync", "x", "-p", "[1]").output.endswith(
        'Error: the parameters must be a JSON object, e.g. -p \'{"key": "value"}\'\n'
    )

    other = make_broker()
    cli.ok("brokers:add", "flaky", other.url, "--username", "moorage", "--password", PASSWORD)
    other.stop()
    started = time.monotonic()
    result = cli("services:create", "noop", "sync", "x", "--broker", "flaky")
    assert time.monotonic() - started < 5
    assert result.exit_code == 1
    assert f"Error: the broker at {other.url} cannot be reached" in result.output
    assert "x" not in [s["name"] for s in json.loads(cli.ok("services", "--json"))]


def test_create_without_a_plan_names_the_plans_and_suggests_the_first(
    ctl: Controller, tmp_path: Path
) -> None:
    (tmp_path / "home").mkdir()
    cli = Cli(home=tmp_path / "home", cwd=tmp_path, url=ctl.url).logged_in_as("alice")
    result = cli("services:create", "noop")
    assert result.exit_code == 1
    assert result.output == (
        "Error: give a plan and a name: noop has the plans sync (suggested), async, no-maintenance; "
        "for example `moorage services:create noop sync my-noop`\n"
    )
    result = cli("services:create", "noop", "async")
    assert result.exit_code == 1
    assert "give a name for the instance" in result.output
    assert "`moorage services:create noop async my-noop`" in result.output
    assert json.loads(cli.ok("services", "--json")) == []


def test_update_changes_plan_and_parameters(ctl: Controller, tmp_path: Path) -> None:
    from tests.fixtures.platform import Cli

    (tmp_path / "home").mkdir()
    cli = Cli(home=tmp_path / "home", cwd=tmp_path, url=ctl.url).logged_in_as("alice")
    cli.ok("services:create", "noop", "sync", "svc")
    out = cli.ok("services:update", "svc", "--plan", "no-maintenance", "-p", '{"steps": 1}')
    assert "svc is ready on plan no-maintenance" in out
    listed = json.loads(cli.ok("services", "--json"))
    assert [(s["name"], s["plan"], s["state"]) for s in listed] == [("svc", "no-maintenance", "ready")]
    result = cli("services:update", "svc", "--plan", "gold")
    assert (
        result.exit_code == 1
        and "noop has no plan 'gold'; plans: sync, async, no-maintenance" in result.output
    )
    before = json.loads(cli.ok("services:info", "svc", "--json"))
    result = cli("services:update", "svc", "-p", '{"fail": "no thanks"}')
    assert result.exit_code == 1 and "422 update failed, nothing was changed: no thanks" in result.output
    # A refusal (422) changed nothing at the broker, so nothing changes here either.
    assert json.loads(cli.ok("services:info", "svc", "--json")) == before
    assert before["plan"] == "no-maintenance" and before["state"] == "ready"


def test_a_binding_whose_release_went_out_before_a_crash_is_kept(
    ctl: Controller, noop_broker: RunningBroker
) -> None:
    """The one state a real crash leaves only in a window too narrow to hit: the release
    carrying the binding's vars went out, and the controller died before marking the
    binding bound. So this edits the row to that state (bookkeeping only); the crashes a
    test can reach for real are in ``test_controller_crash.py``."""
    from moorage.platform.controller import service_recovery
    from moorage.store.services import ServiceBinding

    alice = ctl.user("alice")
    alice.post("/v2/apps", json={"id": "shop"})
    assert create(alice, "kept")[0] == 200
    assert alice.post("/v2/services/kept/bindings", json={"app": "shop"}).status_code == 201
    bound_at_broker = broker_bindings(noop_broker)
    platform = ctl.flask_app.extensions["moorage.platform"]
    with platform.db.unit_of_work() as s:
        for binding in s.scalars(select(ServiceBinding)):
            binding.state = "binding"

    service_recovery.settle(platform)

    listed = {i["name"]: i for i in alice.get("/v2/services").json()["results"]}
    assert listed["kept"]["apps"] == ["shop"], "its vars are in the release: the binding stands"
    assert listed["kept"]["bindings"][0]["state"] == "bound"
    assert broker_bindings(noop_broker) == bound_at_broker


def _shop_with_cache_bound(ctl: Controller) -> tuple[httpx.Client, int]:
    """Alice's app "shop" with GREETING=old and the service "cache" bound; the release number."""
    alice = ctl.user("alice")
    alice.post("/v2/apps", json={"id": "shop"})
    assert create(alice, "cache")[0] == 200
    assert alice.post("/v2/apps/shop/config", json={"values": {"GREETING": "old"}}).status_code == 201
    assert alice.post("/v2/services/cache/bindings", json={"app": "shop"}).status_code == 201
    bound_at = alice.get("/v2/apps/shop/releases").json()["results"][0]["version"]
    return alice, bound_at


def test_rollback_keeps_the_credentials_of_services_bound_now(ctl: Controller) -> None:
    alice, bound_at = _shop_with_cache_bound(ctl)
    assert alice.post("/v2/services/cache/bindings/shop/rotate").status_code == 200
    rotated = config(alice, "shop")
    assert alice.post("/v2/apps/shop/config", json={"values": {"GREETING": "new"}}).status_code == 201
    r = alice.post("/v2/apps/shop/releases/rollback", json={"version": f"v{bound_at}"})
    assert r.status_code == 201, r.text
    after = config(alice, "shop")
    assert after["GREETING"] == "old", "the rest of the config is the target's"
    assert after["NOOP_PASSWORD"] == rotated["NOOP_PASSWORD"], "not the credentials the rotation revoked"


def test_rollback_past_an_unbind_does_not_bring_back_the_revoked_credentials(ctl: Controller) -> None:
    alice, bound_at = _shop_with_cache_bound(ctl)
    assert "NOOP_PASSWORD" in config(alice, "shop")
    assert alice.delete("/v2/services/cache/bindings/shop").status_code == 200
    assert alice.post("/v2/apps/shop/config", json={"values": {"GREETING": "new"}}).status_code == 201
    r = alice.post("/v2/apps/shop/releases/rollback", json={"version": f"v{bound_at}"})
    assert r.status_code == 201, r.text
    after = config(alice, "shop")
    assert after["GREETING"] == "old", "the rest of the config is the target's"
    assert not [k for k in after if k.startswith("NOOP_") or k == "VCAP_SERVICES"], after


def test_a_failed_rollout_undoes_bind_and_rotate(
    ctl: Controller, noop_broker: RunningBroker, inert_runtime: InertRuntime
) -> None:
    """The bind/rotate saga: when the release cannot be deployed, the new binding is given back
    at the broker and forgotten, and the app keeps the credentials it had."""
    from tests.fixtures.platform import deploy_tarball, tar_of

    alice = ctl.user("alice")
    alice.post("/v2/apps", json={"id": "shop"})
    deploy_tarball(alice, "shop", tar_of({"Procfile": "web: sleep 1000\n"}))
    for name in ("cache", "cache2"):
        assert create(alice, name)[0] == 200
    assert alice.post("/v2/services/cache/bindings", json={"app": "shop"}).status_code == 201
    bound, at_broker = config(alice, "shop"), broker_bindings(noop_broker)

    inert_runtime.fail_deploys = True
    r = alice.post("/v2/services/cache/bindings/shop/rotate")
    assert r.status_code == 422 and "failed to deploy" in r.json()["message"], r.text
    r = alice.post("/v2/services/cache2/bindings", json={"app": "shop", "as": "second"})
    assert r.status_code == 422 and "failed to deploy" in r.json()["message"], r.text
    assert config(alice, "shop") == bound
    assert broker_bindings(noop_broker) == at_broker
    assert alice.get("/v2/services/cache").json()["bindings"] == [
        {"app": "shop", "as": "NOOP", "state": "bound"}
    ]
    assert alice.get("/v2/services/cache2").json()["bindings"] == []

    inert_runtime.fail_deploys = False
    assert alice.post("/v2/services/cache/bindings/shop/rotate").status_code == 200
    assert config(alice, "shop")["NOOP_PASSWORD"] != bound["NOOP_PASSWORD"]
    assert broker_bindings(noop_broker) == at_broker
