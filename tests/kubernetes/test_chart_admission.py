"""The chart's ValidatingAdmissionPolicy, which confines the runtime's cluster-wide rights.

RBAC lets the controller make RoleBindings of its app role and delete namespaces anywhere
(templates/rbac.yaml); on clusters with ValidatingAdmissionPolicy (1.30+) the chart adds a
policy limiting both to Moorage's app namespaces. The test API server (1.20) has no such
admission, so its CEL is evaluated here by cel-python, on the requests the API server would
hand it; the policy's shape is checked by kubernetes-validate against the 1.37 schemas.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import pytest

from tests.kubernetes.chart import MINIMAL, by_kind, render, run, tools
from tests.kubernetes.test_chart_render import VALIDATE

RUNTIME = "system:serviceaccount:default:mo-moorage"
VAP = [
    "--kube-version",
    "1.37.0",
    "--api-versions",
    "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy",
]
MOORAGE = {"app.kubernetes.io/managed-by": "moorage"}


@pytest.fixture(scope="module")
def helm() -> Path:
    return tools()[0]


@pytest.fixture(scope="module")
def policy(helm: Path) -> dict[str, Any]:
    return by_kind(render(helm, "-f", str(MINIMAL), *VAP), "ValidatingAdmissionPolicy")[
        "mo-moorage-app-namespaces"
    ]


def _eval(expression: str, activation: dict[str, Any]) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(expression)).evaluate(celpy.json_to_cel(activation))


def _namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, **({"labels": labels} if labels is not None else {})}}


def _request(operation: str, resource: str, **objects: Any) -> dict[str, Any]:
    return {
        "request": {
            "operation": operation,
            "resource": {"resource": resource},
            "userInfo": {"username": RUNTIME},
        },
        "object": objects.get("object"),
        "oldObject": objects.get("oldObject"),
        "namespaceObject": objects.get("namespaceObject"),
    }


def _denied(policy: dict[str, Any], activation: dict[str, Any]) -> list[str]:
    """The messages of the validations that fail (what the API server would answer)."""
    spec = policy["spec"]
    assert all(_eval(c["expression"], activation) for c in spec["matchConditions"])
    activation = {
        **activation,
        "variables": {v["name"]: _eval(v["expression"], activation) for v in spec["variables"]},
    }
    return [v["message"] for v in spec["validations"] if not _eval(v["expression"], activation)]


def test_only_clusters_with_the_api_get_the_policy_and_it_passes_the_schemas(
    helm: Path, tmp_path: Path
) -> None:
    assert "ValidatingAdmissionPolicy" not in {d["kind"] for d in render(helm, "-f", str(MINIMAL))}
    rendered = run([helm, "template", "mo", Path(MINIMAL).parents[1], "-f", MINIMAL, *VAP])
    assert rendered.returncode == 0, rendered.stderr
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(rendered.stdout)
    done = run([VALIDATE, "--strict", "-k", "1.37", "--quiet", manifests])
    assert (done.returncode, done.stdout.strip()) == (0, ""), done.stdout + done.stderr
    docs = by_kind(render(helm, "-f", str(MINIMAL), *VAP), "ValidatingAdmissionPolicyBinding")
    assert docs["mo-moorage-app-namespaces"]["spec"]["validationActions"] == ["Deny"]


def test_other_users_are_not_judged(policy: dict[str, Any]) -> None:
    activation = _request("DELETE", "namespaces", oldObject=_namespace("kube-system"))
    activation["request"]["userInfo"]["username"] = "kubernetes-admin"
    assert not _eval(policy["spec"]["matchConditions"][0]["expression"], activation)


def test_the_runtime_makes_changes_and_deletes_its_app_namespaces(policy: dict[str, Any]) -> None:
    mine = _namespace("moorage-app-web", MOORAGE)
    assert (
        _denied(policy, _request("CREATE", "namespaces", object=_namespace("moorage-app-web", MOORAGE))) == []
    )
    assert _denied(policy, _request("UPDATE", "namespaces", object=mine, oldObject=mine)) == []
    assert _denied(policy, _request("DELETE", "namespaces", oldObject=mine)) == []
    assert _denied(policy, _request("CREATE", "rolebindings", object={}, namespaceObject=mine)) == []


@pytest.mark.parametrize(
    ("operation", "resource", "namespace", "message"),
    [
        ("DELETE", "namespaces", _namespace("kube-system", {}), "named moorage-app-<app>"),
        ("CREATE", "namespaces", _namespace("elsewhere", MOORAGE), "named moorage-app-<app>"),
        ("DELETE", "namespaces", _namespace("moorage-app-x"), "only in namespaces it made"),
        ("UPDATE", "namespaces", _namespace("moorage-app-x", {"team": "a"}), "only in namespaces it made"),
        ("CREATE", "rolebindings", _namespace("kube-system", {}), "named moorage-app-<app>"),
        ("CREATE", "rolebindings", _namespace("moorage-app-x"), "only in namespaces it made"),
    ],
)
def test_the_runtime_is_refused_outside_its_app_namespaces(
    policy: dict[str, Any], operation: str, resource: str, namespace: dict[str, Any], message: str
) -> None:
    if resource == "namespaces":
        objects = (
            {"object": namespace} if operation == "CREATE" else {"oldObject": namespace, "object": namespace}
        )
    else:
        objects = {"object": {}, "namespaceObject": namespace}
    denied = _denied(policy, _request(operation, resource, **objects))
    assert any(message in m for m in denied), denied
