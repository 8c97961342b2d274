"""A static site marked by an empty ``.static`` file: detected, served, dotfiles never, 404.html."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.builder import BuildLog, running, unpacked

pytestmark = pytest.mark.slow

SECRET = b"static-site-secret-4f1e"


def test_static_marker_site_hides_dotfiles_and_answers_misses_with_its_404_page(make_builder, app_copy):
    source = app_copy("static_marker")
    (source / "index.html").rename(source / "home.html")  # the marker alone must detect
    log = BuildLog()

    result = make_builder().build("marker", source, {}, log)

    assert "-----> Static site app detected" in log.lines
    assert "       404.html answers for paths that do not exist" in log.lines
    with (
        unpacked(result.slug) as app_dir,
        running(app_dir, result.process_types["web"], {"HOST": "127.0.0.1"}) as url,
    ):
        assert httpx.get(url + "/home.html").text.startswith("<!doctype html>")
        assert httpx.get(url + "/css/site.css").text == "body { font-family: sans-serif; }\n"
        for path in ("/.env", "/%2eenv", "/css/../.env", "/.static", "/.static-server/serve.py", "/.release"):
            answer = httpx.get(url + path)
            assert answer.status_code == 404, path
            assert SECRET not in answer.content
            assert b"This page went missing" in answer.content, path
        missing = httpx.get(url + "/no/such/page")
        assert missing.status_code == 404 and b"This page went missing" in missing.content
        listing = httpx.get(url + "/css/")  # a folder without index.html is never listed
        assert listing.status_code == 404 and b"site.css" not in listing.content


def test_without_404_page_misses_are_plain_404s(make_builder, app_copy):
    source = app_copy("static_marker")
    (source / "404.html").unlink()
    result = make_builder().build("marker-plain", source, {}, BuildLog())
    with (
        unpacked(result.slug) as app_dir,
        running(app_dir, result.process_types["web"], {"HOST": "127.0.0.1"}) as url,
    ):
        assert httpx.get(url + "/").text.startswith("<!doctype html>")
        answer = httpx.get(url + "/.env")
        assert answer.status_code == 404 and SECRET not in answer.content
