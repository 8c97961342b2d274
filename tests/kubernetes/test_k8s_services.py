"""In-cluster PostgreSQL and Redis through the OSB API, on the real test control plane.

The broker creates real StatefulSets, Services, Secrets and claims; the real controllers
make the pod and bind its volume (the volume stand-in creates the PersistentVolume), the
node stand-in marks the pod Ready. The data path goes to real servers: each instance's
Service address is mapped (test setting, see ``k8s_services``) to a PostgreSQL or Redis of
the suite, so bindings are real roles and ACL users and their credentials really connect
— to the mapped address, with the credentials' user and password; the credentials' host
is the in-cluster DNS name, which does not resolve here.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes
import psycopg
import pytest
import redis

from moorage.embedded import EmbeddedRedis
from moorage.providers.k8s_workload import INSTANCE_ANNOTATION, INSTANCE_LABEL, names_for
from tests.fixtures.broker import OsbClient, RunningBroker, new_id
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kube_volumes import EXPANDABLE, VolumeStandIn
from tests.fixtures.kubernetes import ControlPlane
from tests.fixtures.servers import RunningServer, make_server_dir
from tests.kubernetes.k8s_services import (
    admin_secret,
    delete_namespace,
    kube_group,
    labelled,
    new_namespace,
    play_postgres_start,
    play_redis_start,
    service_address,
    short_catalog,
)


@pytest.fixture
def namespace(kube: ControlPlane, kube_node: NodeStandIn, kube_volumes: VolumeStandIn) -> Iterator[str]:
    name = new_namespace()
    yield name
    delete_namespace(kube, name)


@pytest.fixture
def redis_servers() -> Iterator[Callable[[], EmbeddedRedis]]:
    """Fresh redis-servers, one per in-cluster instance (each has the whole key space)."""
    started: list[tuple[EmbeddedRedis, Path]] = []

    def start() -> EmbeddedRedis:
        folder = make_server_dir("moorage-test-k8s-redis-")
        server = EmbeddedRedis(folder, durable=False)
        server.start()
        started.append((server, folder))
        return server

    yield start
    for server, folder in started:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def provisioned(osb: OsbClient, offering: str, plan: str, instance_id: str, **params: object) -> dict:
    service_id, plan_id = osb.ids(offering, plan)
    response = osb.provision(instance_id, service_id, plan_id, dict(params))
    assert response.status_code == 202, response.text
    return osb.wait(instance_id, operation=response.json()["operation"], timeout=60).json()


def bound(osb: OsbClient, offering: str, instance_id: str, binding_id: str) -> dict:
    service_id, plan_id = osb.ids(offering, "small")
    response = osb.bind(instance_id, binding_id, service_id, plan_id)
    if response.status_code == 202:
        osb.wait(instance_id, binding_id, response.json().get("operation"))
        response = osb.http.get(f"/v2/service_instances/{instance_id}/service_bindings/{binding_id}")
    assert response.status_code in (200, 201), response.text
    return response.json()["credentials"]


def unbind(osb: OsbClient, offering: str, instance_id: str, binding_id: str) -> None:
    service_id, plan_id = osb.ids(offering, "small")
    response = osb.unbind(instance_id, binding_id, service_id, plan_id)
    if response.status_code == 202:
        assert osb.wait(instance_id, binding_id, response.json().get("operation")).status_code == 410
    else:
        assert response.status_code == 200, response.text


def deprovisioned(osb: OsbClient, offering: str, instance_id: str) -> None:
    service_id, plan_id = osb.ids(offering, "small")
    response = osb.deprovision(instance_id, service_id, plan_id)
    if response.status_code == 202:  # waiting for the pod to stop
        response = osb.wait(instance_id, operation=response.json()["operation"], timeout=60)
    assert response.status_code in (200, 410) or response.json()["state"] == "succeeded", response.text


def pg_connect(creds: dict, server: RunningServer, **kwargs: object) -> psycopg.Connection:
    """The credentials' user, password and database, at the address the Service is mapped to."""
    return psycopg.connect(
        host=server.host, port=server.port, dbname=creds["database"], user=creds["username"],
        password=creds["password"], connect_timeout=5, **kwargs,
    )  # fmt: skip


