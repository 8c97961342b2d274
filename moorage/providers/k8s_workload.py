"""What the in-cluster services share: a StatefulSet, a Service and a Secret per instance.

Why one module for both engines: ``k8s-postgresql`` and ``k8s-redis`` differ only in their
container (image, port, environment, probe); creating the objects, waiting for the pod,
explaining why it is not ready, rolling to a new image, growing the volume and deleting
everything are the same. The engine-specific part is a :class:`Engine` (a container
builder and a port).

Every object is named from a hash of the instance id (``moorage-<engine>-<12 hex>``), so
each call finds what an earlier call (perhaps in a process that was killed) made. Each
carries the labels ``moorage.io/instance-id`` (the instance id, or its hash when the id is
no valid label value) and ``app.kubernetes.io/*``, and the annotations
``moorage.io/instance-id``/``moorage.io/offering``: an object with another owner's
annotation is never touched. The admin password is generated when the Secret is created
and lives only there (the broker reads it back for its admin connection): it is not in
the instance's outputs, in logs or in credentials.

Waiting: every method raises :class:`TemporaryError` until the pod ``<set>-0`` runs the
wanted image and is Ready. Past the operation's deadline (the plan's
``maximum_polling_duration``, or config ``ready_timeout_seconds``) it fails with the pod's
own reason: a waiting container's reason (``ErrImagePull``, ``CrashLoopBackOff``), the
latest Warning event (``FailedScheduling`` …) or "not ready".

``settings.kubernetes.services_address_map`` is a test setting: it maps the Service's
in-cluster address to where the server really answers, for the broker's admin connection
only. Credentials always name ``<service>.<namespace>.svc.cluster.local``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from moorage.catalog.provider import InstanceContext, ProvisionResult
from moorage.clients.kubernetes import KubeApi
from moorage.errors import ConfigurationError, PermanentError, TemporaryError
from moorage.providers.address_maps import parse_address_map
from moorage.providers.k8s_storage import grow_volumes
from moorage.settings import Settings

log = logging.getLogger(__name__)

INSTANCE_LABEL = "moorage.io/instance-id"
OFFERING_ANNOTATION = "moorage.io/offering"
INSTANCE_ANNOTATION = "moorage.io/instance-id"
VOLUME = "data"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")

#: (instance, its object names) → the container spec (image, env, probe, resources).
ContainerBuilder = Callable[[InstanceContext, "Names"], dict[str, Any]]


@dataclass(frozen=True)
class Engine:
    """What differs between the in-cluster engines."""

    name: str  # "postgresql" / "redis": object names, app.kubernetes.io/name
    port: int
    container: ContainerBuilder
    #: Where the volume is mounted in the container.
    data_path: str
    #: The uid/gid the official image runs its server as (never root).
    uid: int = 999


@dataclass(frozen=True)
class Names:
    base: str  # StatefulSet and Service
    secret: str
    admin_user: str
    namespace: str

    @property
    def pod(self) -> str:
        return f"{self.base}-0"

    @property
    def host(self) -> str:
        return f"{self.base}.{self.namespace}.svc.cluster.local"


def instance_label(instance_id: str) -> str:
    """The value of ``moorage.io/instance-id``: the id itself when it is a valid label value."""
    if _LABEL_VALUE.match(instance_id):
        return instance_id
    return "h-" + hashlib.sha256(instance_id.encode()).hexdigest()[:40]


def names_for(engine: str, instance_id: str, namespace: str) -> Names:
    digest = hashlib.sha256(instance_id.encode()).hexdigest()[:12]
    base = f"moorage-{engine}-{digest}"
    return Names(base=base, secret=f"{base}-admin", admin_user=f"moorage_admin_{digest}", namespace=namespace)


class Workload:
    """The Kubernetes objects of one engine's instances, in the services namespace."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.engine = engine
        self.namespace = settings.kubernetes.services_namespace
        self.default_class = settings.kubernetes.services_storage_class
        self.address_map = parse_address_map(
            settings.kubernetes.services_address_map, "MOORAGE_KUBERNETES_SERVICES_ADDRESS_MAP"
        )
        self.api = KubeApi(settings.kubernetes.kubeconfig, settings.kubernetes.context)
        self._passwords: dict[str, str] = {}

    def close(self) -> None:
        self.api.close()

    def names(self, instance_id: str) -> Names:
        return names_for(self.engine.name, instance_id, self.namespace)

    # -- provision / update / deprovision -------------------------------------------------

    def provision(self, ctx: InstanceContext) -> ProvisionResult:
        names = self.names(ctx.instance_id)
        outputs = {**ctx.outputs, "host": names.host, "port": self.engine.port, "namespace": self.namespace}
        outputs.setdefault("started_at", time.time())
        self.api.ensure_namespace(self.namespace, {"app.kubernetes.io/managed-by": "moorage"})
        self._ensure(ctx, "secret", self._secret(ctx, names))
        self._ensure(ctx, "service", self._service(ctx, names))
        self._ensure(ctx, "statefulset", self._statefulset(ctx, names))
        self.wait_ready(ctx, names, outputs, "started_at")
        outputs.pop("started_at", None)
        return ProvisionResult(outputs={**outputs, "image": image_of(ctx)})

    def update(self, ctx: InstanceContext) -> ProvisionResult:
        """Grow the volume (checked first: a refusal changes nothing), roll to the plan's image."""
        names = self.names(ctx.instance_id)
        current = self.api.get("statefulset", self.namespace, names.base)
        if current is None:
            raise PermanentError(
                f"StatefulSet {names.base} no longer exists; deprovision this instance and create a new one"
            )
        self._check_ours(current, ctx.instance_id)
        outputs = dict(ctx.outputs)
        outputs.setdefault("update_started_at", time.time())
        grow_volumes(self.api, self.namespace, self.selector(ctx.instance_id), storage_gb(ctx))
        image = image_of(ctx)
        containers = current["spec"]["template"]["spec"]["containers"]
        if containers[0]["image"] != image:
            self.api.patch(
                "statefulset",
                self.namespace,
                names.base,
                {
                    "spec": {
                        "template": {"spec": {"containers": [{"name": self.engine.name, "image": image}]}}
                    }
                },
            )
            log.info("rolling %s to %s", names.base, image, extra={"instance_id": ctx.instance_id})
        self.wait_ready(ctx, names, outputs, "update_started_at")
        outputs.pop("update_started_at", None)
        return ProvisionResult(outputs={**outputs, "image": image})

    def deprovision(self, ctx: InstanceContext) -> None:
        """Delete the StatefulSet, Service and Secret, then (unless ``retain_data``) the volumes."""
        names = self.names(ctx.instance_id)
        for kind, name in (("statefulset", names.base), ("service", names.base), ("secret", names.secret)):
            found = self.api.get(kind, self.namespace, name)
            if found is not None and not found["metadata"].get("deletionTimestamp"):
                self._check_ours(found, ctx.instance_id)
                self.api.delete(kind, self.namespace, name)
        selector = self.selector(ctx.instance_id)
        poll = poll_seconds(ctx)
        if self.api.list("pod", self.namespace, selector):
            raise TemporaryError(poll, f"waiting for the pod of {names.base} to stop")
        if not ctx.config.get("retain_data", False):
            claims = self.api.list("persistentvolumeclaim", self.namespace, selector)
            for claim in claims:
                if not claim["metadata"].get("deletionTimestamp"):
                    self.api.delete("persistentvolumeclaim", self.namespace, claim["metadata"]["name"])
            if claims:
                raise TemporaryError(poll, f"waiting for the volumes of {names.base} to be deleted")
        for kind in ("statefulset", "service", "secret"):
            if self.api.list(kind, self.namespace, selector):
                raise TemporaryError(poll, f"waiting for the {kind} of {names.base} to be deleted")
        self._passwords.pop(ctx.instance_id, None)
        log.info("deleted %s", names.base, extra={"instance_id": ctx.instance_id})

    # -- what the bind side needs ----------------------------------------------------------

    def admin_password(self, instance_id: str) -> str | None:
        """The instance's admin password from its Secret (None when it is gone).

        Kept in memory once read: the Secret is made once per instance and never changes,
        and a bind or unbind then costs no API call.
        """
        password = self._passwords.get(instance_id)
        if password is None:
            secret = self.api.get("secret", self.namespace, self.names(instance_id).secret)
            if secret is None:
                return None
            password = self._passwords[instance_id] = base64.b64decode(secret["data"]["password"]).decode()
        return password

    def admin_address(self, instance_id: str) -> tuple[str, int]:
        """Where the broker connects: the Service's address, or its mapping (a test setting).

        A host ``*.<ns>.svc.cluster.local`` in the map stands for every Service of that namespace.
        """
        host = self.names(instance_id).host
        address = (host, self.engine.port)
        wildcard = ("*." + host.split(".", 1)[1], self.engine.port)
        return self.address_map.get(address) or self.address_map.get(wildcard) or address

    def admin_login(self, instance_id: str) -> tuple[str, int, str]:
        """Host, port and admin password for the broker's admin connection to an instance."""
        host, port = self.admin_address(instance_id)
        password = self.admin_password(instance_id)
        if password is None:
            raise PermanentError("the instance's admin Secret is gone; it cannot be managed")
        return host, port, password

    # -- waiting -----------------------------------------------------------------------

    def wait_ready(self, ctx: InstanceContext, names: Names, outputs: dict[str, Any], key: str) -> None:
        """Return once pod ``<set>-0`` runs the plan's image and is Ready; else wait or fail."""
        pod = self.api.get("pod", self.namespace, names.pod)
        image = image_of(ctx)
        if pod is not None and _ready(pod) and _runs(pod, image):
            return
        limit = ctx.plan.maximum_polling_duration or int(ctx.config.get("ready_timeout_seconds", 600))
        waited = time.time() - float(outputs.get(key, time.time()))
        expired = (time.time() > ctx.deadline) if ctx.deadline is not None else waited > limit
        if expired:
            self._fail(names, pod, waited, limit)
        raise TemporaryError(
            poll_seconds(ctx), f"waiting for pod {names.pod} ({image}) to be ready", outputs=outputs
        )

    def _fail(self, names: Names, pod: Mapping[str, Any] | None, waited: float, limit: int) -> NoReturn:
        raise PermanentError(
            f"pod {names.pod} in namespace {self.namespace} was not ready after {int(waited)} s "
            f"(the plan's limit is {limit} s): {self.reason(names, pod)}"
        )

    def reason(self, names: Names, pod: Mapping[str, Any] | None) -> str:
        """Why the pod is not ready, in Kubernetes' words."""
        if pod is None:
            events = self._warnings(names.base)
            return f"the StatefulSet has no pod{'; ' + events[-1] if events else ''}"
        status = pod.get("status") or {}
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting")
            if waiting and waiting.get("reason") not in (None, "ContainerCreating"):
                return f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
        scheduled = any(
            c.get("type") == "PodScheduled" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        # Once scheduled, an earlier FailedScheduling (a volume not bound yet) is history.
        events = [
            e for e in self._warnings(names.pod) if not (scheduled and e.startswith("FailedScheduling"))
        ]
        if events:
            return events[-1]
        if not scheduled:
            return "Unschedulable: the pod has not been scheduled to a node yet"
        if status.get("phase") == "Running":
            return "NotReady: the container runs but its readiness probe has not passed"
        return f"the pod is {status.get('phase', 'Pending')}"

    def _warnings(self, name: str) -> list[str]:
        return [
            f"{e.get('reason')}: {e.get('message', '')}".strip()
            for e in self.api.events_about(self.namespace, name)
            if e.get("type") == "Warning"
        ]

    # -- objects -------------------------------------------------------------------------

    def selector(self, instance_id: str) -> dict[str, str]:
        return {INSTANCE_LABEL: instance_label(instance_id)}

    def _meta(self, ctx: InstanceContext, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "labels": {
                **self.selector(ctx.instance_id),
                "app.kubernetes.io/name": self.engine.name,
                "app.kubernetes.io/instance": self.names(ctx.instance_id).base,
                "app.kubernetes.io/managed-by": "moorage",
            },
            "annotations": {INSTANCE_ANNOTATION: ctx.instance_id, OFFERING_ANNOTATION: ctx.offering.name},
        }

    def _secret(self, ctx: InstanceContext, names: Names) -> dict[str, Any]:
        password = secrets.token_urlsafe(24)  # only used when the Secret is created
        return {
            "metadata": self._meta(ctx, names.secret),
            "type": "Opaque",
            "stringData": {"username": names.admin_user, "password": password},
        }

    def _service(self, ctx: InstanceContext, names: Names) -> dict[str, Any]:
        port = self.engine.port
        return {
            "metadata": self._meta(ctx, names.base),
            "spec": {
                "type": "ClusterIP",
                "selector": self.selector(ctx.instance_id),
                "ports": [{"name": self.engine.name, "port": port, "targetPort": port, "protocol": "TCP"}],
            },
        }

    def _statefulset(self, ctx: InstanceContext, names: Names) -> dict[str, Any]:
        meta = self._meta(ctx, names.base)
        container = self.engine.container(ctx, names)
        container.setdefault("volumeMounts", []).append({"name": VOLUME, "mountPath": self.engine.data_path})
        claim: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": f"{storage_gb(ctx)}Gi"}},
        }
        storage_class = ctx.config.get("storage_class") or self.default_class
        if storage_class:
            claim["storageClassName"] = storage_class
        uid = self.engine.uid
        return {
            "metadata": meta,
            "spec": {
                "serviceName": names.base,
                "replicas": 1,
                "selector": {"matchLabels": self.selector(ctx.instance_id)},
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": meta["labels"], "annotations": meta["annotations"]},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": uid,
                            "runAsGroup": uid,
                            "fsGroup": uid,
                        },
                        "containers": [container],
                    },
                },
                "volumeClaimTemplates": [
                    {"metadata": {"name": VOLUME, "labels": meta["labels"]}, "spec": claim}
                ],
            },
        }

    def _ensure(self, ctx: InstanceContext, kind: str, body: dict[str, Any]) -> None:
        """Create ``body`` unless it exists; an existing one must carry this instance's annotation."""
        existing = self.api.get(kind, self.namespace, body["metadata"]["name"])
        if existing is None:
            self.api.create(kind, self.namespace, body)
            log.info("created %s %s", kind, body["metadata"]["name"], extra={"instance_id": ctx.instance_id})
            return
        self._check_ours(existing, ctx.instance_id)

    def _check_ours(self, obj: Mapping[str, Any], instance_id: str) -> None:
        meta = obj["metadata"]
        if (meta.get("annotations") or {}).get(INSTANCE_ANNOTATION) != instance_id:
            raise PermanentError(
                f"{meta['name']} in namespace {self.namespace} does not belong to instance {instance_id}; "
                "Moorage will not touch it"
            )


def image_of(ctx: InstanceContext) -> str:
    image = ctx.config.get("image")
    if not image:
        raise ConfigurationError(f"plan {ctx.plan.name} of {ctx.offering.name} names no image in its config")
    return str(image)


def storage_gb(ctx: InstanceContext) -> int:
    return int(ctx.parameters.get("storage_gb", ctx.config.get("storage_gb", 1)))


def poll_seconds(ctx: InstanceContext) -> float:
    return float(ctx.config.get("poll_seconds", 2))


def _ready(pod: Mapping[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _runs(pod: Mapping[str, Any], image: str) -> bool:
    return all(c.get("image") == image for c in pod["spec"]["containers"][:1])
