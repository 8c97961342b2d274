"""KubernetesRuntime: the distributed runtime, with apps as Deployments in their own namespace.

Why: past one machine, Kubernetes places, restarts and reaches an app's processes; the
controller still says only *what* should run (the Runtime boundary). What the objects
look like is in ``kubernetes_manifests``; when a rollout is done (or cannot be) in
``kubernetes_rollout``; the app's log in ``kubernetes_logs``; the API calls go through
``moorage.clients.kubernetes``. The runtime keeps no state of its own: what runs is read
back from the cluster, so a restarted controller (or another replica) carries on.

A deploy writes the release's Secret, replaces each process type's Deployment and waits
for the rollout. If it fails — an image that cannot be pulled, pods that crash, cannot
be scheduled or never become ready — the Deployments are put back as they were (the
previous release, whose Secret still exists), and the error says so. ``scale`` goes
through the /scale subresource, ``restart`` changes an annotation of the pod template
(a rolling restart), ``run_once`` is a Pod with ``restartPolicy: Never`` and the release
phase a Job (``kubernetes_oneoff``), ``destroy``
deletes the namespace. Secrets of releases that no ReplicaSet refers to any more are
deleted after each successful deploy.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from moorage.clients.kubernetes import KubeApi
from moorage.errors import ConflictError, Error, InvalidParametersError, NotFoundError, UnprocessableError
from moorage.platform.router.config import validate_app, validate_hostname
from moorage.platform.runtime import kubernetes_logs
from moorage.platform.runtime import kubernetes_manifests as manifests
from moorage.platform.runtime import kubernetes_oneoff as oneoff
from moorage.platform.runtime.base import LogLine, ProcessStatus, Progress, ReleaseSpec, RunResult, Runtime
from moorage.platform.runtime.formation import check_count, check_formation, describe
from moorage.platform.runtime.kubernetes_access import grant_app_role, role_binding
from moorage.platform.runtime.kubernetes_ingress import AppIngress
from moorage.platform.runtime.kubernetes_rollout import Target, pod_problem, wait_rollout
from moorage.settings import Settings

log = logging.getLogger(__name__)

#: Procfile types the runtime never runs as a Deployment (the release phase runs once).
ONE_OFF_TYPES = frozenset({"release"})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class KubernetesRuntime(Runtime):
    def __init__(self, settings: Settings, api: KubeApi | None = None) -> None:
        self.settings = settings
        self.kube = settings.kubernetes
        role_binding(self.kube)  # a malformed MOORAGE_KUBERNETES_SERVICE_ACCOUNT stops the start
        self.resources = manifests.parse_resources(self.kube)
        self.policy = manifests.network_policy(self.kube)
        self.api = api or KubeApi(self.kube.kubeconfig, self.kube.context)
        self.ingress = AppIngress(self.api, settings, self.namespace_of)

    def namespace_of(self, app: str) -> str:
        return self.kube.namespace_prefix + validate_app(app)

    # -- deploy ----------------------------------------------------------------------------

    def deploy(self, release: ReleaseSpec, formation: Mapping[str, int], progress: Progress) -> None:
        counts = check_formation(release, formation)
        ns = self._prepare(release)
        previous = {
            d["metadata"]["name"]: d for d in self.api.list("deployment", ns, {"heritage": "moorage"})
        }
        started = _now()
        try:
            targets = self._apply(ns, release, counts, previous)
        except Error as exc:  # refused half way (an invalid quantity in the settings, …): put it back
            outcome = self._restore(ns, release, previous, progress)
            raise UnprocessableError(
                f"v{release.version} was refused by Kubernetes: {exc.message}; {outcome}", reason=exc.message
            ) from None
        progress(f"moorage[deploy]: rolling out v{release.version} ({describe(counts)})")
        failure = wait_rollout(self.api, ns, targets, self._timeout(), started)
        if failure is None:
            self._forget_old_secrets(ns, release)
            progress(f"moorage[deploy]: v{release.version} is up ({describe(counts)})")
            return
        progress(f"moorage[deploy]: v{release.version} failed: {failure}")
        outcome = self._restore(ns, release, previous, progress)
        raise UnprocessableError(f"v{release.version} failed: {failure}; {outcome}", reason=failure)

    def _prepare(self, release: ReleaseSpec) -> str:
        """The app's namespace (the runtime's RoleBinding in it) and the release's Secret, created when missing."""
        ns = self.namespace_of(release.app)
        existing = self.api.get("namespace", "", ns)
        if existing is None:
            existing = self.api.create("namespace", "", manifests.namespace(ns, release.app, release.owner))
        elif (existing.get("status") or {}).get("phase") == "Terminating":
            raise ConflictError(
                f"the namespace {ns} of {release.app} is still being deleted; try again shortly"
            )
        grant_app_role(self.api, self.kube, existing)
        if release.owner and "moorage.io/owner" not in (existing["metadata"].get("labels") or {}):
            self.api.patch("namespace", "", ns, {"metadata": {"labels": {"moorage.io/owner": release.owner}}})
        if self.policy is not None and self.api.get("networkpolicy", ns, "moorage-isolation") is None:
            self.api.create("networkpolicy", ns, self.policy)
        for secret in filter(None, (manifests.release_secret(release), manifests.bindings_secret(release))):
            try:
                self.api.create("secret", ns, secret)
            except ConflictError:
                pass  # a release's config never changes: the Secret made for it earlier is the same
        return ns

    def _apply(
        self, ns: str, release: ReleaseSpec, counts: Mapping[str, int], previous: Mapping[str, dict[str, Any]]
    ) -> dict[str, Target]:
        targets: dict[str, Target] = {}
        for ptype in sorted(t for t in release.processes if t not in ONE_OFF_TYPES):
            old = previous.get(ptype)
            template = (old or {}).get("spec", {}).get("template", {}).get("metadata", {})
            kept = {
                k: v for k, v in (template.get("annotations") or {}).items() if k == manifests.RESTARTED_AT
            }
            body = manifests.deployment(
                self.kube, release, ptype, counts.get(ptype, 0), self.resources, int(self._timeout()), kept
            )
            if old is None:
                self.api.create("deployment", ns, body)
            else:
                self.api.replace("deployment", ns, body)
            targets[ptype] = Target(ptype, counts.get(ptype, 0), f"v{release.version}")
        for name in previous:
            if name not in targets:
                self.api.delete("deployment", ns, name)
        service = self.api.get("service", ns, "web")
        if "web" in release.processes and service is None:
            self.api.create("service", ns, manifests.web_service(self.kube, release.app))
        elif "web" not in release.processes and service is not None:
            self.api.delete("service", ns, "web")
        if self.kube.ingress_class and "web" in release.processes:
            self.ingress.ensure(release.app)
        return targets

    def _restore(
        self, ns: str, release: ReleaseSpec, previous: Mapping[str, dict[str, Any]], progress: Progress
    ) -> str:
        """Put the Deployments back as they were before ``release``; says what runs now."""
        versions = {
            (d["metadata"].get("annotations") or {}).get("moorage.io/release") for d in previous.values()
        }
        versions.discard(None)
        if not previous:
            for ptype in release.processes:
                if ptype not in ONE_OFF_TYPES:
                    self.api.delete("deployment", ns, ptype)
            return "nothing else was running"
        if versions == {f"v{release.version}"}:
            return f"v{release.version} was already running; its Deployments are left as they are"
        label = ", ".join(sorted(str(v) for v in versions))
        progress(f"moorage[deploy]: redeploying {label}")
        started = _now()
        targets: dict[str, Target] = {}
        for name, old in previous.items():
            body = {
                "metadata": {
                    k: old["metadata"][k] for k in ("name", "labels", "annotations") if k in old["metadata"]
                }
            }
            body["spec"] = old["spec"]
            try:
                self.api.replace("deployment", ns, body)
            except NotFoundError:  # a type the failed release no longer had
                self.api.create("deployment", ns, body)
            release_label = old["spec"]["template"]["metadata"]["labels"].get("release", "")
            targets[name] = Target(name, int(old["spec"].get("replicas") or 0), release_label)
        for ptype in release.processes:
            if ptype not in previous and ptype not in ONE_OFF_TYPES:
                self.api.delete("deployment", ns, ptype)
        failure = wait_rollout(self.api, ns, targets, self._timeout(), started)
        if failure is not None:
            progress(f"moorage[deploy]: redeploying {label} failed too: {failure}")
            return f"redeploying {label} failed too: {failure}"
        progress(f"moorage[deploy]: {label} was redeployed")
        return f"{label} was redeployed and keeps serving"

    def _forget_old_secrets(self, ns: str, release: ReleaseSpec) -> None:
        """Delete release Secrets no ReplicaSet (kept for rollbacks) refers to any more."""
        used = {manifests.secret_name(release), manifests.bindings_secret_name(release)}
        for rs in self.api.list("replicaset", ns, {"heritage": "moorage"}):
            for container in rs["spec"]["template"]["spec"].get("containers") or []:
                for source in container.get("envFrom") or []:
                    used.add((source.get("secretRef") or {}).get("name"))
            for volume in rs["spec"]["template"]["spec"].get("volumes") or []:
                used.add((volume.get("secret") or {}).get("secretName"))
        for secret in self.api.list("secret", ns, {"app.kubernetes.io/managed-by": "moorage"}):
            name = secret["metadata"]["name"]
            if name not in used:
                self.api.delete("secret", ns, name)

    # -- scale, restart ----------------------------------------------------------------------

    def scale(self, app: str, formation: Mapping[str, int], progress: Progress) -> None:
        ns = self.namespace_of(app)
        deployments = {
            d["metadata"]["name"]: d for d in self.api.list("deployment", ns, {"heritage": "moorage"})
        }
        if not deployments:
            raise NotFoundError(f"app {app} has no deployed release; deploy it first")
        before: dict[str, int] = {}
        targets: dict[str, Target] = {}
        started = _now()
        for ptype, count in formation.items():
            check_count(ptype, count)
            deployment = deployments.get(ptype)
            if deployment is None:
                if count == 0:
                    continue
                raise InvalidParametersError(f"process type {ptype!r} is not in the Procfile of {app}")
            before[ptype] = int(deployment["spec"].get("replicas") or 0)
            if before[ptype] == count:
                continue
            self.api.scale(ns, ptype, count)
            targets[ptype] = Target(
                ptype, count, deployment["spec"]["template"]["metadata"]["labels"]["release"]
            )
        failure = wait_rollout(self.api, ns, targets, self._timeout(), started) if targets else None
        if failure is not None:
            for ptype in targets:
                self.api.scale(ns, ptype, before[ptype])
            raise UnprocessableError(
                f"scaling failed: {failure}; the previous counts were put back", reason=failure
            )
        progress(f"moorage[deploy]: scaled to {describe({t: c for t, c in formation.items() if c})}")

    def restart(self, app: str, process_type: str | None, progress: Progress) -> None:
        ns = self.namespace_of(app)
        deployments = self.api.list("deployment", ns, {"heritage": "moorage"})
        chosen = [d for d in deployments if process_type in (None, d["metadata"]["name"])]
        if not chosen:
            raise NotFoundError(f"{app} runs no {process_type or 'processes'}")
        stamp = _now().isoformat()
        started = _now()
        targets: dict[str, Target] = {}
        for d in chosen:
            name = d["metadata"]["name"]
            patch = {"spec": {"template": {"metadata": {"annotations": {manifests.RESTARTED_AT: stamp}}}}}
            self.api.patch("deployment", ns, name, patch)
            labels = d["spec"]["template"]["metadata"]["labels"]
            targets[name] = Target(name, int(d["spec"].get("replicas") or 0), labels["release"])
        failure = wait_rollout(self.api, ns, targets, self._timeout(), started)
        if failure is not None:
            raise UnprocessableError(f"the restart did not finish: {failure}", reason=failure)
        progress(f"moorage[deploy]: restarted {process_type or 'all processes'}")

    # -- status, logs ------------------------------------------------------------------------

    def _app_pods(self, app: str) -> list[dict[str, Any]]:
        try:
            pods = self.api.list("pod", self.namespace_of(app), {"heritage": "moorage"})
        except NotFoundError:
            return []
        return sorted(
            pods,
            key=lambda p: (
                p["metadata"]["labels"].get("type", ""),
                p["metadata"]["creationTimestamp"],
                p["metadata"]["name"],
            ),
        )

    def status(self, app: str) -> list[ProcessStatus]:
        out: list[ProcessStatus] = []
        numbers: dict[str, int] = {}
        for pod in self._app_pods(app):
            labels = pod["metadata"]["labels"]
            ptype = labels.get("type", "")
            if ptype in ("run", *ONE_OFF_TYPES):
                continue
            numbers[ptype] = numbers.get(ptype, 0) + 1
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            started = (pod.get("status") or {}).get("startTime")
            out.append(
                ProcessStatus(
                    type=ptype,
                    number=numbers[ptype],
                    state=_state(pod),
                    release=int(labels.get("release", "v0")[1:] or 0),
                    started_at=dt.datetime.fromisoformat(started.replace("Z", "+00:00")) if started else None,
                    restarts=sum(int(s.get("restartCount") or 0) for s in statuses),
                )
            )
        return out

    def crashed_release(self, app: str) -> int | None:
        """The release whose pods are crash-looping, if any (shown as ``crashed``)."""
        for pod in self._app_pods(app):
            problem = pod_problem(pod)
            if problem and problem.startswith("CrashLoopBackOff"):
                return int(pod["metadata"]["labels"].get("release", "v0")[1:] or 0)
        return None

    def logs(self, app: str, lines: int = 100, follow: bool = False) -> Iterator[LogLine]:
        ns = self.namespace_of(app)
        batch = kubernetes_logs.read(self.api, ns, self._app_pods(app), tail=lines)[-lines:]
        if not follow:
            return iter(batch)
        return kubernetes_logs.follow(self.api, ns, lambda: self._app_pods(app), batch)

    # -- run, destroy ------------------------------------------------------------------------

    def run_once(self, release: ReleaseSpec, command: str, timeout: float = 600.0) -> RunResult:
        """A Pod with ``activeDeadlineSeconds``; stopped and deleted at ``timeout`` all the same."""
        ns = self._prepare(release)
        name = f"run-{secrets.token_hex(4)}"
        self.api.create(
            "pod", ns, manifests.run_pod(self.kube, release, name, command, self.resources, timeout)
        )
        try:
            return oneoff.run_pod(self.api, ns, name, timeout)
        finally:
            self.api.delete("pod", ns, name, grace_seconds=0)

    def release_task(self, release: ReleaseSpec, command: str, timeout: float, output: Progress) -> None:
        """The release phase as a Job; a finished Job is left for Kubernetes to delete (its TTL)."""
        ns = self._prepare(release)
        name = f"release-v{release.version}-{secrets.token_hex(3)}"
        self.api.create(
            "job", ns, manifests.release_job(self.kube, release, name, command, self.resources, timeout)
        )
        oneoff.release_job(self.api, ns, name, command, timeout, output)

    def set_domains(self, app: str, domains: Iterable[str]) -> None:
        """Route ``domains`` (custom domains) besides ``<app>.<base_domain>`` through the app's Ingress."""
        if not self.kube.ingress_class:
            for domain in domains:
                validate_hostname(domain)
            return  # no Ingress: whoever routes to the web Services routes the domains too
        self.ingress.set_domains(app, domains)

    @property
    def tls_sink(self) -> AppIngress | None:
        """Where ``certs:add`` certificates go: the Ingress, when there is one (an IngressClass)."""
        return self.ingress if self.kube.ingress_class else None

    def destroy(self, app: str) -> None:
        """Delete the namespace; Kubernetes removes what is in it, then the namespace itself."""
        self.api.delete("namespace", "", self.namespace_of(app))

    def close(self) -> None:
        self.api.close()

    # -- helpers -----------------------------------------------------------------------------

    def _timeout(self) -> float:
        return self.settings.platform.deploy_timeout_seconds


def _state(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        return "stopping"
    if pod_problem(pod):
        return "crashed"
    if status.get("phase") in ("Succeeded", "Failed"):
        return "down"
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return "up" if status.get("phase") == "Running" and ready else "starting"
