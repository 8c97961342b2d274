"""Bad input to the bridge changes nothing (issue 16), over the controller API.

Every case compares what a user can see — instances and their details, the app's
releases and config — before and after, and counts what the broker holds. Three
brokers refuse: Moorage's own (the built-in one; the platform checks the plan's
published schema before it asks), a second Moorage broker registered like any
third-party broker, whose plan publishes no schema and so answers 400 itself, and a
stand-in third-party broker answering 422 (see :class:`RefusingBroker`). A refusal
changes no release, so the controller runs on ``InertRuntime``, which records any
release it would be given.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify, request
from sqlalchemy import func, select
from werkzeug.serving import make_server

from moorage.settings import Settings
from moorage.store import models as broker_models
from tests.fixtures.broker import PASSWORD, RunningBroker
from tests.fixtures.platform import Cli, Controller, InertRuntime, serve_controller
from tests.polling import wait_for

#: A Moorage catalog whose one plan publishes no parameter schema: the platform passes
#: parameters on (schemas are optional in OSB), and the broker refuses them with a 400.
STRICT_CATALOG = """\
id: 5b0c3f57-3f0e-4d7a-9a55-0d1b4a0c6e21
name: strict
description: A no-op service whose plan takes no parameters at all.
provider: noop
bindable: true
plan_updateable: true
tags: [test]
credentials_env: {prefix: STRICT, url: uri}
config: {}
plans:
  - id: 0f6f1d2e-8b4c-4f57-9d0e-3c1b2a4d5e6f
    name: bare
    description: No parameters.
    free: true
    config: {}
    asynchronous: false
