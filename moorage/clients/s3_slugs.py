"""Slugs in S3-compatible storage: upload, download and delete by key or key prefix.

Why a separate small module: the builder's slug store must not import boto3 (only
``moorage.clients`` does). It reuses :class:`~moorage.clients.aws.AwsClients` for the
endpoint, region, retries and the translation of botocore errors into
``moorage.errors``; uploads and downloads go through boto3's managed transfer, which
streams files of any size (multipart above 8 MB) instead of holding them in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import botocore.exceptions
from boto3.exceptions import S3UploadFailedError

from moorage.clients.aws import AwsClients, translate
from moorage.errors import ProviderError
from moorage.settings import AwsSettings

__all__ = ["SlugBucket"]


class SlugBucket:
    def __init__(self, bucket: str, settings: AwsSettings) -> None:
        self.bucket = bucket
        self._clients = AwsClients(settings)

    def upload(self, path: Path, key: str) -> None:
        try:
            self._clients.client("s3").upload_file(str(path), self.bucket, key)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise translate(exc, f"uploading slug s3://{self.bucket}/{key}") from None
        except S3UploadFailedError as exc:
            raise ProviderError(f"uploading slug s3://{self.bucket}/{key} failed: {exc}") from None

    def download(self, key: str, dest: Path) -> None:
        try:
            self._clients.client("s3").download_file(self.bucket, key, str(dest))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise translate(exc, f"downloading slug s3://{self.bucket}/{key}") from None

    def open(self, key: str) -> BinaryIO:
        """The object's body as a stream (read in chunks; never held whole in memory)."""
        try:
            return self._clients.client("s3").get_object(Bucket=self.bucket, Key=key)["Body"]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise translate(exc, f"reading slug s3://{self.bucket}/{key}") from None

    def delete(self, key: str) -> None:
        self._clients.call("s3", "delete_object", Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; returns how many."""
        keys = [
            obj["Key"]
            for obj in self._clients.pages(
                "s3", "list_objects_v2", "Contents", Bucket=self.bucket, Prefix=prefix
            )
        ]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = keys[start : start + 1000]
            answer = self._clients.call(
                "s3",
                "delete_objects",
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise ProviderError(
                    f"deleting {len(errors)} slug(s) under s3://{self.bucket}/{prefix} failed, e.g. "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".rstrip()
                )
        return len(keys)
