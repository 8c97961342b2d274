"""SIGKILL of the broker (gunicorn, its worker threads) while an in-cluster instance is being created.

The broker runs as ``moorage broker`` in a subprocess. The node stand-in keeps the pod
unready, so the provision is waiting when the whole process group is killed. Then the pod
is let become ready (the rule dropped, the pod deleted: the StatefulSet controller makes a
new one) and a new broker on the same state database resumes the operation: it finds the
objects the first one made — the same StatefulSet and Secret (so the same admin password),
no second of either — and the operation ends ``succeeded``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import kubernetes
import pytest

from moorage.providers.k8s_workload import INSTANCE_LABEL, names_for
from tests.fixtures.broker import BrokerProcess, OsbClient, broker_settings, new_id, settings_env
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kube_volumes import VolumeStandIn
from tests.fixtures.kubernetes import ControlPlane
from tests.kubernetes.k8s_services import delete_namespace, kube_group, new_namespace, short_catalog
from tests.polling import wait_for


@pytest.mark.slow
def test_sigkill_during_provision_is_resumed_with_exactly_one_statefulset(
    kube: ControlPlane, kube_node: NodeStandIn, kube_volumes: VolumeStandIn, tmp_path: Path
) -> None:
    namespace, instance_id = new_namespace(), new_id()
    labels = {INSTANCE_LABEL: instance_id}
    kube_node.when(labels, "never-ready")
    settings = broker_settings(tmp_path / "state", [short_catalog(tmp_path / "catalog")])
    env = settings_env(settings)
    env.update({f"MOORAGE_KUBERNETES_{k.upper()}": v for k, v in kube_group(kube, namespace, {}).items()})
    process = BrokerProcess(settings, env)
    process.start()
    osb = OsbClient(process.url)
    api = kube.api_client()
    apps, core = kubernetes.client.AppsV1Api(api), kubernetes.client.CoreV1Api(api)
    names = names_for("postgresql", instance_id, namespace)
    selector = f"{INSTANCE_LABEL}={instance_id}"
    try:
        service_id, plan_id = osb.ids("k8s-postgresql", "small")
        response = osb.provision(instance_id, service_id, plan_id, {})
        assert response.status_code == 202, response.text
        operation = response.json()["operation"]
        wait_for(
            lambda: core.list_namespaced_pod(namespace, label_selector=selector).items, 30, what="the pod"
        )
        first_set = apps.read_namespaced_stateful_set(names.base, namespace).metadata.uid
        first_secret = core.read_namespaced_secret(names.secret, namespace).metadata.uid
        assert osb.last_operation(instance_id, operation=operation).json()["state"] == "in progress"
        process.kill()
        with pytest.raises(httpx.TransportError):  # really down
            osb.last_operation(instance_id)

        kube_node.forget(labels)
        core.delete_namespaced_pod(names.pod, namespace, grace_period_seconds=0)
        process.start()
        final = osb.wait(instance_id, operation=operation, timeout=60)
        assert final.json()["state"] == "succeeded", final.json()
        sets = apps.list_namespaced_stateful_set(namespace, label_selector=selector).items
        assert [s.metadata.uid for s in sets] == [first_set], "resuming must not make a second StatefulSet"
        secrets = core.list_namespaced_secret(namespace, label_selector=selector).items
        assert [s.metadata.uid for s in secrets] == [first_secret]
    finally:
        osb.close()
        process.stop()
        api.close()
        delete_namespace(kube, namespace)
        shutil.rmtree(tmp_path / "state", ignore_errors=True)
