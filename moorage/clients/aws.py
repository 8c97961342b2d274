"""boto3 clients for the AWS providers, and the translation of botocore errors.

Why one module: it is the only place that imports boto3/botocore. Every call a provider
makes goes through :meth:`AwsClients.call`, which lets botocore retry throttling and 5xx
answers with exponential backoff ("standard" retry mode, ``settings.aws.max_attempts``
attempts) and then turns whatever is left into :mod:`moorage.errors`:

* "does not exist" codes → :class:`NotFoundError` (deprovision/unbind treat it as done);
* "already exists" / "in use" codes → :class:`ConflictError`;
* throttling, 5xx and connection failures that outlived the retries → :class:`ProviderError`
  (the operation engine retries later);
* access denied, validation and every other 4xx → :class:`PermanentError`.

The AWS error code is kept in ``error.details["aws_code"]`` so providers can tell, for
example, ``BucketAlreadyOwnedByYou`` (ours: carry on) from ``BucketAlreadyExists``
(someone else's name). Messages quote AWS's own message, never request parameters, so
no secret reaches a log line through an error.

Credentials come from boto3's standard chain (environment, shared files, instance
role); region and endpoint from :class:`~moorage.settings.AwsSettings`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from moorage.errors import ConflictError, Error, NotFoundError, PermanentError, ProviderError
from moorage.settings import AwsSettings

__all__ = ["AwsClients", "aws_code"]

# botocore's DEBUG output includes raw request and response bodies: CreateAccessKey's
# secret, CreateDBInstance's master password, Secrets Manager values. Secrets never reach
# a log, whatever level the operator sets, so these loggers stop at INFO.
for _name in ("botocore", "boto3"):
    logging.getLogger(_name).setLevel(logging.INFO)

NOT_FOUND_CODES = frozenset(
    {
        "404",
        "NotFound",
        "NoSuchEntity",
        "NoSuchBucket",
        "NoSuchKey",
        "NoSuchTagSet",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "DBInstanceNotFound",
        "DBInstanceNotFoundFault",
        "DBSnapshotNotFound",
        "DBSnapshotNotFoundFault",
        "ResourceNotFoundException",
    }
)
CONFLICT_CODES = frozenset(
    {
        "EntityAlreadyExists",
        "BucketAlreadyOwnedByYou",
        "BucketAlreadyExists",
        "BucketNotEmpty",
        "DeleteConflict",
        "QueueAlreadyExists",
        "QueueNameExists",
        "QueueDeletedRecently",
        "AWS.SimpleQueueService.QueueDeletedRecently",
        "DBInstanceAlreadyExists",
        "DBInstanceAlreadyExistsFault",
        "DBSnapshotAlreadyExists",
        "DBSnapshotAlreadyExistsFault",
        "InvalidDBInstanceState",
        "InvalidDBInstanceStateFault",
        "ResourceExistsException",
    }
)
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "AWS.SimpleQueueService.RequestThrottled",
    }
)


def aws_code(error: Error) -> str:
    """The AWS error code an error was translated from ('' if none)."""
    return str(error.details.get("aws_code", ""))


class AwsClients:
    """Thread-safe, cached boto3 clients for one set of credentials.

    ``AwsClients(settings.aws)`` uses boto3's credential chain; :meth:`with_keys` makes a
    sibling that signs with given keys (to check that a new access key works).
    """

    def __init__(
        self,
        settings: AwsSettings,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        max_attempts: int | None = None,
        shared: tuple[Any, threading.Lock] | None = None,
    ) -> None:
        self.settings = settings
        # Shared with siblings from with_keys(): the session caches service models, and
        # boto3 sessions are not thread-safe, so client creation holds the shared lock.
        self._session, self._lock = shared or (boto3.session.Session(), threading.Lock())
        self._credentials = (
            {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
            if access_key_id
            else {}
        )
        self._config = Config(
            # total_max_attempts counts the first try ("max_attempts" would count retries only)
            retries={"mode": "standard", "total_max_attempts": max_attempts or settings.max_attempts},
            connect_timeout=5,
            read_timeout=60,
            user_agent_extra="moorage",
        )
        self._clients: dict[tuple[str, str], Any] = {}

    def with_keys(self, access_key_id: str, secret_access_key: str, max_attempts: int = 1) -> AwsClients:
        """Clients signing with the given keys (sharing this object's session)."""
        return AwsClients(
            self.settings,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            max_attempts=max_attempts,
            shared=(self._session, self._lock),
        )

    def region(self, region: str | None = None) -> str:
        return region or self.settings.region

    def endpoint(self, service: str, region: str | None = None) -> str:
        """The endpoint apps should use: the configured one, or AWS's public one."""
        if self.settings.endpoint_url:
            return self.settings.endpoint_url
        return f"https://{service}.{self.region(region)}.amazonaws.com"

    def client(self, service: str, region: str | None = None) -> Any:
        key = (service, self.region(region))
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                try:
                    client = self._session.client(
                        service,
                        region_name=key[1],
                        endpoint_url=self.settings.endpoint_url or None,
                        config=self._config,
                        **self._credentials,
                    )
                except botocore.exceptions.BotoCoreError as exc:
                    raise translate(exc, f"creating the {service} client") from None
                self._clients[key] = client
            return client

    def call(self, service: str, operation: str, region: str | None = None, **params: Any) -> dict[str, Any]:
        """``client(service).<operation>(**params)`` with botocore errors translated."""
        method: Callable[..., dict[str, Any]] = getattr(self.client(service, region), operation)
        try:
            return method(**params)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise translate(exc, f"{service} {operation}") from None

    def pages(
        self, service: str, operation: str, key: str, region: str | None = None, **params: Any
    ) -> list[Any]:
        """Every item under ``key`` of a paginated operation."""
        try:
            paginator = self.client(service, region).get_paginator(operation)
            return [item for page in paginator.paginate(**params) for item in page.get(key, [])]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise translate(exc, f"{service} {operation}") from None

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


def translate(exc: Exception, action: str) -> Error:
    """A moorage error for a botocore exception raised while doing ``action``."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "") or "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = f"{action} failed: AWS {code or status}: {error.get('Message') or 'no message'}"
        details = {"aws_code": code, "status": status}
        if code in NOT_FOUND_CODES or (status == 404 and not code):
            return NotFoundError(message, **details)
        if code in CONFLICT_CODES:
            return ConflictError(message, **details)
        if code in THROTTLING_CODES:
            return ProviderError(
                message + " (AWS kept throttling after retries; will try again later)", **details
            )
        if status >= 500 or code in {"InternalError", "ServiceUnavailable", "InternalFailure"}:
            return ProviderError(
                message + " (AWS kept failing after retries; will try again later)", **details
            )
        return PermanentError(message, **details)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return PermanentError(
            f"{action} failed: no AWS credentials found; configure boto3's standard chain "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a shared credentials file or an instance role)",
            aws_code="NoCredentials",
        )
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return PermanentError(f"{action} failed: invalid request: {exc}", aws_code="ParamValidation")
    if isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectionError
        | botocore.exceptions.HTTPClientError,
    ):
        return ProviderError(
            f"{action} failed: cannot reach AWS ({type(exc).__name__}); will try again later"
        )
    return ProviderError(f"{action} failed: {type(exc).__name__}: {exc}")
