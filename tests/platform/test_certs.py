"""``certs:add`` / ``certs`` / ``certs:remove`` and ``tls:force:*`` through the CLI, the controller
and the real nginx router, checked with real TLS handshakes (Python's ssl module, SNI).

The certificates are made here with ``cryptography``: a root CA, an intermediate it signs
and leaves the intermediate signs, so a client that trusts only the root verifies the
handshake only when the router sends the whole chain.
"""

from __future__ import annotations

import datetime
import http.client
import json
import shutil
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from moorage.embedded.ports import free_port
from moorage.platform.controller import recovery
from moorage.store.base import Base
from moorage.store.certs import Certificate
from moorage.store.db import Database
from moorage.store.migrate import upgrade
from tests.fixtures.pki import DAY, common_name, dns_names, key_pem, pem, sign
from tests.fixtures.platform import APPS_DIR, Cli, LivePlatform, run_live_platform
from tests.host_requests import request

APP = "shop"
DOMAIN = "www.shop.example"
WILD_DOMAIN = "api.wild.example"
DEFAULT_HOST = f"{APP}.moorage.localhost"
NOW = datetime.datetime.now(datetime.UTC)


# -- a small PKI ---------------------------------------------------------------------------


def _sign(
    subject: str, key, issuer: str, issuer_key, *, ca: bool, names=(), start=NOW - DAY, end=NOW + 30 * DAY
) -> x509.Certificate:
    extensions = [(x509.BasicConstraints(ca=ca, path_length=None), True)]
    if names:
        extensions.append(dns_names(*names))
    return sign(common_name(subject), key, common_name(issuer), issuer_key, start, end, extensions)


@dataclass
class Pki:
    root_pem: str
    root_key: object
    inter: x509.Certificate
    inter_key: object

    def leaf(self, cn: str, *names: str, key=None, **validity) -> tuple[str, str, x509.Certificate]:
        """(chain PEM leaf first, key PEM, leaf) signed by the intermediate."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        leaf = _sign(cn, key, "Moorage Test Intermediate", self.inter_key, ca=False, names=names, **validity)
        return pem(leaf, self.inter).decode(), key_pem(key).decode(), leaf


@pytest.fixture(scope="module")
def pki() -> Pki:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _sign("Moorage Test Root", root_key, "Moorage Test Root", root_key, ca=True, end=NOW + 365 * DAY)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _sign(
        "Moorage Test Intermediate", inter_key, "Moorage Test Root", root_key, ca=True, end=NOW + 365 * DAY
    )
    return Pki(pem(root).decode(), root_key, inter, inter_key)


# -- the platform: one app with two custom domains, shared by the module's tests ----------


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[tuple[LivePlatform, Cli]]:
    https = {"router_https_port": free_port()}
    with run_live_platform(platform=https) as platform:
        home = tmp_path_factory.mktemp("home")
        work = tmp_path_factory.mktemp("work")
        cli = Cli(home=home, cwd=work, url=platform.controller.url).logged_in_as("alice")
        cli.ok("apps:create", APP)
        shutil.copytree(APPS_DIR / "rt_echo", work, dirs_exist_ok=True)
        assert "deployed" in cli.ok("deploy")
        cli.ok("domains:add", DOMAIN)
        cli.ok("domains:add", "*.wild.example")
        yield platform, cli


@pytest.fixture
def cli(live, tmp_path: Path) -> Iterator[Cli]:
    """The module's CLI; every certificate a test added is removed after it."""
    cli = live[1]
    cli.cwd = tmp_path
    yield cli
    cli.ok("tls:force:disable", "-a", APP)
    for cert in json.loads(cli.ok("certs", "-a", APP, "--json"))["certs"]:
        cli.ok("certs:remove", cert["names"][0], "-a", APP)


@pytest.fixture
def router(live):
    return live[0].router


def add_files(cli: Cli, chain: str, key: str) -> tuple[str, str]:
    (cli.cwd / "server.crt").write_text(chain)
    (cli.cwd / "server.key").write_text(key)
    return "server.crt", "server.key"


