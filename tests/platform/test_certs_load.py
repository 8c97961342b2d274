"""``certs:add`` and ``certs:remove`` under load lose no request, over HTTPS and HTTP.

Why its own file: a certificate in nginx.conf would mean a reload, and a reload closes
idle keep-alive connections while clients send on them (issue 12). Client threads send
through the router over TLS (SNI of the custom domain) and over plain HTTP, reusing one
connection each or opening one per request, while the controller adds the certificate;
every request must get a 200, and the nginx master and workers must be the same.
"""

from __future__ import annotations

import http.client
import socket
import ssl

from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.fixtures.platform import Cli
from tests.fixtures.router import CLIENTS, KEEP_ALIVE, Load, nginx_workers
from tests.platform.test_certs import APP, DOMAIN, Pki, add_files, cli, live, pki, router  # noqa: F401
from tests.polling import wait_for


class _SniConnection(http.client.HTTPSConnection):
    """HTTPS to the router's address with the custom domain as SNI name (no DNS here)."""

    def __init__(self, port: int, host: str) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the certificate changes during the test
        super().__init__("127.0.0.1", port, timeout=10, context=context)
        self._sni = host
        self._context = context

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self._sni)


class TlsLoad(Load):
    """``Load`` over TLS; also records the common name of the certificate of each answer."""

    def __init__(self, port: int, host: str, keep_alive: bool) -> None:
        super().__init__(port, host, keep_alive)
        self.subjects: list[str] = []

    def _connect(self) -> http.client.HTTPConnection:
        return _SniConnection(self.port, self.host)

    def _answered(self, conn: http.client.HTTPConnection, _body: bytes) -> None:
        der = conn.sock.getpeercert(binary_form=True)
        name = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        with self._lock:
            self.subjects.append(str(name[0].value))


@KEEP_ALIVE
def test_certs_add_and_remove_lose_no_request(cli: Cli, router, pki: Pki, keep_alive: bool) -> None:  # noqa: F811
    chain, key, _ = pki.leaf("www.shop.example", DOMAIN)
    master = router.master_pid
    workers = nginx_workers(master)
    with (
        TlsLoad(router.https_port, DOMAIN, keep_alive) as tls,
        Load(router.port, DOMAIN, keep_alive) as plain,
    ):
        cli.ok("certs:add", *add_files(cli, chain, key), "-a", APP)
        if not keep_alive:
            # New handshakes get the new certificate while the load goes on.
            wait_for(
                lambda: tls.subjects[-CLIENTS:] == ["www.shop.example"] * CLIENTS, what="the new certificate"
            )
        cli.ok("certs:remove", DOMAIN, "-a", APP)
    assert tls.failures == [] and plain.failures == []
    assert tls.count > 6 * CLIENTS and plain.count > 6 * CLIENTS
    assert router.master_pid == master
    assert nginx_workers(master) == workers
