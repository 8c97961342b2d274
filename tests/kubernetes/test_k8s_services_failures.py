"""In-cluster services whose pod does not become ready: the plan's limit, the pod's reason, cleanup.

The node stand-in is told what the pod does (never ready, image pull error, crash loop);
"unschedulable" is real: claims of a StorageClass nothing provisions stay Pending, and the
real scheduler reports ``FailedScheduling``. The time limit is the plan's
``maximum_polling_duration`` (a catalog copy with a short one).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes
import pytest

from moorage.providers.k8s_workload import INSTANCE_LABEL, names_for
from tests.fixtures.broker import RunningBroker, new_id
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kube_volumes import VolumeStandIn
from tests.fixtures.kubernetes import ControlPlane
from tests.kubernetes.k8s_services import delete_namespace, kube_group, labelled, new_namespace, short_catalog
from tests.polling import wait_for

LIMIT = 3


@pytest.fixture
def namespace(kube: ControlPlane, kube_node: NodeStandIn, kube_volumes: VolumeStandIn) -> Iterator[str]:
    name = new_namespace()
    yield name
    delete_namespace(kube, name)


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("never-ready", "NotReady: the container runs but its readiness probe has not passed"),
        ("image-pull-error", 'ErrImagePull: pull access denied for "postgres:16.4"'),
        ("crash-loop", "CrashLoopBackOff: back-off"),
        # The scheduler's words depend on whether it saw the claim yet: either is the reason.
        (
            "unschedulable",
            r"FailedScheduling: 0/1 nodes are available: 1 (pod has unbound immediate PersistentVolumeClaims"
            r"|persistentvolumeclaim \"data-moorage-postgresql-[0-9a-f]+-0\" not found)",
        ),
    ],
)
def test_a_pod_that_is_never_ready_fails_the_provision_with_its_reason_and_is_cleaned_up(
    behaviour: str,
    reason: str,
    kube: ControlPlane,
    kube_node: NodeStandIn,
    namespace: str,
    make_broker: Callable[..., RunningBroker],
    tmp_path: Path,
) -> None:
    instance_id = new_id()
    group = kube_group(kube, namespace, {})
    if behaviour == "unschedulable":
        group["services_storage_class"] = "no-such-class"  # nothing provisions it: the claim stays Pending
    else:
        kube_node.when({INSTANCE_LABEL: instance_id}, behaviour)
    broker = make_broker([short_catalog(tmp_path / "catalog", limit=LIMIT)], kubernetes=group)
    osb = broker.client
    service_id, plan_id = osb.ids("k8s-postgresql", "small")
    response = osb.provision(instance_id, service_id, plan_id, {})
    assert response.status_code == 202, response.text
    final = osb.wait(instance_id, operation=response.json()["operation"], timeout=LIMIT + 30).json()
    assert final["state"] == "failed", final
    pod = names_for("postgresql", instance_id, namespace).pod
    assert f"pod {pod} in namespace {namespace} was not ready after" in final["description"]
    assert f"the plan's limit is {LIMIT} s" in final["description"]
    assert reason in final["description"] or re.search(reason, final["description"]), final["description"]

    response = osb.deprovision(instance_id, service_id, plan_id)
    if response.status_code == 202:  # waiting for the pod to stop
        response = osb.wait(instance_id, operation=response.json()["operation"], timeout=60)
    assert response.status_code in (200, 410) or response.json()["state"] == "succeeded", response.text
    assert labelled(kube, namespace, instance_id) == []


def test_deleting_an_instance_while_it_is_being_created_leaves_nothing_labelled_with_it(
    kube: ControlPlane,
    kube_node: NodeStandIn,
    namespace: str,
    make_broker: Callable[..., RunningBroker],
    tmp_path: Path,
) -> None:
    instance_id = new_id()
    kube_node.when({INSTANCE_LABEL: instance_id}, "never-ready")
    broker = make_broker([short_catalog(tmp_path / "catalog")], kubernetes=kube_group(kube, namespace, {}))
    osb = broker.client
    service_id, plan_id = osb.ids("k8s-redis", "small")
    assert osb.provision(instance_id, service_id, plan_id, {}).status_code == 202
    names = names_for("redis", instance_id, namespace)
    with kube.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        wait_for(lambda: core.list_namespaced_pod(namespace).items, 30, what="the instance's pod")
        wait_for(
            lambda: core.list_namespaced_persistent_volume_claim(namespace).items, 30, what="its volume claim"
        )
    assert {"statefulset/" + names.base, "service/" + names.base, "secret/" + names.secret} <= set(
        labelled(kube, namespace, instance_id)
    )
    assert osb.last_operation(instance_id).json()["state"] == "in progress"

    response = osb.deprovision(instance_id, service_id, plan_id)
    if response.status_code == 202:  # waiting for the pod to stop
        response = osb.wait(instance_id, operation=response.json()["operation"], timeout=60)
    assert response.status_code in (200, 410) or response.json()["state"] == "succeeded", response.text
    assert labelled(kube, namespace, instance_id) == []
