"""The slug-runner image's entry point (images/slug-runner/slug-runner), run directly.

Why directly: no machine here builds or runs container images, so the script is run as
the image runs it — as an unprivileged uid, with ``SLUG_URL`` and the Procfile command as
its argument — against a slug the real builder made, served over real HTTP by the test
or kept in the S3 emulator (which checks SigV4 signatures).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from moorage.embedded.ports import free_port
from moorage.platform.builder import Builder
from moorage.settings import Settings
from tests.fixtures.aws import REGION, MotoServer
from tests.fixtures.builder import BuildLog, world_dir, write_buildpack
from tests.polling import wait_for

SCRIPT = Path(__file__).resolve().parents[2] / "images" / "slug-runner" / "slug-runner"
#: The image's user (kubernetes_manifests.APP_UID).
APP_UID = 10001

SERVER = """\
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"pid": os.getpid(), "uid": os.getuid(), "cwd": os.getcwd(),
                           "greeting": os.environ.get("GREETING"), "home": os.environ.get("HOME"),
                           "secret": os.environ.get("SECRET_TOKEN")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

def stop(*_):
    print("web: SIGTERM received, stopping", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

#: A third-party buildpack that leaves its environment in .profile.d, as buildpacks do.
COMPILE = """\
mkdir -p "$1/.profile.d"
echo 'export GREETING="hello from .profile.d"' > "$1/.profile.d/greeting.sh"
"""


@dataclass
class Served:
    root: Path
    url: str


@pytest.fixture(scope="module")
def built_slug() -> Iterator[Path]:
    """A slug made by the real builder (a custom buildpack, the app's Procfile)."""
    base = world_dir("moorage-slug-runner-")
    source = base / "src"
    source.mkdir()
    (source / "server.py").write_text(SERVER)
    (source / "Procfile").write_text("web: python3 server.py\n")
    write_buildpack(base / "bp", COMPILE)
    log = BuildLog()
    try:
        built = Builder(Settings(data_dir=base / "data"), environ=os.environ).build(
            "runner", source, {"BUILDPACK_URL": str(base / "bp")}, log
        )
    except Exception:
        print(log.text)
        raise
    yield Path(built.slug)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def served(built_slug: Path) -> Iterator[Served]:
    """The slug (and broken ones) over HTTP from a folder: 404 for anything else."""
    root = world_dir("moorage-slug-http-")
    shutil.copyfile(built_slug, root / "slug.tgz")
    (root / "corrupt.tgz").write_bytes(b"this is not a tarball\n")
    (root / "truncated.tgz").write_bytes(built_slug.read_bytes()[: built_slug.stat().st_size // 2])
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(root))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(root, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def app_dir() -> Iterator[Path]:
    """The image's /app: empty and the app user's."""
    base = world_dir("moorage-slug-app-")
    path = base / "app"
    path.mkdir()
    os.chown(path, APP_UID, APP_UID)
    yield path
    shutil.rmtree(base, ignore_errors=True)


def _env(app_dir: Path, slug_url: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "SLUG_RUNNER_APP_DIR": str(app_dir),
        "SLUG_URL": slug_url,
        **extra,
    }


def _as_app_user() -> dict[str, object]:
    return {"user": APP_UID, "group": APP_UID, "extra_groups": []}


def run_once(app_dir: Path, slug_url: str, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), command],
        env=_env(app_dir, slug_url, **env),
        capture_output=True,
        text=True,
        timeout=60,
        **_as_app_user(),  # type: ignore[arg-type]
    )


def test_web_process_from_a_built_slug_over_http(served: Served, app_dir: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [str(SCRIPT), "python3 server.py"],
        env=_env(app_dir, served.url + "/slug.tgz", PORT=str(port), SECRET_TOKEN="s3cr3t"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **_as_app_user(),  # type: ignore[arg-type]
    )
    try:

        def answer() -> dict[str, object] | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/", timeout=1).json()
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                return None

        seen = wait_for(answer, timeout=30)
        # The command replaced the entry point: the kubelet's signals reach the app itself.
        assert seen == {
            "pid": proc.pid,
            "uid": APP_UID,
            "cwd": str(app_dir),
            "home": str(app_dir),
            "greeting": "hello from .profile.d",
            "secret": "s3cr3t",
        }
        assert (app_dir / "Procfile").read_text() == "web: python3 server.py\n"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "web: SIGTERM received, stopping" in out


def test_one_off_command_exit_status_and_output(served: Served, app_dir: Path) -> None:
    done = run_once(app_dir, served.url + "/slug.tgz", 'echo "$GREETING in $PWD"; exit 3')
    assert done.returncode == 3, done.stderr
    assert done.stdout == f"hello from .profile.d in {app_dir}\n"


def test_slug_from_s3_compatible_storage_signed(
    aws_credentials: MotoServer, built_slug: Path, app_dir: Path
) -> None:
    s3 = aws_credentials.client("s3")
    s3.create_bucket(Bucket="runner-slugs")
    s3.upload_file(str(built_slug), "runner-slugs", "slugs/runner/v1.tgz")
    keys = {
        "AWS_ENDPOINT_URL": aws_credentials.url,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": aws_credentials.admin_key_id,
        "AWS_SECRET_ACCESS_KEY": aws_credentials.admin_secret,
    }
    done = run_once(app_dir, "s3://runner-slugs/slugs/runner/v1.tgz", "echo $GREETING", **keys)
    assert (done.returncode, done.stdout) == (0, "hello from .profile.d\n"), done.stderr

    # The emulator checks signatures: a wrong secret is refused, and the secret is not printed.
    wrong = {**keys, "AWS_SECRET_ACCESS_KEY": "not-the-secret-key"}
    refused = run_once(app_dir, "s3://runner-slugs/slugs/runner/v1.tgz", "echo ran", **wrong)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith(
        f"slug-runner: fetching the slug from {aws_credentials.url}/runner-slugs/slugs/runner/v1.tgz "
        "failed: HTTP 403"
    ), refused.stderr
    assert "not-the-secret-key" not in refused.stderr

    # Without keys the request goes unsigned (a public bucket's case); this bucket is private.
    anonymous = {"AWS_ENDPOINT_URL": aws_credentials.url, "AWS_REGION": REGION}
    unsigned = run_once(app_dir, "s3://runner-slugs/slugs/runner/v1.tgz", "echo ran", **anonymous)
    assert (unsigned.returncode, unsigned.stdout) == (1, "")
    assert unsigned.stderr.rstrip().endswith("/runner-slugs/slugs/runner/v1.tgz failed: HTTP 403")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("missing.tgz?X-Amz-Signature=0123secret", "failed: HTTP 404"),
        (
            "corrupt.tgz",
            "could not be unpacked (not a gzipped tar archive?): gzip: stdin: not in gzip format",
        ),
        (
            "truncated.tgz",
            "could not be unpacked (not a gzipped tar archive?): gzip: stdin: unexpected end of file",
        ),
    ],
)
def test_a_slug_that_cannot_be_had_names_what_failed_and_runs_nothing(
    served: Served, app_dir: Path, name: str, reason: str
) -> None:
    done = run_once(app_dir, f"{served.url}/{name}", "touch ran")
    assert done.returncode == 1
    shown = f"{served.url}/{name.partition('?')[0]}"
    assert done.stderr.startswith("slug-runner: ") and shown in done.stderr, done.stderr
    assert reason in done.stderr
    assert "0123secret" not in done.stderr  # a signed URL's signature is a credential
    assert not (app_dir / "ran").exists()


def test_refuses_root_and_missing_settings(served: Served, app_dir: Path) -> None:
    as_root = subprocess.run(
        [str(SCRIPT), "id -u"], env=_env(app_dir, served.url + "/slug.tgz"), capture_output=True, text=True
    )
    assert (as_root.returncode, as_root.stdout) == (1, "")
    assert "refusing to run as root" in as_root.stderr
    assert "SLUG_URL is not set" in run_once(app_dir, "", "true").stderr
    assert "no command given" in run_once(app_dir, served.url + "/slug.tgz", " ").stderr
    assert "is not http(s)://, s3:// or a path" in run_once(app_dir, "ftp://x/y.tgz", "true").stderr
    assert json.dumps(os.listdir(app_dir)) == "[]"
