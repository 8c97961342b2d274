"""BigQuery datasets and their access lists, through google-cloud-bigquery.

Why a module of its own: the provider speaks in plain values (ids, labels, access entries
as the API's JSON), and only this module (with :mod:`moorage.clients.google_cloud`)
knows google-cloud-bigquery's classes. Each call uses api_core's retry with our
predicate (429, 5xx and BigQuery's retryable reasons) and translates what is left.

The access list is the one shared, mutable thing: several bindings of one dataset change
it at once. So :meth:`BigQueryClient.edit_access` reads the dataset, edits its ``access``
array and writes it back with the etag it read (``If-Match``); a 412 means someone else
wrote in between, and the whole read-modify-write starts again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from google.cloud import bigquery

from moorage.clients.google_cloud import GoogleCredentials, google_status, retrying, translate
from moorage.errors import ConflictError, Error

__all__ = ["BigQueryClient", "DatasetInfo", "in_use"]

SERVICE = "BigQuery"


@dataclass(frozen=True)
class DatasetInfo:
    dataset_id: str
    location: str
    labels: Mapping[str, str]
    access: list[dict[str, Any]]


class BigQueryClient:
    def __init__(self, creds: GoogleCredentials) -> None:
        self.settings = creds.settings
        self.project = creds.project
        options = (
            {"api_endpoint": self.settings.bigquery_endpoint} if self.settings.bigquery_endpoint else None
        )
        self._client = bigquery.Client(
            project=self.project, credentials=creds.credentials, client_options=options
        )

    def close(self) -> None:
        self._client.close()

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, retry=retrying(self.settings), **kwargs)
        except Exception as exc:  # noqa: BLE001 - everything Google raises is translated here
            raise translate(exc, SERVICE) from None

    def _ref(self, dataset_id: str) -> bigquery.DatasetReference:
        return bigquery.DatasetReference(self.project, dataset_id)

    @staticmethod
    def _info(dataset: bigquery.Dataset) -> DatasetInfo:
        return DatasetInfo(
            dataset.dataset_id,
            dataset.location or "",
            dict(dataset.labels or {}),
            [entry.to_api_repr() for entry in dataset.access_entries],
        )

    def create_dataset(
        self,
        dataset_id: str,
        *,
        location: str,
        description: str,
        labels: Mapping[str, str],
        default_table_expiration_ms: int | None,
    ) -> DatasetInfo:
        """Create the dataset; :class:`ConflictError` when it exists (the caller checks it is ours)."""
        dataset = bigquery.Dataset(self._ref(dataset_id))
        dataset.location = location
        dataset.description = description
        dataset.labels = dict(labels)
        dataset.default_table_expiration_ms = default_table_expiration_ms
        return self._info(self._call(self._client.create_dataset, dataset))

    def get_dataset(self, dataset_id: str) -> DatasetInfo:
        return self._info(self._call(self._client.get_dataset, self._ref(dataset_id)))

    def update_dataset(
        self,
        dataset_id: str,
        *,
        description: str,
        labels: Mapping[str, str],
        default_table_expiration_ms: int | None,
    ) -> None:
        dataset = self._call(self._client.get_dataset, self._ref(dataset_id))
        dataset.description = description
        dataset.labels = dict(labels)
        dataset.default_table_expiration_ms = default_table_expiration_ms
        self._call(
            self._client.update_dataset, dataset, ["description", "labels", "default_table_expiration_ms"]
        )

    def edit_access(
        self,
        dataset_id: str,
        edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None],
        attempts: int = 8,
    ) -> list[dict[str, Any]]:
        """Read-modify-write of the access list with the etag; ``edit`` returns the new list,
        or None when nothing needs to change. Returns the list as written (or found)."""
        for attempt in range(attempts):
            dataset = self._call(self._client.get_dataset, self._ref(dataset_id))
            current = [entry.to_api_repr() for entry in dataset.access_entries]
            wanted = edit([dict(e) for e in current])
            if wanted is None:
                return current
            dataset.access_entries = [bigquery.AccessEntry.from_api_repr(e) for e in wanted]
            try:  # dataset.etag is sent as If-Match: a concurrent write gives 412
                self._call(self._client.update_dataset, dataset, ["access_entries"])
                return wanted
            except ConflictError as exc:
                if google_status(exc) != 412 or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def delete_dataset(self, dataset_id: str, *, delete_contents: bool) -> None:
        """Delete; :class:`NotFoundError` when gone, an error with status 400 when still in use."""
        self._call(self._client.delete_dataset, self._ref(dataset_id), delete_contents=delete_contents)


def in_use(error: Error) -> bool:
    """BigQuery's answer to deleting a non-empty dataset (400 ``resourceInUse``)."""
    return google_status(error) == 400 and (
        error.details.get("google_reason") == "resourceInUse" or "in use" in error.message
    )
