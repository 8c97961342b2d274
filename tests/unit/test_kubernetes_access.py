"""The runtime's app-role settings: a malformed ServiceAccount stops the start, before any call."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.errors import ConfigurationError
from moorage.platform.runtime.kubernetes import KubernetesRuntime
from moorage.platform.runtime.kubernetes_access import role_binding
from moorage.settings import KubernetesSettings, Settings


@pytest.mark.parametrize("account", ["", "mo-moorage", "/mo-moorage", "moorage/", "a/b/c"])
def test_an_app_role_needs_a_namespace_and_name(tmp_path: Path, account: str) -> None:
    settings = Settings(data_dir=tmp_path).with_group(
        kubernetes={"app_role": "mo-moorage-app", "service_account": account, "kubeconfig": "/nonexistent"}
    )
    with pytest.raises(
        ConfigurationError, match="MOORAGE_KUBERNETES_SERVICE_ACCOUNT must be <namespace>/<name>"
    ):
        KubernetesRuntime(settings)  # refused before the (missing) kubeconfig is even read


def test_the_binding_names_the_role_and_the_service_account() -> None:
    body = role_binding(KubernetesSettings(app_role="mo-moorage-app", service_account="moorage/mo-moorage"))
    assert body is not None
    assert body["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "mo-moorage-app",
    }
    assert body["subjects"] == [{"kind": "ServiceAccount", "name": "mo-moorage", "namespace": "moorage"}]
    assert role_binding(KubernetesSettings()) is None  # no role: the kubeconfig's user acts as it may
