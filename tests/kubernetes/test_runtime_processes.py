"""One-off runs, the release phase, restarts and logs on Kubernetes.

A one-off run is a Pod with ``restartPolicy: Never``. Here the node stand-in runs its
command as a local process — standing in for a kubelet and for the slug-runner image's
entry point, which would fetch ``$SLUG_URL`` and run the command in it: the slug is a
directory on this machine, so the stand-in runs the command there with the pod's
environment (config vars from the release Secret). Its output comes back the way a real
one does: ``pods/log`` on the API server, proxied to the (stand-in) kubelet.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.platform import deploy_tarball, tar_of
from tests.kubernetes.conftest import KubePlatform
from tests.polling import wait_for

SOURCE = {
    "Procfile": "web: python3 -m http.server $PORT\nrelease: echo migrating with $GREETING\n",
    "marker.txt": "from the slug\n",
}


@pytest.fixture
def app(kube_platform: KubePlatform, running_locally: NodeStandIn):
    name = f"run-{uuid.uuid4().hex[:6]}"
    client = kube_platform.controller.user("alice")
    assert client.post("/v2/apps", json={"id": name}).status_code == 201
    assert client.post(f"/v2/apps/{name}/config", json={"values": {"GREETING": "hello"}}).status_code == 201
    lines = deploy_tarball(client, name, tar_of(SOURCE))
    assert lines[-1].get("result", {}).get("version") == 3, lines
    logs = [line.get("log", "") for line in lines]
    assert any("migrating with hello" in line for line in logs)  # the release phase ran, as a pod
    return client, name


def test_run_executes_in_a_pod_with_the_release_env_and_returns_its_output(
    kube_platform: KubePlatform, app
) -> None:
    client, name = app
    r = client.post(
        f"/v2/apps/{name}/run", json={"command": "echo $GREETING $MOORAGE_RELEASE; cat marker.txt; exit 3"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"exit_code": 3, "output": "hello v3\nfrom the slug\n"}
    pods = kube_platform.core.list_namespaced_pod(
        kube_platform.namespace(name), label_selector="type=run"
    ).items
    assert [p for p in pods if p.metadata.deletion_timestamp is None] == []  # the one-off pod is removed


def test_a_failing_release_task_fails_the_release_before_any_rollout(
    kube_platform: KubePlatform, app
) -> None:
    client, name = app
    source = {**SOURCE, "Procfile": "web: python3 -m http.server $PORT\nrelease: echo no database; exit 1\n"}
    lines = deploy_tarball(client, name, tar_of(source))
    assert "exited with status 1" in lines[-1]["error"]["message"]
    assert any("no database" in line.get("log", "") for line in lines)
    web = kube_platform.apps.read_namespaced_deployment("web", kube_platform.namespace(name))
    assert web.spec.template.metadata.labels["release"] == "v3"


def test_restart_replaces_every_pod_by_a_rolling_update(kube_platform: KubePlatform, app) -> None:
    client, name = app
    kp, ns = kube_platform, kube_platform.namespace(name)
    assert client.post(f"/v2/apps/{name}/scale", json={"web": 2}).status_code == 200

    def pod_names() -> set[str]:
        pods = kp.core.list_namespaced_pod(ns, label_selector="type=web").items
        return {p.metadata.name for p in pods if p.metadata.deletion_timestamp is None}

    wait_for(lambda: len(pod_names()) == 2, timeout=20, what="2 web pods")
    before = pod_names()
    assert client.post(f"/v2/apps/{name}/pods/restart").status_code == 200
    web = kp.apps.read_namespaced_deployment("web", ns)
    assert "moorage.io/restarted-at" in web.spec.template.metadata.annotations
    assert web.status.ready_replicas == 2
    wait_for(lambda: len(pod_names()) == 2 and not pod_names() & before, timeout=20, what="2 new web pods")


def test_logs_merge_the_pods_output_with_kubernetes_events(kube_platform: KubePlatform, app) -> None:
    client, name = app
    r = client.get(f"/v2/apps/{name}/logs", params={"lines": 500})
    assert r.status_code == 200
    lines = r.text.splitlines()
    events = [line for line in lines if " moorage[kubernetes]: " in line]
    assert any("ScalingReplicaSet" in line and "web-" in line for line in events), lines
    assert any("Scheduled" in line for line in events)
    stamps = [dt.datetime.fromisoformat(line.split(" ", 1)[0]) for line in lines]
    assert stamps == sorted(stamps)  # one timeline (lines of the same second keep their order)
