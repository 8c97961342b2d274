"""Apps and the router outlive the controller (issue 12): real processes, real nginx.

Each test runs ``moorage controller`` as a real process on a fresh data dir; it starts
``moorage supervisor`` (which owns the apps and the router), and the CLI deploys the
rt_echo app with two web processes. Client threads then load the router while the
controller is killed (SIGKILL of its whole process group) or stopped (SIGTERM, as an
upgrade does): no request may fail, an app process that crashes meanwhile is restarted
by the supervisor, and a new controller finds the same processes (pids and kernel start
times) and the log lines written while it was down. SIGKILL of the broker changes
nothing the apps serve. Certificates added through this controller are served by the
supervisor's router, and stay served while no controller runs.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.fixtures.pki import key_pem, make_ca, make_leaf, pem
from tests.fixtures.router import Load
from tests.fixtures.stack import Stack
from tests.polling import wait_for

APP_DIR = Path(__file__).resolve().parent.parent / "apps" / "rt_echo"
HOST = "load.moorage.localhost"
DOMAIN = "www.load.example"


@pytest.fixture
def stack() -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="moorage-outlive-"))
    root.chmod(0o755)
    s = Stack(root)
    s.start_controller()
    s.deploy(APP_DIR, "load")
    s.cli("scale", "web=2")
    yield s
    s.close()
    shutil.rmtree(root, ignore_errors=True)


def ps(stack: Stack) -> dict[str, dict]:
    """The app's web processes by name, as ``moorage ps`` shows them."""
    pods = stack.api("/v2/apps/load/pods").json()["results"]
    return {p["name"]: p for p in pods if p["type"] == "web"}


def start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (what ``ps -o lstart`` shows)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "new-connections"])
def test_sigkill_of_the_controller_loses_no_request_and_a_new_one_readopts(
    stack: Stack, keep_alive: bool
) -> None:
    before = ps(stack)
    starts = {name: start_time(p["pid"]) for name, p in before.items()}
    with Load(stack.router_port, HOST, keep_alive) as load:
        stack.kill_controller(signal.SIGKILL)
    assert load.failures == []

    # While no controller runs, web.1 crashes: the supervisor restarts it and logs it.
    log_file = stack.data_dir / "logs" / "load.log"
    os.killpg(before["web.1"]["pid"], signal.SIGKILL)
    wait_for(lambda: "Restarting (restart 1)" in log_file.read_text(), what="the restart")
    wait_for(lambda: log_file.read_text().count("listening on") >= 3, what="web.1 to listen again")

    stack.start_controller()
    after = ps(stack)
    assert after["web.2"]["pid"] == before["web.2"]["pid"]
    assert after["web.2"]["started"] == before["web.2"]["started"]
    assert start_time(after["web.2"]["pid"]) == starts["web.2"]
    assert after["web.1"]["pid"] != before["web.1"]["pid"] and after["web.1"]["restarts"] == 1
    assert all(p["state"] == "up" for p in after.values())
    text = stack.api("/v2/apps/load/logs?lines=200").text
    assert "moorage[web.1]: Restarting (restart 1)" in text
    restarted = text[text.index("Restarting (restart 1)") :]
    assert "app[web.1]: listening on" in restarted
    answered = httpx.get(f"http://127.0.0.1:{stack.router_port}/", headers={"Host": HOST}, timeout=10)
    assert answered.status_code == 200


def test_a_restarted_controller_keeps_the_apps_serving(stack: Stack) -> None:
    """An upgrade: SIGTERM stops the controller; apps and router keep serving; a new one takes over."""
    before = ps(stack)
    with Load(stack.router_port, HOST, keep_alive=True) as load:
        stack.kill_controller(signal.SIGTERM)
        stack.start_controller()
    assert load.failures == []
    after = ps(stack)
    assert {n: (p["pid"], p["started"]) for n, p in after.items()} == {
        n: (p["pid"], p["started"]) for n, p in before.items()
    }
    stack.cli("scale", "web=1")  # the new controller drives the processes it found
    assert list(ps(stack)) == ["web.1"]


def test_sigkill_of_the_broker_leaves_the_apps_serving(stack: Stack) -> None:
    stack.start_broker()
    before = ps(stack)
    with Load(stack.router_port, HOST, keep_alive=True) as load:
        stack.kill_broker()
    assert load.failures == []
    assert ps(stack) == before


def https_get(port: int, sni: str, ca: x509.Certificate) -> tuple[int, x509.Certificate]:
    """One verified HTTPS request for ``sni`` (SNI and Host): its status and the leaf served."""
    context = ssl.create_default_context(cadata=pem(ca).decode())
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    conn.sock = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=sni
    )
    try:
        conn.request("GET", "/", headers={"Host": sni})
        status = conn.getresponse().status
        return status, x509.load_der_x509_certificate(conn.sock.getpeercert(binary_form=True))
    finally:
        conn.close()


def test_certificates_reach_the_supervisors_router_and_outlive_the_controller(stack: Stack) -> None:
    ca_key, ca = make_ca()
    key, leaf = make_leaf(ca_key, ca, DOMAIN)
    (stack.root / "app" / "server.crt").write_bytes(pem(leaf))
    (stack.root / "app" / "server.key").write_bytes(key_pem(key))
    stack.cli("domains:add", DOMAIN)
    assert DOMAIN in stack.cli("certs:add", "server.crt", "server.key")
    assert https_get(stack.https_port, DOMAIN, ca) == (200, leaf)

    stack.kill_controller(signal.SIGKILL)
    assert https_get(stack.https_port, DOMAIN, ca) == (200, leaf)
