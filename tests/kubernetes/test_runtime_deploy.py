"""Deploy, scale, ps and destroy on Kubernetes, through the controller's API.

The controller runs out of cluster with the Kubernetes runtime; the Deployments are
rolled out by the real controller-manager and scheduler, onto the node stand-in.
"""

from __future__ import annotations

import kubernetes
import pytest

from moorage.platform.runtime.kubernetes import KubernetesRuntime
from tests.fixtures.platform import deploy_tarball, tar_of
from tests.kubernetes.conftest import KubePlatform
from tests.polling import wait_for

SOURCE = {"Procfile": "web: python3 -m http.server $PORT\nworker: python3 worker.py\n", "worker.py": ""}


@pytest.fixture
def alice(kube_platform: KubePlatform):
    client = kube_platform.controller.user("alice")
    assert client.post("/v2/apps", json={"id": "shop"}).status_code == 201
    return client


def _ready(kp: KubePlatform, ptype: str = "web") -> int:
    return kp.apps.read_namespaced_deployment_status(ptype, kp.namespace("shop")).status.ready_replicas or 0


def test_a_deploy_makes_namespace_secret_deployments_and_service(kube_platform: KubePlatform, alice) -> None:
    kp, ns = kube_platform, kube_platform.namespace("shop")
    alice.post("/v2/apps/shop/config", json={"values": {"GREETING": "hello"}})
    lines = deploy_tarball(alice, "shop", tar_of(SOURCE))
    assert lines[-1].get("result", {}).get("version") == 3, lines
    assert any("v3 is up (web=1)" in line.get("log", "") for line in lines)

    labels = kp.core.read_namespace(ns).metadata.labels
    assert labels["moorage.io/app"] == "shop" and labels["moorage.io/owner"] == "alice"
    secret = kp.core.read_namespaced_secret("shop-v3-env", ns)
    assert set(secret.data) >= {"GREETING", "MOORAGE_RELEASE", "MOORAGE_APP"}

    web = kp.apps.read_namespaced_deployment("web", ns)
    assert web.status.ready_replicas == 1  # the deploy returned once the pod was ready
    assert web.spec.strategy.rolling_update.max_unavailable == 0
    pod = web.spec.template
    assert pod.metadata.labels == {"app": "shop", "type": "web", "release": "v3", "heritage": "moorage"}
    container = pod.spec.containers[0]
    assert container.image == "registry.example/moorage/slug-runner:test"
    assert container.args == ["python3 -m http.server $PORT"]
    assert container.env_from[0].secret_ref.name == "shop-v3-env"
    assert container.readiness_probe.http_get.port == 5000
    assert pod.spec.security_context.run_as_non_root is True
    assert pod.spec.automount_service_account_token is False

    worker = kp.apps.read_namespaced_deployment("worker", ns)
    assert worker.spec.replicas == 0
    assert worker.spec.template.spec.containers[0].resources.limits == {"cpu": "500m", "memory": "128Mi"}
    assert worker.spec.template.spec.containers[0].readiness_probe is None
    policy = kubernetes.client.NetworkingV1Api(kp.core.api_client).read_namespaced_network_policy(
        "moorage-isolation", ns
    )
    assert policy.spec.pod_selector.match_labels is None  # every pod of the app
    sources = policy.spec.ingress[0]._from
    assert sources[0].pod_selector is not None and sources[0].namespace_selector is None  # its own namespace
    assert sources[1].namespace_selector.match_labels == {"moorage.io/ingress": "true"}
    service = kp.core.read_namespaced_service("web", ns)
    assert service.spec.selector == {"app": "shop", "type": "web"}
    assert service.spec.ports[0].target_port == 5000


def test_scale_reaches_ready_pods_and_endpoints_and_ps_shows_them(kube_platform: KubePlatform, alice) -> None:
    kp, ns = kube_platform, kube_platform.namespace("shop")
    deploy_tarball(alice, "shop", tar_of(SOURCE))
    r = alice.post("/v2/apps/shop/scale", json={"web": 4, "worker": 1})
    assert r.status_code == 200, r.text
    assert _ready(kp) == 4 and _ready(kp, "worker") == 1  # scale returns once they are ready

    def endpoints() -> int:
        subsets = kp.core.read_namespaced_endpoints("web", ns).subsets or []
        return sum(len(s.addresses or []) for s in subsets)

    wait_for(lambda: endpoints() == 4, timeout=20, what="4 web endpoints")
    ps = alice.get("/v2/apps/shop/pods").json()["results"]
    assert sorted((p["name"], p["state"], p["release"]) for p in ps) == [
        ("web.1", "up", "v2"),
        ("web.2", "up", "v2"),
        ("web.3", "up", "v2"),
        ("web.4", "up", "v2"),
        ("worker.1", "up", "v2"),
    ]
    assert alice.post("/v2/apps/shop/scale", json={"web": 1, "worker": 0}).status_code == 200
    wait_for(
        lambda: len(alice.get("/v2/apps/shop/pods").json()["results"]) == 1, timeout=20, what="1 pod left"
    )


def test_bad_counts_are_refused_and_change_nothing(kube_platform: KubePlatform, alice) -> None:
    deploy_tarball(alice, "shop", tar_of(SOURCE))
    for counts in ({"web": -1}, {"web": 101}, {"clock": 1}):
        assert alice.post("/v2/apps/shop/scale", json=counts).status_code == 400
    assert (
        kube_platform.apps.read_namespaced_deployment("web", kube_platform.namespace("shop")).spec.replicas
        == 1
    )


def test_destroy_deletes_the_namespace(kube_platform: KubePlatform, alice) -> None:
    kp, ns = kube_platform, kube_platform.namespace("shop")
    deploy_tarball(alice, "shop", tar_of(SOURCE))
    assert kp.core.read_namespace(ns).status.phase == "Active"
    assert alice.delete("/v2/apps/shop", params={"confirm": "shop"}).status_code == 204
    assert kp.core.read_namespace(ns).metadata.deletion_timestamp is not None

    def gone() -> bool:
        return ns not in {n.metadata.name for n in kp.core.list_namespace().items}

    wait_for(gone, timeout=60, what=f"namespace {ns} deleted")


def test_a_new_runtime_instance_sees_and_scales_what_another_deployed(
    kube_platform: KubePlatform, alice
) -> None:
    """The runtime keeps nothing in memory: a restarted controller, or another replica, carries on."""
    deploy_tarball(alice, "shop", tar_of(SOURCE))
    other = KubernetesRuntime(kube_platform.controller.settings)
    try:
        assert [(p.name, p.state, p.release) for p in other.status("shop")] == [("web.1", "up", 2)]
        other.scale("shop", {"web": 2}, lambda _: None)
        assert _ready(kube_platform) == 2
    finally:
        other.close()
