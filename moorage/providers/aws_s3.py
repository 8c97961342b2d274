"""The aws-s3 offering: one S3 bucket per instance, one IAM user per binding.

Why these choices: the bucket name is derived from the instance id, so a repeated or
resumed provision finds its own bucket instead of making a second one; every bucket is
encrypted by default, has public access blocked and is tagged with the instance id, so
nothing Moorage creates is public or untraceable. Deprovision refuses to delete objects
unless ``force_delete`` was asked for (by the plan or as an instance parameter), because
a bucket's contents are the one thing a retry cannot bring back.

Binding credentials (also the app's config vars through the catalog's ``credentials_env``):
``bucket``, ``region``, ``endpoint``, ``access_key_id``, ``secret_access_key`` and ``uri``
in the form ``s3://<access_key_id>:<secret_access_key>@<bucket>?region=<region>&endpoint=<endpoint>``
(key and secret percent-encoded; ``endpoint`` only when not AWS's public one).
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any
from urllib.parse import quote, urlencode

from moorage.catalog.provider import BindingContext, BindResult, InstanceContext, ProvisionResult
from moorage.clients.aws import aws_code
from moorage.errors import ConflictError, NotFoundError, PermanentError
from moorage.providers import aws_iam
from moorage.providers.aws_provider import AwsProvider

log = logging.getLogger(__name__)

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
OBJECT_ACTIONS = [
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:GetObjectTagging",
    "s3:PutObjectTagging",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]
BUCKET_ACTIONS = [
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
    "s3:GetBucketLocation",
]


def bucket_name(instance_id: str, prefix: str = "moorage-") -> str:
    """``<prefix><instance id>`` when that is a valid bucket name, else a hash of the id.

    Bucket names are lower-case: an id with capitals is hashed (case-sensitively), so two
    instance ids that differ only in case never share a bucket.
    """
    name = f"{prefix}{instance_id}"
    if BUCKET_NAME.match(name) and "--" not in name and instance_id == instance_id.lower():
        return name
    return f"{prefix}{hashlib.sha256(instance_id.encode()).hexdigest()[: 63 - len(prefix)]}"


class S3Provider(AwsProvider):
    """Buckets and binding users in one AWS account."""

    # -- instances -------------------------------------------------------------------------

    def _region(self, ctx: InstanceContext) -> str:
        return str(
            ctx.outputs.get("region")
            or ctx.parameters.get("region")
            or ctx.config.get("region")
            or self.aws.region()
        )

    def _bucket(self, ctx: InstanceContext) -> str:
        return str(
            ctx.outputs.get("bucket")
            or bucket_name(ctx.instance_id, ctx.config.get("bucket_prefix", "moorage-"))
        )

    def provision(self, ctx: InstanceContext) -> ProvisionResult:
        bucket, region = self._bucket(ctx), self._region(ctx)
        params: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.aws.call("s3", "create_bucket", region, **params)
            log.info("created bucket %s", bucket, extra={"instance_id": ctx.instance_id, "bucket": bucket})
        except ConflictError as exc:
            if aws_code(exc) != "BucketAlreadyOwnedByYou":
                raise PermanentError(
                    f"the bucket name {bucket} is taken by another AWS account; set the plan's "
                    "config bucket_prefix to a prefix unique to this Moorage"
                ) from None
            self._check_ours(bucket, region, ctx.instance_id)
        self._configure(ctx, bucket, region)
        return ProvisionResult(outputs={"bucket": bucket, "region": region, "arn": f"arn:aws:s3:::{bucket}"})

    def update(self, ctx: InstanceContext) -> ProvisionResult:
        if (
            ctx.parameters.get("region")
            and ctx.outputs.get("region")
            and ctx.parameters["region"] != ctx.outputs["region"]
        ):
            raise PermanentError(
                f"a bucket cannot move between regions (it is in {ctx.outputs['region']}); "
                "create a new instance in the other region instead"
            )
        bucket, region = self._bucket(ctx), self._region(ctx)
        self._configure(ctx, bucket, region)
        return ProvisionResult(outputs={**ctx.outputs, "bucket": bucket, "region": region})

    def _configure(self, ctx: InstanceContext, bucket: str, region: str) -> None:
        self.aws.call(
            "s3",
            "put_bucket_encryption",
            region,
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        self.aws.call(
            "s3",
            "put_public_access_block",
            region,
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        if "versioning" in ctx.parameters or ctx.config.get("versioning"):
            enabled = bool(ctx.parameters.get("versioning", ctx.config.get("versioning")))
            current = self.aws.call("s3", "get_bucket_versioning", region, Bucket=bucket).get("Status")
            if enabled or current:  # a never-versioned bucket stays unversioned, not "Suspended"
                status = "Enabled" if enabled else "Suspended"
                self.aws.call(
                    "s3",
                    "put_bucket_versioning",
                    region,
                    Bucket=bucket,
                    VersioningConfiguration={"Status": status},
                )
        tags = aws_iam.instance_tags(ctx.instance_id)
        self.aws.call(
            "s3",
            "put_bucket_tagging",
            region,
            Bucket=bucket,
            Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]},
        )

    def _check_ours(self, bucket: str, region: str, instance_id: str) -> None:
        try:
            tag_set = self.aws.call("s3", "get_bucket_tagging", region, Bucket=bucket).get("TagSet", [])
        except NotFoundError:
            tag_set = []  # created by a call that stopped before tagging: ours by name
        owner = {t["Key"]: t["Value"] for t in tag_set}.get("moorage:instance-id")
        if owner not in (None, instance_id):
            raise PermanentError(
                f"bucket {bucket} belongs to instance {owner}, not {instance_id}; nothing was changed"
            )

    def deprovision(self, ctx: InstanceContext) -> None:
        bucket, region = self._bucket(ctx), self._region(ctx)
        force = bool(ctx.parameters.get("force_delete", ctx.config.get("force_delete", False)))
        try:
            if force:
                self._empty(bucket, region)
            self.aws.call("s3", "delete_bucket", region, Bucket=bucket)
        except NotFoundError:
            pass
        except ConflictError as exc:
            if aws_code(exc) != "BucketNotEmpty":
                raise
            raise PermanentError(
                f"bucket {bucket} is not empty, so it was not deleted; empty it first, or update the "
                'instance with {"force_delete": true} to delete its objects with it'
            ) from None
        log.info("deleted bucket %s", bucket, extra={"instance_id": ctx.instance_id, "bucket": bucket})

    def _empty(self, bucket: str, region: str) -> None:
        while True:
            listing = self.aws.call("s3", "list_object_versions", region, Bucket=bucket, MaxKeys=1000)
            doomed = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
            ]
            if not doomed:
                return
            self.aws.call(
                "s3", "delete_objects", region, Bucket=bucket, Delete={"Objects": doomed, "Quiet": True}
            )

    # -- bindings --------------------------------------------------------------------------

    def bind(self, ctx: BindingContext) -> BindResult:
        instance = ctx.instance
        bucket, region = self._bucket(instance), self._region(instance)
        arn = f"arn:aws:s3:::{bucket}"
        policy = aws_iam.policy_document(
            [
                {"Effect": "Allow", "Action": BUCKET_ACTIONS, "Resource": [arn]},
                {"Effect": "Allow", "Action": OBJECT_ACTIONS, "Resource": [f"{arn}/*"]},
            ]
        )
        keys = aws_iam.bind_user(self.aws, ctx, "moorage-s3", policy)
        endpoint = self.aws.endpoint("s3", region)
        query = {"region": region}
        if self.aws.settings.endpoint_url:
            query["endpoint"] = endpoint
        uri = f"s3://{quote(keys.access_key_id, safe='')}:{quote(keys.secret_access_key, safe='')}@{bucket}?{urlencode(query)}"
        credentials = {
            "bucket": bucket,
            "region": region,
            "endpoint": endpoint,
            "access_key_id": keys.access_key_id,
            "secret_access_key": keys.secret_access_key,
            "uri": uri,
        }
        return BindResult(credentials=credentials, outputs=keys.outputs())

    def unbind(self, ctx: BindingContext) -> None:
        aws_iam.unbind_user(self.aws, ctx, "moorage-s3")
