"""Moorage's settings: frozen dataclasses read once from ``MOORAGE_*`` variables.

Why one module: every part of Moorage takes its configuration as an argument, and only
the entry points call :meth:`Settings.from_env`. Nothing else reads ``os.environ``, so a
test can build a ``Settings`` with ``dataclasses.replace`` and run several brokers or
controllers in one process without them stepping on each other.

Each group is one concern (kopf's ``OperatorSettings`` style); every field has a default
that works on one machine with nothing configured (the embedded default).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from moorage.errors import ConfigurationError

PREFIX = "MOORAGE_"


@dataclass(frozen=True)
class BrokerSettings:
    """The OSB API endpoint: where it listens and the basic-auth pair platforms use."""

    host: str = "127.0.0.1"
    port: int = 5050
    username: str = "moorage"
    #: Empty means "generate one on first start and keep it in the data dir".
    password: str = ""
    #: gunicorn worker processes and threads per process.
    processes: int = 1
    threads: int = 8
    #: Request bodies larger than this are refused with 413.
    max_body_bytes: int = 1024 * 1024
    #: Seconds a synchronous plan may run inside the request before the answer is 202.
    sync_budget_seconds: float = 20.0


@dataclass(frozen=True)
class WorkerSettings:
    """The durable operation worker (see ``moorage.ops``)."""

    #: Worker threads started inside the broker process; 0 leaves it to ``moorage worker``.
    threads: int = 2
    #: Seconds between polls of the operations table when idle.
    poll_seconds: float = 0.5
    #: A claim not renewed for this long is considered dead and is taken over.
    lease_seconds: float = 30.0
    #: Attempts for an operation whose provider raises an unexpected error.
    max_attempts: int = 6
    #: First retry delay; doubled on each attempt, capped at ``backoff_max_seconds``.
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0


@dataclass(frozen=True)
class ServicesSettings:
    """Backing servers of the local services.

    Empty admin URLs mean: start and supervise our own server from the system binaries
    (the embedded default).
    """

    postgres_admin_url: str = ""
    #: Host name put into credentials; defaults to the admin URL's host.
    postgres_public_host: str = ""
    redis_admin_url: str = ""
    redis_public_host: str = ""
    #: ``mysql://user:password@host:port/`` of an account that may create databases and users.
    mysql_admin_url: str = ""
    mysql_public_host: str = ""


@dataclass(frozen=True)
class AwsSettings:
    """Where boto3 sends requests. Credentials come from boto3's standard chain."""

    region: str = "us-east-1"
    #: An endpoint URL for every AWS service (tests point it at the emulator).
    endpoint_url: str = ""
    #: ``host:port=host:port`` pairs, comma separated: RDS endpoints mapped to servers
    #: that really run PostgreSQL (the emulator runs none).
    rds_endpoint_map: str = ""
    #: Keep RDS master passwords in Secrets Manager instead of Moorage's own state.
    use_secrets_manager: bool = False
    #: Attempts per AWS call (botocore "standard" retries: throttling and 5xx, backoff).
    max_attempts: int = 5


@dataclass(frozen=True)
class GcpSettings:
    """Google Cloud for gcp-bigquery. Credentials come from google-auth's default chain."""

    #: Project that holds the datasets and service accounts; empty: the credentials' project.
    project: str = ""
    #: Endpoints of the BigQuery, IAM and Resource Manager APIs; empty: Google's public ones
    #: (tests point them at the emulator and the IAM stand-in).
    bigquery_endpoint: str = ""
    iam_endpoint: str = ""
    resource_manager_endpoint: str = ""
    #: Grant each binding's service account roles/bigquery.jobUser on the project (needed to
    #: run queries; it lets the account run jobs project-wide, though it reads only its dataset).
    grant_job_user: bool = False
    #: Seconds one Google call may keep retrying throttling (429) and 5xx answers.
    retry_seconds: float = 30.0


