"""An app's Ingress on Kubernetes: its hosts (app host, custom domains) and its TLS Secrets.

Why apart from the runtime: two writers share the one Ingress ``web`` — ``set_domains``
(its rules) and ``set_tls`` (its ``spec.tls`` and the redirect annotation, the controller's
TLS sink, as the router is on the local runtime) — and each keeps what the other wrote by
reading the Ingress back, so no state lives in the controller process. Each certificate is
a ``kubernetes.io/tls`` Secret named after the pair (``manifests.tls_secret_name``); Secrets
the app no longer has are deleted once the Ingress stops naming them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from moorage.clients.kubernetes import KubeApi
from moorage.errors import ConflictError, Error
from moorage.platform.router.config import SniCertificate, validate_hostname
from moorage.platform.runtime import kubernetes_manifests as manifests
from moorage.platform.runtime.kubernetes_access import grant_app_role
from moorage.settings import Settings


class AppIngress:
    """Writes the Ingress ``web`` of an app's namespace and the Secrets its ``spec.tls`` names."""

    def __init__(self, api: KubeApi, settings: Settings, namespace_of: Callable[[str], str]) -> None:
        self.api = api
        self.kube = settings.kubernetes
        self.base_domain = settings.platform.base_domain
        self.namespace_of = namespace_of

    def host(self, app: str) -> str:
        return f"{app}.{self.base_domain}"

    def ensure(self, app: str) -> None:
        """Route the app host when the app has no Ingress yet (its first deploy)."""
        ns = self.namespace_of(app)
        if self.api.get("ingress", ns, "web") is None:
            self.api.create("ingress", ns, manifests.ingress(self.kube, app, [self.host(app)]))

    def set_domains(self, app: str, domains: Iterable[str]) -> None:
        hosts = [self.host(app), *(validate_hostname(d) for d in domains)]
        ns = self._namespace(app)
        current = self.api.get("ingress", ns, "web")
        self._write(ns, app, hosts, manifests.ingress_tls(self.kube, current), current)

    # -- the TLS sink (controller.certs.TlsSink) -------------------------------------------------

    def https_refusal(self) -> str | None:
        """Nothing to refuse: the ingress controller serves whatever Secrets the Ingress names."""
        return None

    def set_tls(self, app: str, certs: Iterable[SniCertificate], force_https: bool) -> None:
        """Make the app's certificate Secrets and Ingress ``spec.tls`` exactly ``certs``."""
        wanted = {manifests.tls_secret_name(c.cert_pem, c.key_pem): c for c in certs}
        ns = self.namespace_of(app)
        current = self.api.get("ingress", ns, "web")
        if current is None and not wanted and not force_https:
            return  # nothing routed, nothing to serve (an app without domains, at a restart)
        ns = self._namespace(app)
        existing = {s["metadata"]["name"] for s in self.api.list("secret", ns, manifests.tls_labels(app))}
        made: list[str] = []
        try:
            for name, cert in wanted.items():
                if name not in existing and self._create_secret(ns, app, cert):
                    made.append(name)
            tls = manifests.IngressTls(
                tuple((name, tuple(c.hosts)) for name, c in wanted.items()), bool(force_https)
            )
            hosts = [r["host"] for r in current["spec"]["rules"]] if current else [self.host(app)]
            self._write(ns, app, hosts, tls, current)
        except Error:  # refused: the Secrets made for it go, the Ingress is as it was
            for name in made:
                self.api.delete("secret", ns, name)
            raise
        for name in existing - wanted.keys():
            self.api.delete("secret", ns, name)

    # -- helpers -----------------------------------------------------------------------------------

    def _create_secret(self, ns: str, app: str, cert: SniCertificate) -> bool:
        """Whether this call made it (not another controller replica just now: same name, same pair)."""
        try:
            self.api.create("secret", ns, manifests.tls_secret(app, cert.cert_pem, cert.key_pem))
        except ConflictError:
            return False
        return True

    def _namespace(self, app: str) -> str:
        ns = self.namespace_of(app)
        found = self.api.get("namespace", "", ns)
        if found is None:
            found = self.api.create("namespace", "", manifests.namespace(ns, app, ""))
        grant_app_role(self.api, self.kube, found)
        return ns

    def _write(
        self, ns: str, app: str, hosts: list[str], tls: manifests.IngressTls, current: dict[str, Any] | None
    ) -> None:
        body = manifests.ingress(self.kube, app, hosts, tls)
        if current is None:
            self.api.create("ingress", ns, body)
        else:
            self.api.replace("ingress", ns, body)