"""

LONG_DESCRIPTION = (
    "A service from another broker whose description is long enough that a table squeezed "
    "into 80 columns would wrap it over several lines"
)


class RefusingBroker:
    """Stands in for a third-party OSB broker that answers 422 (a second Moorage broker cannot:
    it answers 500 for a failed provision or bind). Real HTTP on a loopback port.

    Provision refuses ``{"size": "huge"}``, bind refuses ``{"role": "admin"}``, every update is
    refused; anything else succeeds at once. ``requests`` records what the platform sent, so
    a test can tell that no orphan mitigation (DELETE) followed a refusal.
    """

    SERVICE_ID = "9a1f0c4e-58d2-4b0e-9d6b-2f6c1e7a0b11"
    PLAN_ID = "c3d2e1f0-1234-4abc-8def-0123456789ab"

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.refuse_delete = False
        #: The broker is failing: binds with {"role": "flaky"} answer 500, and so does every
        #: DELETE of a binding while this is set (orphan mitigation cannot clean up).
        self.broken_binding_deletes = False
        app = Flask("refusing-broker")
        app.add_url_rule("/v2/catalog", view_func=self._catalog)
        app.add_url_rule("/schemas/size.json", view_func=self._schema)
        app.add_url_rule(
            "/v2/service_instances/<iid>", view_func=self._instance, methods=["PUT", "PATCH", "DELETE"]
        )
        app.add_url_rule(
            "/v2/service_instances/<iid>/service_bindings/<bid>",
            view_func=self._binding,
            methods=["PUT", "DELETE"],
        )
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)
        self.server.server_close()

    def _catalog(self) -> Any:
        plan = {"id": self.PLAN_ID, "name": "standard", "description": "Takes anything.", "free": True}
        # Schemas the platform cannot use: it leaves them to the broker, and fetches nothing.
        referring = {"$ref": f"{self.url}/schemas/size.json"}
        odd = {"type": "object", "properties": {"size": {"type": 5}}}
        plans = [
            plan,
            {**plan, "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "referring")), "name": "referring"},
            {**plan, "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "odd")), "name": "odd"},
        ]
        plans[1]["schemas"] = {"service_instance": {"create": {"parameters": referring}}}
        plans[2]["schemas"] = {"service_instance": {"create": {"parameters": odd}}}
        offering = {
            "id": self.SERVICE_ID,
            "name": "picky",
            "description": LONG_DESCRIPTION,
            "bindable": True,
            "plan_updateable": True,
            "plans": plans,
        }
        return jsonify({"services": [offering]})

    def _schema(self) -> Any:
        self.requests.append((request.method, request.path))
        return jsonify({"type": "object", "properties": {"size": {"enum": ["small"]}}})

    def _params(self) -> dict[str, Any]:
        self.requests.append((request.method, request.path))
        return (request.get_json(silent=True) or {}).get("parameters") or {}

    def _instance(self, iid: str) -> Any:
        params = self._params()
        if request.method == "PATCH":
            return jsonify({"error": "PlanChangeNotSupported", "description": "this plan cannot change"}), 422
        if request.method == "PUT" and params.get("size") == "huge":
            return jsonify({"description": "size huge is not offered in this region"}), 422
        if request.method == "DELETE" and self.refuse_delete:
            body = {"description": "the instance holds a legal hold", "instance_usable": True}
            return jsonify(body), 422
        return jsonify({}), 201 if request.method == "PUT" else 200

    def _binding(self, iid: str, bid: str) -> Any:
        params = self._params()
        if request.method == "PUT" and params.get("role") == "admin":
            return jsonify({"description": "role admin cannot be granted"}), 422
        if request.method == "PUT" and params.get("role") == "flaky":
            return jsonify({"description": "internal error"}), 500
        if request.method == "DELETE" and self.broken_binding_deletes:
            return jsonify({"description": "internal error"}), 500
        if request.method == "PUT":
            return jsonify({"credentials": {"uri": f"picky://u:p@picky.invalid/{bid}"}}), 201
        return jsonify({}), 200


@pytest.fixture
def noop_broker(make_broker: Any) -> RunningBroker:
    return make_broker()


@pytest.fixture
def ctl(tmp_path: Path, noop_broker: RunningBroker, inert_runtime: InertRuntime) -> Iterator[Controller]:
    settings = Settings(data_dir=tmp_path / "ctl").with_group(
        broker={"port": noop_broker.settings.broker.port, "password": PASSWORD},
        platform={"osb_max_polling_seconds": 30.0},
    )
    with serve_controller(settings, inert_runtime) as c:
        yield c


@pytest.fixture
def strict_broker(make_broker: Any, tmp_path: Path) -> RunningBroker:
    folder = tmp_path / "strict-catalog"
    folder.mkdir()
    (folder / "strict.yaml").write_text(STRICT_CATALOG)
    return make_broker(catalog_dirs=[folder])


@pytest.fixture
def refusing_broker() -> Iterator[RefusingBroker]:
    broker = RefusingBroker()
    yield broker
    broker.stop()


def create(client: httpx.Client, service: str, plan: str, name: str, **extra: Any) -> tuple[int, Any]:
    """POST /v2/services: (status, the JSON error) before the stream, else (200, the last line)."""
    body = {"service": service, "plan": plan, "name": name, **extra}
    with client.stream("POST", "/v2/services", json=body) as r:
        r.read()
        if r.headers.get("content-type", "").startswith("application/x-ndjson"):
            return r.status_code, json.loads(r.text.splitlines()[-1])
        return r.status_code, r.json()


def seen(client: httpx.Client, app: str = "shop") -> dict[str, Any]:
    """Everything a user sees of their services and of ``app``."""
    listed = client.get("/v2/services").json()["results"]
    config = client.get(f"/v2/apps/{app}/config", params={"reveal": "1"})
    assert config.status_code == 200, config.text
    return {
        "services": listed,
        "details": {s["name"]: client.get(f"/v2/services/{s['name']}").json() for s in listed},
        "releases": client.get(f"/v2/apps/{app}/releases").json()["results"],
        "config": config.json()["values"],
    }


def held(broker: RunningBroker) -> tuple[int, int]:
    """(instances, bindings) a Moorage broker holds."""
    with broker.runtime.db.unit_of_work() as s:
        instances = s.scalar(
            select(func.count())
            .select_from(broker_models.ServiceInstance)
            .where(broker_models.ServiceInstance.status != broker_models.GONE)
        )
        bindings = s.scalar(
            select(func.count())
            .select_from(broker_models.ServiceBinding)
            .where(broker_models.ServiceBinding.status != broker_models.GONE)
        )
    return instances or 0, bindings or 0


def register(admin: httpx.Client, name: str, url: str) -> None:
    body = {"name": name, "url": url, "username": "moorage", "password": PASSWORD}
    r = admin.post("/v2/brokers", json=body)
    assert r.status_code == 201, r.text


def shop_with(client: httpx.Client, service: str, plan: str, name: str) -> None:
    """The app "shop" (GREETING=hello) and a ready instance ``name``."""
    assert client.post("/v2/apps", json={"id": "shop"}).status_code == 201
    assert client.post("/v2/apps/shop/config", json={"values": {"GREETING": "hello"}}).status_code == 201
    status, last = create(client, service, plan, name)
    assert status == 200 and last["result"]["state"] == "ready", last


def test_parameters_breaking_the_plan_schema_are_refused_before_anything_is_recorded(
    ctl: Controller, noop_broker: RunningBroker
) -> None:
    alice = ctl.user("alice")
    shop_with(alice, "noop", "sync", "cache")
    assert alice.post("/v2/services/cache/bindings", json={"app": "shop"}).status_code == 201
    before, at_broker = seen(alice), held(noop_broker)

    status, error = create(alice, "noop", "sync", "y", parameters={"steps": 5000})
    assert (status, error["code"]) == (400, "invalid")
    assert error["message"] == "invalid parameter 'steps': 5000 is greater than the maximum of 1000"

    status, error = create(alice, "noop", "sync", "y2", parameters={"colour": "red"})
    assert status == 400 and error["message"].startswith("invalid parameters: Additional properties")
    assert "allowed parameters are: delete_steps, fail, fail_delete, step_seconds, steps" in error["message"]

    r = alice.patch("/v2/services/cache", json={"parameters": {"step_seconds": -1}})
    assert r.status_code == 400, r.text
    assert r.json()["message"] == "invalid parameter 'step_seconds': -1 is less than the minimum of 0"

    assert seen(alice) == before, "nothing recorded, nothing changed"
    assert held(noop_broker) == at_broker, "the broker was never asked"
    status, last = create(alice, "noop", "sync", "y")
    assert status == 200 and last["result"]["state"] == "ready", "the name is free at once"


def test_refused_bind_parameters_leave_no_binding_release_or_config(
    ctl: Controller, noop_broker: RunningBroker
) -> None:
    alice = ctl.user("alice")
    shop_with(alice, "noop", "sync", "cache")
    before, at_broker = seen(alice), held(noop_broker)
    r = alice.post("/v2/services/cache/bindings", json={"app": "shop", "parameters": {"steps": "two"}})
    assert r.status_code == 400, r.text
    assert r.json()["message"] == "invalid parameter 'steps': 'two' is not of type 'integer'"
    assert seen(alice) == before and held(noop_broker) == at_broker
    assert alice.post("/v2/services/cache/bindings", json={"app": "shop"}).status_code == 201


def test_a_moorage_broker_answering_400_leaves_nothing_behind(
    ctl: Controller, strict_broker: RunningBroker
) -> None:
    admin = ctl.user("admin")
    register(admin, "strict", strict_broker.url)
    shop_with(admin, "strict", "bare", "kept")
    before, at_broker = seen(admin), held(strict_broker)

    status, last = create(admin, "strict", "bare", "z", parameters={"steps": 1})
    assert status == 200 and last["error"]["code"] == "invalid", last
    assert last["error"]["message"] == (
        "the broker refused the request: 400 plan 'bare' takes no parameters for service instance "
        "create; remove steps"
    )
    assert seen(admin) == before, "no instance z left behind"
    r = admin.post("/v2/services/kept/bindings", json={"app": "shop", "parameters": {"steps": 1}})
    assert r.status_code == 400 and "takes no parameters for service binding create" in r.json()["message"]
    r = admin.patch("/v2/services/kept", json={"parameters": {"steps": 1}})
    assert r.status_code == 400 and "takes no parameters for service instance update" in r.json()["message"]

    # Without waiting: the 202 shows it creating, then the refusal removes it.
    r = admin.post(
        "/v2/services",
        json={"service": "strict", "plan": "bare", "name": "z", "parameters": {"steps": 1}, "wait": False},
    )
    assert r.status_code == 202 and r.json()["state"] == "creating", r.text
    wait_for(lambda: admin.get("/v2/services/z").status_code == 404, what="the refused instance to go")

    assert seen(admin) == before, "no binding, release or config change; the instance as it was"
    assert held(strict_broker) == at_broker
    status, last = create(admin, "strict", "bare", "z")
    assert status == 200 and last["result"]["state"] == "ready", "the name is free at once"


def test_a_third_party_broker_answering_422_leaves_nothing_behind(
    ctl: Controller, refusing_broker: RefusingBroker
) -> None:
    admin = ctl.user("admin")
    register(admin, "picky", refusing_broker.url)
    shop_with(admin, "picky", "standard", "kept")
    before = seen(admin)
    refusing_broker.requests.clear()

    status, last = create(admin, "picky", "standard", "z", parameters={"size": "huge"})
    assert status == 200 and last["error"]["code"] == "unprocessable", last
    assert last["error"]["message"] == "provisioning was refused: 422 size huge is not offered in this region"
    r = admin.post("/v2/services/kept/bindings", json={"app": "shop", "parameters": {"role": "admin"}})
    assert (
        r.status_code == 422
        and r.json()["message"] == "binding was refused: 422 role admin cannot be granted"
    )
    r = admin.patch("/v2/services/kept", json={"parameters": {"tier": 2}})
    assert r.status_code == 422 and r.json()["message"] == "updating was refused: 422 this plan cannot change"

    assert seen(admin) == before
    methods = [method for method, _ in refusing_broker.requests]
    assert methods == ["PUT", "PUT", "PATCH"], "a refusal created nothing: no orphan mitigation"
    status, last = create(admin, "picky", "standard", "z")
    assert status == 200 and last["result"]["state"] == "ready", "the name is free at once"


def test_a_refused_deprovision_leaves_the_instance_ready(
    ctl: Controller, refusing_broker: RefusingBroker
) -> None:
    admin = ctl.user("admin")
    register(admin, "picky", refusing_broker.url)
    shop_with(admin, "picky", "standard", "kept")
    before = seen(admin)
    refusing_broker.refuse_delete = True
    r = admin.delete("/v2/services/kept")
    assert r.status_code == 422, r.text
    assert r.json()["message"] == "deprovisioning was refused: 422 the instance holds a legal hold"
    assert seen(admin) == before  # still ready, same description: it can be bound and updated
    r = admin.post("/v2/services/kept/bindings", json={"app": "shop"})
    assert r.status_code == 201, r.text


def test_a_failed_bind_the_broker_cannot_clean_up_is_kept_to_be_unbound(
    ctl: Controller, refusing_broker: RefusingBroker
) -> None:
    """A 500 on bind, then 500s on every DELETE: the broker may hold live credentials, so the
    platform keeps the binding (unbinding, in no release) until an unbind gets through."""
    admin = ctl.user("admin")
    register(admin, "picky", refusing_broker.url)
    shop_with(admin, "picky", "standard", "kept")
    releases_before = admin.get("/v2/apps/shop/releases").json()["results"]
    refusing_broker.broken_binding_deletes = True
    r = admin.post("/v2/services/kept/bindings", json={"app": "shop", "parameters": {"role": "flaky"}})
    assert r.status_code == 502, r.text
    assert "cleaning up at the broker failed too, so Moorage keeps the record" in r.json()["message"]
    [binding] = admin.get("/v2/services/kept").json()["bindings"]
    assert binding["app"] == "shop" and binding["state"] == "unbinding", binding
    assert admin.get("/v2/apps/shop/releases").json()["results"] == releases_before  # no release used it

    refusing_broker.broken_binding_deletes = False
    refusing_broker.requests.clear()
    r = admin.delete("/v2/services/kept/bindings/shop")
    assert r.status_code == 200, r.text
    assert [m for m, p in refusing_broker.requests if "/service_bindings/" in p] == ["DELETE"]
    assert admin.get("/v2/services/kept").json()["bindings"] == []


def test_a_broker_failure_keeps_the_record_and_mitigates_the_orphan(
    ctl: Controller, noop_broker: RunningBroker
) -> None:
    """A 5xx is not a refusal: the broker may hold something, so the platform deletes it there
    and keeps the failed instance for the user to see and destroy."""
    alice = ctl.user("alice")
    status, last = create(alice, "noop", "sync", "broken", parameters={"fail": "the disk is full"})
    assert status == 200 and "the disk is full" in last["error"]["message"], last
    info = alice.get("/v2/services/broken").json()
    assert info["state"] == "failed" and "the disk is full" in info["description"]
    assert noop_broker.client.last_operation(info["id"]).status_code == 410, "deleted at the broker"
    assert create(alice, "noop", "sync", "broken")[1]["code"] == "conflict"
    assert alice.delete("/v2/services/broken").status_code == 200


# -- the same through the CLI ---------------------------------------------------------------


def cli_for(ctl: Controller, tmp_path: Path) -> Cli:
    (tmp_path / "home").mkdir()
    return Cli(home=tmp_path / "home", cwd=tmp_path, url=ctl.url).logged_in_as("admin")


def refused(cli: Cli, *args: str) -> str:
    """The output of a command that must fail with exit code 1."""
    result = cli(*args)
    assert result.exit_code == 1, f"moorage {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result.output


def test_cli_refusals_change_nothing_and_the_name_is_free(
    ctl: Controller, strict_broker: RunningBroker, tmp_path: Path
) -> None:
    cli = cli_for(ctl, tmp_path)
    cli.ok("brokers:add", "strict", strict_broker.url, "--username", "moorage", "--password", PASSWORD)
    cli.ok("apps:create", "shop")
    cli.ok("config:set", "GREETING=hello", "-a", "shop")
    cli.ok("services:create", "noop", "sync", "cache")

    def state() -> list[str]:
        return [
            cli.ok("services", "--json"),
            cli.ok("services:info", "cache", "--json"),
            cli.ok("config", "-a", "shop", "--json", "--reveal"),
            cli.ok("releases", "-a", "shop", "--json"),
        ]

    before = state()
    out = refused(cli, "services:create", "noop", "sync", "y", "-p", '{"steps": 5000}')
    assert out.endswith("Error: invalid parameter 'steps': 5000 is greater than the maximum of 1000\n")
    out = refused(cli, "services:bind", "cache", "-a", "shop", "-p", '{"steps": -1}')
    assert out.endswith("Error: invalid parameter 'steps': -1 is less than the minimum of 0\n")
    out = refused(cli, "services:update", "cache", "-p", '{"steps": 1.5}')
    assert out.endswith("Error: invalid parameter 'steps': 1.5 is not of type 'integer'\n")
    out = refused(cli, "services:create", "strict", "bare", "y", "-p", '{"steps": 1}')
    assert "moorage[services]: y was not created; the name is free again" in out
    assert out.endswith(
        "Error: the broker refused the request: 400 plan 'bare' takes no parameters for service "
        "instance create; remove steps\n"
    )
    assert state() == before
    cli.ok("services:create", "strict", "bare", "kept")
    before = state()
    out = refused(cli, "services:bind", "kept", "-a", "shop", "-p", '{"steps": 1}')
    assert (
        "Error: the broker refused the request: 400 plan 'bare' takes no parameters for service binding"
        in out
    )
    out = refused(cli, "services:update", "kept", "-p", '{"steps": 1}')
    assert (
        "Error: the broker refused the request: 400 plan 'bare' takes no parameters for service instance"
        in out
    )
    assert state() == before
    assert json.loads(cli.ok("services:info", "kept", "--json"))["bindings"] == []
    assert "y is ready (strict bare)" in cli.ok("services:create", "strict", "bare", "y")


def test_tables_in_a_pipe_keep_each_row_on_one_line(
    ctl: Controller, refusing_broker: RefusingBroker, tmp_path: Path
) -> None:
    cli = cli_for(ctl, tmp_path)
    cli.ok("brokers:add", "picky", refusing_broker.url, "--username", "moorage", "--password", PASSWORD)
    out = cli.ok("marketplace")
    header, *rows = out.splitlines()
    assert header.split() == ["Service", "Plans", "Bindable", "Broker", "Description"]
    assert [row.split()[0] for row in rows] == ["noop", "picky"], out
    assert rows[1].endswith(LONG_DESCRIPTION)
    assert rows[1].split()[1:6] == ["standard,", "referring,", "odd", "yes", "picky"]
    assert rows[0].index("A service that does nothing") == rows[1].index("A service from another")

    # Through a real pipe, as `moorage marketplace | grep picky` would read it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    piped = subprocess.run(
        [sys.executable, "-m", "moorage.cli.main", "marketplace"],
        env={**env, "HOME": str(cli.home), "COLUMNS": "40"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert piped.stdout == out
    # --json is as it was: the API's answer.
    admin = ctl.client(json.loads((cli.home / ".moorage" / "cli.json").read_text())["token"])
    assert json.loads(cli.ok("marketplace", "--json")) == admin.get("/v2/marketplace").json()


def test_schemas_the_platform_cannot_use_are_left_to_the_broker(
    ctl: Controller, refusing_broker: RefusingBroker
) -> None:
    """A ``$ref`` to another document is never fetched by the controller (a catalog must not make
    it request URLs), and an invalid schema does not break creating: the broker decides."""
    admin = ctl.user("admin")
    register(admin, "picky", refusing_broker.url)
    refusing_broker.requests.clear()
    for plan in ("referring", "odd"):
        status, last = create(admin, "picky", plan, f"by-{plan}", parameters={"size": "large"})
        assert status == 200 and last["result"]["state"] == "ready", last
    assert sorted(refusing_broker.requests) == sorted(("PUT", path) for path in _instance_paths(admin))


def _instance_paths(client: httpx.Client) -> list[str]:
    return [f"/v2/service_instances/{s['id']}" for s in client.get("/v2/services").json()["results"]]