@dataclass(frozen=True)
class PlatformSettings:
    """The PaaS controller, router and local runtime."""

    host: str = "127.0.0.1"
    port: int = 5000
    base_domain: str = "moorage.localhost"
    router_port: int = 8080
    #: Addresses the router listens on, comma separated (``0.0.0.0`` for every IPv4 one).
    router_addresses: str = "127.0.0.1"
    #: Seconds an app has to start its response (and the longest silence after that) before
    #: the router answers 504.
    router_first_byte_timeout_seconds: float = 30.0
    #: Seconds a WebSocket connection may stay silent (both ways) before the router closes it.
    router_websocket_idle_seconds: float = 3600.0
    #: Largest request body the router passes to an app (larger ones get 413).
    router_max_body_mb: int = 100
    #: Port of the router's TLS listener (HTTP/2 when the client offers it); 0: no TLS.
    router_https_port: int = 0
    #: PEM certificate (chain) and key for the TLS listener; empty: a self-signed
    #: ``*.<base_domain>`` certificate made at the first start.
    router_tls_cert_file: str = ""
    router_tls_key_file: str = ""
    allow_registration: bool = True
    deploy_timeout_seconds: float = 60.0
    #: How long a quick change of an app (config, scale, rollback, bind…) waits for another
    #: one to finish before it is refused; builds never wait (see docs/architecture.md).
    app_lock_wait_seconds: float = 30.0
    stop_grace_seconds: float = 10.0
    #: First delay before restarting a crashed process; doubled per quick crash, up to 60 s.
    restart_backoff_seconds: float = 1.0
    #: Memory limit per app process: private writable memory (RLIMIT_DATA), not address space.
    process_memory_mb: int = 512
    process_open_files: int = 1024
    process_max_procs: int = 256
    #: An unprivileged account, checked at start-up; as root, each app's processes and
    #: builds run under a uid of their own (40000 and up), this user is for what belongs
    #: to no app.
    run_as_user: str = "nobody"
    max_request_body_mb: int = 100
    build_timeout_seconds: float = 900.0
    slug_max_mb: int = 500
    #: ``s3://bucket/prefix`` to keep slugs in S3-compatible storage; empty: the data dir.
    slug_store_url: str = ""
    #: Seconds one request to a service broker may take.
    osb_timeout_seconds: float = 60.0
    #: Longest wait for a broker's asynchronous operation (a plan's own limit may be shorter).
    osb_max_polling_seconds: float = 3600.0
    #: Build tools installed once for every app's builds (yarn, pnpm), root's and read-only
    #: to builds; empty: ``/var/cache/moorage/tools`` as root, else ``~/.cache/moorage/tools``.
    tool_cache_dir: str = ""
    #: The interpreter store (root-owned, readable by app uids, never under ``/root``):
    #: ``moorage stack:install`` fills it, builds choose among what it holds.
    stack_dir: str = "/opt/moorage/stack"
    #: Where apps run: ``local`` (child processes behind nginx) or ``kubernetes``.
    runtime: str = "local"


@dataclass(frozen=True)
class KubernetesSettings:
    """The Kubernetes runtime (``MOORAGE_PLATFORM_RUNTIME=kubernetes``)."""

    #: A kubeconfig file (and a context in it); empty: the in-cluster service account.
    kubeconfig: str = ""
    context: str = ""
    #: Each app runs in the namespace ``<prefix><app>``.
    namespace_prefix: str = ""
    #: A ClusterRole the runtime binds (a RoleBinding named after it) to ``service_account`` in
    #: each app namespace, right after making it; empty: none (the user may act everywhere).
    app_role: str = ""
    #: ``<namespace>/<name>`` of the ServiceAccount the runtime runs as (that binding's subject).
    service_account: str = ""
    #: The image that fetches a release's slug ($SLUG_URL), unpacks it and runs the command.
    slug_runner_image: str = "ghcr.io/moorage/slug-runner:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    #: Requests and limits of every process, unless ``process_resources`` names its type.
    cpu_request: str = "100m"
    cpu_limit: str = "1"
    memory_request: str = "256Mi"
    memory_limit: str = "512Mi"
    #: Per process type, ``;``-separated: ``worker=cpu:250m/2,memory:512Mi/1Gi`` (request/limit).
    process_resources: str = ""
    #: $PORT of web processes; their readiness probe is an HTTP GET of ``health_path`` on it.
    web_port: int = 5000
    health_path: str = "/"
    #: Comma-separated process types besides web that listen on $PORT (readiness by TCP).
    tcp_probe_types: str = ""
    #: ``key=value``: an app's pods accept connections only from its own namespace and from
    #: namespaces with this label (the router's, the ingress controller's); empty: no NetworkPolicy.
    ingress_from_namespace_label: str = "moorage.io/ingress=true"
    #: The IngressClass of each app's Ingress (``<app>.<base_domain>`` and its custom domains
    #: to the web Service); empty: no Ingress (route to the ``web`` Services some other way).
    ingress_class: str = ""
    #: Annotations of every app's Ingress, ``;``-separated ``key=value`` pairs.
    ingress_annotations: str = ""
    #: A ``kubernetes.io/tls`` Secret in each app's namespace for ``<app>.<base_domain>`` (e.g. one
    #: cert-manager issues); empty: the app host is left to the ingress controller's default.
    ingress_tls_secret: str = ""
    #: The Ingress annotation ``tls:force:enable`` sets to ``"true"`` (and disable to ``"false"``).
    ingress_ssl_redirect_annotation: str = "nginx.ingress.kubernetes.io/ssl-redirect"
    #: In-cluster services (``k8s-postgresql``, ``k8s-redis``) live in this namespace.
    services_namespace: str = "moorage-services"
    #: Their volumes' StorageClass when the plan names none; empty: the cluster's default.
    services_storage_class: str = ""
    #: Test setting: ``<svc>.<ns>.svc.cluster.local:port=host:port,…`` — where the broker's
    #: own admin connection goes instead of the Service (credentials keep the Service's name).
    services_address_map: str = ""
    #: Seconds a finished release-phase Job (and its pod, with its log) is kept before
    #: Kubernetes deletes it (``ttlSecondsAfterFinished``; at least 10).
    release_job_ttl_seconds: int = 3600
    #: The controller's base URL as the apps' pods reach it: their ``SLUG_URL`` is a signed
    #: URL under it (the chart sets it to its controller Service).
    controller_url: str = "http://moorage-controller.moorage.svc.cluster.local"


