"""The private line between one push's pre-receive hook and the controller.

Why a Unix socket per push rather than an HTTP callback: the hook runs on the
controller's machine as a grandchild of the request that carries the push, so a socket
in a fresh ``0700`` folder reaches exactly the controller process serving that request
(even with several gunicorn workers, where an HTTP callback could land on a worker that
never heard of the push), needs no URL to be discovered, and nobody but the controller's
user can connect. A one-time token guards it all the same.

The hook sends one JSON line ``{"token", "updates": [[old, new, ref], ...], "objects":
{...}}``; the controller answers with ``{"log": line}`` lines as the build and deploy
progress, then ``{"done": true}`` or ``{"error": message}``. The handler keeps running
if the pusher goes away, so a deploy is never left half done.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from moorage.errors import Error
from moorage.platform.runtime.base import Progress

log = logging.getLogger(__name__)

MAX_REQUEST = 1024 * 1024
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class PushRequest:
    #: ``(old sha, new sha, ref name)`` as git gives them to pre-receive.
    updates: list[tuple[str, str, str]]
    #: Where git keeps the pushed objects until the hook accepts them.
    objects: dict[str, str]


Handler = Callable[[PushRequest, Progress], object]


class PushChannel:
    """Listens for the hook of one push; ``env`` goes into git's environment."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._folder = Path(tempfile.mkdtemp(prefix="moorage-push-"))
        self.path = self._folder / "hook.sock"
        self.token = secrets.token_hex(20)
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(1)
        self._listener.settimeout(POLL_SECONDS)
        self._thread = threading.Thread(target=self._serve, name="moorage-push", daemon=True)
        self._thread.start()

    @property
    def env(self) -> dict[str, str]:
        return {"MOORAGE_PUSH_SOCKET": str(self.path), "MOORAGE_PUSH_TOKEN": self.token}

    def close(self) -> None:
        """Stop listening (a handler already running finishes on its own)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=2 * POLL_SECONDS)  # a running deploy goes on by itself
        self._listener.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        reply = _Replies(conn)
        try:
            request = _parse(_read_line(conn), self.token)
        except ValueError as exc:
            reply.send({"error": f"refused: {exc}"})
            return
        try:
            self._handler(request, lambda line: reply.send({"log": line}))
        except Error as exc:
            reply.send({"error": exc.message})
            return
        except Exception:
            log.exception("the deploy of a push crashed")
            reply.send({"error": "internal error in the controller; see its log"})
            return
        reply.send({"done": True})


class _Replies:
    """Writes answer lines; once the hook is gone, the rest is dropped (the job goes on)."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._gone = False

    def send(self, message: dict) -> None:
        if self._gone:
            return
        try:
            self._conn.sendall(json.dumps(message).encode() + b"\n")
        except OSError:
            self._gone = True
            log.warning("the pusher went away; the deploy continues")


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError("the hook's request is too large")
    return data.split(b"\n", 1)[0]


def _parse(raw: bytes, token: str) -> PushRequest:
    try:
        data = json.loads(raw)
    except ValueError:
        raise ValueError("the hook's request is not JSON") from None
    if not isinstance(data, dict) or not hmac.compare_digest(str(data.get("token", "")), token):
        raise ValueError("wrong push token")
    updates = data.get("updates")
    objects = data.get("objects")
    if not isinstance(updates, list) or not isinstance(objects, dict):
        raise ValueError("the hook's request lacks updates or objects")
    parsed = []
    for item in updates:
        if not isinstance(item, list) or len(item) != 3 or not all(isinstance(x, str) for x in item):
            raise ValueError(f"bad ref update {item!r}")
        parsed.append((item[0], item[1], item[2]))
    return PushRequest(parsed, {str(k): str(v) for k, v in objects.items()})
