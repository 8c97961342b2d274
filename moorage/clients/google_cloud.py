"""Google credentials, retries and error translation; the IAM and Resource Manager calls.

Why one module for these: with :mod:`moorage.clients.google_bigquery` it is the only place
that imports ``google.*``. Credentials come from google-auth's default chain
(``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's application-default file, the metadata
server); endpoints and the project from :class:`~moorage.settings.GcpSettings`.

IAM goes through google-api-python-client with the IAM and Resource Manager discovery
documents it ships (no network fetch), because google-cloud-iam's admin API is gRPC-only.
httplib2 connections are not thread-safe, so each thread gets its own.

Every call is retried on throttling (429), 5xx and connection failures with exponential
backoff for ``settings.retry_seconds``; what is left becomes a :mod:`moorage.errors`
error whose message is Google's own (never request bodies, so no key reaches a log):
404 → :class:`NotFoundError`, 409 and 412 → :class:`ConflictError`, 429/5xx →
:class:`ProviderError` (the engine retries later), any other 4xx → :class:`PermanentError`.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import google.auth
import google.auth.exceptions
import google.auth.transport.requests
import google_auth_httplib2
import httplib2
import requests
from google.api_core import exceptions as api_exceptions
from google.api_core import retry as api_retry
from google.oauth2 import service_account
from googleapiclient import discovery
from googleapiclient.errors import HttpError

from moorage.errors import (
    ConfigurationError,
    ConflictError,
    Error,
    NotFoundError,
    PermanentError,
    ProviderError,
)
from moorage.settings import GcpSettings

__all__ = ["GoogleCredentials", "IamClient", "google_status", "probe_key", "retrying", "translate"]

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
RETRYABLE_REASONS = frozenset({"rateLimitExceeded", "backendError", "internalError", "badGateway"})
REQUEST_PREFIX = re.compile(r"^[A-Z]+ \S+: ")

# Request bodies at DEBUG include keys (privateKeyData); secrets never reach a log.
for _name in ("googleapiclient", "google_auth_httplib2", "google.auth", "urllib3"):
    logging.getLogger(_name).setLevel(logging.INFO)


def google_status(error: Error) -> int:
    """The HTTP status an error was translated from (0 if none)."""
    return int(error.details.get("google_status", 0))


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, HttpError):
        return int(exc.status_code or 0)
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        return int(exc.code or 0)
    return 0


def _reason_of(exc: BaseException) -> str:
    try:
        return str(exc.errors[0]["reason"])  # type: ignore[attr-defined]
    except (AttributeError, IndexError, KeyError, TypeError):
        return ""


def is_retryable(exc: BaseException) -> bool:
    """Throttling, 5xx and broken connections: worth another try after a pause."""
    if isinstance(
        exc,
        (
            ConnectionError,
            TimeoutError,
            httplib2.HttpLib2Error,
            requests.ConnectionError,
            requests.Timeout,
            google.auth.exceptions.TransportError,
        ),
    ):
        return True
    return _status_of(exc) in RETRYABLE_STATUS or _reason_of(exc) in RETRYABLE_REASONS


def retrying(settings: GcpSettings) -> api_retry.Retry:
    """api_core's exponential backoff (0.2 s doubling to 5 s) for ``retry_seconds``."""
    return api_retry.Retry(
        predicate=is_retryable, initial=0.2, maximum=5.0, multiplier=2.0, timeout=settings.retry_seconds
    )


def translate(exc: BaseException, service: str) -> Error:
    """A moorage error carrying Google's message for a failed call to ``service``."""
    if isinstance(exc, api_exceptions.RetryError) and exc.cause is not None:
        exc = exc.cause
    status, reason = _status_of(exc), _reason_of(exc)
    if isinstance(exc, HttpError):
        message = exc.reason or str(exc)
    elif isinstance(exc, api_exceptions.GoogleAPICallError):
        message = REQUEST_PREFIX.sub("", exc.message)  # "POST https://…: " says nothing to a user
    else:
        message = str(exc) or type(exc).__name__
    text = f"{service}: {message}"
    details = {"google_status": status, "google_reason": reason}
    if status == 404:
        return NotFoundError(text, **details)
    if status in (409, 412):
        return ConflictError(text, **details)
    if status in RETRYABLE_STATUS or reason in RETRYABLE_REASONS or not status:
        return ProviderError(text, **details)
    return PermanentError(text, **details)


