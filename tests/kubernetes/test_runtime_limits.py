"""What Kubernetes refuses fails a deploy or a scale at once, with its reason; old Secrets go.

Pods that cannot be placed (``FailedScheduling``: the node stand-in offers 16 CPUs) and
pods a ResourceQuota refuses (``FailedCreate``, from the real quota admission and quota
controller) will not appear by waiting, so the runtime does not wait for them.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import kubernetes
import pytest

from moorage.clients.kubernetes import KubeApi
from moorage.errors import ConfigurationError, InvalidParametersError, UnprocessableError
from moorage.platform.runtime.base import ReleaseSpec
from moorage.platform.runtime.kubernetes import KubernetesRuntime
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kubernetes import ControlPlane
from tests.fixtures.platform import deploy_tarball, tar_of
from tests.kubernetes.conftest import DEPLOY_TIMEOUT, KubePlatform, kube_settings
from tests.polling import wait_for


def _spec(app: str, version: int, processes: dict[str, str] | None = None) -> ReleaseSpec:
    return ReleaseSpec(
        app, version, slug="/srv/slug", env={"A": "1"}, processes=processes or {"web": "serve"}
    )


def test_pods_no_node_can_hold_fail_the_deploy_with_the_schedulers_reason(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}-"
    runtime = KubernetesRuntime(kube_settings(tmp_path, kube, prefix, process_resources="web=cpu:64/64"))
    progress: list[str] = []
    started = time.monotonic()
    try:
        with pytest.raises(UnprocessableError) as failure:
            runtime.deploy(_spec("big", 2), {"web": 1}, progress.append)
        assert time.monotonic() - started < DEPLOY_TIMEOUT
        assert "FailedScheduling" in failure.value.message and "Insufficient cpu" in failure.value.message
        assert "nothing else was running" in failure.value.message
        assert any("FailedScheduling" in line for line in progress)
    finally:
        runtime.destroy("big")
        runtime.close()


def test_scaling_past_a_resource_quota_fails_fast_and_puts_the_count_back(
    kube_platform: KubePlatform,
) -> None:
    kp = kube_platform
    client = kp.controller.user("alice")
    client.post("/v2/apps", json={"id": "quota"})
    deploy_tarball(client, "quota", tar_of({"Procfile": "web: serve\n"}))
    ns = kp.namespace("quota")
    kp.core.create_namespaced_resource_quota(
        ns, {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": "2"}}}
    )
    wait_for(
        lambda: (kp.core.read_namespaced_resource_quota("pods", ns).status.used or {}).get("pods") == "1",
        timeout=30,
        what="the quota controller counting the pod",
    )
    started = time.monotonic()
    r = client.post("/v2/apps/quota/scale", json={"web": 4})
    assert r.status_code == 422
    assert time.monotonic() - started < DEPLOY_TIMEOUT
    assert "FailedCreate" in r.json()["message"] and "exceeded quota" in r.json()["message"]
    assert kp.apps.read_namespaced_deployment("web", ns).spec.replicas == 1

    def ps() -> list[tuple[str, str]]:
        return [(p["name"], p["state"]) for p in client.get("/v2/apps/quota/pods").json()["results"]]

    wait_for(lambda: ps() == [("web.1", "up")], timeout=20, what="one web pod up, the refused ones gone")


def test_secrets_of_releases_no_replicaset_keeps_are_deleted(kube_platform: KubePlatform) -> None:
    kp = kube_platform
    client = kp.controller.user("alice")
    client.post("/v2/apps", json={"id": "many"})
    deploy_tarball(client, "many", tar_of({"Procfile": "web: serve\n"}))
    for n in range(8):
        assert client.post("/v2/apps/many/config", json={"values": {"N": str(n)}}).status_code == 201
    secrets = {s.metadata.name for s in kp.core.list_namespaced_secret(kp.namespace("many")).items}
    assert "many-v10-env" in secrets and "many-v2-env" not in secrets
    replicasets = kp.apps.list_namespaced_replica_set(kp.namespace("many")).items
    referenced = {rs.spec.template.spec.containers[0].env_from[0].secret_ref.name for rs in replicasets}
    assert {s for s in secrets if s.endswith("-env")} <= referenced | {"many-v10-env"}


def test_api_errors_name_the_problem(kube: ControlPlane, tmp_path: Path) -> None:
    api = KubeApi(str(kube.kubeconfig))
    try:
        with pytest.raises(InvalidParametersError) as invalid:
            api.create("namespace", "", {"metadata": {"name": "Not_A_Label"}})
        assert "Not_A_Label" in invalid.value.message
        assert api.get("namespace", "", "no-such-namespace") is None
        assert api.delete("namespace", "", "no-such-namespace") is False
    finally:
        api.close()
    with pytest.raises(ConfigurationError) as missing:
        KubeApi(str(tmp_path / "no-kubeconfig"))
    assert "no-kubeconfig" in missing.value.message


def test_a_release_kubernetes_refuses_changes_nothing_that_runs(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}-"
    good = KubernetesRuntime(kube_settings(tmp_path, kube, prefix))
    bad = KubernetesRuntime(kube_settings(tmp_path, kube, prefix, process_resources="web=cpu:lots/lots"))
    processes = {"web": "serve", "worker": "work"}
    try:
        good.deploy(_spec("refused", 2, processes), {"web": 1, "worker": 1}, lambda _: None)
        with pytest.raises(UnprocessableError) as failure:
            bad.deploy(_spec("refused", 3, processes), {"web": 1, "worker": 1}, lambda _: None)
        assert "refused by Kubernetes" in failure.value.message and "lots" in failure.value.message
        assert {p.release for p in good.status("refused")} == {2}
    finally:
        good.destroy("refused")
        good.close()
        bad.close()


def test_a_failed_release_without_a_process_type_brings_that_type_back(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path
) -> None:
    runtime = KubernetesRuntime(kube_settings(tmp_path, kube, f"t{uuid.uuid4().hex[:6]}-"))
    try:
        runtime.deploy(
            _spec("dropper", 2, {"web": "serve", "worker": "work"}), {"web": 1, "worker": 1}, print
        )
        kube_node.when({"app": "dropper", "release": "v3"}, "image-pull-error")
        with pytest.raises(UnprocessableError) as failure:
            runtime.deploy(_spec("dropper", 3, {"web": "serve"}), {"web": 1}, print)
        assert "v2 was redeployed" in failure.value.message
        wait_for(
            lambda: (
                sorted((p.type, p.release, p.state) for p in runtime.status("dropper"))
                == [("web", 2, "up"), ("worker", 2, "up")]
            ),
            timeout=20,
            what="web and worker of v2 up again",
        )
    finally:
        runtime.destroy("dropper")
        runtime.close()


def test_a_one_off_whose_pod_cannot_start_says_why(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path
) -> None:
    runtime = KubernetesRuntime(kube_settings(tmp_path, kube, f"t{uuid.uuid4().hex[:6]}-"))
    kube_node.when({"app": "oneoff", "type": "run"}, "image-pull-error")
    try:
        with pytest.raises(UnprocessableError) as failure:
            runtime.run_once(_spec("oneoff", 2), "echo hi", timeout=30)
        assert "could not start: ErrImagePull" in failure.value.message
    finally:
        runtime.destroy("oneoff")
        runtime.close()


def test_types_named_as_listening_get_port_and_a_tcp_readiness_probe(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path
) -> None:
    runtime = KubernetesRuntime(
        kube_settings(tmp_path, kube, f"t{uuid.uuid4().hex[:6]}-", tcp_probe_types="grpc")
    )
    apps = kubernetes.client.AppsV1Api(kube.api_client())
    try:
        runtime.deploy(_spec("probes", 2, {"grpc": "serve", "worker": "work"}), {"grpc": 1}, lambda _: None)
        ns = runtime.namespace_of("probes")
        grpc = apps.read_namespaced_deployment("grpc", ns).spec.template.spec.containers[0]
        assert grpc.readiness_probe.tcp_socket.port == 5000
        assert {"name": "PORT", "value": "5000"} in [{"name": e.name, "value": e.value} for e in grpc.env]
        worker = apps.read_namespaced_deployment("worker", ns).spec.template.spec.containers[0]
        assert worker.readiness_probe is None and "PORT" not in {e.name for e in worker.env}
    finally:
        runtime.destroy("probes")
        runtime.close()


def test_an_ingress_routes_the_app_host_and_its_custom_domains(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path
) -> None:
    settings = kube_settings(
        tmp_path,
        kube,
        f"t{uuid.uuid4().hex[:6]}-",
        ingress_class="nginx",
        ingress_annotations="nginx.ingress.kubernetes.io/proxy-body-size=100m",
    )
    runtime = KubernetesRuntime(settings)
    networking = kubernetes.client.NetworkingV1Api(kube.api_client())
    ns = runtime.namespace_of("routed")

    def hosts() -> list[str]:
        return [rule.host for rule in networking.read_namespaced_ingress("web", ns).spec.rules]

    try:
        runtime.set_domains("routed", ["www.routed.example"])  # before the first deploy, as a user may
        runtime.deploy(_spec("routed", 2), {"web": 1}, lambda _: None)
        assert hosts() == ["routed.moorage.localhost", "www.routed.example"]
        ingress = networking.read_namespaced_ingress("web", ns)
        assert ingress.spec.ingress_class_name == "nginx"
        assert ingress.metadata.annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "100m"
        assert ingress.spec.rules[0].http.paths[0].backend.service.name == "web"
        runtime.set_domains("routed", [])
        runtime.deploy(_spec("routed", 3), {"web": 1}, lambda _: None)
        assert hosts() == ["routed.moorage.localhost"]
        with pytest.raises(InvalidParametersError):
            runtime.set_domains("routed", ["not a host"])
        assert hosts() == ["routed.moorage.localhost"]
    finally:
        runtime.destroy("routed")
        runtime.close()


def test_without_a_network_policy_setting_an_app_still_deploys_and_gets_none(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path
) -> None:
    settings = kube_settings(tmp_path, kube, f"t{uuid.uuid4().hex[:6]}-", ingress_from_namespace_label="")
    runtime = KubernetesRuntime(settings)
    networking = kubernetes.client.NetworkingV1Api(kube.api_client())
    ns = runtime.namespace_of("open")
    try:
        runtime.deploy(_spec("open", 2), {"web": 1}, lambda _: None)  # the app's namespace is new
        assert networking.list_namespaced_network_policy(ns).items == []
        runtime.deploy(_spec("open", 3), {"web": 1}, lambda _: None)  # and now it exists
        assert wait_for(
            lambda: [(p.type, p.state, p.release) for p in runtime.status("open")] == [("web", "up", 3)]
        )
    finally:
        runtime.destroy("open")
        runtime.close()
