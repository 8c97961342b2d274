"""``certs:add`` / ``certs:remove`` / ``tls:force:*`` on the Kubernetes runtime with an Ingress,
through the controller's API against the real test control plane.

Each certificate must become a ``kubernetes.io/tls`` Secret in the app's namespace, named in
the Ingress's ``spec.tls`` with the custom domains it serves, and go again with
``certs:remove``; what the ingress controller (not running here) then serves is its business.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import kubernetes
import pytest

from moorage.platform.router.config import SniCertificate
from moorage.platform.runtime.base import ReleaseSpec
from moorage.platform.runtime.kubernetes import KubernetesRuntime
from tests.fixtures.kube_node import NodeStandIn
from tests.fixtures.kubernetes import ControlPlane
from tests.fixtures.pki import self_signed
from tests.fixtures.platform import serve_controller
from tests.kubernetes.conftest import kube_settings
from tests.polling import wait_for

APP = "shop"
DOMAIN = "www.shop.example"
REDIRECT = "nginx.ingress.kubernetes.io/ssl-redirect"
TLS_LABEL = "moorage.io/tls=certificate"


@dataclass
class Routed:
    client: httpx.Client
    core: kubernetes.client.CoreV1Api
    networking: kubernetes.client.NetworkingV1Api
    namespace: str
    runtime: KubernetesRuntime

    def ingress(self) -> kubernetes.client.V1Ingress:
        return self.networking.read_namespaced_ingress("web", self.namespace)

    def tls(self) -> list[tuple[str, list[str]]]:
        return [(t.secret_name, t.hosts) for t in self.ingress().spec.tls or []]

    def tls_secrets(self) -> list[kubernetes.client.V1Secret]:
        return self.core.list_namespaced_secret(self.namespace, label_selector=TLS_LABEL).items


@pytest.fixture
def routed(kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path) -> Iterator[Routed]:
    """A controller on the Kubernetes runtime with an IngressClass; the app ``shop`` with a custom domain."""
    settings = kube_settings(
        tmp_path / "data",
        kube,
        f"t{uuid.uuid4().hex[:6]}-",
        ingress_class="nginx",
        ingress_tls_secret="wildcard-moorage-localhost",
    )
    runtime = KubernetesRuntime(settings)
    api = kube.api_client()
    core = kubernetes.client.CoreV1Api(api)
    try:
        with serve_controller(settings, runtime) as ctl:
            client = ctl.user("alice")
            assert client.post("/v2/apps", json={"id": APP}).status_code == 201
            assert client.post(f"/v2/apps/{APP}/domains", json={"domain": DOMAIN}).status_code == 201
            networking = kubernetes.client.NetworkingV1Api(api)
            yield Routed(client, core, networking, runtime.namespace_of(APP), runtime)
    finally:
        ns = runtime.namespace_of(APP)
        if core.list_namespace(field_selector=f"metadata.name={ns}").items:
            core.delete_namespace(ns)
        runtime.close()
        api.close()


def test_certs_add_makes_a_tls_secret_named_in_the_ingress(routed: Routed) -> None:
    cert, key = self_signed(DOMAIN)
    r = routed.client.post(f"/v2/apps/{APP}/certs", json={"certificate": cert, "key": key})
    assert r.status_code == 201, r.text
    assert r.json()["domains"] == [DOMAIN]
    [secret] = routed.tls_secrets()
    assert secret.type == "kubernetes.io/tls"
    assert secret.metadata.labels["app"] == APP
    assert base64.b64decode(secret.data["tls.crt"]).decode() == cert  # the API hands data back base64-encoded
    assert base64.b64decode(secret.data["tls.key"]).decode() == key
    # The app host keeps the operator's default Secret (e.g. cert-manager's), the domain gets its own.
    assert routed.tls() == [
        ("wildcard-moorage-localhost", [f"{APP}.moorage.localhost"]),
        (secret.metadata.name, [DOMAIN]),
    ]
    assert [rule.host for rule in routed.ingress().spec.rules] == [f"{APP}.moorage.localhost", DOMAIN]


def test_a_deploy_keeps_the_certificates(routed: Routed) -> None:
    """A deploy deletes release Secrets no ReplicaSet uses: the certificates' are not among them."""
    cert, key = self_signed(DOMAIN)
    assert (
        routed.client.post(f"/v2/apps/{APP}/certs", json={"certificate": cert, "key": key}).status_code == 201
    )
    before = routed.tls()
    for version in (1, 2):
        spec = ReleaseSpec(
            APP, version, slug="/srv/slug", env={"V": str(version)}, processes={"web": "serve"}
        )
        routed.runtime.deploy(spec, {"web": 1}, lambda _: None)
    assert len(routed.tls_secrets()) == 1
    assert routed.tls() == before


def test_a_bad_pair_is_refused_and_nothing_is_created(routed: Routed) -> None:
    cert, _ = self_signed(DOMAIN)
    _, other_key = self_signed(DOMAIN)
    r = routed.client.post(f"/v2/apps/{APP}/certs", json={"certificate": cert, "key": other_key})
    assert r.status_code == 400, r.text
    assert "key" in r.json()["message"].lower()
    assert routed.tls_secrets() == []
    assert routed.tls() == [("wildcard-moorage-localhost", [f"{APP}.moorage.localhost"])]
    assert routed.client.get(f"/v2/apps/{APP}/certs").json()["certs"] == []


