"""Streaming a long job's progress to the client as it happens (NDJSON, line by line).

Why a thread and a queue: a build and deploy take seconds to minutes; the client sees
each line when it is produced. The job runs in its own thread and keeps going if the
client disconnects, so a deploy is never left half done because a laptop went to sleep.
Each line is a JSON object: ``{"log": "..."}`` while working, then exactly one
``{"result": {...}}`` or ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response

from moorage.errors import Error
from moorage.platform.api.errors import error_body, internal_body
from moorage.platform.runtime.base import Progress

log = logging.getLogger(__name__)

_DONE = object()


def stream_job(job: Callable[[Progress], Any]) -> Response:
    lines: queue.Queue[Any] = queue.Queue()

    def run() -> None:
        try:
            lines.put({"result": job(lambda line: lines.put({"log": line}))})
        except Error as exc:
            lines.put({"error": error_body(exc)})
        except Exception:
            log.exception("streamed job crashed")
            lines.put({"error": internal_body()})
        finally:
            lines.put(_DONE)

    threading.Thread(target=run, name="moorage-job", daemon=True).start()

    def generate() -> Iterator[str]:
        while (item := lines.get()) is not _DONE:
            yield json.dumps(item) + "\n"

    return Response(generate(), mimetype="application/x-ndjson", headers={"X-Accel-Buffering": "no"})
