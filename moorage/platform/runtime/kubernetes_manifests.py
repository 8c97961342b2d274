"""The Kubernetes objects of an app, as plain manifests (dicts the API takes as JSON).

Why pure functions: what an app looks like on Kubernetes is decided here and nowhere
else, without a connection, so it is easy to read and to check. The shape follows Deis
Workflow's scheduler, which Heroku-style users know:

- one Namespace per app (labels naming the app and its owner);
- one Secret per release, ``<app>-v<N>-env``, holding its config vars: pods take them
  with ``envFrom``, so a config change is a new release and a rolling deploy, and
  rolling back re-uses the old release's Secret;
- one Deployment per process type (pod labels ``app``, ``type``, ``release``) running
  the slug-runner image with the release's slug (``$SLUG_URL``) and the Procfile
  command; ``maxUnavailable: 0``, so a rollout never has fewer ready pods than asked;
- a Service ``web`` whose selector is the web pods and whose target is ``$PORT``;
- a Pod with ``restartPolicy: Never`` for one-off runs, and a Job of one such pod
  (no retries, a deadline, deleted some time after it finished) for the release phase;
- an Ingress ``web`` (when an IngressClass is set) for ``<app>.<base_domain>`` and the
  app's custom domains, with a ``kubernetes.io/tls`` Secret per ``certs:add`` certificate
  in its ``spec.tls`` (see :func:`ingress`);
- a NetworkPolicy: an app's pods accept connections only from its own namespace and
  from the namespaces labelled as the router's, so one app cannot reach another's pods.

Processes run as an unprivileged user with no service-account token and no privilege
escalation: an app's code never runs as root, nor talks to the Kubernetes API as anyone.

A release with service bindings also has a Secret ``<app>-v<N>-bindings`` mounted at
``/bindings`` (``SERVICE_BINDING_ROOT``) as ``<binding>/<key>`` files, the servicebinding.io
layout; see :func:`with_bindings`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moorage.errors import ConfigurationError
from moorage.platform.runtime.base import ReleaseSpec
from moorage.settings import KubernetesSettings

MANAGED_BY = {"app.kubernetes.io/managed-by": "moorage"}
RESTARTED_AT = "moorage.io/restarted-at"
#: The uid app processes run as inside the slug-runner image (any non-root uid works).
APP_UID = 10001


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str

    def manifest(self) -> dict[str, Any]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


def parse_resources(settings: KubernetesSettings) -> dict[str, Resources]:
    """Per-type resources from ``process_resources`` (``web=cpu:1/2,memory:1Gi/1Gi;…``); ``""`` is the default."""
    default = Resources(
        settings.cpu_request, settings.cpu_limit, settings.memory_request, settings.memory_limit
    )
    out = {"": default}
    for item in filter(None, (part.strip() for part in settings.process_resources.split(";"))):
        ptype, _, spec = item.partition("=")
        values = {
            "cpu_request": default.cpu_request,
            "cpu_limit": default.cpu_limit,
            "memory_request": default.memory_request,
            "memory_limit": default.memory_limit,
        }
        for resource in filter(None, spec.split(",")):
            name, _, pair = resource.partition(":")
            request, _, limit = pair.partition("/")
            if name.strip() not in ("cpu", "memory") or not request or not limit or not ptype.strip():
                raise ConfigurationError(
                    f"MOORAGE_KUBERNETES_PROCESS_RESOURCES: cannot read {item!r}; "
                    "write e.g. worker=cpu:250m/2,memory:512Mi/1Gi (request/limit)"
                )
            values[f"{name.strip()}_request"] = request.strip()
            values[f"{name.strip()}_limit"] = limit.strip()
        out[ptype.strip()] = Resources(**values)
    return out


def namespace(name: str, app: str, owner: str) -> dict[str, Any]:
    labels = {**MANAGED_BY, "moorage.io/app": app}
    if owner:
        labels["moorage.io/owner"] = owner
    return {"metadata": {"name": name, "labels": labels}}


def secret_name(release: ReleaseSpec) -> str:
    return f"{release.app}-v{release.version}-env"


def release_secret(release: ReleaseSpec) -> dict[str, Any]:
    return {
        "metadata": {
            "name": secret_name(release),
            "labels": {**MANAGED_BY, "app": release.app, "release": f"v{release.version}"},
        },
        "type": "Opaque",
        "stringData": dict(release.env),
    }


#: Where pods find their binding files (what Kubernetes' service-binding projections use).
BINDING_ROOT = "/bindings"


def bindings_secret_name(release: ReleaseSpec) -> str:
    return f"{release.app}-v{release.version}-bindings"


def bindings_secret(release: ReleaseSpec) -> dict[str, Any] | None:
    """The release's binding files as one Secret (keys ``<binding>.<file>``), or None."""
    if not release.binding_files:
        return None
    data = {f"{b}.{k}": v for b, files in release.binding_files.items() for k, v in files.items()}
    return {
        "metadata": {
            "name": bindings_secret_name(release),
            "labels": {**MANAGED_BY, "app": release.app, "release": f"v{release.version}"},
        },
        "type": "Opaque",
        "stringData": data,
    }


