"""Benchmark: scale web=1 → web=4, and a config change rolled out, on Kubernetes vs locally.

Why: issue 13 asks how fast the Kubernetes runtime rolls, beside the local runtime's
figure in the same run. Run as ``.venv/bin/python -m bench.kubernetes_scale`` from the
repository root. It starts the test control plane (etcd, kube-apiserver,
controller-manager, scheduler; ``tests/fixtures/kubernetes.py``) and the node stand-in,
which runs each pod's command (``tests/apps/rt_echo``) as a local process and marks the
pod Ready once its real readiness probe (HTTP on ``$PORT``) passes — so both runtimes
wait for the same processes to boot. Then, for each runtime:

- scale: ``scale web=1 → web=4`` until all four are ready (the call returns then);
- config: a deploy of a release with a changed config var at web=4, until every process
  runs the new release (Kubernetes: rollout done, old pods gone; local: switched and
  the old processes stopped).

The Kubernetes figures include the control plane's own latencies (watches, the
ReplicaSet and endpoint controllers, the scheduler) but no image pull or container
start, which a real node adds.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common_platform import local_runtime
from moorage.platform.runtime.base import ReleaseSpec, Runtime
from moorage.platform.runtime.kubernetes import KubernetesRuntime
from moorage.settings import Settings
from tests.fixtures.kube_local import LocalLaunch
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kubernetes import run_control_plane

APP = Path(__file__).resolve().parent.parent / "tests" / "apps" / "rt_echo"
WEB = "python3 app.py --port $PORT"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def spec(version: int) -> ReleaseSpec:
    return ReleaseSpec("bench", version, str(APP), {"GREETING": f"g{version}"}, {"web": WEB})


def run_here(pod: Any, env: dict[str, str]) -> LocalLaunch:
    """The slug-runner's entry point, played locally (the slug is a directory here)."""
    command = pod.spec.containers[0].args[0]
    return LocalLaunch(["bash", "-c", command], {"PATH": os.environ["PATH"], **env}, Path(env["SLUG_URL"]))


def timed(action: Callable[[], None]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def measure(runtime: Runtime) -> tuple[float, float]:
    """Medians of (scale 1 → 4, config change at 4) seconds."""
    quiet: Callable[[str], None] = lambda _line: None  # noqa: E731
    version = 2
    runtime.deploy(spec(version), {"web": 1}, quiet)
    scales = []
    for _ in range(ROUNDS):
        scales.append(timed(lambda: runtime.scale("bench", {"web": 4}, quiet)))
        assert sum(p.state == "up" for p in runtime.status("bench")) == 4
        runtime.scale("bench", {"web": 1}, quiet)
    runtime.scale("bench", {"web": 4}, quiet)
    configs = []
    for _ in range(ROUNDS):
        version += 1
        configs.append(timed(lambda v=version: runtime.deploy(spec(v), {"web": 4}, quiet)))
    runtime.destroy("bench")
    return statistics.median(scales), statistics.median(configs)


def kubernetes_figures() -> tuple[float, float, float]:
    started = time.monotonic()
    with run_control_plane() as plane:
        ready = time.monotonic() - started
        with NodeStandIn(plane, run_locally=run_here):
            data = Path(tempfile.mkdtemp(prefix="moorage-bench-k8s-"))
            settings = Settings(data_dir=data).with_group(
                platform={"runtime": "kubernetes", "deploy_timeout_seconds": 60.0},
                kubernetes={"kubeconfig": str(plane.kubeconfig), "namespace_prefix": "bench-"},
            )
            runtime = KubernetesRuntime(settings)
            try:
                scale, config = measure(runtime)
            finally:
                runtime.close()
                shutil.rmtree(data, ignore_errors=True)
    return ready, scale, config


def local_figures() -> tuple[float, float]:
    with local_runtime("moorage-bench-local-") as (_router, runtime):
        return measure(runtime)


def main() -> None:
    local_scale, local_config = local_figures()
    ready, k8s_scale, k8s_config = kubernetes_figures()
    print(f"control plane start (etcd → kube-apiserver /readyz, controllers started): {ready:.2f}s")
    print(f"medians of {ROUNDS}:          local      kubernetes   ratio")
    print(
        f"scale web=1 → web=4 ready  {local_scale:7.2f}s   {k8s_scale:9.2f}s   {k8s_scale / local_scale:5.2f}"
    )
    print(
        f"config change at web=4     {local_config:7.2f}s   {k8s_config:9.2f}s   {k8s_config / local_config:5.2f}"
    )


if __name__ == "__main__":
    main()
