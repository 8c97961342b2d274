"""An app on the Kubernetes runtime bound to an in-cluster PostgreSQL: the credentials reach
its pods through the release Secret, as for every service.

Controller (Kubernetes runtime) and broker (``k8s-postgresql``) both run against the test
control plane; the instance's Service is mapped to the suite's PostgreSQL (see
``k8s_services``), so the role behind ``DATABASE_URL`` is real.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes
import psycopg

from moorage.platform.runtime.kubernetes import KubernetesRuntime
from tests.fixtures.broker import PASSWORD, RunningBroker
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kube_volumes import VolumeStandIn
from tests.fixtures.kubernetes import ControlPlane
from tests.fixtures.platform import deploy_tarball, serve_controller, tar_of
from tests.fixtures.servers import RunningServer
from tests.kubernetes.conftest import kube_settings
from tests.kubernetes.k8s_services import (
    delete_namespace,
    kube_group,
    new_namespace,
    play_postgres_start,
    short_catalog,
)

SOURCE = {"Procfile": "web: python3 -m http.server $PORT\n"}


def test_a_bound_app_gets_database_url_in_its_release_secret(
    kube: ControlPlane,
    kube_node: NodeStandIn,
    kube_volumes: VolumeStandIn,
    postgres_server: RunningServer,
    make_broker: Callable[..., RunningBroker],
    tmp_path: Path,
) -> None:
    namespace, prefix = new_namespace(), f"t{uuid.uuid4().hex[:6]}-"
    pg = (postgres_server.host, postgres_server.port)
    # The instance id is the controller's choice: map every Service of the namespace.
    group = kube_group(kube, namespace, {f"*.{namespace}.svc.cluster.local:5432": pg})
    broker = make_broker([short_catalog(tmp_path / "catalog")], kubernetes=group)
    settings = kube_settings(tmp_path / "ctl", kube, prefix).with_group(
        broker={"port": broker.settings.broker.port, "password": PASSWORD},
        platform={"osb_max_polling_seconds": 60.0},
    )
    runtime = KubernetesRuntime(settings)
    api = kube.api_client()
    core = kubernetes.client.CoreV1Api(api)
    try:
        with serve_controller(settings, runtime) as ctl:
            alice = ctl.user("alice")
            assert alice.post("/v2/apps", json={"id": "shop"}).status_code == 201
            deploy_tarball(alice, "shop", tar_of(SOURCE))
            with alice.stream(
                "POST", "/v2/services", json={"service": "k8s-postgresql", "plan": "small", "name": "db"}
            ) as r:
                lines = [json.loads(line) for line in r.read().decode().splitlines() if line.strip()]
            assert lines[-1]["result"]["state"] == "ready", lines
            (service,) = core.list_namespaced_service(namespace).items
            instance_id = service.metadata.annotations["moorage.io/instance-id"]
            play_postgres_start(kube, postgres_server.admin_url, instance_id, namespace)

            r = alice.post("/v2/services/db/bindings", json={"app": "shop"})
            assert r.status_code == 201, r.text
            version = r.json()["release"]["version"]
            secret = core.read_namespaced_secret(f"shop-v{version}-env", prefix + "shop")
            values = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
            url = urlsplit(values["DATABASE_URL"])
            assert url.hostname == f"{service.metadata.name}.{namespace}.svc.cluster.local"
            assert values["DATABASE_HOST"] == url.hostname and values["DATABASE_PORT"] == "5432"
            with psycopg.connect(
                host=pg[0],
                port=pg[1],
                dbname=url.path.lstrip("/"),
                user=url.username,
                password=values["DATABASE_PASSWORD"],
            ) as conn:
                assert conn.execute("SELECT session_user").fetchone() == (url.username,)
    finally:
        for ns in (prefix + "shop", namespace):
            delete_namespace(kube, ns)
        runtime.close()
        api.close()
