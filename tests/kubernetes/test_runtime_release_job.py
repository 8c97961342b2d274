"""The release phase as a Job, and one-off runs stopped at their time limit, on Kubernetes.

The Job controller is the real one (in the test control plane's controller-manager): it
creates the Job's pod, records Complete or Failed, enforces ``activeDeadlineSeconds``.
The node stand-in plays the kubelet: it runs the pod's command locally (``running_locally``)
or gives it the outcome a test chose by label (``fail``: exit status 1; ``hang``: never
ends). It does not enforce a bare pod's ``activeDeadlineSeconds`` — which is why the
runtime keeps a one-off run's deadline itself.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from moorage.platform.runtime import kubernetes_manifests as manifests
from moorage.platform.runtime.base import ReleaseSpec
from moorage.platform.runtime.kubernetes import KubernetesRuntime
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kubernetes import ControlPlane
from tests.fixtures.platform import deploy_tarball, tar_of
from tests.kubernetes.conftest import KubePlatform, kube_settings, open_kube_platform
from tests.polling import wait_for

PROCFILE = "web: python3 -m http.server $PORT\nrelease: echo migrating $MOORAGE_RELEASE\n"
#: The time limit of builds, runs and release tasks in the tests that reach it.
LIMIT = 3


def _jobs(kp: KubePlatform, app: str) -> list[kubernetes.client.V1Job]:
    batch = kubernetes.client.BatchV1Api(kp.core.api_client)
    return batch.list_namespaced_job(kp.namespace(app)).items


def _live_pods(kp: KubePlatform, app: str, ptype: str) -> list[kubernetes.client.V1Pod]:
    pods = kp.core.list_namespaced_pod(kp.namespace(app), label_selector=f"type={ptype}").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def _deploy(kp: KubePlatform, app: str, procfile: str = PROCFILE) -> list[dict]:
    return deploy_tarball(kp.controller.user("alice"), app, tar_of({"Procfile": procfile}))


def _first_release(kp: KubePlatform) -> tuple[str, int]:
    """A new app with a release deployed (its release task succeeded); its name and version."""
    name = f"rj-{uuid.uuid4().hex[:6]}"
    assert kp.controller.user("alice").post("/v2/apps", json={"id": name}).status_code == 201
    lines = _deploy(kp, name)
    version = lines[-1].get("result", {}).get("version")
    assert version, lines
    return name, int(version)


def _serving(kp: KubePlatform, app: str) -> str:
    web = kp.apps.read_namespaced_deployment("web", kp.namespace(app))
    assert web.status.ready_replicas == 1
    return str(web.spec.template.metadata.labels["release"])


def test_the_release_phase_runs_as_a_job_whose_output_reaches_the_user_before_the_rollout(
    kube_platform: KubePlatform, running_locally: NodeStandIn
) -> None:
    kp = kube_platform
    name, version = _first_release(kp)
    lines = [line.get("log", "") for line in _deploy(kp, name)]
    said = [line for line in lines if f"migrating v{version + 1}" in line]
    rollout = next(
        i for i, line in enumerate(lines) if line.startswith(f"moorage[deploy]: deploying v{version + 1}")
    )
    assert said and lines.index(said[0]) < rollout
    jobs = {j.metadata.labels["release"]: j for j in _jobs(kp, name)}
    job = jobs[f"v{version + 1}"]
    assert job.spec.backoff_limit == 0
    assert job.spec.active_deadline_seconds == int(kp.controller.settings.platform.build_timeout_seconds)
    assert job.spec.ttl_seconds_after_finished == kp.controller.settings.kubernetes.release_job_ttl_seconds
    assert job.spec.template.spec.restart_policy == "Never"
    assert job.status.succeeded == 1
    assert _serving(kp, name) == f"v{version + 1}"
    ps = kp.controller.user("alice").get(f"/v2/apps/{name}/pods").json()["results"]
    assert [p["type"] for p in ps] == ["web"]  # the release pod is no process of the app


def test_the_release_tasks_output_streams_while_it_runs(
    kube_platform: KubePlatform, running_locally: NodeStandIn
) -> None:
    kp = kube_platform
    name, _ = _first_release(kp)
    procfile = "web: python3 -m http.server $PORT\nrelease: echo first; sleep 2; echo second\n"
    arrived: dict[str, float] = {}
    with kp.controller.user("alice").stream(
        "POST",
        f"/v2/apps/{name}/builds",
        content=tar_of({"Procfile": procfile}),
        headers={"Content-Type": "application/gzip"},
    ) as r:
        for raw in r.iter_lines():
            text = json.loads(raw).get("log", "") if raw.strip() else ""
            if text in ("moorage[release]: first", "moorage[release]: second"):
                arrived[text.rsplit(" ", 1)[1]] = time.monotonic()
    assert arrived["second"] - arrived["first"] > 1  # "first" reached the user as the task went on


def test_a_release_task_that_fails_to_start_fails_fast_with_the_reason(kube_platform: KubePlatform) -> None:
    kp = kube_platform
    name, version = _first_release(kp)
    kp.node.when({"app": name, "type": "release", "release": f"v{version + 1}"}, "image-pull-error")
    lines = _deploy(kp, name)
    assert "could not start: ErrImagePull" in lines[-1]["error"]["message"], lines[-1]
    wait_for(
        lambda: all(j.metadata.labels["release"] != f"v{version + 1}" for j in _jobs(kp, name)),
        timeout=10,
        what="the failed Job deleted",
    )
    assert _serving(kp, name) == f"v{version}"


def test_a_release_task_that_exits_non_zero_fails_the_release_and_the_previous_one_keeps_serving(
    kube_platform: KubePlatform,
) -> None:
    kp = kube_platform
    name, version = _first_release(kp)
    kp.node.when({"app": name, "type": "release", "release": f"v{version + 1}"}, "fail")
    lines = _deploy(kp, name)
    message = lines[-1]["error"]["message"]
    assert "exited with status 1" in message and "the previous release keeps serving" in message
    assert not any(f"deploying v{version + 1}" in line.get("log", "") for line in lines)  # no rollout
    assert _serving(kp, name) == f"v{version}"
    releases = kp.controller.user("alice").get(f"/v2/apps/{name}/releases").json()["results"]
    failed = next(r for r in releases if r["version"] == version + 1)
    assert failed["status"] == "failed" and "exited with status 1" in failed["failure"]


@pytest.fixture
def limited(kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path) -> Iterator[KubePlatform]:
    """A controller whose runs and release tasks may take ``LIMIT`` seconds."""
    with open_kube_platform(kube, kube_node, tmp_path, build_timeout_seconds=LIMIT) as kp:
        yield kp


def test_a_release_task_past_its_deadline_is_stopped_and_fails_the_release(limited: KubePlatform) -> None:
    kp = limited
    name, version = _first_release(kp)
    kp.node.when({"app": name, "type": "release", "release": f"v{version + 1}"}, "hang")
    started = time.monotonic()
    lines = _deploy(kp, name)
    message = lines[-1]["error"]["message"]
    assert f"did not finish within {LIMIT}s" in message, message
    assert time.monotonic() - started < LIMIT + 15
    job = next(j for j in _jobs(kp, name) if j.metadata.labels["release"] == f"v{version + 1}")
    assert [c.reason for c in job.status.conditions if c.type == "Failed"] == ["DeadlineExceeded"]
    wait_for(
        lambda: not _live_pods(kp, name, f"release,release=v{version + 1}"),
        timeout=10,
        what="the release pod stopped",
    )
    assert _serving(kp, name) == f"v{version}"


def test_a_run_past_its_time_limit_is_stopped_with_a_message_and_its_pod_deleted(
    limited: KubePlatform,
) -> None:
    kp = limited
    name, _ = _first_release(kp)
    kp.node.when({"app": name, "type": "run"}, "hang")
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(
            kp.controller.user("alice").post, f"/v2/apps/{name}/run", json={"command": "sleep 600"}
        )
        pod = wait_for(lambda: _live_pods(kp, name, "run"), timeout=LIMIT, what="the run pod")[0]
        assert pod.spec.active_deadline_seconds == LIMIT
        r = running.result()
    assert r.status_code == 200, r.text
    assert LIMIT <= time.monotonic() - started < LIMIT + 5
    assert r.json()["exit_code"] == 124
    assert f"stopped after {LIMIT}s" in r.json()["output"]
    wait_for(
        lambda: not kp.core.list_namespaced_pod(kp.namespace(name), label_selector="type=run").items,
        timeout=10,
        what="the run pod gone",
    )


def test_a_finished_release_job_is_deleted_after_its_ttl_of_at_least_ten_seconds(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}-"
    runtime = KubernetesRuntime(kube_settings(tmp_path, kube, prefix, release_job_ttl_seconds=1))
    ttl = manifests.MIN_RELEASE_JOB_TTL_SECONDS
    spec = ReleaseSpec("ttl", 2, slug="/srv/slug", env={}, processes={"web": "serve", "release": "true"})
    batch = kubernetes.client.BatchV1Api(kube.api_client())
    try:
        runtime.release_task(spec, "true", 30, lambda line: None)
        finished = time.monotonic()
        (job,) = batch.list_namespaced_job(prefix + "ttl").items
        assert job.spec.ttl_seconds_after_finished == ttl  # not 1: the runtime must see the outcome first
        wait_for(
            lambda: not batch.list_namespaced_job(prefix + "ttl").items, timeout=ttl + 20, what="the Job gone"
        )
        assert time.monotonic() - finished > ttl - 2
    finally:
        runtime.destroy("ttl")
        runtime.close()
        batch.api_client.close()
