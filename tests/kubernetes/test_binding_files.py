"""Binding files on Kubernetes: a Secret per release, mounted at SERVICE_BINDING_ROOT.

The real API server and controller-manager take the objects (so the volume, its items
and modes are valid Kubernetes); pods are placed on the node stand-in, which runs no
containers, so the test reads what a kubelet would project from the objects themselves.
"""

from __future__ import annotations

import base64

from moorage.platform.runtime.base import ReleaseSpec
from moorage.platform.runtime.kubernetes_manifests import APP_UID
from tests.kubernetes.conftest import KubePlatform
from tests.polling import wait_for

FILES = {
    "database": {
        "uri": "postgres://u:p@db:5432/d",
        "password": "p",
        "type": "postgresql",
        "provider": "moorage",
    },
    "bigquery": {"credentials": '{"type": "service_account"}', "type": "gcp-bigquery", "provider": "moorage"},
}


def release(version: int, bound: bool) -> ReleaseSpec:
    return ReleaseSpec(
        app="shop",
        version=version,
        slug="s3://slugs/shop/v1.tgz",
        env={"GREETING": "hello", "MOORAGE_RELEASE": f"v{version}"},
        processes={"web": "python3 -m http.server $PORT"},
        binding_files=FILES if bound else {},
        binding_paths={"GOOGLE_APPLICATION_CREDENTIALS": "bigquery/credentials"} if bound else {},
    )


def test_a_release_with_bindings_mounts_them_from_its_secret(kube_platform: KubePlatform) -> None:
    kp, ns = kube_platform, kube_platform.namespace("shop")
    kp.runtime.deploy(release(2, bound=True), {"web": 1}, lambda _: None)

    secret = kp.core.read_namespaced_secret("shop-v2-bindings", ns)
    files = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
    assert files == {f"{b}.{k}": v for b, entries in FILES.items() for k, v in entries.items()}
    assert "database.password" not in kp.core.read_namespaced_secret("shop-v2-env", ns).data

    pod = kp.apps.read_namespaced_deployment("web", ns).spec.template.spec
    volume = next(v for v in pod.volumes if v.name == "bindings")
    assert volume.secret.secret_name == "shop-v2-bindings" and volume.secret.default_mode == 0o440
    assert {(i.key, i.path) for i in volume.secret.items} >= {
        ("database.password", "database/password"),
        ("bigquery.type", "bigquery/type"),
        ("bigquery.credentials", "bigquery/credentials"),
    }
    assert pod.security_context.fs_group == APP_UID == pod.security_context.run_as_user
    container = pod.containers[0]
    mount = next(m for m in container.volume_mounts if m.name == "bindings")
    assert (mount.mount_path, mount.read_only) == ("/bindings", True)
    env = {e.name: e.value for e in container.env}
    assert env["SERVICE_BINDING_ROOT"] == "/bindings"
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == "/bindings/bigquery/credentials"

    # The controller-manager made a pod of it that the API server accepted.
    def pods() -> list:
        return kp.core.list_namespaced_pod(ns, label_selector="type=web,release=v2").items

    wait_for(lambda: len(pods()) == 1, timeout=20, what="the web pod of v2")
    assert pods()[0].spec.volumes[0].secret.secret_name == "shop-v2-bindings"

    # A release without bindings mounts nothing; v2's Secret stays while its ReplicaSet
    # (kept for rollbacks) refers to it.
    kp.runtime.deploy(release(3, bound=False), {"web": 1}, lambda _: None)
    pod = kp.apps.read_namespaced_deployment("web", ns).spec.template.spec
    assert not pod.volumes and "SERVICE_BINDING_ROOT" not in {e.name for e in pod.containers[0].env}
    names = {s.metadata.name for s in kp.core.list_namespaced_secret(ns).items}
    assert {"shop-v2-bindings", "shop-v3-env"} <= names and "shop-v3-bindings" not in names
