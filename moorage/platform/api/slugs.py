"""``GET /v2/slugs/<app>/v<N>``: a release's slug for its pods, opened by a signed URL.

Public (no token: pods have none); the signature in the query is the authorization
(see ``controller.slug_links``). The slug is streamed from the store in chunks.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from moorage.platform.api.auth import platform
from moorage.platform.controller import slug_links

bp = Blueprint("slugs", __name__)

CHUNK = 1024 * 1024


@bp.get("/v2/slugs/<app>/v<int:version>")
def fetch(app: str, version: int) -> Response:
    stream = slug_links.open_signed(
        platform(), app, version, request.args.get("expires"), request.args.get("signature", "")
    )

    def chunks():  # type: ignore[no-untyped-def]
        with stream:
            while block := stream.read(CHUNK):
                yield block

    response = Response(chunks(), mimetype="application/gzip")
    response.headers["Cache-Control"] = "no-store"
    return response
