"""``moorage controller`` with ``MOORAGE_PLATFORM_RUNTIME=kubernetes``: the real entry point.

The controller runs as its own process (gunicorn, as operators run it) out of cluster,
with the buildpack builder, and deploys onto the test control plane.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import kubernetes
import pytest

from moorage.embedded.ports import free_port
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kubernetes import ControlPlane
from tests.fixtures.platform import APPS_DIR, deploy_tarball, tar_of
from tests.polling import wait_for


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update(MOORAGE_DATA_DIR=str(tmp_path / "data"), **extra)
    return env


@pytest.mark.slow
def test_the_controller_deploys_onto_kubernetes(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path
) -> None:
    port = free_port()
    env = _env(
        tmp_path,
        MOORAGE_PLATFORM_PORT=str(port),
        MOORAGE_PLATFORM_RUNTIME="kubernetes",
        MOORAGE_KUBERNETES_KUBECONFIG=str(kube.kubeconfig),
        MOORAGE_KUBERNETES_NAMESPACE_PREFIX="proc-",
    )
    log = tmp_path / "controller.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moorage.cli.main", "controller"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    core = kubernetes.client.CoreV1Api(kube.api_client())
    try:

        def healthy() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 60, 0.2, what="the controller to answer", detail=log.read_text)
        with httpx.Client(base_url=url, timeout=300) as client:
            client.post("/v2/auth/register", json={"username": "alice", "password": "correct-horse"})
            token = client.post(
                "/v2/auth/login", json={"username": "alice", "password": "correct-horse"}
            ).json()
            client.headers["Authorization"] = f"token {token['token']}"
            assert client.post("/v2/apps", json={"id": "echo"}).status_code == 201
            files = {p.name: p.read_bytes() for p in (APPS_DIR / "echo").iterdir()}
            lines = deploy_tarball(client, "echo", tar_of(files))
            assert lines[-1].get("result", {}).get("version") == 2, lines
            ps = client.get("/v2/apps/echo/pods").json()["results"]
            assert [(p["name"], p["state"]) for p in ps] == [("web.1", "up")]
        assert core.read_namespace("proc-echo").metadata.labels["moorage.io/owner"] == "alice"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        core.delete_namespace("proc-echo")


def test_an_unknown_runtime_is_refused_at_start(tmp_path: Path) -> None:
    env = _env(tmp_path, MOORAGE_PLATFORM_RUNTIME="nomad", MOORAGE_PLATFORM_PORT=str(free_port()))
    done = subprocess.run(
        [sys.executable, "-m", "moorage.cli.main", "controller"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "MOORAGE_PLATFORM_RUNTIME='nomad': use local or kubernetes" in done.stderr