def test_certs_remove_deletes_the_secret_and_its_tls_entry(routed: Routed) -> None:
    first, first_key = self_signed(DOMAIN)
    assert (
        routed.client.post(f"/v2/apps/{APP}/certs", json={"certificate": first, "key": first_key}).status_code
        == 201
    )
    [old] = routed.tls_secrets()
    newer, newer_key = self_signed(DOMAIN, "*.shop.example")  # the newest covering a domain serves it
    assert (
        routed.client.post(f"/v2/apps/{APP}/certs", json={"certificate": newer, "key": newer_key}).status_code
        == 201
    )
    [secret] = routed.tls_secrets()
    assert secret.metadata.name != old.metadata.name  # the superseded one is gone from the cluster
    assert [name for name, _ in routed.tls()] == ["wildcard-moorage-localhost", secret.metadata.name]
    r = routed.client.delete(f"/v2/apps/{APP}/certs/{DOMAIN}")
    assert r.status_code == 200, r.text
    assert len(r.json()["removed"]) == 2
    assert routed.tls_secrets() == []
    assert routed.tls() == [("wildcard-moorage-localhost", [f"{APP}.moorage.localhost"])]


def test_force_https_sets_the_redirect_annotation(routed: Routed) -> None:
    assert routed.ingress().metadata.annotations[REDIRECT] == "false"
    assert routed.client.put(f"/v2/apps/{APP}/tls", json={"force_https": True}).json() == {
        "force_https": True
    }
    assert routed.ingress().metadata.annotations[REDIRECT] == "true"
    # A later domain change rewrites the Ingress's rules and keeps the redirect.
    assert (
        routed.client.post(f"/v2/apps/{APP}/domains", json={"domain": "api.shop.example"}).status_code == 201
    )
    ingress = routed.ingress()
    assert ingress.metadata.annotations[REDIRECT] == "true"
    assert [rule.host for rule in ingress.spec.rules][-1] == "api.shop.example"
    routed.client.put(f"/v2/apps/{APP}/tls", json={"force_https": False})
    assert routed.ingress().metadata.annotations[REDIRECT] == "false"


def test_destroy_removes_the_certificates_with_the_namespace(routed: Routed) -> None:
    cert, key = self_signed(DOMAIN)
    assert (
        routed.client.post(f"/v2/apps/{APP}/certs", json={"certificate": cert, "key": key}).status_code == 201
    )
    assert routed.client.delete(f"/v2/apps/{APP}").status_code == 204

    def gone() -> bool:
        found = routed.core.list_namespace(field_selector=f"metadata.name={routed.namespace}").items
        return not found or found[0].metadata.deletion_timestamp is not None

    assert wait_for(gone)


def test_without_an_ingress_class_certs_add_is_refused(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path
) -> None:
    settings = kube_settings(tmp_path / "data", kube, f"t{uuid.uuid4().hex[:6]}-")
    runtime = KubernetesRuntime(settings)
    try:
        with serve_controller(settings, runtime) as ctl:
            client = ctl.user("bob")
            client.post("/v2/apps", json={"id": APP})
            client.post(f"/v2/apps/{APP}/domains", json={"domain": DOMAIN})
            cert, key = self_signed(DOMAIN)
            r = client.post(f"/v2/apps/{APP}/certs", json={"certificate": cert, "key": key})
            assert r.status_code == 422, r.text
            assert "MOORAGE_KUBERNETES_INGRESS_CLASS" in r.json()["message"]
    finally:
        runtime.close()


def test_a_certificate_kubernetes_refuses_is_not_kept(routed: Routed) -> None:
    """A quota allowing no more Secrets in the namespace: the API server refuses the one for the pair."""
    quota = {"metadata": {"name": "no-more-secrets"}, "spec": {"hard": {"secrets": "0"}}}
    routed.core.create_namespaced_resource_quota(routed.namespace, quota)
    wait_for(
        lambda: routed.core.read_namespaced_resource_quota("no-more-secrets", routed.namespace).status.hard
    )
    cert, key = self_signed(DOMAIN)
    r = routed.client.post(f"/v2/apps/{APP}/certs", json={"certificate": cert, "key": key})
    assert r.status_code == 400, r.text
    assert "exceeded quota: no-more-secrets" in r.json()["message"], r.text
    assert routed.client.get(f"/v2/apps/{APP}/certs").json()["certs"] == []
    assert routed.tls_secrets() == []
    assert routed.tls() == [("wildcard-moorage-localhost", [f"{APP}.moorage.localhost"])]


def test_without_a_default_secret_the_last_certificate_takes_spec_tls_with_it(
    kube: ControlPlane, kube_node: NodeStandIn, tmp_path: Path
) -> None:
    """The runtime's TLS sink on its own, with no ``ingress_tls_secret``: no ``spec.tls`` without certificates."""
    runtime = KubernetesRuntime(
        kube_settings(tmp_path, kube, f"t{uuid.uuid4().hex[:6]}-", ingress_class="nginx")
    )
    networking = kubernetes.client.NetworkingV1Api(kube.api_client())
    sink = runtime.tls_sink
    assert sink is not None
    ns = runtime.namespace_of(APP)

    def ingress() -> kubernetes.client.V1Ingress:
        return networking.read_namespaced_ingress("web", ns)

    try:
        runtime.set_domains(APP, [DOMAIN])
        assert ingress().spec.tls is None
        cert, key = self_signed(DOMAIN)
        sink.set_tls(APP, [SniCertificate((DOMAIN,), cert, key)], False)
        assert [t.hosts for t in ingress().spec.tls] == [[DOMAIN]]
        sink.set_tls(APP, [], False)
        assert ingress().spec.tls is None
        assert [r.host for r in ingress().spec.rules] == [f"{APP}.moorage.localhost", DOMAIN]
    finally:
        runtime.destroy(APP)
        runtime.close()
