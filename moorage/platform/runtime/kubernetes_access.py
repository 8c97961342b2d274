"""The runtime's access to an app namespace: a RoleBinding it makes there, to itself.

Why: app namespaces are made on demand and RBAC cannot match namespaces by prefix, so the
chart does not grant the runtime its namespaced verbs cluster-wide (that would let it read
every Secret of the cluster). It grants, cluster-wide, only namespaces and RoleBindings of
one ClusterRole (``bind`` restricted by name); right after making an app namespace — and for
one made before, which may lack it — the runtime binds that role (``app_role``) to its own
ServiceAccount (``service_account``) there. Kubernetes' authorizer learns of a new binding a
moment later, so the runtime waits until it may act before going on.
"""

from __future__ import annotations

import time
from typing import Any

from moorage.clients.kubernetes import KubeApi
from moorage.errors import ConfigurationError, ConflictError, UnprocessableError
from moorage.settings import KubernetesSettings

#: How long a new RoleBinding may take to be honoured (the authorizer's cache, usually ms).
EFFECTIVE_WITHIN_SECONDS = 10.0
MANAGED_BY = "app.kubernetes.io/managed-by"


def role_binding(kube: KubernetesSettings) -> dict[str, object] | None:
    """The RoleBinding of ``app_role`` to ``service_account``; ``None`` when no role is set."""
    if not kube.app_role:
        return None
    namespace, _, name = kube.service_account.partition("/")
    if not namespace or not name or "/" in name:
        raise ConfigurationError(
            f"MOORAGE_KUBERNETES_SERVICE_ACCOUNT must be <namespace>/<name> when "
            f"MOORAGE_KUBERNETES_APP_ROLE is set, not {kube.service_account!r}"
        )
    return {
        "metadata": {"name": kube.app_role, "labels": {MANAGED_BY: "moorage"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": kube.app_role},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }


def grant_app_role(api: KubeApi, kube: KubernetesSettings, namespace: dict[str, Any]) -> None:
    """Bind ``app_role`` to the runtime in ``namespace`` unless bound already, and wait until it holds.

    Only in a namespace Moorage made (its label): with an empty prefix an app named
    ``kube-system`` must not hand the runtime that namespace.
    """
    body = role_binding(kube)
    if body is None:
        return
    ns = namespace["metadata"]["name"]
    if (namespace["metadata"].get("labels") or {}).get(MANAGED_BY) != "moorage":
        raise ConflictError(
            f"the namespace {ns} exists and Moorage did not make it (no label {MANAGED_BY}=moorage); "
            "choose another app name"
        )
    try:
        api.create("rolebinding", ns, body)
    except ConflictError:
        pass  # made by an earlier deploy (or another controller replica just now)
    deadline = time.monotonic() + EFFECTIVE_WITHIN_SECONDS
    while not api.allowed(ns, "create", "secrets"):
        if time.monotonic() > deadline:
            raise UnprocessableError(
                f"the RoleBinding {kube.app_role} in {ns} grants the runtime nothing after "
                f"{EFFECTIVE_WITHIN_SECONDS:.0f}s: does the ClusterRole {kube.app_role} exist?"
            )
        time.sleep(0.05)
