"""Uploading source: hostile tarballs are refused, nothing lands outside, output streams.

What is checked here happens before anything runs (the upload, its unpacking, the build
output's stream), so the controllers run on ``InertRuntime``, which only records what it
is given; uploads that run are deployed on the real runtime in ``test_cli_deploy.py``.
"""

from __future__ import annotations

import dataclasses
import os
import tarfile

import pytest

from tests.fixtures.platform import InertRuntime, deploy_tarball, serve_controller, tar_of

GOOD = {"Procfile": "web: python3 server.py\n", "server.py": "print('hi')\n"}


def member(name, kind=tarfile.REGTYPE, linkname="", size=0):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = size
    return info


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def alice(controller):
    client = controller.user("alice")
    client.post("/v2/apps", json={"id": "shop"})
    return client


HOSTILE = [
    ("dotdot", [(member("../evil.txt", size=4), b"evil")], "leading out of the source tree"),
    ("dotdot-deep", [(member("a/../../evil.txt", size=4), b"evil")], "leading out of the source tree"),
    ("absolute", [(member("/tmp/evil.txt", size=4), b"evil")], "absolute path"),
    (
        "symlink-abs",
        [(member("link", tarfile.SYMTYPE, "/etc"), None)],
        "symlink 'link' -> '/etc' leading out",
    ),
    ("symlink-up", [(member("d/link", tarfile.SYMTYPE, "../../x"), None)], "leading out of the tree"),
    (
        "symlink-chain",
        [(member("here", tarfile.SYMTYPE, "."), None), (member("up", tarfile.SYMTYPE, "here/.."), None)],
        "leading out of the tree",
    ),
    (
        "write-through-symlink",
        [(member("d", tarfile.SYMTYPE, "."), None), (member("d/x.txt", size=1), b"x")],
        "both as a symlink",
    ),
    (
        "hardlink-out",
        [(member("hl", tarfile.LNKTYPE, "../../etc/passwd"), None)],
        "leading out of the source tree",
    ),
    ("hardlink-unknown", [(member("hl", tarfile.LNKTYPE, "etc/passwd"), None)], "not a file earlier"),
    ("chardev", [(member("dev", tarfile.CHRTYPE), None)], "device file"),
    ("blockdev", [(member("blk", tarfile.BLKTYPE), None)], "device file"),
    ("fifo", [(member("pipe", tarfile.FIFOTYPE), None)], "fifo"),
]


