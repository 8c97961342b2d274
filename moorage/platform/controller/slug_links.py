"""Signed slug URLs: how a pod fetches its release's slug with no token and no S3 keys.

Why signed URLs: a pod on Kubernetes has neither the controller's disk nor (safely)
credentials for the slug store — S3 keys in a pod would let one app read every app's
slugs. So the controller serves ``GET /v2/slugs/<app>/v<N>?signature=…`` and the
runtime's pods get that URL in ``SLUG_URL``. The signature is an HMAC-SHA256, under a
key derived from the encryption key (``Encryptor.subkey``), over the app, the version,
the optional expiry and the slug's store reference: it opens that one slug and no other.

Why no expiry by default: pods restart and are rescheduled long after a deploy, and a
pod template that changed on every render would roll the app on every scale. Binding
the signature to the slug's reference (unique per build) instead makes the URL valid
while the release exists: an app destroyed and made again under its name has other
references, so an old URL opens nothing. An ``expires`` (unix seconds) is honoured when
present, for URLs handed out for a short while.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from sqlalchemy import select

from moorage.errors import NotFoundError, PermissionDeniedError
from moorage.platform.controller.context import Platform
from moorage.platform.slug_store import store_from_settings
from moorage.store.apps import App, Build, Release

PURPOSE = "slug urls"


def signature(platform: Platform, app: str, version: int, artifact: str, expires: int | None) -> str:
    message = "\n".join([app, str(version), "" if expires is None else str(expires), artifact])
    return hmac.new(platform.encryptor.subkey(PURPOSE), message.encode(), hashlib.sha256).hexdigest()


def url(platform: Platform, app: str, version: int, artifact: str, expires: int | None = None) -> str:
    """The slug's URL under the controller's address as pods reach it (a Kubernetes setting)."""
    base = platform.settings.kubernetes.controller_url.rstrip("/")
    query: dict[str, str | int] = {} if expires is None else {"expires": expires}
    query["signature"] = signature(platform, app, version, artifact, expires)
    return f"{base}/v2/slugs/{quote(app, safe='')}/v{version}?{urlencode(query)}"


def for_release(platform: Platform, app: str, version: int, artifact: str) -> str:
    """The release's signed slug URL; empty for a source tree (Procfile-only builds keep no slug)."""
    return "" if Path(artifact).is_dir() else url(platform, app, version, artifact)


def open_signed(platform: Platform, app: str, version: int, expires: str | None, given: str) -> BinaryIO:
    """The slug of ``app`` v``version`` as a stream, read from the slug store as it is sent.

    NotFoundError for a release that does not exist or has no slug; PermissionDeniedError
    for a signature that is missing, wrong (another app's, version's, tampered) or expired.
    """
    artifact = _artifact(platform, app, version)
    when = _expiry(expires)
    expected = signature(platform, app, version, artifact, when)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise PermissionDeniedError(
            f"this URL's signature does not open the slug of {app} v{version}; "
            "use the SLUG_URL the platform put in the process's environment"
        )
    if when is not None and when < time.time():
        raise PermissionDeniedError(
            f"this slug URL expired at {when} (unix time); ask the platform for a new one"
        )
    return store_from_settings(platform.settings).open(artifact)


def _artifact(platform: Platform, app: str, version: int) -> str:
    with platform.db.unit_of_work() as s:
        row = s.scalar(
            select(Build.artifact)
            .join(Release, Release.build_id == Build.id)
            .join(App, App.id == Release.app_id)
            .where(App.name == app, Release.version == version)
        )
    if row is None:
        raise NotFoundError(f"{app} has no release v{version} with a slug")
    return row


def _expiry(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise PermissionDeniedError(f"expires={raw!r} is not a unix time") from None
