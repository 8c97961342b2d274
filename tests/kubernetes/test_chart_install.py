"""charts/moorage installed into the test control plane: install, upgrade and test with helm.

The control plane is real (kube-apiserver, controller-manager, scheduler, etcd); the node
stand-in plays the kubelet: it does not pull images or run containers, it marks scheduled
pods Running and Ready — so these tests show what Kubernetes and helm do with the chart's
objects, not that Moorage's image starts. The helm test pod is the exception: the stand-in
runs its own command as a local process against a controller the test serves.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import kubernetes
import pytest

from moorage.clients.kubernetes import KubeApi
from moorage.errors import ConflictError, Error
from moorage.platform.runtime.base import ReleaseSpec
from moorage.platform.runtime.kubernetes import KubernetesRuntime
from tests.fixtures.kube_local import LocalLaunch
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kubernetes import ControlPlane, write_kubeconfig
from tests.fixtures.platform import serve_controller
from tests.kubernetes.chart import CHART, MINIMAL, PRODUCTION, run
from tests.kubernetes.conftest import kube_settings
from tests.polling import wait_for

IMAGE = ["--set", "image.repository=registry.example/moorage/moorage"]


@dataclass
class Installed:
    name: str
    namespace: str
    helm_env: dict[str, str]
    kube: ControlPlane
    install_output: str

    def helm(self, *args: str, timeout: float = 300) -> CompletedProcess[str]:
        return _helm(self.kube, self.helm_env, *args, "-n", self.namespace, timeout=timeout)

    def kubectl(self, *args: str) -> CompletedProcess[str]:
        """As the admin, with its discovery cache beside helm's (not in the working folder)."""
        cache = Path(self.helm_env["HELM_CACHE_HOME"]) / "kube"
        return run([self.kube.kubectl, "--kubeconfig", self.kube.kubeconfig, "--cache-dir", cache, *args])


def _helm(kube: ControlPlane, env: dict[str, str], *args: str, timeout: float = 300) -> CompletedProcess[str]:
    return run([kube.helm, *args], timeout=timeout, env=env)


def _helm_env(kube: ControlPlane, home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),  # helm keeps its discovery cache under $HOME/.kube
        "KUBECONFIG": str(kube.kubeconfig),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


