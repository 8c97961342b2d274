"""The controller, out of cluster, on the Kubernetes runtime against the test control plane."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from moorage.platform.runtime.kubernetes import KubernetesRuntime
from moorage.settings import Settings
from tests.fixtures.kube_local import LocalLaunch
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kubernetes import ControlPlane
from tests.fixtures.platform import Controller, serve_controller

#: Short, so that tests of pods that never become ready fail their deploy quickly.
DEPLOY_TIMEOUT = 6.0


@dataclass
class KubePlatform:
    controller: Controller
    runtime: KubernetesRuntime
    node: NodeStandIn
    core: kubernetes.client.CoreV1Api
    apps: kubernetes.client.AppsV1Api
    prefix: str

    def namespace(self, app: str) -> str:
        return self.prefix + app


def kube_settings(
    data_dir: Path,
    kube: ControlPlane,
    prefix: str,
    platform: Mapping[str, object] | None = None,
    **kubernetes_settings: object,
) -> Settings:
    return Settings(data_dir=data_dir).with_group(
        platform={"runtime": "kubernetes", "deploy_timeout_seconds": DEPLOY_TIMEOUT, **(platform or {})},
        kubernetes={
            "kubeconfig": str(kube.kubeconfig),
            "namespace_prefix": prefix,
            "slug_runner_image": "registry.example/moorage/slug-runner:test",
            "process_resources": "worker=cpu:50m/500m,memory:64Mi/128Mi",
            **kubernetes_settings,
        },
    )


def run_slug_locally(pod: Any, env: dict[str, str]) -> LocalLaunch:
    """The slug-runner image's entry point, played locally: here the slug is a directory."""
    slug = Path(env["SLUG_URL"])
    command = pod.spec.containers[0].args[0]
    return LocalLaunch(argv=["bash", "-c", command], env={"PATH": os.environ["PATH"], **env}, cwd=slug)


@pytest.fixture
def running_locally(kube_node: NodeStandIn) -> Iterator[NodeStandIn]:
    """The node stand-in runs pods' commands as local processes while the test runs."""
    kube_node.run_locally = run_slug_locally
    yield kube_node
    kube_node.run_locally = None


@pytest.fixture
def kube_platform(kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path) -> Iterator[KubePlatform]:
    with open_kube_platform(kube, kube_node, tmp_path) as kp:
        yield kp


@contextlib.contextmanager
def open_kube_platform(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path, **platform: object
) -> Iterator[KubePlatform]:
    """A controller on the Kubernetes runtime, ``platform`` settings overridden; its namespaces go after."""
    prefix = f"t{uuid.uuid4().hex[:6]}-"
    settings = kube_settings(tmp_path / "data", kube, prefix, platform)
    runtime = KubernetesRuntime(settings)
    api = kube.api_client()
    try:
        with serve_controller(settings, runtime) as ctl:
            yield KubePlatform(
                controller=ctl,
                runtime=runtime,
                node=kube_node,
                core=kubernetes.client.CoreV1Api(api),
                apps=kubernetes.client.AppsV1Api(api),
                prefix=prefix,
            )
    finally:
        core = kubernetes.client.CoreV1Api(api)
        for namespace in core.list_namespace().items:
            if namespace.metadata.name.startswith(prefix) and not namespace.metadata.deletion_timestamp:
                core.delete_namespace(namespace.metadata.name)
        runtime.close()
        api.close()
