"""The CLI's HTTP client for the controller API, and where its login is kept.

Why a thin client: the CLI talks to the controller over HTTP only, like any other
client would. Every answer goes through :meth:`Client.request`, which turns the API's
``{"code", "message"}`` errors and connection failures into :class:`CliError`, so each
command prints one readable line and exits non-zero instead of showing a traceback.

The controller URL and token live in ``~/.moorage/cli.json`` (mode 0600);
``MOORAGE_URL`` and ``MOORAGE_TOKEN`` override them (the CLI is an entry point, so it
may read the environment).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import httpx

DEFAULT_URL = "http://127.0.0.1:5000"
TIMEOUT = httpx.Timeout(60.0, read=None)


class CliError(click.ClickException):
    """A readable failure: ``Error: <message>`` and exit code 1."""


def profile_path() -> Path:
    return Path.home() / ".moorage" / "cli.json"


def load_profile() -> dict[str, str]:
    path = profile_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path} ({exc}); delete it and log in again") from None
    return data if isinstance(data, dict) else {}


def save_profile(data: Mapping[str, str]) -> None:
    path = profile_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(dict(data), fh, indent=2)
    path.chmod(0o600)


class Client:
    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        headers = {"Authorization": f"token {token}"} if token else {}
        headers["User-Agent"] = "moorage-cli"
        try:
            self.http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT)
        except httpx.InvalidURL as exc:
            raise CliError(
                f"invalid controller URL {url!r} ({exc}); give one like http://127.0.0.1:5000"
            ) from None

    @classmethod
    def from_profile(cls, url: str | None = None, require_token: bool = True) -> Client:
        profile = load_profile()
        url = url or os.environ.get("MOORAGE_URL") or profile.get("url") or DEFAULT_URL
        token = os.environ.get("MOORAGE_TOKEN") or profile.get("token")
        if require_token and not token:
            raise CliError("not logged in; run `moorage login <controller URL>` (or set MOORAGE_TOKEN)")
        return cls(url, token)

    def close(self) -> None:
        self.http.close()

    def request(
        self, method: str, path: str, json_body: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            response = self.http.request(method, path, json=json_body, params=params)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        self._check(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CliError(f"the controller at {self.url} answered something that is not JSON") from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def upload_ndjson(
        self, path: str, chunks: Iterable[bytes], size: int, params: Mapping[str, str]
    ) -> Iterator[dict[str, Any]]:
        """POST a body and yield the JSON objects of a streamed NDJSON answer."""
        headers = {"Content-Type": "application/gzip", "Content-Length": str(size)}
        try:
            with self.http.stream("POST", path, content=chunks, headers=headers, params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    def stream_text(self, path: str, params: Mapping[str, Any]) -> Iterator[str]:
        try:
            with self.http.stream("GET", path, params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                yield from response.iter_lines()
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: Exception) -> CliError:
        return CliError(f"cannot reach the controller at {self.url} ({exc}); is `moorage up` running?")

    def _check(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            message = response.json().get("message") or response.text
        except ValueError:
            message = response.text.strip() or response.reason_phrase
        if response.status_code == 401:
            message += " (run `moorage login`)" if "moorage login" not in message else ""
        raise CliError(message)