@pytest.fixture(scope="module")
def installed(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    name, namespace = "mo", f"moorage-{uuid.uuid4().hex[:6]}"
    env = _helm_env(kube, tmp_path_factory.mktemp("helm"))
    done = _helm(
        kube,
        env,
        "install",
        name,
        str(CHART),
        "-n",
        namespace,
        "--create-namespace",
        "-f",
        str(MINIMAL),
        *IMAGE,
        "--wait",
        "--timeout",
        "180s",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    release = Installed(name, namespace, env, kube, done.stdout)
    yield release
    release.helm("uninstall", name, "--wait", "--timeout", "120s")
    with kube.api_client() as api:
        kubernetes.client.CoreV1Api(api).delete_namespace(namespace)


def _apis(kube: ControlPlane):  # type: ignore[no-untyped-def]
    api = kube.api_client()
    return api, kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)


def test_install_waits_for_ready_servers_and_says_what_to_run_next(installed: Installed) -> None:
    api, core, apps = _apis(installed.kube)
    ns = installed.namespace
    with api:
        ready = {d.metadata.name: d.status.ready_replicas for d in apps.list_namespaced_deployment(ns).items}
        assert ready == {"mo-moorage-controller": 2, "mo-moorage-broker": 2, "mo-moorage-worker": 1}
        endpoints = core.read_namespaced_endpoints("mo-moorage-controller", ns)
        assert sum(len(s.addresses or []) for s in endpoints.subsets or []) == 2
        # The 1.20 test server has no policy/v1, nor the client library policy/v1beta1.
        listed = installed.kubectl("-n", ns, "get", "poddisruptionbudgets.v1beta1.policy", "-o", "json")
        budgets = {
            b["metadata"]["name"]: b["status"]["disruptionsAllowed"]
            for b in json.loads(listed.stdout)["items"]
        }
        assert budgets == {"mo-moorage-controller": 1, "mo-moorage-broker": 1}, listed.stderr
        net = kubernetes.client.NetworkingV1Api(api)
        assert {p.metadata.name for p in net.list_namespaced_network_policy(ns).items} == {
            "mo-moorage-controller",
            "mo-moorage-broker",
            "mo-moorage-worker",
        }
    notes = installed.install_output
    assert f"helm test -n {ns} mo" in notes
    assert f"kubectl -n {ns} port-forward service/mo-moorage-controller 5000:80" in notes
    assert "Back it up: without it nothing stored can be read." in notes


@dataclass
class HealthTarget:
    """Where the locally run helm test pod sends its request (the controller's Service, here)."""

    url: str = "http://127.0.0.1:1"  # nothing listens: no controller answers


@pytest.fixture
def health_pod_runs_locally(kube_node: NodeStandIn, tmp_path: Path) -> Iterator[HealthTarget]:
    """The stand-in runs the helm test pod's own command as a local process.

    It stands in for a kubelet and for the cluster's DNS: the pod's ``HEALTH_URL`` (the
    controller's Service) becomes the address of a controller the test serves on loopback.
    """
    target = HealthTarget()

    def launch(pod: Any, env: dict[str, str]) -> LocalLaunch:
        path = env["HEALTH_URL"].partition("-controller")[2]
        return LocalLaunch(
            argv=list(pod.spec.containers[0].command),
            env={"PATH": os.environ["PATH"], "HEALTH_URL": target.url + path},
            cwd=tmp_path,
        )

    kube_node.run_locally = launch
    try:
        yield target
    finally:
        kube_node.run_locally = None


def test_helm_test_asks_the_controller_and_fails_when_it_does_not_answer(
    installed: Installed, health_pod_runs_locally: HealthTarget, tmp_path: Path
) -> None:
    settings = kube_settings(tmp_path / "data", installed.kube, "health-")
    runtime = KubernetesRuntime(settings)
    try:
        with serve_controller(settings, runtime) as ctl:
            health_pod_runs_locally.url = ctl.url
            passed = installed.helm("test", installed.name, "--logs", "--timeout", "60s")
    finally:
        runtime.close()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "TEST SUITE:     mo-moorage-test-health" in passed.stdout
    assert "Phase:          Succeeded" in passed.stdout
    assert f"{ctl.url}/readiness 200" in passed.stdout, passed.stdout  # the pod's own log

    # The controller is gone: the pod's request fails, the pod fails, so does helm test.
    failed = installed.helm("test", installed.name, "--timeout", "60s")
    assert failed.returncode == 1, failed.stdout
    assert "mo-moorage-test-health" in failed.stderr and "failed" in failed.stderr, failed.stderr


def test_upgrade_rolls_new_replicas_and_keeps_the_encryption_key(installed: Installed) -> None:
    api, core, apps = _apis(installed.kube)
    ns = installed.namespace
    with api:
        before = core.read_namespaced_secret("mo-moorage", ns).data
        done = installed.helm(
            "upgrade",
            installed.name,
            str(CHART),
            "-f",
            str(MINIMAL),
            *IMAGE,
            "--set",
            "controller.replicas=3",
            "--set",
            "platform.logLevel=DEBUG",
            "--wait",
            "--timeout",
            "180s",
        )
        assert done.returncode == 0, done.stdout + done.stderr
        controller = apps.read_namespaced_deployment("mo-moorage-controller", ns)
        assert (controller.spec.replicas, controller.status.ready_replicas) == (3, 3)
        assert controller.status.updated_replicas == 3
        env = {e.name: e.value for e in controller.spec.template.spec.containers[0].env}
        assert env["MOORAGE_LOG_LEVEL"] == "DEBUG"
        # A new key would unlock none of the credentials stored with the old one.
        assert core.read_namespaced_secret("mo-moorage", ns).data == before
        history = installed.helm("history", installed.name)
        assert "deployed" in history.stdout.splitlines()[-1] and len(history.stdout.splitlines()) == 3


def test_bad_values_install_nothing(kube: ControlPlane, tmp_path: Path) -> None:
    env = _helm_env(kube, tmp_path)
    namespace = f"moorage-bad-{uuid.uuid4().hex[:6]}"
    done = _helm(
        kube,
        env,
        "install",
        "bad",
        str(CHART),
        "-n",
        namespace,
        "--create-namespace",
        "-f",
        str(MINIMAL),
        "--set",
        "worker.threads=0",
        "--wait",
        "--timeout",
        "30s",
    )
    assert done.returncode == 1
    assert "at '/worker/threads': minimum: got 0, want 1" in done.stderr
    api, core, _ = _apis(kube)
    with api:
        assert namespace not in {n.metadata.name for n in core.list_namespace().items}
    assert _helm(kube, env, "list", "-A", "-q").stdout.split().count("bad") == 0


def test_uninstall_leaves_the_encryption_key(kube: ControlPlane, tmp_path: Path) -> None:
    env = _helm_env(kube, tmp_path)
    namespace = f"moorage-keep-{uuid.uuid4().hex[:6]}"
    common = ["-n", namespace]
    done = _helm(kube, env, "install", "kept", str(CHART), *common, "--create-namespace", "-f", str(MINIMAL))
    assert done.returncode == 0, done.stderr
    api, core, apps = _apis(kube)
    with api:
        key = core.read_namespaced_secret("kept-moorage", namespace).data["encryption-key"]
        gone = _helm(kube, env, "uninstall", "kept", *common, "--wait", "--timeout", "60s")
        assert gone.returncode == 0, gone.stderr
        assert "kept-moorage" in gone.stdout + gone.stderr  # helm says what it kept
        assert apps.list_namespaced_deployment(namespace).items == []
        assert core.read_namespaced_secret("kept-moorage", namespace).data["encryption-key"] == key
        # Installed again, the release finds and uses the same key.
        again = _helm(kube, env, "install", "kept", str(CHART), *common, "-f", str(MINIMAL))
        assert again.returncode == 0, again.stderr
        assert core.read_namespaced_secret("kept-moorage", namespace).data["encryption-key"] == key
        _helm(kube, env, "uninstall", "kept", *common)
        core.delete_namespace(namespace)


def test_production_values_install_with_secrets_made_beforehand(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path
) -> None:
    """ci/production-values.yaml: Secrets made by the operator, an Ingress, three replicas."""
    env = _helm_env(kube, tmp_path)
    namespace = f"moorage-prod-{uuid.uuid4().hex[:6]}"
    api, core, apps = _apis(kube)
    with api:
        core.create_namespace({"metadata": {"name": namespace}})
        for name, data in {
            "moorage-database": {"url": "postgresql://moorage:pw@db.internal:5432/moorage"},
            "moorage-keys": {"encryption-key": "a" * 43 + "=", "broker-password": "operator-made"},
            "moorage-slug-store": {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "secret"},
        }.items():
            core.create_namespaced_secret(namespace, {"metadata": {"name": name}, "stringData": data})
        try:
            done = _helm(
                kube,
                env,
                "install",
                "prod",
                str(CHART),
                "-n",
                namespace,
                "-f",
                str(PRODUCTION),
                "--wait",
                "--timeout",
                "180s",
            )
            assert done.returncode == 0, done.stdout + done.stderr
            ready = {
                d.metadata.name: d.status.ready_replicas
                for d in apps.list_namespaced_deployment(namespace).items
            }
            assert ready == {"prod-moorage-controller": 3, "prod-moorage-broker": 3, "prod-moorage-worker": 2}
            ingress = kubernetes.client.NetworkingV1Api(api).read_namespaced_ingress(
                "prod-moorage-controller", namespace
            )
            assert ingress.spec.rules[0].host == "moorage.example.org"
            # The chart made no Secret of its own: the operator's are the only ones.
            secrets = {s.metadata.name for s in core.list_namespaced_secret(namespace).items}
            assert {n for n in secrets if "moorage" in n and not n.startswith("sh.helm")} == {
                "moorage-database",
                "moorage-keys",
                "moorage-slug-store",
            }
            assert "export MOORAGE_URL=https://moorage.example.org" in done.stdout
        finally:
            _helm(kube, env, "uninstall", "prod", "-n", namespace, "--wait", "--timeout", "60s")
            core.delete_namespace(namespace)


def test_in_cluster_services_get_a_service_account_confined_to_their_namespace(
    kube: ControlPlane, tmp_path: Path
) -> None:
    env = _helm_env(kube, tmp_path)
    suffix = uuid.uuid4().hex[:6]
    namespace, services = f"moorage-svc-{suffix}", f"services-{suffix}"
    sets = ["--set", "inClusterServices.enabled=true", "--set", f"inClusterServices.namespace={services}"]
    done = _helm(
        kube,
        env,
        "install",
        "svc",
        str(CHART),
        "-n",
        namespace,
        "--create-namespace",
        "-f",
        str(MINIMAL),
        *sets,
    )
    assert done.returncode == 0, done.stderr
    who = f"system:serviceaccount:{namespace}:svc-moorage-services"
    cache = tmp_path / "kube"

    def can(*args: str) -> str:
        argv = [kube.kubectl, "--kubeconfig", kube.kubeconfig, "--cache-dir", cache, "auth", "can-i", *args]
        return run([*argv, "--as", who]).stdout.strip()

    api, core, apps = _apis(kube)
    try:
        assert can("create", "statefulsets.apps", "-n", services) == "yes"
        assert can("delete", "persistentvolumeclaims", "-n", services) == "yes"
        assert can("get", "secrets", "-n", services) == "yes"
        assert can("get", "secrets", "-n", "kube-system") == "no"
        assert can("create", "statefulsets.apps", "-n", namespace) == "no"
        assert can("create", "deployments.apps", "-n", services) == "no"
        assert can("get", f"namespaces/{services}") == "yes"
        assert can("get", "namespaces/kube-system") == "no"
        with api:
            for name in ("svc-moorage-broker", "svc-moorage-worker"):
                pod = apps.read_namespaced_deployment(name, namespace).spec.template.spec
                assert (pod.service_account_name, pod.automount_service_account_token) == (
                    "svc-moorage-services",
                    True,
                )
    finally:
        _helm(kube, env, "uninstall", "svc", "-n", namespace)
        with kube.api_client() as cleanup:
            client = kubernetes.client.CoreV1Api(cleanup)
            # The services namespace outlives the release (it holds the instances' data).
            assert client.read_namespace(services).metadata.name == services
            client.delete_namespace(services)
            client.delete_namespace(namespace)


def _service_account_kubeconfig(installed: Installed, path: Path) -> Path:
    token = installed.kubectl("-n", installed.namespace, "create", "token", "mo-moorage", "--duration", "1h")
    assert token.returncode == 0, token.stderr
    write_kubeconfig(path, installed.kube.server, installed.kube.ca_file, token.stdout.strip())
    return path


def _as_service_account(installed: Installed, tmp_path: Path, prefix: str) -> KubernetesRuntime:
    """The runtime with a token of the chart's ServiceAccount and the settings the chart gives it."""
    kubeconfig = _service_account_kubeconfig(installed, tmp_path / "kubeconfig")
    return KubernetesRuntime(
        kube_settings(
            tmp_path / "data",
            installed.kube,
            prefix,
            kubeconfig=str(kubeconfig),
            app_role="mo-moorage-app",
            service_account=f"{installed.namespace}/mo-moorage",
        )
    )


def test_the_runtime_works_as_the_chart_service_account(installed: Installed, tmp_path: Path) -> None:
    """Every call the Kubernetes runtime makes is allowed to the chart's ServiceAccount.

    Allowed only in the app's namespace: the runtime binds the chart's app role there itself.
    """
    prefix = f"sa{uuid.uuid4().hex[:5]}-"
    runtime = _as_service_account(installed, tmp_path, prefix)
    release = ReleaseSpec(
        app="rbac",
        version=1,
        slug="https://slugs.example/rbac/v1.tgz",
        env={"GREETING": "hi"},
        processes={"web": "python3 -m http.server $PORT", "worker": "sleep 3600"},
        owner="alice",
    )
    progress: list[str] = []
    try:
        assert _can(installed, "list", "secrets", prefix + "rbac") == "no"
        runtime.deploy(release, {"web": 1, "worker": 1}, progress.append)
        assert _can(installed, "list", "secrets", prefix + "rbac") == "yes"
        runtime.deploy(
            replace(release, version=2, env={"GREETING": "hello"}),
            {"web": 1, "worker": 1},
            progress.append,
        )
        runtime.scale("rbac", {"web": 2}, progress.append)
        runtime.restart("rbac", "web", progress.append)
        wanted = [("web", "up"), ("web", "up"), ("worker", "up")]
        wait_for(lambda: sorted((p.type, p.state) for p in runtime.status("rbac")) == wanted, timeout=30)
        list(runtime.logs("rbac"))
        assert runtime.run_once(release, "true", timeout=30).exit_code == 0
        runtime.release_task(replace(release, version=3), "true", 30, progress.append)  # a Job
    finally:
        runtime.destroy("rbac")
        runtime.close()
    assert any("v2 is up" in line for line in progress), progress
    with installed.kube.api_client() as api:
        gone = kubernetes.client.CoreV1Api(api).read_namespace(prefix + "rbac").status.phase
        assert gone == "Terminating"


def test_an_app_namespace_made_before_gets_the_binding_at_its_next_deploy(
    installed: Installed, tmp_path: Path
) -> None:
    """A namespace the runtime made under a chart that granted it everything has no RoleBinding."""
    prefix = f"ob{uuid.uuid4().hex[:5]}-"
    with installed.kube.api_client() as api:
        labels = {"app.kubernetes.io/managed-by": "moorage", "moorage.io/app": "old"}
        kubernetes.client.CoreV1Api(api).create_namespace(
            {"metadata": {"name": prefix + "old", "labels": labels}}
        )
    runtime = _as_service_account(installed, tmp_path, prefix)
    release = ReleaseSpec(
        app="old", version=1, slug="https://slugs.example/old/v1.tgz", env={}, processes={"web": "true"}
    )
    try:
        with pytest.raises(Error, match="forbidden"):
            runtime.status("old")  # before: the runtime may not even list the pods
        runtime.deploy(release, {"web": 1}, lambda _: None)
        assert [p.type for p in runtime.status("old")] == ["web"]
    finally:
        runtime.destroy("old")
        runtime.close()


def test_a_namespace_moorage_did_not_make_is_not_taken_over(installed: Installed, tmp_path: Path) -> None:
    """With no prefix, an app named ``default`` would otherwise hand the runtime that namespace."""
    runtime = _as_service_account(installed, tmp_path, "")
    release = ReleaseSpec(
        app="default", version=1, slug="https://slugs.example/d/v1.tgz", env={}, processes={"web": "true"}
    )
    try:
        with pytest.raises(ConflictError, match="exists and Moorage did not make it"):
            runtime.deploy(release, {"web": 1}, lambda _: None)
    finally:
        runtime.close()
    assert _can(installed, "list", "secrets", "default") == "no"
    with installed.kube.api_client() as api:
        rbac = kubernetes.client.RbacAuthorizationV1Api(api)
        assert rbac.list_namespaced_role_binding("default").items == []


def _can(installed: Installed, verb: str, resource: str, namespace: str = "") -> str:
    """``kubectl auth can-i`` as the chart's ServiceAccount (``pods/exec``: a subresource)."""
    kind, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, kind, "--as", f"system:serviceaccount:{installed.namespace}:mo-moorage"]
    args += [f"--subresource={sub}"] if sub else []
    args += ["-n", namespace] if namespace else []
    done = installed.kubectl(*args)
    assert done.stdout.strip() in ("yes", "no"), done.stdout + done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("verb", "resource", "namespace"),
    [
        ("create", "pods/exec", "kube-system"),
        ("create", "pods/portforward", "any-app"),
        ("list", "secrets", "kube-system"),
        ("get", "secrets", "default"),
        ("watch", "secrets", "kube-system"),
        ("update", "secrets", "kube-system"),
        ("list", "pods", "any-app"),
        ("patch", "deployments/scale", "any-app"),
        ("get", "pods/log", "any-app"),
        ("get", "configmaps", "any-app"),
        ("list", "namespaces", ""),
        ("get", "nodes", ""),
        ("create", "clusterrolebindings", ""),
        ("create", "clusterroles", ""),
        ("create", "roles", "any-app"),
        ("create", "persistentvolumes", ""),
    ],
)
def test_the_service_account_may_do_nothing_else(
    installed: Installed, verb: str, resource: str, namespace: str
) -> None:
    """Outside the namespaces it made (and bound its role in) the runtime reads nothing."""
    assert _can(installed, verb, resource, namespace) == "no"


def test_the_service_account_cannot_grant_itself_more_than_the_app_role(
    installed: Installed, tmp_path: Path
) -> None:
    """It may make RoleBindings (its app namespaces need one), but only of the chart's app role."""
    assert _can(installed, "list", "secrets", installed.namespace) == "no"  # not even the chart's own
    kubeconfig = _service_account_kubeconfig(installed, tmp_path / "kubeconfig")
    api = KubeApi(str(kubeconfig))
    ns = f"app{uuid.uuid4().hex[:5]}"
    subject = {"kind": "ServiceAccount", "name": "mo-moorage", "namespace": installed.namespace}
    try:
        api.create("namespace", "", {"metadata": {"name": ns}})
        for role in ("cluster-admin", "admin", "edit", "view"):
            body = {
                "metadata": {"name": f"grab-{role}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [subject],
            }
            with pytest.raises(Error, match="forbidden"):
                api.create("rolebinding", ns, body)
        with pytest.raises(Error, match="forbidden"):
            api.list("secret", ns)
    finally:
        api.delete("namespace", "", ns)
        api.close()
