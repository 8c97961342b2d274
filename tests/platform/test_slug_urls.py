"""``GET /v2/slugs/<app>/v<N>``: a release's slug behind a URL signed for that release alone.

The builder here packs the upload with the real ``make_slug`` and keeps it in the real slug
store (the data directory, or the moto server's S3), so the route streams what a build made.
The URL is the controller's own (pods fetch it on Kubernetes), so the runtime is ``InertRuntime``;
the real Kubernetes runtime fetches it in ``tests/kubernetes/``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from moorage.platform.controller import slug_links
from moorage.platform.slug_store import store_from_settings
from tests.fixtures.builder import slug_builder
from tests.fixtures.platform import InertRuntime, deploy_tarball, serve_controller, tar_of

SOURCE = {"Procfile": "web: python3 -m http.server $PORT\n", "index.html": "shop v1\n"}


@pytest.fixture
def platform(platform_settings):  # type: ignore[no-untyped-def]
    runtime = InertRuntime()
    with serve_controller(platform_settings, runtime, builder=slug_builder(platform_settings)) as ctl:
        yield ctl, runtime


def deployed(ctl, runtime, app: str, files=SOURCE) -> str:  # type: ignore[no-untyped-def]
    alice = ctl.user("alice")
    alice.post("/v2/apps", json={"id": app})
    lines = deploy_tarball(alice, app, tar_of(files))
    assert "result" in lines[-1], lines
    return runtime.deployed[app].slug_url


def local(ctl, signed: str) -> str:  # type: ignore[no-untyped-def]
    """The signed URL's path and query, against the controller served here."""
    parts = urlsplit(signed)
    return f"{ctl.url}{parts.path}?{parts.query}"


def test_the_signed_url_of_a_release_streams_its_slug(platform):
    ctl, runtime = platform
    signed = deployed(ctl, runtime, "shop")
    assert signed.startswith(
        "http://moorage-controller.moorage.svc.cluster.local/v2/slugs/shop/v2?signature="
    )
    r = httpx.get(local(ctl, signed))  # no token: pods have none
    assert r.status_code == 200 and r.headers["content-type"] == "application/gzip"
    stored = Path(runtime.deployed["shop"].slug).read_bytes()
    assert r.content == stored and stored[:2] == b"\x1f\x8b"
    # The same URL every time the release is handed out (a restart, a scale): pod templates stay put.
    plat = ctl.flask_app.extensions["moorage.platform"]
    assert slug_links.for_release(plat, "shop", 2, runtime.deployed["shop"].slug) == signed


def test_a_signature_opens_its_own_app_and_version_only(platform):
    ctl, runtime = platform
    shop = deployed(ctl, runtime, "shop")
    blog = deployed(ctl, runtime, "blog", {**SOURCE, "index.html": "secret blog\n"})
    shop_sig = parse_qs(urlsplit(shop).query)["signature"][0]
    alice = ctl.user("alice")
    assert alice.post("/v2/apps/shop/config", json={"values": {"A": "1"}}).status_code == 201
    v3 = runtime.deployed["shop"].slug_url
    assert urlsplit(v3).path == "/v2/slugs/shop/v3" and httpx.get(local(ctl, v3)).status_code == 200
    blog_sig = parse_qs(urlsplit(blog).query)["signature"][0]
    tampered = shop_sig[:-1] + ("0" if shop_sig[-1] != "0" else "1")
    attempts = {
        "another app's URL": f"/v2/slugs/blog/v2?signature={shop_sig}",
        "another version (the same slug)": f"/v2/slugs/shop/v3?signature={shop_sig}",
        "a tampered signature": f"/v2/slugs/shop/v2?signature={tampered}",
        "no signature": "/v2/slugs/shop/v2",
        "an expiry added to a URL without one": f"/v2/slugs/shop/v2?expires=9999999999&signature={shop_sig}",
    }
    for what, path in attempts.items():
        r = httpx.get(ctl.url + path)
        assert r.status_code == 403, (what, r.text)
        assert "signature does not open the slug" in r.json()["message"], what
        assert b"\x1f\x8b" not in r.content and b"secret blog" not in r.content
    assert httpx.get(local(ctl, blog)).status_code == 200  # blog's own still opens blog's
    assert blog_sig != shop_sig


def test_an_expired_signature_is_refused(platform):
    ctl, runtime = platform
    deployed(ctl, runtime, "shop")
    plat = ctl.flask_app.extensions["moorage.platform"]
    ref = runtime.deployed["shop"].slug
    past, future = int(time.time()) - 60, int(time.time()) + 600
    for expires, status in ((past, 403), (future, 200)):
        signed = slug_links.url(plat, "shop", 2, ref, expires=expires)
        r = httpx.get(local(ctl, signed))
        assert r.status_code == status, r.text
    r = httpx.get(local(ctl, slug_links.url(plat, "shop", 2, ref, expires=past)))
    assert "expired" in r.json()["message"]
    query = urlencode({"expires": future, "signature": slug_links.signature(plat, "shop", 2, ref, past)})
    assert httpx.get(f"{ctl.url}/v2/slugs/shop/v2?{query}").status_code == 403  # expiry moved


def test_an_unknown_release_is_404(platform):
    ctl, runtime = platform
    shop = deployed(ctl, runtime, "shop")
    sig = parse_qs(urlsplit(shop).query)["signature"][0]
    for path in (f"/v2/slugs/shop/v9?signature={sig}", f"/v2/slugs/nope/v2?signature={sig}"):
        r = httpx.get(ctl.url + path)
        assert r.status_code == 404 and "has no release" in r.json()["message"]


def test_a_url_of_a_destroyed_app_opens_nothing_after_it_is_made_again(platform):
    ctl, runtime = platform
    old = deployed(ctl, runtime, "shop")
    alice = ctl.user("alice")
    assert alice.delete("/v2/apps/shop").status_code == 204
    new = deployed(ctl, runtime, "shop")
    assert urlsplit(old).path == urlsplit(new).path  # the same app name and version
    assert httpx.get(local(ctl, old)).status_code == 403
    assert httpx.get(local(ctl, new)).status_code == 200


def test_slugs_in_s3_stream_through_the_store(aws_env, moto_server, tmp_path):
    bucket = f"slugs-{uuid.uuid4().hex[:12]}"
    moto_server.client("s3").create_bucket(Bucket=bucket)
    settings = aws_env.with_group(platform={"slug_store_url": f"s3://{bucket}/moorage"})
    runtime = InertRuntime()
    with serve_controller(settings, runtime, builder=slug_builder(settings)) as ctl:
        signed = deployed(ctl, runtime, "shop")
        assert runtime.deployed["shop"].slug.startswith(f"s3://{bucket}/")
        r = httpx.get(local(ctl, signed))
    assert r.status_code == 200
    fetched = store_from_settings(settings).fetch(runtime.deployed["shop"].slug, tmp_path / "s.tgz")
    assert r.content == fetched.read_bytes()
