"""Benchmark: TLS handshakes with a custom domain's certificate (SNI, Lua) vs the default one.

Why: ``certs:add`` puts certificates in a shared dict that ``ssl_certificate_by_lua``
reads on every full handshake, where the default certificate comes from nginx.conf;
this measures what that costs. Run as ``.venv/bin/python -m bench.certs`` from the
repository root. It starts the router (its own nginx, TLS on), gives it one custom
domain certificate and, in the same run, makes ``BENCH_HANDSHAKES`` full handshakes
(no session resumption) per thread for a name the default certificate serves (the
baseline) and for the custom domain, and prints handshakes/s, p50 and the ratio.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import statistics
import tempfile
import threading
import time
from pathlib import Path

from cryptography import x509

from moorage.embedded.ports import free_port
from moorage.platform.router import Router
from moorage.platform.router.config import SniCertificate
from moorage.settings import Settings
from tests.fixtures.pki import self_signed

THREADS = 4
HANDSHAKES = int(os.environ.get("BENCH_HANDSHAKES", "500"))  # per thread and name
DOMAIN = "www.bench.example"


def handshakes(port: int, sni: str, expected: str) -> tuple[float, float]:
    """(handshakes per second, p50 ms) of full TLS handshakes from THREADS threads."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    times: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = []
        for _ in range(HANDSHAKES):
            started = time.perf_counter()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname=sni) as tls:
                    der = tls.getpeercert(binary_form=True)
            mine.append(time.perf_counter() - started)
            assert expected in x509.load_der_x509_certificate(der).subject.rfc4514_string()
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return len(times) / elapsed, statistics.median(times) * 1000


def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="moorage-bench-certs-"))
    settings = Settings(data_dir=data).with_group(
        platform={"router_port": free_port(), "router_https_port": free_port()}
    )
    router = Router(settings)
    router.start()
    try:
        router.set_routes("bench", ["bench.moorage.localhost", DOMAIN], [])
        cert, key = self_signed(DOMAIN)
        router.set_tls("bench", [SniCertificate((DOMAIN,), cert, key)], force_https=False)
        handshakes(router.https_port, DOMAIN, DOMAIN)  # warm up both paths
        handshakes(router.https_port, "bench.moorage.localhost", "*.moorage.localhost")
        default = handshakes(router.https_port, "bench.moorage.localhost", "*.moorage.localhost")
        custom = handshakes(router.https_port, DOMAIN, DOMAIN)
        print(f"default certificate: {default[0]:,.0f} handshakes/s, p50 {default[1]:.2f} ms")
        print(f"custom domain (SNI, Lua): {custom[0]:,.0f} handshakes/s, p50 {custom[1]:.2f} ms")
        print(f"custom/default handshake throughput: {custom[0] / default[0]:.2f}")
    finally:
        router.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