@pytest.mark.parametrize("label,extra,fragment", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_tarballs_are_refused_and_nothing_is_written(
    alice, controller, tmp_path, label, extra, fragment
):
    before = files_under(tmp_path)
    result = deploy_tarball(alice, "shop", tar_of(GOOD, extra))
    assert result[0]["status"] == 400, result
    assert fragment in result[0]["message"]
    after = files_under(tmp_path)
    new = [p for p in after if p not in before and not p.startswith("data/moorage.db")]
    assert new == ["data/slugs", "data/slugs/shop"], new  # only the (empty) upload folder
    assert not (tmp_path.parent / "evil.txt").exists() and not os.path.exists("/tmp/evil.txt")
    assert len(alice.get("/v2/apps/shop/releases").json()["results"]) == 1
    assert alice.get("/v2/apps/shop/builds").json()["results"] == []


def test_not_a_tarball_is_refused(alice):
    result = deploy_tarball(alice, "shop", b"this is not gzip")
    assert result[0]["status"] == 400 and "not a readable tar" in result[0]["message"]


def test_oversized_content_is_refused_while_extracting(platform_settings, tmp_path):
    settings = dataclasses.replace(
        platform_settings, platform=dataclasses.replace(platform_settings.platform, slug_max_mb=1)
    )
    with serve_controller(settings, InertRuntime()) as ctl:
        alice = ctl.user("alice")
        alice.post("/v2/apps", json={"id": "shop"})
        bomb = tar_of({**GOOD, "zeros.bin": b"\0" * (3 * 1024 * 1024)})
        assert len(bomb) < 100_000  # a few kilobytes that unpack to megabytes
        result = deploy_tarball(alice, "shop", bomb)
        assert result[0]["status"] == 400 and "more than 1 MB" in result[0]["message"]
        assert files_under(settings.data_dir / "slugs") == ["shop"]


def test_request_body_limit_is_413(platform_settings):
    settings = dataclasses.replace(
        platform_settings, platform=dataclasses.replace(platform_settings.platform, max_request_body_mb=1)
    )
    with serve_controller(settings, InertRuntime()) as ctl:
        alice = ctl.user("alice")
        alice.post("/v2/apps", json={"id": "shop"})
        result = deploy_tarball(alice, "shop", os.urandom(2 * 1024 * 1024))
        assert result[0]["status"] == 413 and "larger than 1 MB" in result[0]["message"]


def test_good_tarball_is_stored_as_the_release_artifact(alice, controller, inert_runtime):
    extra = [(member("static/alias.txt", tarfile.SYMTYPE, "../server.py"), None)]
    lines = deploy_tarball(alice, "shop", tar_of({**GOOD, "static/.keep": ""}, extra))
    logs = [line["log"] for line in lines if "log" in line]
    assert logs[0].startswith("-----> Building shop")
    assert any(line.startswith("moorage[deploy]: v2 is live") for line in logs)
    spec = inert_runtime.deployed["shop"]
    slug = controller.settings.data_dir / "slugs" / "shop"
    assert spec.slug.startswith(str(slug))
    assert (slug / os.path.basename(spec.slug) / "server.py").read_text() == "print('hi')\n"
    assert os.readlink(os.path.join(spec.slug, "static/alias.txt")) == "../server.py"
    assert [p.name for p in slug.iterdir()] == [os.path.basename(spec.slug)]  # no leftover upload dirs


@pytest.mark.parametrize(
    "procfile,fragment",
    [
        (None, "no Procfile"),
        ("web python3 x.py\n", "is not `type: command`"),
        ("Web_1: x\n", "invalid process type"),
        ("web: a\nweb: b\n", "appears twice"),
        ("# only a comment\n", "declares no process types"),
    ],
)
def test_bad_procfiles_fail_the_build_with_a_clear_message(alice, procfile, fragment):
    files = {"server.py": "x"} if procfile is None else {"Procfile": procfile}
    lines = deploy_tarball(alice, "shop", tar_of(files))
    assert fragment in lines[-1]["error"]["message"]
    assert len(alice.get("/v2/apps/shop/releases").json()["results"]) == 1


def test_a_swapped_in_builder_supplies_the_artifact(platform_settings, tmp_path):
    seen = {}

    def builder(app, source_dir, env, progress, uid=None):
        seen.update(app=app, files=sorted(p.name for p in source_dir.iterdir()), env=dict(env))
        progress("-----> Fake buildpack app detected")
        slug = tmp_path / "store" / "slug.tgz"
        slug.parent.mkdir()
        slug.write_bytes(b"slug")
        return str(slug), {"web": "bin/start", "worker": "bin/work"}

    runtime = InertRuntime()
    with serve_controller(platform_settings, runtime, builder=builder) as ctl:
        alice = ctl.user("alice")
        alice.post("/v2/apps", json={"id": "shop"})
        alice.post("/v2/apps/shop/config", json={"values": {"BUILDPACK_URL": "x"}})
        lines = deploy_tarball(alice, "shop", tar_of({"app.py": "print(1)\n"}))  # no Procfile needed
        assert {"log": "-----> Fake buildpack app detected"} in lines
        assert lines[-1]["result"]["build"]["procfile"] == {"web": "bin/start", "worker": "bin/work"}
        assert seen == {"app": "shop", "files": ["app.py"], "env": {"BUILDPACK_URL": "x"}}
        assert runtime.deployed["shop"].slug == str(tmp_path / "store" / "slug.tgz")
        assert files_under(platform_settings.data_dir / "slugs") == ["shop"]  # the upload was cleaned up
