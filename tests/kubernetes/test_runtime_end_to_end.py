"""End to end on Kubernetes: requests reach the app's processes through its Service.

The node stand-in runs each pod's command as a local process here — it stands in for a
kubelet and for the slug-runner image — and asks the pod's real readiness probe. The
test finds the web processes where Kubernetes publishes them, in the Endpoints the real
endpoints controller writes for the ``web`` Service, and sends its requests there (the
stand-in maps each pod IP to the local port that pod's process listens on).
"""

from __future__ import annotations

import contextlib
import time
import uuid

import httpx
import pytest

from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.platform import deploy_tarball, tar_of
from tests.kubernetes.conftest import KubePlatform
from tests.polling import wait_for

SERVER = """\
import http.server, os

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/crash":
            os._exit(3)
        body = f"{os.environ.get('GREETING', '')} from {os.environ['MOORAGE_RELEASE']}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        print("served", self.path, flush=True)

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""
SOURCE = {"Procfile": "web: python3 server.py\n", "server.py": SERVER}


@pytest.fixture
def app(kube_platform: KubePlatform, running_locally: NodeStandIn):
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    client = kube_platform.controller.user("alice")
    assert client.post("/v2/apps", json={"id": name}).status_code == 201
    assert client.post(f"/v2/apps/{name}/config", json={"values": {"GREETING": "hello"}}).status_code == 201
    lines = deploy_tarball(client, name, tar_of(SOURCE))
    assert lines[-1].get("result", {}).get("version") == 3, lines
    return client, name


def _answers(kp: KubePlatform, name: str) -> list[str]:
    """GET / from every address the web Service's Endpoints list."""
    subsets = kp.core.read_namespaced_endpoints("web", kp.namespace(name)).subsets or []
    out = []
    for address in [a for s in subsets for a in (s.addresses or [])]:
        host, port = kp.node.local_address(address.ip)
        out.append(httpx.get(f"http://{host}:{port}/", timeout=5).text)
    return sorted(out)


def test_requests_reach_every_web_process_and_a_config_change_reaches_them_all(
    kube_platform: KubePlatform, app
) -> None:
    client, name = app
    kp = kube_platform
    assert client.post(f"/v2/apps/{name}/scale", json={"web": 3}).status_code == 200
    wait_for(
        lambda: _answers(kp, name) == ["hello from v3\n"] * 3, timeout=20, what="3 endpoints answering v3"
    )
    assert client.post(f"/v2/apps/{name}/config", json={"values": {"GREETING": "bonjour"}}).status_code == 201
    wait_for(
        lambda: _answers(kp, name) == ["bonjour from v4\n"] * 3, timeout=20, what="3 endpoints answering v4"
    )
    logs = client.get(f"/v2/apps/{name}/logs", params={"lines": 200}).text
    assert "app[web.1]: served /" in logs  # the processes' own output, through pods/log


def test_a_web_process_that_never_listens_fails_the_deploy(kube_platform: KubePlatform, app) -> None:
    client, name = app
    source = {**SOURCE, "Procfile": "web: python3 -c 'import time; time.sleep(600)'\n"}
    lines = deploy_tarball(client, name, tar_of(source))
    message = lines[-1]["error"]["message"]
    assert "never became ready" in message and "v3 was redeployed" in message
    assert _answers(kube_platform, name) == ["hello from v3\n"]


def test_a_web_process_that_exits_fails_the_deploy_fast(kube_platform: KubePlatform, app) -> None:
    client, name = app
    source = {**SOURCE, "Procfile": "web: python3 -c 'raise SystemExit(4)'\n"}
    lines = deploy_tarball(client, name, tar_of(source))
    message = lines[-1]["error"]["message"]
    assert "CrashLoopBackOff" in message and "last exit status 4" in message
    assert _answers(kube_platform, name) == ["hello from v3\n"]


def test_logs_follow_streams_what_the_processes_print_as_they_print_it(
    kube_platform: KubePlatform, app
) -> None:
    client, name = app
    kp = kube_platform
    wait_for(lambda: _answers(kp, name) == ["hello from v3\n"], timeout=20, what="the web process answering")
    subsets = kp.core.read_namespaced_endpoints("web", kp.namespace(name)).subsets
    host, port = kp.node.local_address(subsets[0].addresses[0].ip)
    with client.stream("GET", f"/v2/apps/{name}/logs", params={"follow": "1", "lines": 5}) as stream:
        lines = stream.iter_lines()
        httpx.get(f"http://{host}:{port}/while-following", timeout=5)
        deadline = time.monotonic() + 20
        for line in lines:
            if "app[web.1]: served /while-following" in line:
                break
            assert time.monotonic() < deadline, "the followed log never showed the request"
        else:
            pytest.fail("the followed log ended before it showed the request")


def test_a_release_whose_processes_crash_after_the_deploy_shows_as_crashed(
    kube_platform: KubePlatform, app
) -> None:
    client, name = app
    kp = kube_platform
    wait_for(lambda: _answers(kp, name) == ["hello from v3\n"], timeout=20, what="the web process answering")
    subsets = kp.core.read_namespaced_endpoints("web", kp.namespace(name)).subsets
    host, port = kp.node.local_address(subsets[0].addresses[0].ip)
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"http://{host}:{port}/crash", timeout=5)

    def state() -> tuple[str, str]:
        release = client.get(f"/v2/apps/{name}/releases").json()["results"][0]["status"]
        return release, client.get(f"/v2/apps/{name}/pods").json()["results"][0]["state"]

    wait_for(lambda: state() == ("crashed", "crashed"), timeout=20, what="v3 and web.1 shown as crashed")