@dataclass(frozen=True)
class Settings:
    """Everything Moorage is configured with."""

    data_dir: Path = field(default_factory=lambda: default_data_dir())
    #: SQLAlchemy URL of the state database; empty: SQLite in the data dir.
    database_url: str = ""
    #: Folders of offering files, separated by ``os.pathsep``.
    catalog_dir: str = ""
    #: File holding the secret-encryption key; empty: ``<data_dir>/secret.key``.
    encryption_key_file: str = ""
    log_level: str = "INFO"
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    services: ServicesSettings = field(default_factory=ServicesSettings)
    aws: AwsSettings = field(default_factory=AwsSettings)
    gcp: GcpSettings = field(default_factory=GcpSettings)
    platform: PlatformSettings = field(default_factory=PlatformSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)

    @property
    def state_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'moorage.db'}"

    @property
    def key_file(self) -> Path:
        return Path(self.encryption_key_file) if self.encryption_key_file else self.data_dir / "secret.key"

    @property
    def catalog_dirs(self) -> list[Path]:
        if not self.catalog_dir:
            return [default_catalog_dir()]
        return [Path(p) for p in self.catalog_dir.split(os.pathsep) if p]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``MOORAGE_<FIELD>`` and ``MOORAGE_<GROUP>_<FIELD>`` variables.

        ``MOORAGE_BROKER_PORT=6000`` sets ``settings.broker.port``. Unknown ``MOORAGE_*``
        names are an error, so a typo never silently falls back to a default.
        """
        env = {k: v for k, v in (os.environ if environ is None else environ).items() if k.startswith(PREFIX)}
        known: set[str] = set()
        values: dict[str, Any] = {}
        groups = {f.name: f for f in fields(cls) if f.name in _GROUPS}
        for f in fields(cls):
            if f.name in groups:
                continue
            name = PREFIX + f.name.upper()
            known.add(name)
            if name in env:
                values[f.name] = _cast(name, env[name], f.type)
        for gname in groups:
            gcls = _GROUPS[gname]
            gvalues: dict[str, Any] = {}
            for f in fields(gcls):
                name = f"{PREFIX}{gname.upper()}_{f.name.upper()}"
                known.add(name)
                if name in env:
                    gvalues[f.name] = _cast(name, env[name], f.type)
            values[gname] = gcls(**gvalues)
        unknown = sorted(set(env) - known - _IGNORED)
        if unknown:
            hints = [
                f"{name} (did you mean {close[0]}?)"
                if (close := difflib.get_close_matches(name, known, 1))
                else name
                for name in unknown
            ]
            raise ConfigurationError(
                f"unknown setting(s) {', '.join(hints)}; docs/settings.md lists every MOORAGE_* variable"
            )
        return cls(**values)

    def with_group(self, **groups: Any) -> Settings:
        """A copy with fields of one or more groups replaced: ``s.with_group(broker={"port": 1})``."""
        return replace(self, **{k: replace(getattr(self, k), **v) for k, v in groups.items()})


#: Variables with the prefix that belong to tools, not to settings.
_IGNORED = {"MOORAGE_URL", "MOORAGE_TOKEN", "MOORAGE_APP"}

_GROUPS: dict[str, type] = {
    "broker": BrokerSettings,
    "worker": WorkerSettings,
    "services": ServicesSettings,
    "aws": AwsSettings,
    "gcp": GcpSettings,
    "platform": PlatformSettings,
    "kubernetes": KubernetesSettings,
}


def default_data_dir() -> Path:
    """``/var/lib/moorage`` for root (unprivileged service users must reach it), else ``~/.moorage``."""
    return Path("/var/lib/moorage") if os.geteuid() == 0 else Path.home() / ".moorage"


def default_tool_cache_dir() -> Path:
    """Outside any data dir (each test and each ``moorage up`` has its own): one machine, one copy."""
    return (
        Path("/var/cache/moorage/tools")
        if os.geteuid() == 0
        else Path.home() / ".cache" / "moorage" / "tools"
    )


def default_catalog_dir() -> Path:
    """The ``catalog/`` folder beside the package (a source checkout or an editable install)."""
    return Path(__file__).resolve().parent.parent / "catalog"


def _cast(name: str, raw: str, type_: Any) -> Any:
    kind = type_ if isinstance(type_, str) else getattr(type_, "__name__", str(type_))
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if kind == "Path":
            return Path(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a valid {kind}") from None
    return raw
