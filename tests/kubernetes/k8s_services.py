"""What the in-cluster service tests (and ``bench/k8s_services.py``) share.

The servers: pods are only objects on the test control plane (the node stand-in marks
them Ready, nothing runs their image), so each instance's Service address
``<svc>.<ns>.svc.cluster.local:<port>`` is mapped — by the test setting
``MOORAGE_KUBERNETES_SERVICES_ADDRESS_MAP`` — to a real PostgreSQL or Redis started by the
suite. The mapping is used only for the broker's own admin connection; credentials keep
the in-cluster name, and the tests connect with the credentials' user and password to
the mapped address. ``play_*_start`` does what the official image does when its container
first starts: the superuser (PostgreSQL) or ``default`` user (Redis) with the password of
the instance's Secret.
"""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path
from typing import Any

import kubernetes
import psycopg
import redis
from psycopg import sql

from moorage.providers.k8s_workload import INSTANCE_LABEL, instance_label, names_for
from tests.fixtures.broker import MAIN_CATALOG
from tests.fixtures.kube_volumes import EXPANDABLE
from tests.fixtures.kubernetes import ControlPlane

ENGINES = {"k8s-postgresql": ("postgresql", 5432), "k8s-redis": ("redis", 6379)}
#: Kinds that carry the instance's label, and how to list them.
LABELLED = (
    ("statefulset", "AppsV1Api", "list_namespaced_stateful_set"),
    ("service", "CoreV1Api", "list_namespaced_service"),
    ("secret", "CoreV1Api", "list_namespaced_secret"),
    ("pod", "CoreV1Api", "list_namespaced_pod"),
    ("persistentvolumeclaim", "CoreV1Api", "list_namespaced_persistent_volume_claim"),
)


def short_catalog(folder: Path, limit: int = 60, poll: float = 0.2) -> Path:
    """Copies of the two offering files with a short time limit and quick polling."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("k8s-postgresql.yaml", "k8s-redis.yaml"):
        text = (MAIN_CATALOG / name).read_text()
        text = re.sub(r"maximum_polling_duration: \d+", f"maximum_polling_duration: {limit}", text)
        (folder / name).write_text(text.replace("poll_seconds: 2", f"poll_seconds: {poll}"))
    return folder


def new_namespace() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


def kube_group(kube: ControlPlane, namespace: str, mapping: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """``settings.kubernetes`` for the broker: ``mapping`` is Service address → real server."""
    return {
        "kubeconfig": str(kube.kubeconfig),
        "services_namespace": namespace,
        "services_storage_class": EXPANDABLE,
        "services_address_map": ",".join(f"{src}={host}:{port}" for src, (host, port) in mapping.items()),
    }


def service_address(offering: str, instance_id: str, namespace: str) -> str:
    engine, port = ENGINES[offering]
    return f"{names_for(engine, instance_id, namespace).host}:{port}"


def admin_secret(kube: ControlPlane, offering: str, instance_id: str, namespace: str) -> dict[str, str]:
    names = names_for(ENGINES[offering][0], instance_id, namespace)
    with kube.api_client() as api:
        secret = kubernetes.client.CoreV1Api(api).read_namespaced_secret(names.secret, namespace)
    return {k: base64.b64decode(v).decode() for k, v in secret.data.items()}


def play_postgres_start(kube: ControlPlane, admin_url: str, instance_id: str, namespace: str) -> None:
    secret = admin_secret(kube, "k8s-postgresql", instance_id, namespace)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} SUPERUSER LOGIN PASSWORD {}").format(
                sql.Identifier(secret["username"]), sql.Literal(secret["password"])
            )
        )


def play_redis_start(kube: ControlPlane, admin_url: str, instance_id: str, namespace: str) -> None:
    password = admin_secret(kube, "k8s-redis", instance_id, namespace)["password"]
    with redis.Redis.from_url(admin_url) as client:
        client.execute_command("ACL", "SETUSER", "default", "on", f">{password}", "~*", "&*", "+@all")


def labelled(kube: ControlPlane, namespace: str, instance_id: str) -> list[str]:
    """``kind/name`` of everything in ``namespace`` labelled with the instance."""
    selector = f"{INSTANCE_LABEL}={instance_label(instance_id)}"
    found = []
    with kube.api_client() as api:
        for kind, api_name, method in LABELLED:
            items = getattr(getattr(kubernetes.client, api_name)(api), method)(
                namespace, label_selector=selector
            )
            found += [f"{kind}/{item.metadata.name}" for item in items.items]
    return found


def delete_namespace(kube: ControlPlane, namespace: str) -> None:
    with kube.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        try:
            core.delete_namespace(namespace)
        except kubernetes.client.rest.ApiException as exc:
            if exc.status != 404:
                raise
