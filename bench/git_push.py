"""``git push`` benchmark: from ``git push`` to the new release serving through the router.

Why: this is the time a developer waits on every deploy. It covers the whole path: git's
smart HTTP to the controller, the pre-receive hook and its channel, checking out the
commit, the buildpack build (tests/apps/bp_flask: Python, pip, gunicorn), storing the
slug, unpacking it into a release directory, starting the process, the health check, and
nginx routing to it. Measured in one process the way the tests run the platform (the
controller on werkzeug's threaded server, the real LocalRuntime and nginx router):

* cold: the first push of a new app (empty build cache);
* warm: a push of a one-line change to the same app (the cache is reused).

The clock stops when the router answers with the pushed commit's SHA (the app prints
``SOURCE_VERSION``). Each round uses a fresh app; medians are reported:

    .venv/bin/python bench/git_push.py [--rounds 3] [--warm 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moorage.embedded.ports import free_port  # noqa: E402
from moorage.platform.api import create_app  # noqa: E402
from moorage.platform.router import Router  # noqa: E402
from moorage.platform.runtime.local import LocalRuntime  # noqa: E402
from moorage.settings import Settings  # noqa: E402

APP = ROOT / "tests" / "apps" / "bp_flask"
APP_PY = """\
import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return os.environ.get("SOURCE_VERSION", "") + "\\n"
"""


def git(cwd: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout.strip()


def wait_serving(router_port: int, host: str, sha: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as http:
        while time.monotonic() < deadline:
            try:
                r = http.get(f"http://127.0.0.1:{router_port}/", headers={"Host": host})
                if r.status_code == 200 and r.text.strip() == sha:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise SystemExit(f"{host} did not serve {sha[:7]} within {timeout}s")


def push_and_wait(
    work: Path, env: dict[str, str], router_port: int, host: str, note: str
) -> tuple[float, float]:
    """Commit a change, push it; (seconds until git returns, seconds until it serves)."""
    (work / "NOTE").write_text(note)
    git(work, env, "add", "--all")
    git(work, env, "commit", "--quiet", "-m", note)
    sha = git(work, env, "rev-parse", "HEAD")
    started = time.monotonic()
    git(work, env, "push", "--quiet", "moorage", "main")
    pushed = time.monotonic() - started
    wait_serving(router_port, host, sha)
    return pushed, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh apps (one cold push each)")
    parser.add_argument("--warm", type=int, default=2, help="warm pushes per app")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log lines in the figures

    data_dir = Path(tempfile.mkdtemp(prefix="bench-git-push-"))
    data_dir.chmod(0o755)  # the unprivileged app user enters release directories below it
    settings = Settings(data_dir=data_dir).with_group(
        platform={"router_port": free_port(), "deploy_timeout_seconds": 60.0, "stop_grace_seconds": 2.0}
    )
    router = Router(settings)
    router.start()
    runtime = LocalRuntime(settings, router)
    server = None
    cold_push, cold_serve, warm_push, warm_serve = [], [], [], []
    try:
        flask_app = create_app(settings, runtime, build_environ=os.environ, resume=False)
        server = make_server("127.0.0.1", 0, flask_app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
        with httpx.Client(base_url=url, timeout=60) as api:
            api.post("/v2/auth/register", json={"username": "bench", "password": "bench-password"})
            token = api.post(
                "/v2/auth/login", json={"username": "bench", "password": "bench-password"}
            ).json()["token"]
            for n in range(args.rounds):
                name = f"bench-{n}"
                r = api.post("/v2/apps", json={"id": name}, headers={"Authorization": f"token {token}"})
                r.raise_for_status()
                work = data_dir / "checkouts" / name
                shutil.copytree(APP, work)
                (work / "app.py").write_text(APP_PY)
                env = {
                    "PATH": os.environ["PATH"],
                    "HOME": str(data_dir),
                    "GIT_CONFIG_NOSYSTEM": "1",
                    "GIT_TERMINAL_PROMPT": "0",
                    "GIT_AUTHOR_NAME": "bench",
                    "GIT_AUTHOR_EMAIL": "bench@example.com",
                    "GIT_COMMITTER_NAME": "bench",
                    "GIT_COMMITTER_EMAIL": "bench@example.com",
                    # the token as a header, kept out of URLs and process arguments
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": "http.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: token {token}",
                }
                git(work, env, "init", "--quiet", "--initial-branch=main")
                git(work, env, "remote", "add", "moorage", f"{url}/{name}.git")
                host = f"{name}.{settings.platform.base_domain}"
                port = settings.platform.router_port
                pushed, serving = push_and_wait(work, env, port, host, "cold")
                cold_push.append(pushed)
                cold_serve.append(serving)
                print(f"{name}: cold push {pushed:6.2f} s, serving after {serving:6.2f} s", flush=True)
                for w in range(args.warm):
                    pushed, serving = push_and_wait(work, env, port, host, f"warm {w}")
                    warm_push.append(pushed)
                    warm_serve.append(serving)
                    print(f"{name}: warm push {pushed:6.2f} s, serving after {serving:6.2f} s", flush=True)
    finally:
        if server is not None:
            server.shutdown()
        runtime.close()
        router.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    figures = {
        "app": "tests/apps/bp_flask",
        "rounds": args.rounds,
        "cold_push_s": round(statistics.median(cold_push), 2),
        "cold_serving_s": round(statistics.median(cold_serve), 2),
        "warm_push_s": round(statistics.median(warm_push), 2),
        "warm_serving_s": round(statistics.median(warm_serve), 2),
    }
    print(
        f"cold: git push {figures['cold_push_s']:6.2f} s, new release serving {figures['cold_serving_s']:6.2f} s"
    )
    print(
        f"warm: git push {figures['warm_push_s']:6.2f} s, new release serving {figures['warm_serving_s']:6.2f} s"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
