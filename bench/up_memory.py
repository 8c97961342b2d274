"""Resident memory of ``moorage up`` at idle with no apps, and with 20 apps running.

What is measured: ``moorage up`` started as an operator starts it (embedded PostgreSQL
and Redis, the broker and the controller under gunicorn, the nginx router), then the
summed VmRSS of its process tree, split into Moorage's own Python processes, the nginx
router, and everything else below it (the apps' processes). The embedded PostgreSQL and
Redis are daemons outside the tree; their memory is reported apart, found by their data
dir. The baseline is the same installation idle, in the same run: the ratio says what 20
running apps (one web process each, the small echo test app) cost Moorage itself.

    .venv/bin/python -m bench.up_memory [--apps 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.common import bench_dir, descendants, rss_kib
from moorage.embedded.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
ECHO = ROOT / "tests" / "apps" / "echo"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def classify(up_pid: int, data_dir: Path) -> dict[str, float]:
    """MiB per kind: moorage (Python), router (nginx), apps (the rest of the tree), servers."""
    kinds = {"moorage": 0, "router": 0, "apps": 0, "servers": 0}
    tree = set(descendants(up_pid))
    for pid in tree:
        line = cmdline(pid)
        kind = (
            "servers"  # the embedded MariaDB (mariadbd-safe and mariadbd) is a child of ``up``
            if str(data_dir / "mariadb") in line
            else "moorage"
            if "moorage" in line and "python" in line
            else "router"
            if "nginx" in line
            else "apps"
        )
        kinds[kind] += rss_kib(pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in tree and str(data_dir) in cmdline(int(entry.name)):
            kinds["servers"] += rss_kib(int(entry.name))
    return {k: v / 1024 for k, v in kinds.items()}


def moorage(home: Path, cwd: Path, *args: str) -> str:
    env = {**os.environ, "HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-m", "moorage.cli.main", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"moorage {' '.join(args)} failed: {out.stdout}{out.stderr}")
    return out.stdout


def settle() -> None:
    """Let start-up garbage and caches settle before reading memory."""
    time.sleep(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=20)
    args = parser.parse_args()
    with bench_dir("moorage-bench-up-") as base:
        data_dir = base / "data"
        ports = {"broker": free_port(), "controller": free_port(), "router": free_port()}
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
        env.update(
            MOORAGE_DATA_DIR=str(data_dir),
            MOORAGE_BROKER_PORT=str(ports["broker"]),
            MOORAGE_PLATFORM_PORT=str(ports["controller"]),
            MOORAGE_PLATFORM_ROUTER_PORT=str(ports["router"]),
            MOORAGE_LOG_LEVEL="WARNING",
        )
        log = (base / "up.log").open("wb")
        up = subprocess.Popen(
            [sys.executable, "-m", "moorage.cli.main", "up"],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while "Moorage is up." not in (base / "up.log").read_text():
                if up.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("moorage up did not start:\n" + (base / "up.log").read_text())
                time.sleep(0.2)
            settle()
            idle = classify(up.pid, data_dir)

            controller = f"http://127.0.0.1:{ports['controller']}"
            home, work = base / "home", base / "work"
            shutil.copytree(ECHO, work)
            moorage(home, work, "register", controller, "--username", "bench", "--password", "bench-password")
            started = time.monotonic()
            for n in range(args.apps):
                name = f"app{n:02d}"
                moorage(home, work, "apps:create", name, "--no-remote")
                moorage(home, work, "deploy", "-a", name)
                moorage(home, work, "scale", "web=1", "worker=0", "-a", name)
            deployed_in = time.monotonic() - started
            for n in range(args.apps):
                resp = httpx.get(
                    f"http://127.0.0.1:{ports['router']}/", headers={"Host": f"app{n:02d}.moorage.localhost"}
                )
                assert resp.status_code == 200, resp.text
            settle()
            busy = classify(up.pid, data_dir)
        finally:
            os.killpg(up.pid, signal.SIGINT)
            up.wait(120)

    print(f"moorage up, memory in MiB (deployed {args.apps} apps in {deployed_in:.1f} s)")
    print(f"{'':10} {'idle':>9} {f'{args.apps} apps':>9} {'ratio':>7}")
    for kind in ("moorage", "router", "apps", "servers"):
        ratio = busy[kind] / idle[kind] if idle[kind] else float("nan")
        print(f"{kind:10} {idle[kind]:9.1f} {busy[kind]:9.1f} {ratio:7.2f}")
    own_idle, own_busy = idle["moorage"] + idle["router"], busy["moorage"] + busy["router"]
    print(f"{'moorage+router':10} {own_idle:5.1f} {own_busy:9.1f} {own_busy / own_idle:7.2f}")


if __name__ == "__main__":
    main()