def test_postgresql_lifecycle_bindings_isolation_and_cleanup(
    kube: ControlPlane,
    namespace: str,
    postgres_server: RunningServer,
    make_broker: Callable[..., RunningBroker],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    first, other = new_id(), new_id()
    mapping = {
        service_address("k8s-postgresql", i, namespace): (postgres_server.host, postgres_server.port)
        for i in (first, other)
    }
    broker = make_broker(
        [short_catalog(tmp_path / "catalog")], kubernetes=kube_group(kube, namespace, mapping)
    )
    osb = broker.client
    assert provisioned(osb, "k8s-postgresql", "small", first, storage_gb=2)["state"] == "succeeded"
    assert provisioned(osb, "k8s-postgresql", "small", other)["state"] == "succeeded"

    names = names_for("postgresql", first, namespace)
    with kube.api_client() as api:
        sts = kubernetes.client.AppsV1Api(api).read_namespaced_stateful_set(names.base, namespace)
        service = kubernetes.client.CoreV1Api(api).read_namespaced_service(names.base, namespace)
    assert sts.metadata.labels[INSTANCE_LABEL] == first
    assert sts.metadata.annotations[INSTANCE_ANNOTATION] == first
    container = sts.spec.template.spec.containers[0]
    assert container.image == "postgres:16.4"
    assert sts.spec.template.spec.security_context.run_as_non_root
    claim = sts.spec.volume_claim_templates[0].spec
    assert (claim.storage_class_name, claim.resources.requests["storage"]) == (EXPANDABLE, "2Gi")
    assert service.spec.ports[0].port == 5432 and service.spec.selector == {INSTANCE_LABEL: first}
    instance = osb.http.get(f"/v2/service_instances/{first}").json()
    assert instance["maintenance_info"]["version"] == "16.4.0"

    for instance_id in (first, other):
        play_postgres_start(kube, postgres_server.admin_url, instance_id, namespace)
    admin = admin_secret(kube, "k8s-postgresql", first, namespace)
    one = bound(osb, "k8s-postgresql", first, "binding-one")
    two = bound(osb, "k8s-postgresql", first, "binding-two")
    theirs = bound(osb, "k8s-postgresql", other, "binding-other")
    assert one["host"] == f"{names.base}.{namespace}.svc.cluster.local" and one["port"] == 5432
    assert one["uri"].startswith(f"postgres://{one['username']}:")
    assert f"@{names.base}.{namespace}.svc.cluster.local:5432/" in one["uri"]
    with pg_connect(one, postgres_server, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (body text)")
        conn.execute("INSERT INTO notes VALUES ('hello')")
    with pg_connect(two, postgres_server) as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("hello",)]
    # isolation: the other instance's binding cannot reach this instance's database
    with pytest.raises(psycopg.OperationalError, match="permission denied|not permitted"):
        pg_connect({**theirs, "database": one["database"]}, postgres_server).close()

    # bindings block the delete
    service_id, plan_id = osb.ids("k8s-postgresql", "small")
    assert osb.deprovision(first, service_id, plan_id).status_code == 400

    still_open = pg_connect(one, postgres_server, autocommit=True)
    unbind(osb, "k8s-postgresql", first, "binding-one")
    with pytest.raises(psycopg.OperationalError):
        pg_connect(one, postgres_server).close()
    with pytest.raises(psycopg.OperationalError):  # its open session was closed too
        still_open.execute("SELECT 1")
    still_open.close()
    with pg_connect(two, postgres_server) as conn:  # the table outlived its creator
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (1,)

    unbind(osb, "k8s-postgresql", first, "binding-two")
    unbind(osb, "k8s-postgresql", other, "binding-other")
    for instance_id in (first, other):
        deprovisioned(osb, "k8s-postgresql", instance_id)
        assert labelled(kube, namespace, instance_id) == []
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "created statefulset" in logged
    for secret in (admin["password"], one["password"], two["password"]):
        assert secret not in logged
    assert admin["password"] not in str([one, two, theirs, instance])


def test_redis_lifecycle_bindings_isolation_and_unbind(
    kube: ControlPlane,
    namespace: str,
    redis_servers: Callable[[], EmbeddedRedis],
    make_broker: Callable[..., RunningBroker],
    tmp_path: Path,
) -> None:
    first, other = new_id(), new_id()
    servers = {first: redis_servers(), other: redis_servers()}
    mapping = {service_address("k8s-redis", i, namespace): (s.host, s.port) for i, s in servers.items()}
    broker = make_broker(
        [short_catalog(tmp_path / "catalog")], kubernetes=kube_group(kube, namespace, mapping)
    )
    osb = broker.client
    for instance_id, server in servers.items():
        assert provisioned(osb, "k8s-redis", "small", instance_id)["state"] == "succeeded"
        play_redis_start(kube, server.admin_url, instance_id, namespace)
    names = names_for("redis", first, namespace)
    with kube.api_client() as api:
        sts = kubernetes.client.AppsV1Api(api).read_namespaced_stateful_set(names.base, namespace)
    assert sts.spec.template.spec.containers[0].image == "redis:7.2.5"

    one = bound(osb, "k8s-redis", first, "binding-one")
    two = bound(osb, "k8s-redis", first, "binding-two")
    theirs = bound(osb, "k8s-redis", other, "binding-other")
    assert one["host"] == f"{names.base}.{namespace}.svc.cluster.local"
    assert one["uri"] == f"redis://{one['username']}:{one['password']}@{one['host']}:6379"

    def client(creds: dict, server: EmbeddedRedis) -> redis.Redis:
        return redis.Redis(
            host=server.host, port=server.port, username=creds["username"], password=creds["password"]
        )

    mine, theirs_server = servers[first], servers[other]
    with client(one, mine) as c:
        c.set("any:key", "1")  # the whole key space
        with pytest.raises(redis.ResponseError, match="permission"):
            c.execute_command("CONFIG", "GET", "dir")
    with client(two, mine) as c:
        assert c.get("any:key") == b"1"
    with pytest.raises(redis.AuthenticationError), client(one, theirs_server) as c:  # isolation
        c.get("any:key")
    with client(theirs, theirs_server) as c:
        assert c.get("any:key") is None

    still_open = redis.Connection(
        host=mine.host, port=mine.port, username=one["username"], password=one["password"]
    )
    still_open.connect()
    still_open.send_command("PING")
    assert still_open.read_response() == b"PONG"
    unbind(osb, "k8s-redis", first, "binding-one")
    with pytest.raises(redis.AuthenticationError), client(one, mine) as c:
        c.ping()
    with pytest.raises(redis.ConnectionError):  # deleting the user closed its connection
        still_open.send_command("PING")
        still_open.read_response()
    still_open.disconnect()
    with client(two, mine) as c:
        assert c.get("any:key") == b"1"

    unbind(osb, "k8s-redis", first, "binding-two")
    unbind(osb, "k8s-redis", other, "binding-other")
    for instance_id in servers:
        deprovisioned(osb, "k8s-redis", instance_id)
        assert labelled(kube, namespace, instance_id) == []


def test_a_plan_with_retain_data_keeps_the_volume_after_deprovision(
    kube: ControlPlane, namespace: str, make_broker: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    instance_id = new_id()
    broker = make_broker([short_catalog(tmp_path / "catalog")], kubernetes=kube_group(kube, namespace, {}))
    osb = broker.client
    assert provisioned(osb, "k8s-postgresql", "standard", instance_id)["state"] == "succeeded"
    names = names_for("postgresql", instance_id, namespace)
    service_id, plan_id = osb.ids("k8s-postgresql", "standard")
    response = osb.deprovision(instance_id, service_id, plan_id)
    if response.status_code == 202:
        response = osb.wait(instance_id, operation=response.json()["operation"], timeout=60)
    assert response.status_code in (200, 410) or response.json()["state"] == "succeeded", response.text
    assert labelled(kube, namespace, instance_id) == [f"persistentvolumeclaim/data-{names.base}-0"]
    with kube.api_client() as api:
        claim = kubernetes.client.CoreV1Api(api).read_namespaced_persistent_volume_claim(
            f"data-{names.base}-0", namespace
        )
    assert claim.spec.resources.requests["storage"] == "10Gi" and claim.status.phase == "Bound"
