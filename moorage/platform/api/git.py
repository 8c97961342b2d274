"""``git push`` over smart HTTP: ``/<app>.git/info/refs`` and ``/<app>.git/git-receive-pack``.

Why its own authentication: git speaks HTTP basic auth, not ``Authorization: token``.
The password is the user's API token (the user name is ignored), so ``moorage
git:remote`` can hand git the token through a credential helper. No credentials → 401
with a ``Basic`` challenge, which makes git ask its credential helper and retry; a bad
token → 401; a user without access to the app → 404, the same answer a missing app gets.
Errors are plain text, since git shows the body of a failed request as it is.

Fetching (``git-upload-pack``, ``git clone``) is served to the same users; a push runs
the app's pre-receive hook, which hands the push to ``controller.pushes`` through a
:class:`~moorage.platform.git.channel.PushChannel`.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from moorage import errors
from moorage.platform.api.auth import bearer, platform
from moorage.platform.api.errors import status_of
from moorage.platform.controller import accounts, apps, pushes
from moorage.platform.controller.context import Principal
from moorage.platform.git import http_backend, repos
from moorage.platform.git.channel import PushChannel
from moorage.platform.identity import validate_name

bp = Blueprint("git", __name__)

SERVICES = ("git-receive-pack", "git-upload-pack")
#: Endpoints that authenticate themselves (see ``api.auth.PUBLIC``).
ENDPOINTS = ("git.info_refs", "git.rpc")


class GitAuthRequired(errors.AuthenticationError):
    """No credentials: git should ask its credential helper (HTTP 401 with a Basic challenge)."""


@bp.errorhandler(errors.Error)
def _error(exc: errors.Error) -> Response:
    status = status_of(exc)
    response = Response(exc.message + "\n", status=status, mimetype="text/plain")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="Moorage"'
    return response


def _pusher(app: str) -> Principal:
    """The authenticated user, who must have access to ``app``."""
    auth = request.authorization
    token = auth.password if auth is not None and auth.type == "basic" else bearer()
    if not token:
        raise GitAuthRequired(
            "git needs your Moorage token as the password: run `moorage git:remote` in this checkout"
        )
    who = accounts.authenticate(platform(), token)
    validate_name(app)
    apps.info(platform(), who, app)  # NotFoundError for someone else's app
    return who


def _cgi(app: str, path: str, who: Principal, channel: PushChannel | None) -> Response:
    ctl = platform()
    try:
        repo = repos.ensure(ctl.settings.data_dir, app)
    except BaseException:
        if channel is not None:  # the channel holds a thread, a socket and a temp dir
            channel.close()
        raise
    cgi = http_backend.CgiRequest(
        method=request.method,
        path_info=f"/{app}.git/{path}",
        query=request.query_string.decode("latin-1"),
        content_type=request.content_type or "",
        content_length=request.content_length,
        content_encoding=request.headers.get("Content-Encoding", ""),
        git_protocol=request.headers.get("Git-Protocol", ""),
        remote_user=who.username,
        remote_addr=request.remote_addr or "",
    )
    try:
        answer = http_backend.serve(
            repo.parent,
            cgi,
            request.stream,
            extra_env=channel.env if channel else None,
            on_close=channel.close if channel else None,
        )
    except BaseException:
        if channel is not None:
            channel.close()
        raise
    response = Response(answer.body, status=answer.status, headers=answer.headers)
    response.call_on_close(answer.close)  # a no-op once the body has been read to the end
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.get("/<app>.git/info/refs")
def info_refs(app: str) -> Response:
    service = request.args.get("service", "")
    if service not in SERVICES:
        raise errors.InvalidParametersError(
            "Moorage serves git's smart HTTP protocol only; use git 1.6.6 or newer"
        )
    who = _pusher(app)
    return _cgi(app, "info/refs", who, None)


@bp.post("/<app>.git/<any('git-receive-pack', 'git-upload-pack'):service>")
def rpc(app: str, service: str) -> Response:
    who = _pusher(app)
    channel = None
    if service == "git-receive-pack":
        ctl = platform()
        repo = repos.repo_path(ctl.settings.data_dir, app)
        channel = PushChannel(lambda push, progress: pushes.deploy_push(ctl, who, app, repo, push, progress))
    return _cgi(app, service, who, channel)
