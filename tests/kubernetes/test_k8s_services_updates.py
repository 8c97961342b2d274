"""Updating in-cluster services: a maintenance update rolls the pod to the plan's new image,
storage grows where the StorageClass allows it, and a shrink or a fixed class is refused."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes
import pytest

from moorage.providers.k8s_workload import INSTANCE_LABEL, names_for
from tests.fixtures.broker import OsbClient, RunningBroker, new_id, start_broker
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kube_volumes import FIXED, VolumeStandIn
from tests.fixtures.kubernetes import ControlPlane
from tests.kubernetes.k8s_services import delete_namespace, kube_group, new_namespace, short_catalog


@pytest.fixture
def namespace(kube: ControlPlane, kube_node: NodeStandIn, kube_volumes: VolumeStandIn) -> Iterator[str]:
    name = new_namespace()
    yield name
    delete_namespace(kube, name)


def provision(osb: OsbClient, instance_id: str, **params: object) -> tuple[str, str]:
    service_id, plan_id = osb.ids("k8s-postgresql", "small")
    response = osb.provision(instance_id, service_id, plan_id, dict(params))
    assert response.status_code == 202, response.text
    final = osb.wait(instance_id, operation=response.json()["operation"], timeout=60).json()
    assert final["state"] == "succeeded", final
    return service_id, plan_id


def update(osb: OsbClient, instance_id: str, body: dict) -> dict:
    """``{"state", "description"}`` of the update, answered at once (a refusal) or polled."""
    response = osb.update(instance_id, body)
    if response.status_code == 202:
        return osb.wait(instance_id, operation=response.json()["operation"], timeout=60).json()
    if response.status_code == 200:
        return {"state": "succeeded", "description": ""}
    assert response.status_code == 422, response.text
    return {"state": "failed", "description": response.json()["description"]}


def claim(kube: ControlPlane, namespace: str, instance_id: str) -> tuple[str, str | None]:
    """(requested, provided) storage of the instance's volume claim."""
    with kube.api_client() as api:
        found = kubernetes.client.CoreV1Api(api).list_namespaced_persistent_volume_claim(
            namespace, label_selector=f"{INSTANCE_LABEL}={instance_id}"
        )
    (pvc,) = found.items
    return pvc.spec.resources.requests["storage"], (pvc.status.capacity or {}).get("storage")


def test_storage_grows_where_the_class_allows_and_a_shrink_is_refused(
    kube: ControlPlane, namespace: str, make_broker: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    instance_id = new_id()
    broker = make_broker([short_catalog(tmp_path / "catalog")], kubernetes=kube_group(kube, namespace, {}))
    osb = broker.client
    service_id, plan_id = provision(osb, instance_id, storage_gb=1)
    assert claim(kube, namespace, instance_id) == ("1Gi", "1Gi")

    body = {"service_id": service_id, "plan_id": plan_id, "parameters": {"storage_gb": 3}}
    assert update(osb, instance_id, body)["state"] == "succeeded"
    assert claim(kube, namespace, instance_id) == ("3Gi", "3Gi")

    final = update(osb, instance_id, {**body, "parameters": {"storage_gb": 2}})
    assert final["state"] == "failed"
    assert (
        "storage_gb can only grow" in final["description"] and "nothing was changed" in final["description"]
    )
    assert claim(kube, namespace, instance_id) == ("3Gi", "3Gi")


def test_storage_of_a_class_without_expansion_is_refused(
    kube: ControlPlane, namespace: str, make_broker: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    instance_id = new_id()
    group = {**kube_group(kube, namespace, {}), "services_storage_class": FIXED}
    broker = make_broker([short_catalog(tmp_path / "catalog")], kubernetes=group)
    osb = broker.client
    service_id, plan_id = provision(osb, instance_id)
    final = update(
        osb, instance_id, {"service_id": service_id, "plan_id": plan_id, "parameters": {"storage_gb": 5}}
    )
    assert final["state"] == "failed"
    assert f"StorageClass {FIXED} does not allow volume expansion" in final["description"]
    assert claim(kube, namespace, instance_id) == ("1Gi", "1Gi")


def test_a_maintenance_update_rolls_the_pod_to_the_new_image(
    kube: ControlPlane, namespace: str, make_broker: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    instance_id = new_id()
    catalog = short_catalog(tmp_path / "catalog")
    broker = make_broker([catalog], kubernetes=kube_group(kube, namespace, {}))
    service_id, plan_id = provision(broker.client, instance_id)
    names = names_for("postgresql", instance_id, namespace)
    with kube.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        old_pod = core.read_namespaced_pod(names.pod, namespace)
    assert old_pod.spec.containers[0].image == "postgres:16.4"

    # The operator publishes a new version: the plan's image and maintenance_info move together.
    broker.stop()
    path = catalog / "k8s-postgresql.yaml"
    path.write_text(path.read_text().replace("16.4", "16.6"))
    restarted = start_broker(broker.settings)
    try:
        osb = restarted.client
        plan = next(
            p
            for s in osb.catalog()["services"]
            if s["name"] == "k8s-postgresql"
            for p in s["plans"]
            if p["id"] == plan_id
        )
        assert plan["maintenance_info"]["version"] == "16.6.0"
        body = {"service_id": service_id, "plan_id": plan_id, "maintenance_info": {"version": "16.6.0"}}
        assert update(osb, instance_id, body)["state"] == "succeeded"
        with kube.api_client() as api:
            pod = kubernetes.client.CoreV1Api(api).read_namespaced_pod(names.pod, namespace)
            sts = kubernetes.client.AppsV1Api(api).read_namespaced_stateful_set(names.base, namespace)
        assert sts.spec.template.spec.containers[0].image == "postgres:16.6"
        assert pod.spec.containers[0].image == "postgres:16.6" and pod.metadata.uid != old_pod.metadata.uid
        assert (
            osb.http.get(f"/v2/service_instances/{instance_id}").json()["maintenance_info"]["version"]
            == "16.6.0"
        )
        deprovision = osb.deprovision(instance_id, service_id, plan_id)
        if deprovision.status_code == 202:
            osb.wait(instance_id, operation=deprovision.json()["operation"], timeout=60)
    finally:
        restarted.stop()
        shutil.rmtree(broker.settings.data_dir, ignore_errors=True)
