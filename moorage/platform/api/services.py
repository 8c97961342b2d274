"""Service instances and their bindings to apps.

Why creation streams: provisioning can take minutes at an asynchronous broker. With
``wait`` (the default) the answer is an NDJSON stream of progress lines ending in the
instance (see ``streaming.py``); the job runs in its own thread and finishes even if the
client goes away, bounded by the polling limits. With ``"wait": false`` the job starts in
a background thread and the answer is 202 with the ``creating`` instance; the client polls
``GET /v2/services/<name>``. Everything that can be checked up front (names, plan,
parameters, a broker that is down) is checked before the stream starts, so those get an
ordinary JSON error and record nothing.
"""

from __future__ import annotations

import logging
import threading

from flask import Blueprint, jsonify, request

from moorage.errors import Error
from moorage.platform.api.auth import platform, user
from moorage.platform.api.bodies import Collector, json_object
from moorage.platform.api.streaming import stream_job
from moorage.platform.controller import bindings, services, teardown

log = logging.getLogger(__name__)

bp = Blueprint("services", __name__, url_prefix="/v2/services")


def _flag(value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("1", "true", "yes", "on")


@bp.get("")
def list_instances():  # type: ignore[no-untyped-def]
    return jsonify({"results": services.list_instances(platform(), user())})


@bp.post("")
def create():  # type: ignore[no-untyped-def]
    ctl, who = platform(), user()
    data = json_object()
    instance, job = services.start_create(
        ctl,
        who,
        data.get("service"),
        data.get("plan"),
        data.get("name"),
        data.get("parameters"),
        data.get("broker"),
    )
    if _flag(data.get("wait"), True):
        return stream_job(job)

    def background() -> None:
        try:
            job(lambda line: None)
        except Error as exc:  # recorded on the instance already
            log.info("background provisioning failed: %s", exc.message)
        except Exception:
            log.exception("background provisioning crashed")

    threading.Thread(target=background, name="moorage-provision", daemon=True).start()
    return jsonify(instance), 202


@bp.get("/<name>")
def info(name: str):  # type: ignore[no-untyped-def]
    return jsonify(services.info(platform(), user(), name))


@bp.patch("/<name>")
def update(name: str):  # type: ignore[no-untyped-def]
    data = json_object()
    output = Collector()
    result = services.update(platform(), user(), name, data.get("plan"), data.get("parameters"), output)
    return jsonify({**result, "output": output.lines})


@bp.delete("/<name>")
def destroy(name: str):  # type: ignore[no-untyped-def]
    output = Collector()
    teardown.destroy_service(platform(), user(), name, _flag(request.args.get("unbind"), False), output)
    return jsonify({"output": output.lines})


@bp.post("/<name>/bindings")
def bind(name: str):  # type: ignore[no-untyped-def]
    data = json_object()
    output = Collector()
    result = bindings.bind(
        platform(), user(), name, data.get("app"), data.get("as"), data.get("parameters"), output
    )
    return jsonify({**result, "output": output.lines}), 201


@bp.delete("/<name>/bindings/<app>")
def unbind(name: str, app: str):  # type: ignore[no-untyped-def]
    output = Collector()
    result = bindings.unbind(platform(), user(), name, app, output)
    return jsonify({**result, "output": output.lines})


@bp.post("/<name>/bindings/<app>/rotate")
def rotate(name: str, app: str):  # type: ignore[no-untyped-def]
    output = Collector()
    result = bindings.rotate(platform(), user(), name, app, output)
    return jsonify({**result, "output": output.lines})
