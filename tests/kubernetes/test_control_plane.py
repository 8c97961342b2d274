"""The test control plane itself: real controllers and scheduler, the node stand-in as kubelet.

These prove the harness the Kubernetes runtime's tests stand on: a Deployment gets
ready pods only through the real controller-manager (ReplicaSet) and scheduler (binding
to the stand-in node), a Service's Endpoints come from the real endpoints controller,
and the outcomes the stand-in can be told to fake show up where a client looks.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import kubernetes
import pytest

from tests.fixtures.kube_node import NEVER_READY_LABEL, NodeStandIn
from tests.fixtures.kubernetes import ControlPlane
from tests.polling import wait_for


@pytest.fixture
def namespace(kube: ControlPlane, kube_node: NodeStandIn) -> Iterator[str]:
    core = kubernetes.client.CoreV1Api(kube.api_client())
    name = f"cp-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _deployment(name: str, replicas: int, labels: dict[str, str] | None = None) -> dict:
    pod_labels = {"app": name, **(labels or {})}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "example/web:1", "ports": [{"containerPort": 5000}]}
                    ]
                },
            },
        },
    }


def _ready(apps: kubernetes.client.AppsV1Api, ns: str, name: str) -> int:
    return apps.read_namespaced_deployment_status(name, ns).status.ready_replicas or 0


def test_a_deployment_gets_ready_pods_and_service_endpoints(kube: ControlPlane, namespace: str) -> None:
    api = kube.api_client()
    apps, core = kubernetes.client.AppsV1Api(api), kubernetes.client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("web", 3))
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 5000}]},
        },
    )
    wait_for(lambda: _ready(apps, namespace, "web") == 3, timeout=30, what="3 ready replicas")
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert {p.spec.node_name for p in pods} == {"stand-in-1"}  # bound by the real scheduler

    def addresses() -> set[str]:
        subsets = core.read_namespaced_endpoints("web", namespace).subsets or []
        return {a.ip for s in subsets for a in (s.addresses or [])}

    assert wait_for(lambda: addresses() == {p.status.pod_ip for p in pods}, timeout=30, what="endpoints")

    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 5}})
    wait_for(lambda: _ready(apps, namespace, "web") == 5, timeout=30, what="5 ready replicas after /scale")


def test_pods_the_stand_in_keeps_unready_never_count_as_ready(kube: ControlPlane, namespace: str) -> None:
    api = kube.api_client()
    apps, core = kubernetes.client.AppsV1Api(api), kubernetes.client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("slow", 2, {NEVER_READY_LABEL: "yes"}))

    def running() -> list:
        pods = core.list_namespaced_pod(namespace, label_selector="app=slow").items
        return [p for p in pods if p.status.phase == "Running"]

    wait_for(lambda: len(running()) == 2, timeout=30, what="2 running pods")
    assert _ready(apps, namespace, "slow") == 0
    assert all(not c.ready for p in running() for c in p.status.container_statuses)


def test_a_run_once_pod_completes(kube: ControlPlane, namespace: str, kube_node: NodeStandIn) -> None:
    core = kubernetes.client.CoreV1Api(kube.api_client())
    kube_node.when({"job": "fails"}, "fail")
    for name in ("ok", "fails"):
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": name, "labels": {"job": name}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "example/run:1"}]},
            },
        )
    phase = lambda name: core.read_namespaced_pod(name, namespace).status.phase  # noqa: E731
    wait_for(lambda: phase("ok") == "Succeeded", timeout=30, what="pod ok Succeeded")
    wait_for(lambda: phase("fails") == "Failed", timeout=30, what="pod fails Failed")


def test_kubectl_reaches_the_control_plane_with_the_kubeconfig(
    kube: ControlPlane, kube_node: NodeStandIn
) -> None:
    out = subprocess.run(
        [str(kube.kubectl), "--kubeconfig", str(kube.kubeconfig), "get", "nodes", "-o", "name"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "node/stand-in-1" in out.stdout
