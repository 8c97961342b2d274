"""Destroying an app deletes its slugs from the slug store, S3-compatible storage included.

The controller runs over HTTP with a build step that packs the uploaded tree into a slug
and keeps it in the configured store (what the buildpack builder does after compiling),
so the builds recorded for an app reference real ``s3://`` objects in the moto server.
The slugs are the controller's to delete, so the runtime is ``InertRuntime``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from moorage.platform.builder.slugs import make_slug
from moorage.platform.controller.builds import procfile_build
from moorage.platform.runtime.base import Progress
from moorage.platform.slug_store import store_from_settings
from moorage.settings import Settings
from tests.aws.fault_proxy import FaultProxy
from tests.fixtures.aws import MotoServer, aws_settings
from tests.fixtures.platform import InertRuntime, deploy_tarball, serve_controller, tar_of

SOURCE = tar_of({"Procfile": "web: python app.py\n", "app.py": "print('hi')\n"})


def slug_build_step(settings: Settings) -> Callable[..., Any]:
    """Pack the source tree into a slug kept in the settings' slug store; return its reference."""
    store = store_from_settings(settings)

    def build(
        app: str, source_dir: Path, env: Mapping[str, str], progress: Progress, uid: int | None = None
    ) -> Any:
        _, processes = procfile_build(app, source_dir, env, progress)
        slug_id = uuid.uuid4().hex
        packed = source_dir.parent / f"packing-{slug_id}.tgz"  # the store keeps its own copy
        try:
            make_slug(source_dir, packed, max_mb=10)
            return store.put(app, slug_id, packed), processes
        finally:
            packed.unlink(missing_ok=True)

    return build


def deploy(client: httpx.Client, app: str) -> None:
    lines = deploy_tarball(client, app, SOURCE)
    assert "error" not in lines[-1] and "status" not in lines[-1], lines


def keys(moto: MotoServer, bucket: str) -> set[str]:
    listed = moto.client("s3").list_objects_v2(Bucket=bucket)
    return {obj["Key"] for obj in listed.get("Contents", [])}


def new_bucket(moto: MotoServer) -> str:
    bucket = f"slugs-{uuid.uuid4().hex[:12]}"
    moto.client("s3").create_bucket(Bucket=bucket)
    return bucket


def test_destroying_an_app_deletes_its_s3_slugs_and_keeps_the_others(
    aws_credentials: MotoServer, tmp_path: Path, inert_runtime: InertRuntime
) -> None:
    bucket = new_bucket(aws_credentials)
    settings = aws_settings(aws_credentials.url, tmp_path / "data").with_group(
        platform={"slug_store_url": f"s3://{bucket}/moorage"}
    )
    with serve_controller(settings, inert_runtime, builder=slug_build_step(settings)) as ctl:
        alice = ctl.user("alice")
        for app in ("shop", "shop-2"):
            assert alice.post("/v2/apps", json={"id": app}).status_code == 201
        deploy(alice, "shop")
        deploy(alice, "shop")
        deploy(alice, "shop-2")
        # A slug uploaded by a build that was never recorded, and someone else's object.
        s3 = aws_credentials.client("s3")
        s3.put_object(Bucket=bucket, Key="moorage/shop/unrecorded.tgz", Body=b"x")
        s3.put_object(Bucket=bucket, Key="elsewhere/shop/keep.txt", Body=b"x")
        before = keys(aws_credentials, bucket)
        assert len([k for k in before if k.startswith("moorage/shop/")]) == 3
        assert len([k for k in before if k.startswith("moorage/shop-2/")]) == 1

        assert alice.delete("/v2/apps/shop").status_code == 204

        after = keys(aws_credentials, bucket)
        assert [k for k in after if k.startswith("moorage/shop/")] == []
        assert after == {k for k in before if not k.startswith("moorage/shop/")}
        assert alice.get("/v2/apps/shop").status_code == 404
        # The other app still runs from its slug.
        (build,) = alice.get("/v2/apps/shop-2/builds").json()["results"]
        assert build["procfile"] == {"web": "python app.py"}


def test_a_slug_that_cannot_be_deleted_does_not_stop_the_destroy(
    aws_credentials: MotoServer,
    fault_proxy: FaultProxy,
    tmp_path: Path,
    inert_runtime: InertRuntime,
    caplog: Any,
) -> None:
    bucket = new_bucket(aws_credentials)
    settings = aws_settings(fault_proxy.url, tmp_path / "data").with_group(
        platform={"slug_store_url": f"s3://{bucket}/moorage"}
    )
    with serve_controller(settings, inert_runtime, builder=slug_build_step(settings)) as ctl:
        alice = ctl.user("alice")
        assert alice.post("/v2/apps", json={"id": "shop"}).status_code == 201
        deploy(alice, "shop")
        fault_proxy.fail("S3 DELETE object", times=100, status=403, code="AccessDenied")
        fault_proxy.fail("S3 POST bucket?delete", times=100, status=403, code="AccessDenied")

        with caplog.at_level(logging.WARNING, logger="moorage.platform.slug_store"):
            assert alice.delete("/v2/apps/shop").status_code == 204

        assert alice.get("/v2/apps/shop").status_code == 404
        assert fault_proxy.count("S3 DELETE object") >= 1
        assert len(keys(aws_credentials, bucket)) == 1  # still there, and said so
        warnings = [r.getMessage() for r in caplog.records if r.name == "moorage.platform.slug_store"]
        assert warnings and all("AccessDenied" in w for w in warnings), warnings
        # The name is free again.
        assert alice.post("/v2/apps", json={"id": "shop"}).status_code == 201


def test_destroying_an_app_with_slugs_in_the_data_dir_removes_them_quietly(
    tmp_path: Path, inert_runtime: InertRuntime, caplog: Any
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with serve_controller(settings, inert_runtime, builder=slug_build_step(settings)) as ctl:
        alice = ctl.user("alice")
        for app in ("shop", "shop-2"):
            assert alice.post("/v2/apps", json={"id": app}).status_code == 201
            deploy(alice, app)
        slugs = settings.data_dir / "slugs"
        assert len(list((slugs / "shop").glob("*.tgz"))) == 1
        with caplog.at_level(logging.WARNING, logger="moorage.platform.slug_store"):
            assert alice.delete("/v2/apps/shop").status_code == 204
        assert not (slugs / "shop").exists()
        assert len(list((slugs / "shop-2").glob("*.tgz"))) == 1
        assert [r for r in caplog.records if r.name == "moorage.platform.slug_store"] == []
