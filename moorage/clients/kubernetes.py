"""The official Kubernetes client, behind plain dictionaries, and its errors translated.

Why one module: it is the only place that imports ``kubernetes`` (import-linter keeps it
so). The runtime builds manifests as plain dicts and gets plain dicts back (the API's
own JSON shape, camelCase keys), so no client model type crosses into the platform.
Errors become :mod:`moorage.errors`: 404 → :class:`NotFoundError`, 409 →
:class:`ConflictError`, 422 and other 4xx → :class:`InvalidParametersError` (with the
API server's message, which names the field), 5xx and connection failures →
:class:`ProviderError`.

Configuration: a kubeconfig file (and optionally a context in it), or — when none is
given — the in-cluster service account (``KUBERNETES_SERVICE_HOST`` and the mounted token,
read by the client library).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import kubernetes
import urllib3
from kubernetes.client.rest import ApiException

from moorage.errors import (
    ConfigurationError,
    ConflictError,
    Error,
    InvalidParametersError,
    NotFoundError,
    ProviderError,
)

__all__ = ["KubeApi", "KINDS"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: kind → (API class, method suffix, namespaced).
KINDS: dict[str, tuple[str, str, bool]] = {
    "namespace": ("CoreV1Api", "namespace", False),
    "secret": ("CoreV1Api", "namespaced_secret", True),
    "service": ("CoreV1Api", "namespaced_service", True),
    "pod": ("CoreV1Api", "namespaced_pod", True),
    "event": ("CoreV1Api", "namespaced_event", True),
    "deployment": ("AppsV1Api", "namespaced_deployment", True),
    "replicaset": ("AppsV1Api", "namespaced_replica_set", True),
    "job": ("BatchV1Api", "namespaced_job", True),
    "networkpolicy": ("NetworkingV1Api", "namespaced_network_policy", True),
    "ingress": ("NetworkingV1Api", "namespaced_ingress", True),
    "statefulset": ("AppsV1Api", "namespaced_stateful_set", True),
    "persistentvolumeclaim": ("CoreV1Api", "namespaced_persistent_volume_claim", True),
    "storageclass": ("StorageV1Api", "storage_class", False),
    "rolebinding": ("RbacAuthorizationV1Api", "namespaced_role_binding", True),
}


def _translate(exc: Exception, what: str) -> Error:
    if isinstance(exc, ApiException):
        message = _message(exc)
        if exc.status == 404:
            return NotFoundError(f"{what}: not found", status=404)
        if exc.status == 409:
            return ConflictError(f"{what}: {message}", status=409)
        if exc.status is not None and 400 <= exc.status < 500:
            return InvalidParametersError(f"{what}: {message}", status=exc.status)
        return ProviderError(
            f"{what}: the Kubernetes API answered {exc.status}: {message}", status=exc.status
        )
    return ProviderError(f"{what}: cannot reach the Kubernetes API: {exc}")


def _message(exc: ApiException) -> str:
    with contextlib.suppress(ValueError, TypeError):
        return str(json.loads(exc.body or "")["message"])
    return str(exc.reason)


class KubeApi:
    """Create/read/replace/patch/delete/list by kind, the /scale subresource, pod logs."""

    def __init__(self, kubeconfig: str = "", context: str = "") -> None:
        configuration = kubernetes.client.Configuration()
        try:
            if kubeconfig:
                kubernetes.config.load_kube_config(
                    config_file=kubeconfig, context=context or None, client_configuration=configuration
                )
            else:
                kubernetes.config.load_incluster_config(client_configuration=configuration)
        except (kubernetes.config.ConfigException, OSError) as exc:
            where = kubeconfig or "the in-cluster service account"
            raise ConfigurationError(
                f"cannot load the Kubernetes configuration from {where}: {exc}"
            ) from None
        self.client = kubernetes.client.ApiClient(configuration)
        self._apis: dict[str, Any] = {}

    def close(self) -> None:
        self.client.close()

    def _call(self, what: str, func: Callable[[], T]) -> T:
        try:
            return func()
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, what) from None

    def _api(self, api_name: str) -> Any:
        api = self._apis.get(api_name)
        if api is None:
            api = self._apis[api_name] = getattr(kubernetes.client, api_name)(self.client)
        return api

    def _method(self, verb: str, kind: str) -> tuple[Callable[..., Any], bool]:
        api_name, suffix, namespaced = KINDS[kind]
        return getattr(self._api(api_name), f"{verb}_{suffix}"), namespaced

    def _plain(self, obj: Any) -> dict[str, Any]:
        return dict(self.client.sanitize_for_serialization(obj))

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or ``None`` when there is none."""
        read, namespaced = self._method("read", kind)
        try:
            return self._plain(
                self._call(
                    f"reading {kind} {name}", lambda: read(name, namespace) if namespaced else read(name)
                )
            )
        except NotFoundError:
            return None

    def create(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        create, namespaced = self._method("create", kind)
        what = f"creating {kind} {body['metadata'].get('name', '')}"
        return self._plain(self._call(what, lambda: create(namespace, body) if namespaced else create(body)))

    def replace(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        replace, _ = self._method("replace", kind)
        name = body["metadata"]["name"]
        return self._plain(self._call(f"replacing {kind} {name}", lambda: replace(name, namespace, body)))

    def patch(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A strategic-merge patch (the client's default for a dict body)."""
        patch, namespaced = self._method("patch", kind)
        return self._plain(
            self._call(
                f"patching {kind} {name}",
                lambda: patch(name, namespace, body) if namespaced else patch(name, body),
            )
        )

    def delete(self, kind: str, namespace: str, name: str, grace_seconds: int | None = None) -> bool:
        """Delete in the background; ``False`` when it was already gone."""
        delete, namespaced = self._method("delete", kind)
        options = kubernetes.client.V1DeleteOptions(
            propagation_policy="Background", grace_period_seconds=grace_seconds
        )
        try:
            self._call(
                f"deleting {kind} {name}",
                lambda: delete(name, namespace, body=options) if namespaced else delete(name, body=options),
            )
        except NotFoundError:
            return False
        return True

    def list(self, kind: str, namespace: str, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        listing, _ = self._method("list", kind)
        selector = ",".join(f"{k}={v}" for k, v in (labels or {}).items())
        found = self._call(f"listing {kind}s", lambda: listing(namespace, label_selector=selector))
        return [self._plain(item) for item in found.items]

    def events_about(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The Events whose involved object is ``name`` (any kind), oldest first."""
        core = self._api("CoreV1Api")
        found = self._call(
            f"listing the events of {name}",
            lambda: core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}"),
        )
        events = [self._plain(item) for item in found.items]
        return sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))

    def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Create the namespace unless it exists (a conflict means it does)."""
        if self.get("namespace", "", name) is not None:
            return
        with contextlib.suppress(ConflictError):
            self.create("namespace", "", {"metadata": {"name": name, "labels": labels or {}}})

    def allowed(self, namespace: str, verb: str, resource: str, group: str = "") -> bool:
        """Whether this client's own user may ``verb`` ``resource`` there (a SelfSubjectAccessReview)."""
        attributes = {"namespace": namespace, "verb": verb, "resource": resource, "group": group}
        review = self._call(
            f"asking whether {verb} {resource} is allowed in {namespace}",
            lambda: self._api("AuthorizationV1Api").create_self_subject_access_review(
                {"spec": {"resourceAttributes": attributes}}
            ),
        )
        return bool(review.status.allowed)

    def scale(self, namespace: str, deployment: str, replicas: int) -> None:
        """Set a Deployment's replicas through its /scale subresource."""
        apps = self._api("AppsV1Api")
        self._call(
            f"scaling deployment {deployment}",
            lambda: apps.patch_namespaced_deployment_scale(
                deployment, namespace, {"spec": {"replicas": replicas}}
            ),
        )

    def pod_log(
        self, namespace: str, pod: str, tail: int | None = None, since_seconds: int | None = None
    ) -> list[str]:
        """The pod's output as lines, each starting with its RFC 3339 time (``timestamps``)."""
        core = self._api("CoreV1Api")
        # Not the client's decoding: it hands back the bytes' repr ("b'…'") for text logs.
        raw = self._call(
            f"reading the log of {pod}",
            lambda: (
                core.read_namespaced_pod_log(
                    pod,
                    namespace,
                    tail_lines=tail,
                    since_seconds=since_seconds,
                    timestamps=True,
                    _preload_content=False,
                ).data
            ),
        )
        return bytes(raw).decode(errors="replace").splitlines()