def with_bindings(release: ReleaseSpec, spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with the bindings Secret mounted read-only at ``/bindings`` in each container.

    Files are 0440 with the pod's ``fsGroup`` set to the app's gid: the kubelet owns them
    by root and that group, so only the app's processes (and root) can read them.
    ``SERVICE_BINDING_ROOT`` and the vars naming a binding file are added to ``env``.
    """
    if not release.binding_files:
        return spec
    items = [
        {"key": f"{b}.{k}", "path": f"{b}/{k}"}
        for b, files in sorted(release.binding_files.items())
        for k in sorted(files)
    ]
    volume = {"secretName": bindings_secret_name(release), "defaultMode": 0o440, "items": items}
    spec.setdefault("volumes", []).append({"name": "bindings", "secret": volume})
    spec["securityContext"]["fsGroup"] = APP_UID
    env = [{"name": "SERVICE_BINDING_ROOT", "value": BINDING_ROOT}]
    env += [{"name": k, "value": f"{BINDING_ROOT}/{v}"} for k, v in sorted(release.binding_paths.items())]
    for container in spec["containers"]:
        container.setdefault("volumeMounts", []).append(
            {"name": "bindings", "mountPath": BINDING_ROOT, "readOnly": True}
        )
        container["env"] = [*container.get("env", []), *env]
    return spec


def pod_labels(release: ReleaseSpec, ptype: str) -> dict[str, str]:
    return {"app": release.app, "type": ptype, "release": f"v{release.version}", "heritage": "moorage"}


def _container(
    settings: KubernetesSettings, release: ReleaseSpec, ptype: str, command: str, resources: Resources
) -> dict[str, Any]:
    env = [
        {"name": "SLUG_URL", "value": release.slug_url or release.slug},
        {"name": "DYNO_TYPE", "value": ptype},
        {"name": "DYNO", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    listens = ptype == "web" or ptype in _tcp_types(settings)
    if listens:
        env.append({"name": "PORT", "value": str(settings.web_port)})
    container: dict[str, Any] = {
        "name": ptype,
        "image": settings.slug_runner_image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": [command],
        "envFrom": [{"secretRef": {"name": secret_name(release)}}],
        "env": env,
        "resources": resources.manifest(),
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if ptype == "web":
        container["ports"] = [{"name": "http", "containerPort": settings.web_port}]
        container["readinessProbe"] = {
            "httpGet": {"path": settings.health_path, "port": settings.web_port},
            "periodSeconds": 2,
            "failureThreshold": 3,
        }
    elif listens:
        container["readinessProbe"] = {"tcpSocket": {"port": settings.web_port}, "periodSeconds": 2}
    return container


def _tcp_types(settings: KubernetesSettings) -> set[str]:
    return {t.strip() for t in settings.tcp_probe_types.split(",") if t.strip()}


def _pod_spec(containers: list[dict[str, Any]], restart: str) -> dict[str, Any]:
    return {
        "restartPolicy": restart,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": APP_UID, "runAsGroup": APP_UID},
        "containers": containers,
    }


def deployment(
    settings: KubernetesSettings,
    release: ReleaseSpec,
    ptype: str,
    replicas: int,
    resources: Mapping[str, Resources],
    deadline_seconds: int,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    labels = pod_labels(release, ptype)
    container = _container(
        settings, release, ptype, release.processes[ptype], resources.get(ptype, resources[""])
    )
    return {
        "metadata": {
            "name": ptype,
            "labels": labels,
            "annotations": {"moorage.io/release": f"v{release.version}"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": release.app, "type": ptype}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "progressDeadlineSeconds": max(deadline_seconds, 1),
            "revisionHistoryLimit": 5,
            "template": {
                "metadata": {"labels": labels, "annotations": dict(annotations or {})},
                "spec": with_bindings(release, _pod_spec([container], "Always")),
            },
        },
    }


def web_service(settings: KubernetesSettings, app: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "labels": {**MANAGED_BY, "app": app}},
        "spec": {
            "selector": {"app": app, "type": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": settings.web_port}],
        },
    }


def run_pod(
    settings: KubernetesSettings,
    release: ReleaseSpec,
    name: str,
    command: str,
    resources: Mapping[str, Resources],
    timeout_seconds: float,
) -> dict[str, Any]:
    container = _container(settings, release, "run", command, resources.get("run", resources[""]))
    spec = with_bindings(release, _pod_spec([container], "Never"))
    spec["activeDeadlineSeconds"] = max(int(timeout_seconds), 1)
    return {"metadata": {"name": name, "labels": pod_labels(release, "run")}, "spec": spec}


#: A finished release Job lives at least this long, so the runtime (polling) reads its outcome first.
MIN_RELEASE_JOB_TTL_SECONDS = 10


def release_job(
    settings: KubernetesSettings,
    release: ReleaseSpec,
    name: str,
    command: str,
    resources: Mapping[str, Resources],
    deadline_seconds: float,
) -> dict[str, Any]:
    """The release phase: one pod, never retried (a half-run migration must not run twice
    on its own), stopped by the Job controller at ``deadline_seconds``, and the finished Job
    deleted by Kubernetes after ``release_job_ttl_seconds`` (its log stays readable until then)."""
    container = _container(settings, release, "release", command, resources.get("release", resources[""]))
    labels = pod_labels(release, "release")
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": max(int(deadline_seconds), 1),
            "ttlSecondsAfterFinished": max(settings.release_job_ttl_seconds, MIN_RELEASE_JOB_TTL_SECONDS),
            "template": {
                "metadata": {"labels": labels},
                "spec": with_bindings(release, _pod_spec([container], "Never")),
            },
        },
    }


def network_policy(settings: KubernetesSettings) -> dict[str, Any] | None:
    """Ingress to every pod of the namespace only from itself and the router's namespaces."""
    if not settings.ingress_from_namespace_label:
        return None
    key, _, value = settings.ingress_from_namespace_label.partition("=")
    if not key.strip() or not value.strip():
        raise ConfigurationError(
            "MOORAGE_KUBERNETES_INGRESS_FROM_NAMESPACE_LABEL: write key=value, e.g. moorage.io/ingress=true"
        )
    sources = [{"podSelector": {}}, {"namespaceSelector": {"matchLabels": {key.strip(): value.strip()}}}]
    return {
        "metadata": {"name": "moorage-isolation", "labels": dict(MANAGED_BY)},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": sources}]},
    }


def tls_labels(app: str) -> dict[str, str]:
    """Labels of the Secrets of an app's ``certs:add`` certificates.

    Not ``MANAGED_BY``: Secrets with that label are release Secrets, deleted once no
    ReplicaSet uses them.
    """
    return {"app": app, "moorage.io/tls": "certificate"}


def tls_secret_name(cert_pem: str, key_pem: str) -> str:
    """Derived from the pair, so the same certificate is the same Secret and a new one a new Secret."""
    digest = hashlib.sha256(f"{cert_pem}\0{key_pem}".encode()).hexdigest()
    return f"tls-{digest[:20]}"


def tls_secret(app: str, cert_pem: str, key_pem: str) -> dict[str, Any]:
    return {
        "metadata": {"name": tls_secret_name(cert_pem, key_pem), "labels": tls_labels(app)},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": cert_pem, "tls.key": key_pem},
    }


@dataclass(frozen=True)
class IngressTls:
    """What the Ingress says about TLS: ``(secret, hosts)`` per certificate, and the redirect."""

    certs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    force_https: bool = False


def ingress_tls(settings: KubernetesSettings, body: Mapping[str, Any] | None) -> IngressTls:
    """Read back from an existing Ingress (the runtime keeps no state): its certificates' entries."""
    if body is None:
        return IngressTls()
    entries = tuple(
        (str(t.get("secretName") or ""), tuple(t.get("hosts") or ()))
        for t in (body.get("spec") or {}).get("tls") or []
        if t.get("secretName") and t.get("secretName") != settings.ingress_tls_secret
    )
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    redirect = settings.ingress_ssl_redirect_annotation
    return IngressTls(entries, bool(redirect) and annotations.get(redirect) == "true")


def ingress(
    settings: KubernetesSettings, app: str, hosts: list[str], tls: IngressTls | None = None
) -> dict[str, Any]:
    """Every host of the app to its web Service (port 80), with the class and annotations of the settings.

    ``hosts[0]`` is the app host: it gets ``ingress_tls_secret`` when that is set. ``tls``
    lists the custom domains' certificates (each Secret with the hosts it serves) and
    whether HTTP redirects to HTTPS (``ingress_ssl_redirect_annotation``).
    """
    tls = tls or IngressTls()
    annotations = {}
    for pair in filter(None, (p.strip() for p in settings.ingress_annotations.split(";"))):
        key, _, value = pair.partition("=")
        if not key.strip():
            raise ConfigurationError(
                f"MOORAGE_KUBERNETES_INGRESS_ANNOTATIONS: cannot read {pair!r}; write key=value"
            )
        annotations[key.strip()] = value.strip()
    if settings.ingress_ssl_redirect_annotation:
        annotations[settings.ingress_ssl_redirect_annotation] = "true" if tls.force_https else "false"
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    rules = [
        {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
        for host in hosts
    ]
    entries = [{"hosts": list(h), "secretName": secret} for secret, h in tls.certs]
    if settings.ingress_tls_secret and hosts:
        entries.insert(0, {"hosts": [hosts[0]], "secretName": settings.ingress_tls_secret})
    spec: dict[str, Any] = {"ingressClassName": settings.ingress_class, "rules": rules}
    if entries:
        spec["tls"] = entries
    return {
        "metadata": {"name": "web", "labels": {**MANAGED_BY, "app": app}, "annotations": annotations},
        "spec": spec,
    }
