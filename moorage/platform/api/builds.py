"""Builds: upload a source tarball; the build and deploy output streams back.

Why the upload is unpacked before the stream starts: a hostile or broken tarball gets
an ordinary 400 JSON error and no build, release or file outside the upload directory.
"""

from __future__ import annotations

import tempfile

from flask import Blueprint, jsonify, request

from moorage.platform.api.auth import platform, user
from moorage.platform.api.streaming import stream_job
from moorage.platform.controller import apps, builds

bp = Blueprint("builds", __name__, url_prefix="/v2/apps/<app>/builds")

CHUNK = 64 * 1024


@bp.get("")
def list_builds(app: str):  # type: ignore[no-untyped-def]
    return jsonify({"results": builds.list_builds(platform(), user(), app)})


@bp.post("")
def create(app: str):  # type: ignore[no-untyped-def]
    ctl, who = platform(), user()
    apps.info(ctl, who, app)  # 404 before reading a body meant for someone else's app
    requested = request.args.get("source_version") or request.headers.get("X-Source-Version")
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as upload:
        while chunk := request.stream.read(CHUNK):  # werkzeug enforces MAX_CONTENT_LENGTH (413)
            upload.write(chunk)
        source_version = builds.source_version_of(requested, builds.file_digest(upload))
        source_dir = builds.receive(ctl, who, app, upload)
    return stream_job(
        lambda progress: builds.deploy_source(ctl, who, app, source_dir, source_version, progress)
    )