def served_subject(router, sni: str) -> str:
    """The common name of the leaf the router sends for the SNI name (no verification)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", router.https_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=sni) as tls:
            der = tls.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def https_get(router, host: str, cafile: str | None = None, cadata: str | None = None, **headers: str):
    """(status, JSON body) of one verified HTTPS request with SNI and Host ``host``."""
    context = ssl.create_default_context(cafile=cafile, cadata=cadata)
    conn = http.client.HTTPSConnection("127.0.0.1", router.https_port, timeout=10, context=context)
    # Connect by address but send SNI and check the certificate for ``host``.
    conn.sock = context.wrap_socket(
        socket.create_connection(("127.0.0.1", router.https_port), timeout=10), server_hostname=host
    )
    try:
        conn.request("GET", "/", headers={"Host": host, **headers})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def default_ca(router) -> str:
    return str(router.root / "tls" / "default.crt")


# -- tests ----------------------------------------------------------------------------------


def test_certs_add_serves_the_chain_by_sni(cli: Cli, router, pki: Pki) -> None:
    chain, key, _ = pki.leaf("www.shop.example", DOMAIN)
    out = cli.ok("certs:add", *add_files(cli, chain, key), "-a", APP)
    assert f"serves {DOMAIN}" in out

    assert served_subject(router, DOMAIN) == "www.shop.example"
    # Trusting only the root: this verifies only because the intermediate is sent too.
    status, body = https_get(router, DOMAIN, cadata=pki.root_pem, **{"X-Forwarded-Proto": "http"})
    assert status == 200
    assert body["headers"]["x-forwarded-proto"] == "https"
    # Over HTTP the app is told http, whatever the client claims.
    status, raw, _ = request(router.port, DOMAIN, headers={"X-Forwarded-Proto": "https"})
    assert status == 200 and json.loads(raw)["headers"]["x-forwarded-proto"] == "http"

    listed = json.loads(cli.ok("certs", "-a", APP, "--json"))["certs"]
    assert [(c["names"], c["domains"]) for c in listed] == [([DOMAIN], [DOMAIN])]
    # Other names keep the default certificate.
    assert served_subject(router, DEFAULT_HOST) == "*.moorage.localhost"


def test_a_wildcard_certificate_covers_a_wildcard_domain(cli: Cli, router, pki: Pki) -> None:
    # An RSA key this time (the others are ECDSA P-256).
    chain, key, _ = pki.leaf("wild", "*.wild.example", key=rsa.generate_private_key(65537, 2048))
    assert "serves *.wild.example" in cli.ok("certs:add", *add_files(cli, chain, key), "-a", APP)
    assert served_subject(router, WILD_DOMAIN) == "wild"
    assert https_get(router, WILD_DOMAIN, cadata=pki.root_pem)[0] == 200


def test_certs_remove_falls_back_to_the_default_certificate(cli: Cli, router, pki: Pki) -> None:
    chain, key, _ = pki.leaf("www.shop.example", DOMAIN)
    cli.ok("certs:add", *add_files(cli, chain, key), "-a", APP)
    assert served_subject(router, DOMAIN) == "www.shop.example"
    assert "Removed certificate" in cli.ok("certs:remove", DOMAIN, "-a", APP)
    assert served_subject(router, DOMAIN) == "*.moorage.localhost"
    assert json.loads(cli.ok("certs", "-a", APP, "--json"))["certs"] == []
    missing = cli("certs:remove", DOMAIN, "-a", APP)
    assert missing.exit_code != 0 and f"{APP} has no certificate for {DOMAIN}" in missing.output


def test_the_default_certificate_serves_the_app_host(cli: Cli, router) -> None:
    assert served_subject(router, DEFAULT_HOST) == "*.moorage.localhost"
    status, body = https_get(router, DEFAULT_HOST, cafile=default_ca(router))
    assert status == 200 and body["headers"]["x-forwarded-proto"] == "https"


def _refused(cli: Cli, router, chain: str, key: str, message: str) -> None:
    result = cli("certs:add", *add_files(cli, chain, key), "-a", APP)
    assert result.exit_code != 0
    assert message in result.output
    assert json.loads(cli.ok("certs", "-a", APP, "--json"))["certs"] == []
    assert served_subject(router, DOMAIN) == "*.moorage.localhost"


def test_an_expired_certificate_is_refused(cli: Cli, router, pki: Pki) -> None:
    chain, key, _ = pki.leaf("old", DOMAIN, start=NOW - 60 * DAY, end=NOW - DAY)
    _refused(cli, router, chain, key, "the TLS certificate expired on")


def test_a_certificate_not_yet_valid_is_refused(cli: Cli, router, pki: Pki) -> None:
    chain, key, _ = pki.leaf("soon", DOMAIN, start=NOW + DAY, end=NOW + 60 * DAY)
    _refused(cli, router, chain, key, "the TLS certificate is not valid before")


def test_a_key_of_another_certificate_is_refused(cli: Cli, router, pki: Pki) -> None:
    chain, _, _ = pki.leaf("www.shop.example", DOMAIN)
    _, other_key, _ = pki.leaf("other", DOMAIN)
    _refused(cli, router, chain, other_key, "the TLS key does not belong to the certificate")


def test_a_certificate_for_another_domain_is_refused(cli: Cli, router, pki: Pki) -> None:
    chain, key, _ = pki.leaf("elsewhere", "www.elsewhere.example", "*.shop.example.org")
    _refused(cli, router, chain, key, "covers none of shop's custom domains")


def test_a_chain_out_of_order_is_refused(cli: Cli, router, pki: Pki) -> None:
    _, key, leaf = pki.leaf("www.shop.example", DOMAIN)
    # The root after the leaf: the leaf was signed by the intermediate, not by it.
    _refused(cli, router, pem(leaf).decode() + pki.root_pem, key, "is not signed by the next one")


def test_a_chain_with_an_expired_intermediate_is_refused(cli: Cli, router, pki: Pki) -> None:
    inter_key = ec.generate_private_key(ec.SECP256R1())
    old = _sign(
        "Old Intermediate",
        inter_key,
        "Moorage Test Root",
        pki.root_key,
        ca=True,
        start=NOW - 9 * DAY,
        end=NOW - DAY,
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _sign("www.shop.example", key, "Old Intermediate", inter_key, ca=False, names=[DOMAIN])
    _refused(
        cli,
        router,
        pem(leaf, old).decode(),
        key_pem(key).decode(),
        "certificate 2 of the chain (CN=Old Intermediate) is not valid now",
    )


def test_certificates_reach_a_restarted_router(cli: Cli, router, pki: Pki) -> None:
    chain, key, _ = pki.leaf("www.shop.example", DOMAIN)
    cli.ok("certs:add", *add_files(cli, chain, key), "-a", APP)
    router.stop()
    router.start()
    assert served_subject(router, DOMAIN) == "www.shop.example"
    assert https_get(router, DOMAIN, cadata=pki.root_pem)[0] == 200


def test_force_https_redirects_http(cli: Cli, router) -> None:
    assert "now redirected to HTTPS" in cli.ok("tls:force:enable", "-a", APP)
    status, _, headers = request(router.port, DOMAIN, path="/cart?item=1")
    assert status == 301
    assert headers["Location"] == f"https://{DOMAIN}:{router.https_port}/cart?item=1"
    # A method with a body keeps it: 308.
    assert request(router.port, DOMAIN, method="POST", body=b"x=1")[0] == 308
    assert https_get(router, DEFAULT_HOST, cafile=default_ca(router))[0] == 200
    assert "HTTP is redirected to HTTPS" in cli.ok("certs", "-a", APP)

    cli.ok("tls:force:disable", "-a", APP)
    assert request(router.port, DOMAIN)[0] == 200


def test_keys_are_encrypted_at_rest(cli: Cli, live, pki: Pki) -> None:
    chain, key, _ = pki.leaf("www.shop.example", DOMAIN)
    cli.ok("certs:add", *add_files(cli, chain, key), "-a", APP)
    platform = live[0].controller.flask_app.extensions["moorage.platform"]
    with platform.db.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT chain_enc, key_enc FROM platform_certs").all()
    assert len(stored) == 1
    assert all(b"-----BEGIN" not in bytes(value) for value in stored[0])
    assert platform.encryptor.decrypt(bytes(stored[0][1])).decode() == key


def test_removing_the_domain_stops_serving_its_certificate(cli: Cli, router, pki: Pki) -> None:
    chain, key, _ = pki.leaf("www.shop.example", DOMAIN)
    cli.ok("certs:add", *add_files(cli, chain, key), "-a", APP)
    cli.ok("domains:remove", DOMAIN, "-a", APP)
    try:
        assert served_subject(router, DOMAIN) == "*.moorage.localhost"
        listed = json.loads(cli.ok("certs", "-a", APP, "--json"))["certs"]
        assert [c["domains"] for c in listed] == [[]]
    finally:
        cli.ok("domains:add", DOMAIN, "-a", APP)
    # The certificate was kept: the domain is served with it again.
    assert served_subject(router, DOMAIN) == "www.shop.example"


def test_a_restarted_controller_hands_the_certificates_to_the_router(cli: Cli, live, pki: Pki) -> None:
    platform = live[0]
    chain, key, _ = pki.leaf("www.shop.example", DOMAIN)
    cli.ok("certs:add", *add_files(cli, chain, key), "-a", APP)
    # A router that lost its table (as one restarted on its own would).
    platform.router._control("DELETE", f"/tls/{APP}")
    assert served_subject(platform.router, DOMAIN) == "*.moorage.localhost"
    recovery.resume(platform.controller.flask_app.extensions["moorage.platform"])
    assert served_subject(platform.router, DOMAIN) == "www.shop.example"


def test_only_the_app_s_users_manage_its_certificates(live, pki: Pki) -> None:
    controller = live[0].controller
    chain, key, _ = pki.leaf("www.shop.example", DOMAIN)
    body = {"certificate": chain, "key": key}
    assert controller.client().get(f"/v2/apps/{APP}/certs").status_code == 401
    bob = controller.user("bob")
    for response in (
        bob.get(f"/v2/apps/{APP}/certs"),
        bob.post(f"/v2/apps/{APP}/certs", json=body),
        bob.put(f"/v2/apps/{APP}/tls", json={"force_https": True}),
        bob.delete(f"/v2/apps/{APP}/certs/{DOMAIN}"),
    ):
        assert response.status_code == 404, response.text  # not his: as if it did not exist
    assert served_subject(live[0].router, DOMAIN) == "*.moorage.localhost"


def test_text_that_is_not_pem_is_refused(live) -> None:
    alice = live[0].controller.user("alice")
    r = alice.post(f"/v2/apps/{APP}/certs", json={"certificate": "hello", "key": "world"})
    assert r.status_code == 400
    assert "not a PEM certificate" in r.json()["message"]
    r = alice.put(f"/v2/apps/{APP}/tls", json={"force_https": "yes"})
    assert r.status_code == 400 and "force_https" in r.json()["message"]


def test_without_an_https_listener_certificates_are_refused(pki: Pki, tmp_path: Path) -> None:
    with run_live_platform() as platform:
        cli = Cli(home=tmp_path, cwd=tmp_path, url=platform.controller.url).logged_in_as("carol")
        cli.ok("apps:create", "plain")
        cli.ok("domains:add", "www.plain.example", "-a", "plain")
        chain, key, _ = pki.leaf("www.plain.example", "www.plain.example")
        for args in (("certs:add", *add_files(cli, chain, key)), ("tls:force:enable",)):
            result = cli(*args, "-a", "plain")
            assert result.exit_code != 0
            assert "MOORAGE_PLATFORM_ROUTER_HTTPS_PORT" in result.output


def test_the_migration_creates_exactly_the_certificate_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    db = Database(url)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.dispose()
    assert Certificate.__tablename__ == "platform_certs"
    assert [d for d in diff if "platform_certs" in repr(d) or "platform_app_tls" in repr(d)] == []
