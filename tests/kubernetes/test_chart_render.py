"""charts/moorage rendered: lint, Kubernetes 1.37 schemas, the values schema, what it makes.

No control plane here: ``helm lint`` and ``helm template`` with the chart's two values
files (ci/minimal-values.yaml, the least an install needs; ci/production-values.yaml,
Secrets made outside the chart, an Ingress with TLS, three replicas), then
``kubernetes-validate --strict`` against the 1.37 schemas (the test API server is 1.20).
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from moorage.settings import Settings
from moorage.store.encryptor import Encryptor
from tests.kubernetes.chart import CHART, MINIMAL, PRODUCTION, by_kind, render, run, tools, values_args

VALUES_FILES = pytest.mark.parametrize("values", [MINIMAL, PRODUCTION], ids=["minimal", "production"])
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"


@pytest.fixture(scope="module")
def helm() -> Path:
    return tools()[0]


@VALUES_FILES
def test_lint_is_clean(helm: Path, values: Path) -> None:
    done = run([helm, "lint", "--strict", CHART, "-f", values])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


@VALUES_FILES
def test_rendered_manifests_pass_the_strict_1_37_schemas(helm: Path, values: Path, tmp_path: Path) -> None:
    rendered = run([helm, "template", "mo", CHART, "-f", values, "--kube-version", "1.37.0"])
    assert rendered.returncode == 0, rendered.stderr
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(rendered.stdout)
    done = run([VALIDATE, "--strict", "-k", "1.37", "--quiet", manifests])
    assert (done.returncode, done.stdout.strip()) == (0, ""), done.stdout + done.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered.stdout) if doc}
    assert kinds >= {"Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    assert kinds >= {"PodDisruptionBudget", "NetworkPolicy", "Pod"}

    # The check can fail: the same manifests with one field Kubernetes does not know.
    manifests.write_text(rendered.stdout.replace("  replicas:", "  replicaz:", 1))
    refused = run([VALIDATE, "--strict", "-k", "1.37", "--quiet", manifests])
    assert refused.returncode != 0 and "replicaz" in refused.stdout + refused.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ([], "database.url (postgresql://…) or database.existingSecret is required"),
        (["database.url=postgresql://u:p@db:5432/moorage"], "slugStore.url (s3://bucket/prefix) is required"),
        (["controller.replicas=0"], "at '/controller/replicas': minimum: got 0, want 1"),
        (["databse.url=postgresql://db/x"], "additional properties 'databse' not allowed"),
        (
            ["database.url=mysql://db/moorage"],
            "at '/database/url': 'mysql://db/moorage' does not match pattern",
        ),
        (
            ["slugStore.url=https://bucket/slugs"],
            "at '/slugStore/url': 'https://bucket/slugs' does not match",
        ),
        (
            ["platform.namespacePrefix=Apps_"],
            "at '/platform/namespacePrefix': 'Apps_' does not match pattern",
        ),
        (["image.pullPolicy=Sometimes"], "at '/image/pullPolicy': value must be one of"),
        (["controller.resources.limits.memory=lots"], "at '/controller/resources/limits/memory'"),
        (
            ["platform.extraEnv.PATH=/tmp"],
            "at '/platform/extraEnv': additional properties 'PATH' not allowed",
        ),
    ],
    ids=[
        "no-database",
        "no-slug-store",
        "no-controller",
        "typo",
        "not-postgresql",
        "not-s3",
        "bad-prefix",
        "bad-pull-policy",
        "bad-quantity",
        "not-a-moorage-setting",
    ],
)
def test_bad_values_are_refused_naming_the_value(helm: Path, sets: list[str], message: str) -> None:
    files = [] if not sets or sets[0].startswith("database.url=") else [MINIMAL]
    done = run([helm, "template", "mo", CHART, *values_args(files, sets)])
    assert done.returncode == 1 and done.stdout == ""
    assert message in done.stderr, done.stderr


def test_minimal_values_make_their_secrets_and_a_working_encryption_key(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, "-f", str(MINIMAL))
    secrets = by_kind(docs, "Secret")
    assert set(secrets) == {"mo-moorage", "mo-moorage-database"}
    keys = secrets["mo-moorage"]
    assert keys["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # The key file as the pods install it (0600): Moorage's own Encryptor takes it.
    key_file = tmp_path / "secret.key"
    key_file.write_bytes(base64.b64decode(keys["data"]["encryption-key"]))
    key_file.chmod(0o600)
    encryptor = Encryptor.from_file(key_file)
    assert encryptor.decrypt(encryptor.encrypt(b"a credential")) == b"a credential"
    assert len(base64.b64decode(keys["data"]["broker-password"])) == 32
    url = base64.b64decode(secrets["mo-moorage-database"]["data"]["database-url"]).decode()
    assert url == yaml.safe_load(MINIMAL.read_text())["database"]["url"]

    controller = by_kind(docs, "Deployment")["mo-moorage-controller"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in controller["containers"][0]["env"]}
    assert env["MOORAGE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "mo-moorage-database",
        "key": "database-url",
    }
    assert env["MOORAGE_PLATFORM_RUNTIME"]["value"] == "kubernetes"
    assert env["MOORAGE_PLATFORM_SLUG_STORE_URL"]["value"] == "s3://moorage-slugs/slugs"
    assert env["MOORAGE_BROKER_HOST"]["value"] == "mo-moorage-broker"


def test_production_values_take_every_credential_from_existing_secrets(helm: Path) -> None:
    docs = render(helm, "-f", str(PRODUCTION))
    assert by_kind(docs, "Secret") == {}  # nothing secret is made by the chart
    deployments = by_kind(docs, "Deployment")
    assert {n: d["spec"]["replicas"] for n, d in deployments.items()} == {
        "mo-moorage-controller": 3,
        "mo-moorage-broker": 3,
        "mo-moorage-worker": 2,
    }
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert env["MOORAGE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "moorage-database",
            "key": "url",
        }
        assert env["MOORAGE_BROKER_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "moorage-keys"
        assert container["envFrom"] == [{"secretRef": {"name": "moorage-slug-store"}}]
        assert env["MOORAGE_AWS_ENDPOINT_URL"]["value"] == "https://minio.storage.svc.cluster.local:9000"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["serviceAccountName"] == "moorage-runtime"
        # Only the controller talks to the Kubernetes API.
        assert pod["automountServiceAccountToken"] is name.endswith("-controller"), name
    ingress = by_kind(docs, "Ingress")["mo-moorage-controller"]["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"hosts": ["moorage.example.org"], "secretName": "moorage-tls"}]


def test_pod_disruption_budgets_use_the_api_the_cluster_has(helm: Path) -> None:
    for version, api in (("1.20.2", "policy/v1beta1"), ("1.37.0", "policy/v1")):
        docs = render(helm, "-f", str(MINIMAL), "--kube-version", version)
        budgets = by_kind(docs, "PodDisruptionBudget")
        assert set(budgets) == {"mo-moorage-controller", "mo-moorage-broker"}
        assert {b["apiVersion"] for b in budgets.values()} == {api}, version


def _granted(role: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {
        (g, r, v, n)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
        for n in rule.get("resourceNames") or ["*any*"]
    }


def test_the_runtime_role_grants_what_the_runtime_calls_and_no_more(helm: Path) -> None:
    docs = render(helm, "-f", str(MINIMAL))
    roles = by_kind(docs, "ClusterRole")
    # Cluster-wide: namespaces, and RoleBindings of the app role only (bind by name).
    assert _granted(roles["mo-moorage-runtime"]) == {
        ("", "namespaces", "get", "*any*"),
        ("", "namespaces", "create", "*any*"),
        ("", "namespaces", "patch", "*any*"),
        ("", "namespaces", "delete", "*any*"),
        ("rbac.authorization.k8s.io", "rolebindings", "create", "*any*"),
        ("rbac.authorization.k8s.io", "clusterroles", "bind", "mo-moorage-app"),
    }
    bindings = by_kind(docs, "ClusterRoleBinding")
    assert {b["roleRef"]["name"] for n, b in bindings.items() if n.startswith("mo-moorage-r")} == {
        "mo-moorage-runtime"
    }
    assert "mo-moorage-app" not in {b["roleRef"]["name"] for b in bindings.values()}
    # The app role, bound per app namespace by the runtime: namespaced kinds, no RBAC, no exec.
    granted = _granted(roles["mo-moorage-app"])
    assert all("*" not in item[:3] for item in granted)
    assert not {item for item in granted if item[2] in ("watch", "escalate", "bind", "impersonate")}
    resources = {r for _, r, _, _ in granted}
    assert "pods/exec" not in resources and "nodes" not in resources and "namespaces" not in resources
    assert not {r for r in resources if r.startswith(("roles", "rolebindings", "cluster"))}
    env = {
        e["name"]: e.get("value")
        for e in by_kind(docs, "Deployment")["mo-moorage-controller"]["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
    }
    assert env["MOORAGE_KUBERNETES_APP_ROLE"] == "mo-moorage-app"
    assert env["MOORAGE_KUBERNETES_SERVICE_ACCOUNT"].endswith("/mo-moorage")


@VALUES_FILES
def test_every_setting_the_chart_passes_is_one_moorage_reads(helm: Path, values: Path) -> None:
    """Settings.from_env refuses unknown MOORAGE_* names: a typo here would stop every pod."""
    for name, deployment in by_kind(render(helm, "-f", str(values)), "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value", "from-a-secret") for e in container["env"]}
        settings = Settings.from_env(env)
        if name.endswith("-controller"):
            assert settings.platform.runtime == "kubernetes"
            assert (settings.platform.host, settings.platform.allow_registration) == ("0.0.0.0", False)
            assert settings.broker.host == "mo-moorage-broker"
        if name.endswith("-broker"):
            assert (settings.broker.host, settings.worker.threads) == ("0.0.0.0", 0)


def test_a_new_database_url_rolls_every_server(helm: Path) -> None:
    """The URL is in a Secret, which pods read only at start: the pod templates must change."""

    def annotations(url: str) -> dict[str, dict[str, str]]:
        docs = render(helm, "-f", str(MINIMAL), "--set", f"database.url={url}")
        return {
            n: d["spec"]["template"]["metadata"]["annotations"]
            for n, d in by_kind(docs, "Deployment").items()
        }

    before = annotations("postgresql://moorage:old@db-1:5432/moorage")
    after = annotations("postgresql://moorage:new@db-2:5432/moorage")
    assert set(before) == set(after) and len(before) == 3
    assert all(before[name] != after[name] for name in before)
    assert "old" not in str(before)  # a digest, not the URL with its password


def test_in_cluster_services_render_valid_and_lint_clean(helm: Path, tmp_path: Path) -> None:
    sets = ["--set", "inClusterServices.enabled=true"]
    linted = run([helm, "lint", "--strict", CHART, "-f", MINIMAL, *sets])
    assert linted.returncode == 0 and "[WARNING]" not in linted.stdout, linted.stdout
    rendered = run([helm, "template", "mo", CHART, "-f", MINIMAL, *sets, "--kube-version", "1.37.0"])
    assert rendered.returncode == 0, rendered.stderr
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(rendered.stdout)
    done = run([VALIDATE, "--strict", "-k", "1.37", "--quiet", manifests])
    assert (done.returncode, done.stdout.strip()) == (0, ""), done.stdout + done.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    assert by_kind(docs, "Role")["mo-moorage-services"]["metadata"]["namespace"] == "moorage-services"
    assert by_kind(docs, "Namespace")["moorage-services"]["metadata"]["annotations"] == {
        "helm.sh/resource-policy": "keep"
    }


def test_the_apps_pods_are_pointed_at_the_controller_service_and_may_reach_it(helm: Path) -> None:
    """Pods fetch their slug from ``MOORAGE_KUBERNETES_CONTROLLER_URL`` (signed URLs)."""
    docs = render(helm, "-f", str(PRODUCTION), "--namespace", "platform")
    controller = by_kind(docs, "Deployment")["mo-moorage-controller"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value", "from-a-secret") for e in controller["containers"][0]["env"]}
    url = Settings.from_env(env).kubernetes.controller_url
    assert url == "http://mo-moorage-controller.platform.svc.cluster.local"
    service = by_kind(docs, "Service")["mo-moorage-controller"]["spec"]
    assert [p["port"] for p in service["ports"]] == [80]  # the URL names no port: 80
    # production values narrow who reaches the API; the apps' namespaces still may.
    policy = by_kind(docs, "NetworkPolicy")["mo-moorage-controller"]["spec"]
    sources = [s for rule in policy["ingress"] for s in rule["from"]]
    app_namespaces = {"matchExpressions": [{"key": "moorage.io/app", "operator": "Exists"}]}
    assert {"namespaceSelector": app_namespaces} in sources
