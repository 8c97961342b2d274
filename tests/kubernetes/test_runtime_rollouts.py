"""Rolling deploys on Kubernetes: config changes, failed deploys put the previous release back.

The node stand-in is told (by pod labels: app and release) to keep a release's pods
unready, to fail pulling its image or to crash-loop them, as a kubelet would report.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests.fixtures.platform import deploy_tarball, tar_of
from tests.kubernetes.conftest import DEPLOY_TIMEOUT, KubePlatform
from tests.polling import wait_for

SOURCE = {"Procfile": "web: python3 -m http.server $PORT\n"}


@pytest.fixture
def app(kube_platform: KubePlatform):
    """A deployed app (v2, web=2) with a name no other test uses (the stand-in's rules match on it)."""
    name = f"shop-{uuid.uuid4().hex[:6]}"
    client = kube_platform.controller.user("alice")
    assert client.post("/v2/apps", json={"id": name}).status_code == 201
    assert deploy_tarball(client, name, tar_of(SOURCE))[-1]["result"]["version"] == 2
    assert client.post(f"/v2/apps/{name}/scale", json={"web": 2}).status_code == 200
    return client, name


def _web(kp: KubePlatform, name: str):
    return kp.apps.read_namespaced_deployment("web", kp.namespace(name))


def _pod_releases(kp: KubePlatform, name: str) -> set[str]:
    pods = kp.core.list_namespaced_pod(kp.namespace(name), label_selector="type=web").items
    return {p.metadata.labels["release"] for p in pods if p.metadata.deletion_timestamp is None}


def _failure(client, name: str, version: int) -> str:
    return client.get(f"/v2/apps/{name}/releases/v{version}").json()["failure"]


def test_a_config_change_rolls_out_a_new_replicaset_without_losing_ready_pods(
    kube_platform: KubePlatform, app
) -> None:
    client, name = app
    kp = kube_platform
    assert client.post(f"/v2/apps/{name}/scale", json={"web": 4}).status_code == 200
    lowest, stop = [4], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            lowest[0] = min(lowest[0], _web(kp, name).status.ready_replicas or 0)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        r = client.post(f"/v2/apps/{name}/config", json={"values": {"GREETING": "hello"}})
    finally:
        stop.set()
        sampler.join()
    assert r.status_code == 201, r.text
    assert r.json()["release"]["version"] == 3
    web = _web(kp, name)
    assert web.status.ready_replicas == 4 and web.status.updated_replicas == 4
    assert lowest[0] == 4  # maxUnavailable 0: never fewer ready pods than asked for
    wait_for(lambda: _pod_releases(kp, name) == {"v3"}, timeout=20, what="only v3 pods")
    replicasets = kp.apps.list_namespaced_replica_set(kp.namespace(name), label_selector="type=web").items
    assert {rs.spec.template.metadata.labels["release"]: rs.spec.replicas for rs in replicasets} == {
        "v2": 0,
        "v3": 4,
    }
    secret = kp.core.read_namespaced_secret(f"{name}-v3-env", kp.namespace(name))
    assert "GREETING" in secret.data


def test_pods_that_never_become_ready_fail_the_deploy_and_the_previous_release_is_redeployed(
    kube_platform: KubePlatform, app
) -> None:
    client, name = app
    kp = kube_platform
    kp.node.when({"app": name, "release": "v3"}, "never-ready")
    r = client.post(f"/v2/apps/{name}/config", json={"values": {"GREETING": "hello"}})
    assert r.status_code == 422
    message = r.json()["message"]
    assert "0 of 2 web pods ready" in message and "never became ready" in message
    assert "v2 was redeployed" in message
    assert "v2 was redeployed" in _failure(client, name, 3)  # the ledger says so
    statuses = [
        (x["version"], x["status"]) for x in client.get(f"/v2/apps/{name}/releases").json()["results"]
    ]
    assert statuses[:2] == [(3, "failed"), (2, "succeeded")]
    web = _web(kp, name)
    assert web.spec.template.metadata.labels["release"] == "v2" and web.status.ready_replicas == 2
    wait_for(lambda: _pod_releases(kp, name) == {"v2"}, timeout=20, what="only v2 pods")
    assert client.get(f"/v2/apps/{name}/config").json()["values"] == {}


@pytest.mark.parametrize(
    "behaviour,reason", [("image-pull-error", "ErrImagePull"), ("crash-loop", "CrashLoopBackOff")]
)
def test_pods_that_cannot_start_fail_the_deploy_fast_with_the_reason(
    kube_platform: KubePlatform, app, behaviour: str, reason: str
) -> None:
    client, name = app
    kube_platform.node.when({"app": name, "release": "v3"}, behaviour)
    started = time.monotonic()
    r = client.post(f"/v2/apps/{name}/config", json={"values": {"GREETING": "hello"}})
    assert r.status_code == 422
    assert time.monotonic() - started < DEPLOY_TIMEOUT  # did not wait for the deadline
    assert reason in r.json()["message"] and "v2 was redeployed" in r.json()["message"]
    assert _web(kube_platform, name).spec.template.metadata.labels["release"] == "v2"


def test_rollback_after_a_failed_deploy_runs_the_older_release_again(
    kube_platform: KubePlatform, app
) -> None:
    client, name = app
    kp = kube_platform
    assert client.post(f"/v2/apps/{name}/config", json={"values": {"GREETING": "hello"}}).status_code == 201
    kp.node.when({"app": name, "release": "v4"}, "never-ready")
    assert client.post(f"/v2/apps/{name}/config", json={"values": {"GREETING": "bye"}}).status_code == 422
    r = client.post(f"/v2/apps/{name}/releases/rollback")
    assert r.status_code == 201, r.text
    assert r.json()["release"]["version"] == 5 and r.json()["release"]["summary"] == "alice rolled back to v2"
    web = _web(kp, name)
    assert web.spec.template.metadata.labels["release"] == "v5" and web.status.ready_replicas == 2
    assert web.spec.template.spec.containers[0].env_from[0].secret_ref.name == f"{name}-v5-env"


def test_a_first_deploy_that_fails_leaves_nothing_running(kube_platform: KubePlatform) -> None:
    kp = kube_platform
    name = f"new-{uuid.uuid4().hex[:6]}"
    client = kp.controller.user("alice")
    client.post("/v2/apps", json={"id": name})
    kp.node.when({"app": name}, "image-pull-error")
    lines = deploy_tarball(client, name, tar_of(SOURCE))
    assert "ErrImagePull" in lines[-1]["error"]["message"]
    assert "nothing else was running" in lines[-1]["error"]["message"]
    assert kp.apps.list_namespaced_deployment(kp.namespace(name)).items == []
