"""On the test control plane: pods get their slug from the controller by a signed URL.

The controller runs here with the Kubernetes runtime and a build step that keeps real
slugs in its slug store. The node stand-in (for a kubelet and the slug-runner image) runs
each pod's container as the image does: the real ``images/slug-runner/slug-runner`` as the
image's unprivileged user, with the pod's environment. The only liberty it takes is
name resolution: the pod's ``SLUG_URL`` names the controller's Service, which the stand-in
resolves to the controller served in this test, as cluster DNS and the Service would.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import kubernetes
import pytest

from moorage.platform.runtime.kubernetes import KubernetesRuntime
from tests.fixtures.builder import slug_builder, world_dir
from tests.fixtures.kube_local import LocalLaunch
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kubernetes import ControlPlane
from tests.fixtures.platform import Controller, deploy_tarball, serve_controller, tar_of
from tests.kubernetes.conftest import kube_settings

SCRIPT = Path(__file__).resolve().parents[2] / "images" / "slug-runner" / "slug-runner"
#: The slug-runner image's user (kubernetes_manifests.APP_UID).
APP_UID = 10001
#: The controller's Service as the apps' pods reach it (MOORAGE_KUBERNETES_CONTROLLER_URL).
SERVICE_URL = "http://moorage-controller.moorage-system.svc.cluster.local"

SERVER = """\
import http.server, os

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{os.environ['GREETING']} from {os.environ['MOORAGE_RELEASE']} in {os.getcwd()}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""
SOURCE = {"Procfile": "web: python3 server.py\n", "server.py": SERVER, "marker.txt": "from the slug\n"}


class SlugRunnerNode:
    """Plays the slug-runner image for the node stand-in: the real entry point, as uid 10001."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.seen: list[str] = []
        self.dirs: list[Path] = []

    def __call__(self, pod: Any, env: dict[str, str]) -> LocalLaunch:
        signed = env["SLUG_URL"]
        self.seen.append(signed)
        parts = urlsplit(signed)
        assert f"{parts.scheme}://{parts.netloc}" == SERVICE_URL, signed
        local = f"{self.controller.url}{parts.path}?{parts.query}"  # the Service, resolved
        base = world_dir("moorage-slug-pod-")
        self.dirs.append(base)
        app_dir = base / "app"
        app_dir.mkdir()
        os.chown(app_dir, APP_UID, APP_UID)
        command = pod.spec.containers[0].args[0]
        argv = ["setpriv", f"--reuid={APP_UID}", f"--regid={APP_UID}", "--clear-groups", str(SCRIPT), command]
        runner_env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "SLUG_RUNNER_APP_DIR": str(app_dir),
        }
        return LocalLaunch(argv=argv, env={**env, **runner_env, "SLUG_URL": local}, cwd=base)


@pytest.fixture
def platform(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path
) -> Iterator[tuple[Controller, SlugRunnerNode]]:
    prefix = f"s{uuid.uuid4().hex[:6]}-"
    settings = kube_settings(tmp_path / "data", kube, prefix, controller_url=SERVICE_URL)
    runtime = KubernetesRuntime(settings)
    api = kube.api_client()
    core = kubernetes.client.CoreV1Api(api)
    try:
        with serve_controller(settings, runtime, builder=slug_builder(settings)) as ctl:
            node = SlugRunnerNode(ctl)
            kube_node.run_locally = node
            try:
                yield ctl, node
            finally:
                kube_node.run_locally = None
                for path in node.dirs:
                    shutil.rmtree(path, ignore_errors=True)
    finally:
        for namespace in core.list_namespace().items:
            if namespace.metadata.name.startswith(prefix) and not namespace.metadata.deletion_timestamp:
                core.delete_namespace(namespace.metadata.name)
        runtime.close()
        api.close()


def test_pods_fetch_their_slug_by_its_signed_url_and_run_it(
    platform: tuple[Controller, SlugRunnerNode], kube: ControlPlane, kube_node: NodeStandIn
) -> None:
    ctl, node = platform
    name = f"slug-{uuid.uuid4().hex[:6]}"
    client = ctl.user("alice")
    assert client.post("/v2/apps", json={"id": name}).status_code == 201
    assert client.post(f"/v2/apps/{name}/config", json={"values": {"GREETING": "hello"}}).status_code == 201
    lines = deploy_tarball(client, name, tar_of(SOURCE))
    assert lines[-1].get("result", {}).get("version") == 3, lines

    namespace = next(n for n in kube_node.core.list_namespace().items if n.metadata.name.endswith(name))
    ns = namespace.metadata.name
    apps = kubernetes.client.AppsV1Api(kube.api_client())
    container = apps.read_namespaced_deployment("web", ns).spec.template.spec.containers[0]
    slug_url = next(e.value for e in container.env if e.name == "SLUG_URL")
    assert slug_url.startswith(f"{SERVICE_URL}/v2/slugs/{name}/v3?signature=")
    assert not [e for e in container.env if e.name.startswith("AWS_")]  # no store credentials in pods
    assert node.seen and set(node.seen) == {slug_url}

    # The web process runs from the unpacked slug, reached through its Service's Endpoints.
    subsets = kube_node.core.read_namespaced_endpoints("web", ns).subsets or []
    addresses = [a for s in subsets for a in (s.addresses or [])]
    assert len(addresses) == 1
    host, port = kube_node.local_address(addresses[0].ip)
    answer = httpx.get(f"http://{host}:{port}/", timeout=5).text
    assert answer.startswith("hello from v3 in /tmp/moorage-slug-pod-") and answer.endswith("/app\n")

    # A one-off process fetches the same release's slug the same way.
    r = client.post(f"/v2/apps/{name}/run", json={"command": "cat marker.txt"})
    assert r.status_code == 200 and r.json() == {"exit_code": 0, "output": "from the slug\n"}, r.text
