"""Processes that run once on Kubernetes: ``run`` as a Pod, the release phase as a Job.

Why two kinds: a one-off ``run`` is the user's own command, watched by the user; a Pod
with ``restartPolicy: Never`` is all it needs. The release phase gates a deploy, so it is
a Job (Heroku's release phase, Deis's hooks): the Job controller enforces its deadline
and records why it failed in the Job's conditions, ``backoffLimit: 0`` means a failed
migration is never re-run behind the user's back, and ``ttlSecondsAfterFinished`` makes
Kubernetes delete the finished Job (and its pod) later, so its log can still be read.

Both keep a deadline of their own too: ``activeDeadlineSeconds`` on a Pod is the
kubelet's to enforce, and a node that does not (or a Job controller that is behind) must
not let a run outlive its limit; past it the pod (or Job) is deleted and the output says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from moorage.clients.kubernetes import KubeApi
from moorage.errors import InvalidParametersError, NotFoundError, UnprocessableError
from moorage.platform.runtime import kubernetes_logs
from moorage.platform.runtime.base import RunResult
from moorage.platform.runtime.kubernetes_rollout import pod_problem

POLL_SECONDS = 0.25
#: Exit code of a run stopped at its time limit (as ``timeout(1)`` and the local runtime say).
TIMED_OUT = 124
#: How much longer than its deadline the runtime waits for the Job controller to act.
JOB_GRACE_SECONDS = 30.0


class LogTail:
    """The lines of one pod's log not handed out yet (a pod's log only grows)."""

    def __init__(self, api: KubeApi, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.seen = 0

    def new_lines(self, pod: dict[str, Any] | None) -> list[str]:
        if pod is None or (pod.get("status") or {}).get("phase") not in ("Running", "Succeeded", "Failed"):
            return []
        try:
            raw = self.api.pod_log(self.namespace, pod["metadata"]["name"])
        except (NotFoundError, InvalidParametersError):  # gone, or not started: nothing to read yet
            return []
        fresh = [kubernetes_logs.line("", text).line for text in raw[self.seen :]]
        self.seen = max(self.seen, len(raw))
        return fresh


def _terminated(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return (statuses[0].get("state") or {}).get("terminated") or {}


def run_pod(api: KubeApi, namespace: str, name: str, timeout: float) -> RunResult:
    """Wait for the one-off pod ``name``; delete it at ``timeout`` (the caller deletes it in any case)."""
    deadline = time.monotonic() + timeout
    tail = LogTail(api, namespace)
    output: list[str] = []
    while True:
        pod = api.get("pod", namespace, name)
        if pod is None:
            raise UnprocessableError(f"the one-off pod {name} disappeared before it finished")
        output += tail.new_lines(pod)
        status = pod.get("status") or {}
        stopped = status.get("reason") == "DeadlineExceeded"  # by a kubelet enforcing the deadline
        if status.get("phase") in ("Succeeded", "Failed") and not stopped:
            output += tail.new_lines(pod)
            code = int(_terminated(pod).get("exitCode", 1))
            return RunResult(exit_code=code, output="\n".join(output) + "\n" if output else "")
        if stopped or time.monotonic() > deadline:
            api.delete("pod", namespace, name, grace_seconds=0)
            output.append(f"moorage: the command was stopped after {timeout:g}s (the time limit of a run)")
            return RunResult(exit_code=TIMED_OUT, output="\n".join(output) + "\n")
        problem = pod_problem(pod)
        if problem:
            raise UnprocessableError(f"the one-off process could not start: {problem}", reason=problem)
        time.sleep(POLL_SECONDS)


def _condition(job: dict[str, Any]) -> dict[str, Any] | None:
    """The Job's ``Complete`` or ``Failed`` condition once it has one."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return dict(condition)
    return None


def _job_pod(api: KubeApi, namespace: str, name: str) -> dict[str, Any] | None:
    pods = api.list("pod", namespace, {"job-name": name})
    return max(pods, key=lambda p: p["metadata"]["creationTimestamp"]) if pods else None


def release_job(
    api: KubeApi, namespace: str, name: str, command: str, timeout: float, output: Callable[[str], None]
) -> None:
    """Wait for the release Job ``name``, its pod's log to ``output`` as it comes; raise
    :class:`UnprocessableError` with the reason when it fails."""
    deadline = time.monotonic() + timeout + JOB_GRACE_SECONDS
    tail = LogTail(api, namespace)
    pod = None
    while True:
        job = api.get("job", namespace, name)
        if job is None:
            raise UnprocessableError(f"the release task's Job {name} was deleted before it finished")
        pod = _job_pod(api, namespace, name) or pod
        for text in tail.new_lines(pod):
            output(text)
        condition = _condition(job)
        if condition is not None:
            for text in tail.new_lines(pod):  # what it printed last
                output(text)
            if condition["type"] == "Complete":
                return
            raise UnprocessableError(_failure(command, condition, pod, timeout))
        problem = pod_problem(pod) if pod is not None else None
        if problem or time.monotonic() > deadline:
            api.delete("job", namespace, name)
            reason = (
                f"could not start: {problem}"
                if problem
                else f"did not finish within {timeout:g}s; it was stopped"
            )
            raise UnprocessableError(f"the release task `{command}` {reason}", reason=problem or "timeout")
        time.sleep(POLL_SECONDS)


def _failure(command: str, condition: dict[str, Any], pod: dict[str, Any] | None, timeout: float) -> str:
    """Why the Job failed, in the user's words: the exit status, or the deadline."""
    if condition.get("reason") == "DeadlineExceeded":
        return (
            f"the release task `{command}` did not finish within {timeout:g}s "
            "(its time limit, MOORAGE_PLATFORM_BUILD_TIMEOUT_SECONDS); it was stopped"
        )
    code = _terminated(pod).get("exitCode") if pod is not None else None
    if code is not None:
        return (
            f"the release task `{command}` exited with status {code}; "
            "fix it (see its output above) and deploy again"
        )
    return f"the release task `{command}` failed: {condition.get('reason')}: {condition.get('message') or ''}"
