"""The controller REST API: a Flask app factory and one blueprint per topic.

Why a factory: nothing is wired at import time. ``create_app`` takes the settings and a
runtime, builds the :class:`~moorage.platform.controller.Platform` and registers the
blueprints, so tests (and ``moorage up``) can run several controllers in one process.
The views stay thin: they parse JSON, call ``moorage.platform.controller`` and render.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from flask import Flask

from moorage.platform.api import (
    apps,
    auth,
    builds,
    certs,
    config,
    domains,
    errors,
    formation,
    health,
    logs,
    perms,
    releases,
    run,
    slugs,
    users,
)
from moorage.platform.api import brokers as brokers_api
from moorage.platform.api import git as git_api
from moorage.platform.api import marketplace as marketplace_api
from moorage.platform.api import services as services_api
from moorage.platform.controller import app_uids, recovery
from moorage.platform.controller import brokers as broker_registry
from moorage.platform.controller import builds as builds_ctl
from moorage.platform.controller.context import Platform
from moorage.platform.runtime.base import Runtime
from moorage.settings import Settings
from moorage.store.db import Database
from moorage.store.encryptor import Encryptor
from moorage.store.migrate import upgrade

API_VERSION = "2.0"


def create_app(
    settings: Settings,
    runtime: Runtime,
    *,
    db: Database | None = None,
    encryptor: Encryptor | None = None,
    builder: Any = None,
    build_environ: Mapping[str, str] | None = None,
    migrate: bool = True,
    resume: bool = True,
) -> Flask:
    """The controller WSGI app.

    ``builder``: ``None`` for the buildpack builder (given ``build_environ``, the entry
    point's environment), ``"procfile"`` for the Procfile-only step, or a build function
    (see ``controller.builds.build_step``).

    With ``resume``, a background thread (``app.extensions["moorage.resume"]``) hands every
    app's current release back to the runtime, as after a restart (see controller.recovery).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if db is None:
        if migrate:
            upgrade(settings.state_url)
        db = Database(settings.state_url)
    platform = Platform(
        settings=settings,
        db=db,
        runtime=runtime,
        encryptor=encryptor or Encryptor.from_file(settings.key_file),
        builder=builds_ctl.build_step(settings, builder, build_environ),
    )
    app = _flask_app(platform)
    # State the API relies on: the built-in broker recorded, and apps made before their
    # uid was on their row given theirs.
    broker_registry.ensure_builtin(platform)
    app_uids.adopt(platform)
    if resume:
        thread = threading.Thread(
            target=recovery.resume, args=(platform,), name="moorage-resume", daemon=True
        )
        app.extensions["moorage.resume"] = thread
        thread.start()
    return app


#: Every topic's blueprint; services, brokers and the marketplace are the bridge to brokers,
#: git serves ``git push`` over smart HTTP.
BLUEPRINTS = (
    health,
    users,
    apps,
    config,
    builds,
    releases,
    formation,
    logs,
    run,
    domains,
    certs,
    perms,
    slugs,
    git_api,
    brokers_api,
    marketplace_api,
    services_api,
)


def _flask_app(platform: Platform) -> Flask:
    """The Flask side alone: limits, JSON errors, auth, the blueprints and the version header.

    Kept apart from :func:`create_app` so the wiring of the platform (database, runtime,
    builder) and of HTTP each read on their own.
    """
    app = Flask("moorage.platform")
    app.config["MAX_CONTENT_LENGTH"] = platform.settings.platform.max_request_body_mb * 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.strict_slashes = False
    app.extensions["moorage.platform"] = platform
    errors.init_app(app)
    auth.init_app(app)
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)

    @app.after_request
    def _version_header(response):  # type: ignore[no-untyped-def]
        response.headers["X-Moorage-Api-Version"] = API_VERSION
        return response

    return app
