"""Where slugs are kept: the data dir by default, S3-compatible storage when configured."""

from __future__ import annotations

import os
import tarfile
import uuid
from pathlib import Path

import pytest

from moorage.errors import NotFoundError
from moorage.platform.builder import Builder
from moorage.platform.slug_store import store_from_settings
from tests.fixtures.builder import APPS, BuildLog


def test_default_store_is_the_data_dir_and_the_builder_is_the_build_step(make_builder, builder_data_dir):
    builder = make_builder()
    slug, types = builder("release-app", APPS / "bp_release", {}, BuildLog())
    assert Path(slug).parent == builder_data_dir / "slugs" / "release-app"
    assert types == {"web": "python3 -m http.server $PORT --bind 127.0.0.1", "release": types["release"]}
    with tarfile.open(slug) as archive:
        assert "./index.txt" in archive.getnames() and "./.release" in archive.getnames()


def test_s3_store_keeps_fetches_and_deletes_slugs(aws_env, moto_server, tmp_path):
    bucket = f"slugs-{uuid.uuid4().hex[:12]}"
    moto_server.client("s3").create_bucket(Bucket=bucket)
    settings = aws_env.with_group(platform={"slug_store_url": f"s3://{bucket}/moorage"})
    builder = Builder(settings, environ=os.environ)

    result = builder.build("release-app", APPS / "bp_release", {}, BuildLog())

    assert result.slug.startswith(f"s3://{bucket}/moorage/release-app/") and result.slug.endswith(".tgz")
    store = store_from_settings(settings)
    fetched = store.fetch(result.slug, tmp_path / "slug.tgz")
    assert fetched.stat().st_size == result.slug_size
    with tarfile.open(fetched) as archive:
        assert "./Procfile" in archive.getnames()
    store.delete(result.slug)
    with pytest.raises(NotFoundError):
        store.fetch(result.slug, tmp_path / "again.tgz")


def test_the_local_runtime_runs_a_slug_kept_in_s3(aws_env, moto_server):
    """A release whose slug is an s3:// reference is downloaded into its release directory and run."""
    from dataclasses import replace

    from moorage.platform.runtime.base import ReleaseSpec
    from moorage.platform.runtime.local import LocalRuntime
    from moorage.platform.runtime.release_dir import remove_tree
    from tests.fixtures.servers import make_server_dir

    bucket = f"slugs-{uuid.uuid4().hex[:12]}"
    moto_server.client("s3").create_bucket(Bucket=bucket)
    data_dir = make_server_dir("moorage-s3-slug-")  # the app user must reach its release directory
    settings = replace(aws_env, data_dir=data_dir).with_group(platform={"slug_store_url": f"s3://{bucket}/m"})
    result = Builder(settings, environ=os.environ).build("release-app", APPS / "bp_release", {}, BuildLog())
    runtime = LocalRuntime(settings, None)
    try:
        spec = ReleaseSpec("release-app", 1, result.slug, {}, result.process_types)
        ran = runtime.run_once(spec, "cat index.txt", timeout=30)
    finally:
        runtime.close()
        remove_tree(data_dir)
    assert ran.exit_code == 0, ran.output
    assert ran.output.strip() == (APPS / "bp_release" / "index.txt").read_text().strip()