class GoogleCredentials:
    """The broker's own credentials and project, resolved once (google-auth is thread-safe)."""

    def __init__(self, settings: GcpSettings) -> None:
        self.settings = settings
        try:
            self.credentials, found_project = google.auth.default(scopes=SCOPES)
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ConfigurationError(f"gcp-bigquery needs Google credentials: {exc}") from None
        self.project = settings.project or found_project or ""
        if not self.project:
            raise ConfigurationError("set MOORAGE_GCP_PROJECT: the credentials name no project")


class IamClient:
    """Service accounts and keys (IAM v1) and the project's IAM policy (Resource Manager v1)."""

    def __init__(self, creds: GoogleCredentials) -> None:
        self.creds = creds
        self.settings = creds.settings
        self.project = creds.project
        self._local = threading.local()
        self._iam = self._build("iam", self.settings.iam_endpoint)
        self._crm = self._build("cloudresourcemanager", self.settings.resource_manager_endpoint)

    def _build(self, api: str, endpoint: str) -> Any:
        options = {"api_endpoint": endpoint} if endpoint else None
        return discovery.build(
            api,
            "v1",
            credentials=self.creds.credentials,
            client_options=options,
            cache_discovery=False,
            static_discovery=True,
        )

    def _http(self) -> Any:
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = google_auth_httplib2.AuthorizedHttp(
                self.creds.credentials, http=httplib2.Http(timeout=60)
            )
        return http

    def _run(self, service: str, request: Any) -> Any:
        try:
            return retrying(self.settings)(lambda: request.execute(http=self._http()))()
        except Exception as exc:  # noqa: BLE001 - everything Google raises is translated here
            raise translate(exc, service) from None

    def _accounts(self) -> Any:
        return self._iam.projects().serviceAccounts()

    def account_name(self, email: str) -> str:
        return f"projects/{self.project}/serviceAccounts/{email}"

    def create_service_account(self, account_id: str, display_name: str, description: str) -> dict[str, Any]:
        body = {
            "accountId": account_id,
            "serviceAccount": {"displayName": display_name, "description": description},
        }
        return self._run("IAM", self._accounts().create(name=f"projects/{self.project}", body=body))

    def get_service_account(self, email: str) -> dict[str, Any]:
        return self._run("IAM", self._accounts().get(name=self.account_name(email)))

    def delete_service_account(self, email: str) -> None:
        self._run("IAM", self._accounts().delete(name=self.account_name(email)))

    def create_key(self, email: str) -> tuple[str, dict[str, Any]]:
        """A new key: its resource name and the key JSON (decoded ``privateKeyData``)."""
        key = self._run("IAM", self._accounts().keys().create(name=self.account_name(email), body={}))
        return key["name"], json.loads(base64.b64decode(key["privateKeyData"]))

    def key_names(self, email: str) -> list[str]:
        request = self._accounts().keys().list(name=self.account_name(email), keyTypes="USER_MANAGED")
        return [k["name"] for k in self._run("IAM", request).get("keys", [])]

    def delete_key(self, name: str) -> None:
        self._run("IAM", self._accounts().keys().delete(name=name))

    def edit_project_policy(self, edit: Callable[[dict[str, Any]], bool], attempts: int = 5) -> None:
        """Read-modify-write of the project's IAM policy; ``edit`` changes it in place and
        says whether anything changed. A concurrent change (409 ABORTED) starts over."""
        projects = self._crm.projects()
        for attempt in range(attempts):
            policy = self._run("Resource Manager", projects.getIamPolicy(resource=self.project, body={}))
            if not edit(policy):
                return
            try:
                self._run(
                    "Resource Manager",
                    projects.setIamPolicy(resource=self.project, body={"policy": policy}),
                )
                return
            except ConflictError:
                if attempt == attempts - 1:
                    raise


def probe_key(info: dict[str, Any]) -> None:
    """Exchange a service-account key for a token at its ``token_uri``; raise if refused."""
    credentials = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    try:
        credentials.refresh(google.auth.transport.requests.Request())
    except google.auth.exceptions.RefreshError as exc:
        raise PermanentError(f"OAuth: {exc.args[0] if exc.args else exc}") from None
    except google.auth.exceptions.TransportError as exc:
        raise ProviderError(f"OAuth: {exc}") from None
