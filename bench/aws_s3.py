"""Benchmark: an aws-s3 lifecycle through Moorage vs the same boto3 calls made directly.

Why: issue 6's target is that provision + bind + unbind + deprovision of aws-s3 through
the broker costs at most 1.5 times the bare AWS calls. Run as
``.venv/bin/python -m bench.aws_s3`` from the repository root. It starts a moto server
with IAM enforcement on (the test fixture's code), then, in the same run and against the
same emulator, times N lifecycles three ways:

* **direct**: the mutating boto3 calls a careful script would make for the same result
  (bucket, encryption, public-access block, tags; user, inline policy, key, one signed
  request to check the key works; then key, policy, user and bucket deletion);
* **providers**: ``S3Provider`` called directly (adds idempotency look-ups and checks);
* **broker**: the OSB API over HTTP with the worker and the SQLite state database.

moto answers in a few milliseconds, so the ratio is an upper bound: against real AWS
(tens of ms per call) the fixed overhead weighs far less.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import uuid
from pathlib import Path

import boto3

from bench import common_cloud as cloud
from moorage.providers.aws_s3 import S3Provider
from moorage.settings import AwsSettings, Settings
from tests.fixtures.aws import REGION, MotoServer, start_moto, stop_moto

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30"))
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def direct(moto: MotoServer) -> cloud.Lifecycle:
    s3, iam = moto.client("s3"), moto.client("iam")
    session = boto3.session.Session()

    def lifecycle() -> None:
        bucket, user = f"direct-{uuid.uuid4()}", f"direct-{uuid.uuid4()}"
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                k: True
                for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
            },
        )
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "instance", "Value": bucket}]})
        iam.create_user(UserName=user, Path="/bench/")
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(POLICY))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        probe = session.client(
            "sts",
            region_name=REGION,
            endpoint_url=moto.url,
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )
        probe.get_caller_identity()
        iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
        iam.delete_user_policy(UserName=user, PolicyName="p")
        iam.delete_user(UserName=user)
        s3.delete_bucket(Bucket=bucket)

    return lifecycle


def providers(moto: MotoServer, data_dir: Path) -> cloud.Lifecycle:
    settings = Settings(data_dir=data_dir, aws=AwsSettings(region=REGION, endpoint_url=moto.url))
    return cloud.provider_lifecycle(S3Provider(settings), "aws-s3", settings)


def measure(moto: MotoServer, data_dir: Path) -> dict[str, list[float]]:
    """One way at a time: direct, the provider, then the broker (started only then)."""
    results = cloud.lifecycle_times({"direct": direct(moto)}, ROUNDS)
    results |= cloud.lifecycle_times({"providers": providers(moto, data_dir)}, ROUNDS)
    try:
        via_broker, stop_broker = cloud.broker_lifecycle(
            data_dir, "aws-s3", aws={"region": REGION, "endpoint_url": moto.url}
        )
    except ImportError as exc:
        print(f"broker: not measured ({exc})")
        return results
    try:
        results |= cloud.lifecycle_times({"broker": via_broker}, ROUNDS)
    finally:
        stop_broker()
    return results


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log per request
    with tempfile.TemporaryDirectory(prefix="moorage-bench-aws-") as tmp:
        moto, proc = start_moto(Path(tmp) / "moto.log")
        with cloud.environ(AWS_ACCESS_KEY_ID=moto.admin_key_id, AWS_SECRET_ACCESS_KEY=moto.admin_secret):
            try:
                results = measure(moto, Path(tmp))
            finally:
                stop_moto(proc)
    cloud.report_lifecycles(
        f"aws-s3 provision+bind+unbind+deprovision, {ROUNDS} rounds against moto (IAM enforcement on)",
        results,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
