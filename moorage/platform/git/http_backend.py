"""``git http-backend`` as a CGI program behind the controller.

Why CGI rather than reimplementing the protocol: ``git http-backend`` is git's own smart
HTTP server side (ref advertisement, ``receive-pack``, ``upload-pack``, gzip request
bodies, protocol v2), so Moorage only has to authenticate, pick the repository and pass
bytes. Neither direction is buffered whole: the request body is copied to the CGI's
stdin by a thread while the response is read, so a pack of any size passes through in
64 KB pieces, and the ``remote:`` progress of a build reaches git as it is printed.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from moorage.errors import UnprocessableError
from moorage.platform.git.repos import git_env

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
#: How long the CGI may take to exit after its output ended.
EXIT_GRACE_SECONDS = 30.0
MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class CgiRequest:
    method: str
    #: ``/<app>.git/info/refs`` or ``/<app>.git/git-receive-pack``.
    path_info: str
    query: str
    content_type: str
    content_length: int | None
    content_encoding: str
    git_protocol: str
    remote_user: str
    remote_addr: str


@dataclass
class CgiResponse:
    status: int
    headers: list[tuple[str, str]]
    body: Iterator[bytes]
    #: Call when the response is done with, even if ``body`` was never read: it reaps the CGI.
    close: Callable[[], None]


def serve(
    git_root: Path,
    request: CgiRequest,
    body: IO[bytes],
    extra_env: dict[str, str] | None = None,
    on_close: Callable[[], None] | None = None,
) -> CgiResponse:
    """Start ``git http-backend``; its headers are read now, its body streams later.

    ``on_close`` runs once the CGI has exited (or the client has gone away).
    """
    env = git_env(
        GIT_PROJECT_ROOT=str(git_root),
        GIT_HTTP_EXPORT_ALL="1",
        GATEWAY_INTERFACE="CGI/1.1",
        REQUEST_METHOD=request.method,
        PATH_INFO=request.path_info,
        QUERY_STRING=request.query,
        CONTENT_TYPE=request.content_type,
        REMOTE_USER=request.remote_user,
        REMOTE_ADDR=request.remote_addr,
        **(extra_env or {}),
    )
    if request.content_length is not None:
        env["CONTENT_LENGTH"] = str(request.content_length)
    if request.content_encoding:
        env["HTTP_CONTENT_ENCODING"] = request.content_encoding
    if request.git_protocol:
        env["GIT_PROTOCOL"] = request.git_protocol
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        ["git", "http-backend"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
        env=env,
        start_new_session=True,  # so receive-pack and its hook can be stopped with it
    )
    feeder = threading.Thread(target=_feed, args=(body, proc.stdin), name="moorage-git-upload", daemon=True)
    feeder.start()
    finished = _Finisher(proc, feeder, errors, on_close)
    assert proc.stdout is not None
    try:
        status, headers, rest = _read_headers(proc.stdout.fileno())
    except BaseException:
        finished(early=True)
        raise
    return CgiResponse(
        status, headers, _body(proc.stdout.fileno(), rest, finished), lambda: finished(early=True)
    )


def _feed(body: IO[bytes], stdin: IO[bytes] | None) -> None:
    assert stdin is not None
    try:
        while chunk := body.read(CHUNK):
            stdin.write(chunk)
    except (BrokenPipeError, ValueError):
        pass  # the CGI stopped reading (it answers with an error of its own)
    except Exception as exc:  # e.g. werkzeug's 413 for a body over the size limit
        log.warning("could not pass the request body to git http-backend: %s", exc)
    finally:
        try:
            stdin.close()
        except OSError:
            pass


class _Finisher:
    """Waits for (or, if the client left early, kills) the CGI, then runs ``on_close`` once."""

    def __init__(
        self,
        proc: subprocess.Popen,
        feeder: threading.Thread,
        errors: IO[bytes],
        on_close: Callable[[], None] | None,
    ) -> None:
        self.proc, self.feeder, self.errors, self.on_close = proc, feeder, errors, on_close
        self.done = False

    def __call__(self, early: bool) -> None:
        if self.done:
            return
        self.done = True
        try:
            if not early:
                try:
                    self.proc.wait(timeout=EXIT_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    early = True
            if early and self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()
            self.feeder.join(timeout=5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.errors.seek(0)
            stderr = self.errors.read(8192).decode(errors="replace").strip()
            if self.proc.returncode != 0 and stderr:
                log.warning("git http-backend exited with %s: %s", self.proc.returncode, stderr)
            self.errors.close()
        finally:
            if self.on_close is not None:
                self.on_close()


def _read_headers(fd: int) -> tuple[int, list[tuple[str, str]], bytes]:
    data = b""
    while True:
        for sep in (b"\r\n\r\n", b"\n\n"):
            head, found, rest = data.partition(sep)
            if found:
                return (*_parse_headers(head.decode("latin-1")), rest)
        if len(data) > MAX_HEADER_BYTES:
            raise UnprocessableError("git http-backend answered with oversized headers")
        chunk = os.read(fd, CHUNK)
        if not chunk:
            raise UnprocessableError("git http-backend exited without answering; see the controller's log")
        data += chunk


def _parse_headers(head: str) -> tuple[int, list[tuple[str, str]]]:
    status = 200
    headers: list[tuple[str, str]] = []
    for line in head.splitlines():
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name:
            headers.append((name, value))
    return status, headers


def _body(fd: int, first: bytes, finished: _Finisher) -> Iterator[bytes]:
    complete = False
    try:
        if first:
            yield first
        while chunk := os.read(fd, CHUNK):
            yield chunk
        complete = True
    finally:
        finished(early=not complete)
