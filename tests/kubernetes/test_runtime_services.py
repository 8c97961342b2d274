"""A bound service's credentials reach the app's pods, on Kubernetes, through the release Secret.

The real broker provisions a Redis service (on the test Redis server); binding it makes a
new release whose Secret holds ``REDIS_URL``; the pods of that release take it with
``envFrom``. A one-off run (its command run by the node stand-in, which stands in for a
kubelet) prints what the process sees.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from moorage.platform.runtime.kubernetes import KubernetesRuntime
from tests.fixtures.broker import MAIN_CATALOG, PASSWORD
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kubernetes import ControlPlane
from tests.fixtures.platform import Cli, serve_controller
from tests.fixtures.servers import RunningServer
from tests.kubernetes.conftest import kube_settings


@pytest.fixture
def cli(
    kube: ControlPlane,
    running_locally: NodeStandIn,
    make_broker: Any,
    redis_server: RunningServer,
    tmp_path: Path,
) -> Iterator[tuple[Cli, str]]:
    broker = make_broker([MAIN_CATALOG], services={"redis_admin_url": redis_server.admin_url})
    prefix = f"svc{uuid.uuid4().hex[:6]}-"
    settings = kube_settings(tmp_path / "data", kube, prefix).with_group(
        broker={"port": broker.settings.broker.port, "password": PASSWORD}
    )
    runtime = KubernetesRuntime(settings)
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    try:
        with serve_controller(settings, runtime) as ctl:
            yield Cli(home=home, cwd=work, url=ctl.url).logged_in_as("alice"), prefix
    finally:
        runtime.destroy("shop")
        runtime.close()


def test_binding_a_service_rolls_out_a_release_whose_pods_get_its_credentials(
    cli: tuple[Cli, str], kube: ControlPlane
) -> None:
    run, prefix = cli
    (run.cwd / "Procfile").write_text("web: python3 -m http.server $PORT\n")
    run.ok("apps:create", "shop")
    run.ok("deploy")
    assert "cache is ready" in run.ok("services:create", "redis", "shared", "cache")
    run.ok("services:bind", "cache", "-a", "shop")
    core = kubernetes.client.CoreV1Api(kube.api_client())
    apps = kubernetes.client.AppsV1Api(kube.api_client())
    web = apps.read_namespaced_deployment("web", prefix + "shop")
    secret_name = web.spec.template.spec.containers[0].env_from[0].secret_ref.name
    assert "REDIS_URL" in core.read_namespaced_secret(secret_name, prefix + "shop").data
    assert web.status.ready_replicas == 1
    out = run.ok("run", "-a", "shop", "echo url=$REDIS_URL")
    assert "url=redis://" in out
