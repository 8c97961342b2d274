"""In-cluster PostgreSQL on the test control plane: provision until usable, and bind + unbind.

What is measured: ``moorage broker`` (gunicorn, default worker settings, the shipped
``k8s-postgresql`` offering) against the test control plane (etcd, kube-apiserver,
controller-manager, scheduler v1.20.2; the node and volume stand-ins of the tests play
kubelet and storage driver). The instance's Service is mapped to Moorage's embedded
PostgreSQL (``MOORAGE_KUBERNETES_SERVICES_ADDRESS_MAP``), as in the tests: pods are only
objects here, so the bind's role statements run on a real server.

1. Provision until usable: from ``PUT /v2/service_instances/<id>`` to ``last_operation``
   ``succeeded`` (polled every 20 ms). Baseline in the same run: from the same PUT until the
   pod is Ready in the API (polled every 20 ms) — what the control plane itself takes; the
   rest is the provider's poll interval (plan ``poll_seconds``) and the worker.
2. Bind + unbind: ``PUT …/service_bindings/<id>`` (201) then ``DELETE`` (200). Baseline:
   the same role statements (:mod:`moorage.providers.pg_roles`) by hand on two open
   connections as the instance's superuser. Informational: the same by hand, opening
   the connections for each cycle as the provider does (it reads the admin Secret too).
   Target: direct rate / broker rate ≤ 1.5.

    .venv/bin/python -m bench.k8s_services [--instances 3] [--cycles 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
import uuid

import httpx
import kubernetes
import psycopg

from bench.common import ROOT, bench_dir, broker_process, embedded_postgres, expect
from moorage.providers import pg_roles
from moorage.providers.k8s_workload import names_for
from moorage.providers.postgres import binding_role, instance_names
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kube_volumes import EXPANDABLE, VolumeStandIn
from tests.fixtures.kubernetes import ControlPlane, run_control_plane
from tests.kubernetes.k8s_services import admin_secret, play_postgres_start, service_address

SERVICE_ID = "82450cb7-306d-412b-9376-269e7fd1758d"
PLAN_ID = "44505a7b-66dd-402b-832c-334f65b21a28"  # small
NAMESPACE = "bench-services"
TARGET = 1.5


def pod_ready(core: kubernetes.client.CoreV1Api, instance_id: str) -> bool:
    pod = names_for("postgresql", instance_id, NAMESPACE).pod
    try:
        found = core.read_namespaced_pod(pod, NAMESPACE)
    except kubernetes.client.rest.ApiException:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in found.status.conditions or [])


def provision(http: httpx.Client, core: kubernetes.client.CoreV1Api, instance_id: str) -> tuple[float, float]:
    """(seconds to pod Ready, seconds to ``succeeded``) from the PUT."""
    body = {"service_id": SERVICE_ID, "plan_id": PLAN_ID, "organization_guid": "o", "space_guid": "s"}
    start = time.perf_counter()
    response = http.put(
        f"/v2/service_instances/{instance_id}", json=body, params={"accepts_incomplete": "true"}
    )
    if response.status_code == 201:  # ready within the first step
        done = time.perf_counter() - start
        print(f"  {instance_id}: ready within the PUT ({done:.2f} s)")
        return done, done
    operation = expect(response, 202).json()["operation"]
    ready_at = None
    while True:
        if ready_at is None and pod_ready(core, instance_id):
            ready_at = time.perf_counter() - start
        state = http.get(
            f"/v2/service_instances/{instance_id}/last_operation", params={"operation": operation}
        ).json()["state"]
        if state != "in progress":
            done = time.perf_counter() - start
            if state != "succeeded":
                raise RuntimeError(f"provision of {instance_id} ended {state}")
            return (ready_at if ready_at is not None else done), done
        time.sleep(0.02)


def broker_cycles(http: httpx.Client, instance_id: str, count: int) -> float:
    path = f"/v2/service_instances/{instance_id}/service_bindings/"
    body = {"service_id": SERVICE_ID, "plan_id": PLAN_ID, "bind_resource": {"app_guid": "bench"}}
    params = {"service_id": SERVICE_ID, "plan_id": PLAN_ID, "accepts_incomplete": "true"}
    start = time.perf_counter()
    for _ in range(count):
        binding_id = str(uuid.uuid4())
        expect(http.put(path + binding_id, json=body, params={"accepts_incomplete": "true"}), 201)
        expect(http.delete(path + binding_id, params=params), 200)
    return time.perf_counter() - start


def direct_cycles(
    kube: ControlPlane, pg: tuple[str, int], instance_id: str, count: int, reconnect: bool
) -> float:
    database, group = instance_names(instance_id)
    secret = admin_secret(kube, "k8s-postgresql", instance_id, NAMESPACE)
    login = {
        "host": pg[0],
        "port": pg[1],
        "user": secret["username"],
        "password": secret["password"],
        "autocommit": True,
    }
    start = time.perf_counter()
    admin = in_db = None
    for _ in range(count):
        if admin is None or reconnect:
            admin, in_db = (
                psycopg.connect(dbname="postgres", **login),
                psycopg.connect(dbname=database, **login),
            )
        role = binding_role(instance_id, str(uuid.uuid4()))
        pg_roles.create_login_role(admin, role, secrets.token_urlsafe(24), group)
        pg_roles.drop_login_role(in_db, role, group)
        if reconnect:
            admin.close()
            in_db.close()
    elapsed = time.perf_counter() - start
    if admin is not None and not reconnect:
        admin.close()
        in_db.close()  # type: ignore[union-attr]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ids = [str(uuid.uuid4()) for _ in range(args.instances)]
    with (
        bench_dir("moorage-bench-k8s-") as base,
        run_control_plane() as kube,
        NodeStandIn(kube),
        embedded_postgres(base / "pg") as admin_url,
    ):
        volumes = VolumeStandIn(kube).start()
        try:
            pg = (
                admin_url.split("@")[1].split("/")[0].rsplit(":", 1)[0],
                int(admin_url.split("@")[1].split("/")[0].rsplit(":", 1)[1]),
            )
            env = {
                "MOORAGE_KUBERNETES_KUBECONFIG": str(kube.kubeconfig),
                "MOORAGE_KUBERNETES_SERVICES_NAMESPACE": NAMESPACE,
                "MOORAGE_KUBERNETES_SERVICES_STORAGE_CLASS": EXPANDABLE,
                "MOORAGE_KUBERNETES_SERVICES_ADDRESS_MAP": ",".join(
                    f"{service_address('k8s-postgresql', i, NAMESPACE)}={pg[0]}:{pg[1]}" for i in ids
                ),
            }
            catalog = base / "catalog"
            catalog.mkdir()
            (catalog / "k8s-postgresql.yaml").write_text(
                (ROOT / "catalog" / "k8s-postgresql.yaml").read_text()
            )
            with (
                broker_process(base / "state", catalog, env) as broker,
                broker.client() as http,
                kube.api_client() as api,
            ):
                measure(kube, http, kubernetes.client.CoreV1Api(api), admin_url, pg, ids, args)
        finally:
            volumes.stop()


def measure(kube, http, core, admin_url, pg, ids, args) -> None:  # type: ignore[no-untyped-def]
    samples = [provision(http, core, i) for i in ids]
    ready = [s[0] for s in samples]
    done = [s[1] for s in samples]
    print(
        f"provision until usable ({len(ids)} instances): median {statistics.median(done):.2f} s, max {max(done):.2f} s"
    )
    print(
        f"  pod Ready in the API (baseline): median {statistics.median(ready):.2f} s, max {max(ready):.2f} s"
    )
    instance = ids[0]
    play_postgres_start(kube, admin_url, instance, NAMESPACE)
    rates: dict[str, list[float]] = {"broker": [], "direct": [], "reconnect": []}
    broker_cycles(http, instance, 3)  # warm-up: the database and group exist after the first bind
    for _ in range(args.rounds):
        rates["broker"].append(args.cycles / broker_cycles(http, instance, args.cycles))
        rates["direct"].append(args.cycles / direct_cycles(kube, pg, instance, args.cycles, reconnect=False))
        rates["reconnect"].append(
            args.cycles / direct_cycles(kube, pg, instance, args.cycles, reconnect=True)
        )
    medians = {k: statistics.median(v) for k, v in rates.items()}
    print("median cycles/s (bind + unbind):")
    for name, value in medians.items():
        print(f"  {name:9s} {value:7.1f}  ({1000 / value:.1f} ms per cycle)")
    ratio = medians["direct"] / medians["broker"]
    print(
        f"direct / broker = {ratio:.2f} ({'meets' if ratio <= TARGET else 'MISSES'} the target of at most {TARGET})"
    )
    print(f"reconnecting by hand / broker = {medians['reconnect'] / medians['broker']:.2f}")
    params = {"service_id": SERVICE_ID, "plan_id": PLAN_ID, "accepts_incomplete": "true"}
    for instance_id in ids:  # clean up: wait for each delete to end
        response = http.delete(f"/v2/service_instances/{instance_id}", params=params)
        while response.status_code == 202 or response.json().get("state") == "in progress":
            time.sleep(0.05)
            response = http.get(f"/v2/service_instances/{instance_id}/last_operation")


if __name__ == "__main__":
    main()
