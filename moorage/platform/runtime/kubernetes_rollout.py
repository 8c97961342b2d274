"""Waiting for a rollout on Kubernetes, and failing fast when it cannot finish.

Why its own module: "the Deployment was accepted" is not "the release is live". A
rollout is done when every Deployment's controller has seen its latest spec
(``observedGeneration``), all its replicas run the new template and are ready, and the
old pods are gone. Waiting longer than needed is bad, and so is waiting for something
that will never happen: a pod whose image cannot be pulled, that keeps crashing, that
cannot be scheduled, or a ReplicaSet whose pods the API refuses (a quota) fails the
deploy at once, with Kubernetes' own reason and message for the user. Pods that run
but never become ready fail it when the deadline passes — Deis Workflow reported those
as a success while its router served 503s; here they are a failed deploy. The deadline
is ours, not the Deployment's ``ProgressDeadlineExceeded`` condition: that condition
outlives a rollback until the controller next syncs, and would fail the redeploy too.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moorage.clients.kubernetes import KubeApi

#: Container states that will not get better by waiting.
FAIL_FAST_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff", "CreateContainerConfigError"}
)
#: Events that mean the pods of a rollout cannot be created or placed.
FAIL_FAST_EVENTS = frozenset({"FailedScheduling", "FailedCreate"})
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Target:
    """One Deployment of the rollout: its process type, replicas and the release its pods carry."""

    type: str
    replicas: int
    release: str


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _done(deployment: dict[str, Any], replicas: int) -> bool:
    status = deployment.get("status") or {}
    if (status.get("observedGeneration") or 0) < deployment["metadata"].get("generation", 0):
        return False
    return (
        (status.get("updatedReplicas") or 0) == replicas
        and (status.get("replicas") or 0) == replicas
        and (status.get("readyReplicas") or 0) == replicas
    )


def pod_problem(pod: dict[str, Any]) -> str | None:
    """``"<reason>: <message>"`` when a container of ``pod`` is stuck in a state waiting cannot fix."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FAIL_FAST_WAITING:
            text = f"{waiting['reason']}: {waiting.get('message') or ''}".rstrip(": ")
            last = ((status.get("lastState") or {}).get("terminated")) or {}
            if "exitCode" in last:
                text += f" (last exit status {last['exitCode']})"
            return text
    return None


def _event_problem(
    events: list[dict[str, Any]], pods: set[str], prefixes: tuple[str, ...], since: dt.datetime
) -> str | None:
    for event in events:
        if event.get("reason") not in FAIL_FAST_EVENTS:
            continue
        involved = event.get("involvedObject") or {}
        name = str(involved.get("name") or "")
        ours = (involved.get("kind") == "Pod" and name in pods) or (
            involved.get("kind") == "ReplicaSet" and name.startswith(prefixes)
        )
        when = _parse_time(
            event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
        )
        if ours and (when is None or when >= since):
            return f"{event['reason']}: {event.get('message') or ''}".rstrip(": ")
    return None


def _readiness_hint(events: list[dict[str, Any]], pods: set[str]) -> str:
    for event in reversed(events):
        involved = event.get("involvedObject") or {}
        if event.get("reason") == "Unhealthy" and involved.get("name") in pods:
            return f" (last: {event.get('message')})"
    return ""


def wait_rollout(
    api: KubeApi, namespace: str, targets: Mapping[str, Target], timeout: float, since: dt.datetime
) -> str | None:
    """``None`` once every target is rolled out; else why it cannot be (for the user)."""
    deadline = time.monotonic() + timeout
    # Events have second precision: allow for the clock step between our start and theirs.
    since = since - dt.timedelta(seconds=1)
    while True:
        pending: list[str] = []
        pods_of: dict[str, list[dict[str, Any]]] = {}
        for target in targets.values():
            deployment = api.get("deployment", namespace, target.type)
            if deployment is None:
                return f"the Deployment {target.type} disappeared during the rollout"
            pods = api.list("pod", namespace, {"type": target.type, "release": target.release})
            pods_of[target.type] = pods
            for pod in pods:
                problem = pod_problem(pod)
                if problem:
                    return f"{target.type} pod {pod['metadata']['name']}: {problem}"
            if not _done(deployment, target.replicas):
                pending.append(target.type)
        names = {p["metadata"]["name"] for pods in pods_of.values() for p in pods}
        events = api.list("event", namespace) if pending else []
        problem = _event_problem(events, names, tuple(f"{t}-" for t in pending), since)
        if problem:
            return problem
        if not pending:
            return None
        if time.monotonic() > deadline:
            return _not_ready(pending, pods_of, targets, timeout) + _readiness_hint(events, names)
        time.sleep(POLL_SECONDS)


def _not_ready(
    pending: list[str],
    pods_of: Mapping[str, list[dict[str, Any]]],
    targets: Mapping[str, Target],
    timeout: float,
) -> str:
    parts = []
    for ptype in pending:
        pods = pods_of.get(ptype, [])
        ready = sum(1 for p in pods if _is_ready(p))
        parts.append(f"{ready} of {targets[ptype].replicas} {ptype} pods ready")
    return (
        f"{', '.join(parts)} after {timeout:.0f}s: the processes run but never became ready "
        "(does the web process answer HTTP on $PORT?)"
    )


def _is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
