"""Wiring the broker together: state, catalog, providers, operation engine, Flask app.

Why an explicit ``BrokerRuntime`` object: the app factory takes everything as
arguments (Flask's app-factory pattern), so tests can run several brokers in one
process, and ``moorage up`` can start the broker next to the controller.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request
from openbrokerapi import api as obapi
from werkzeug.wsgi import wrap_file

from moorage.broker import compliance
from moorage.broker.bindings import Bindings
from moorage.broker.compliance import OsbError
from moorage.broker.driver import Driver
from moorage.broker.embedded import Background, supervise_embedded
from moorage.broker.instances import Instances
from moorage.broker.service_broker import MoorageBroker
from moorage.broker.updates import Updates
from moorage.catalog.loader import load_catalog
from moorage.catalog.model import Catalog
from moorage.catalog.registry import ProviderRegistry
from moorage.errors import ConfigurationError
from moorage.ops.engine import OperationEngine
from moorage.ops.worker import Worker
from moorage.settings import Settings
from moorage.store import migrate
from moorage.store.db import Database
from moorage.store.encryptor import Encryptor

log = logging.getLogger(__name__)


@dataclass
class BrokerRuntime:
    settings: Settings
    catalog: Catalog
    db: Database
    encryptor: Encryptor
    providers: ProviderRegistry
    engine: OperationEngine
    worker: Worker
    password: str
    #: Threads that keep embedded servers running (the dedicated Redis supervisor).
    background: list[Background] = field(default_factory=list)

    @classmethod
    def start(cls, settings: Settings, with_worker: bool = True) -> BrokerRuntime:
        """Load and check everything; a bad catalog or key stops here with a clear message."""
        catalog = load_catalog(settings.catalog_dirs)
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        migrate.upgrade(settings.state_url)
        db = Database(settings.state_url)
        encryptor = Encryptor.from_file(settings.key_file)
        providers = ProviderRegistry(settings)
        engine = OperationEngine(db, encryptor, catalog, providers, settings)
        # Without worker threads (`moorage broker --no-worker`) the lease keeper still runs:
        # steps run inside requests must keep their leases, or a separate worker takes them over.
        threads = settings.worker.threads if with_worker else 0
        worker = Worker(engine, threads, settings.worker.poll_seconds)
        worker.start()
        password = settings.broker.password or broker_password(settings.data_dir)
        background = supervise_embedded(settings, catalog)
        return cls(settings, catalog, db, encryptor, providers, engine, worker, password, background)

    def stop(self) -> None:
        for thread in self.background:
            thread.stop()
        self.worker.stop()
        self.providers.close()
        self.db.dispose()


def broker_password(data_dir: Path) -> str:
    """The generated broker password, created 0600 in the data dir on first start.

    Written to a temporary file and renamed into place, so a reader never sees an empty
    password; an empty one (a damaged file) stops start-up instead of accepting it.
    """
    path = data_dir / "broker-password"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".broker-password-")
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
        os.replace(tmp, path)
    password = path.read_text().strip()
    if not password:
        raise ConfigurationError(f"{path} is empty; delete it to generate a new broker password")
    return password


def write_catalog_file(data_dir: Path, digest: str, body: bytes) -> Path:
    """The serialised catalog as ``catalog-<digest>.json`` in the data dir.

    Named by content and written by rename, so brokers sharing a data dir never read a
    half-written file; copies of older catalogs are removed.
    """
    path = data_dir / f"catalog-{digest}.json"
    for old in data_dir.glob("catalog-*.json"):
        if old != path:
            old.unlink(missing_ok=True)
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".catalog-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)
    return path


def create_app(runtime: BrokerRuntime) -> Flask:
    settings = runtime.settings
    app = Flask("moorage.broker")
    compliance.install(
        app, runtime.catalog, settings.broker.username, runtime.password, settings.broker.max_body_bytes
    )
    # The catalog never changes while the broker runs: serialise it once (openbrokerapi
    # would walk and dump the whole catalog on every request), with an ETag so platforms
    # can re-fetch it with If-None-Match. Registered after the checks: auth still comes first.
    catalog_body = json.dumps(runtime.catalog.to_osb(), separators=(",", ":")).encode()
    digest = hashlib.sha256(catalog_body).hexdigest()[:32]
    catalog_etag = f'"{digest}"'
    catalog_file = write_catalog_file(settings.data_dir, digest, catalog_body)

    @app.before_request
    def _cached_catalog() -> Response | None:
        if request.method != "GET" or request.path != "/v2/catalog":
            return None
        if catalog_etag in request.headers.get("If-None-Match", ""):
            return Response(status=304, headers={"ETag": catalog_etag})
        try:  # a file lets gunicorn sendfile() it: no copy through Python
            body: Any = wrap_file(request.environ, catalog_file.open("rb"))
        except OSError:  # removed behind our back: the bytes in memory are the same
            body = [catalog_body]
        return Response(
            body,
            mimetype="application/json",
            headers={"ETag": catalog_etag, "Content-Length": str(len(catalog_body))},
            direct_passthrough=True,
        )

    driver = Driver(runtime.engine, runtime.worker, settings.broker.sync_budget_seconds)
    instances = Instances(runtime.catalog, runtime.db, runtime.encryptor, driver)
    broker = MoorageBroker(
        runtime.catalog, instances, Updates(instances, driver), Bindings(instances, driver)
    )

    # openbrokerapi logs request bodies at DEBUG: they carry parameters and passwords.
    logging.getLogger("openbrokerapi").setLevel(max(logging.INFO, logging.getLogger().level))
    blueprint = obapi.get_blueprint(
        broker,
        obapi.BrokerCredentials(settings.broker.username, runtime.password),
        logging.getLogger("openbrokerapi"),
    )
    blueprint.register_error_handler(OsbError, compliance.osb_response)
    app.register_blueprint(blueprint)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readiness")
    def readiness() -> Response:
        with runtime.db.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return jsonify(status="ready")

    app.extensions["moorage.broker"] = runtime
    return app
