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
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3

from moorage.catalog.loader import load_offering
from moorage.catalog.provider import BindingContext, InstanceContext
from moorage.providers.aws_s3 import S3Provider
from moorage.settings import AwsSettings, Settings
from tests.fixtures.aws import REGION, MotoServer, start_moto, stop_moto

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30"))
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def direct(moto: MotoServer) -> Callable[[], None]:
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


def providers(moto: MotoServer, data_dir: Path) -> Callable[[], None]:
    settings = Settings(data_dir=data_dir, aws=AwsSettings(region=REGION, endpoint_url=moto.url))
    provider = S3Provider(settings)
    offering = load_offering(ROOT / "catalog" / "aws-s3.yaml")
    plan = offering.plan_named("standard")
    assert plan is not None

    def lifecycle() -> None:
        ctx = InstanceContext(str(uuid.uuid4()), offering, plan, {}, {}, settings)
        ctx = InstanceContext(
            ctx.instance_id, offering, plan, {}, dict(provider.provision(ctx).outputs), settings
        )
        binding = BindingContext(str(uuid.uuid4()), ctx, {}, {})
        result = provider.bind(binding)
        provider.unbind(BindingContext(binding.binding_id, ctx, {}, result.outputs))
        provider.deprovision(ctx)

    return lifecycle


def broker(moto: MotoServer, data_dir: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    from tests.fixtures.broker import broker_settings, new_id, start_broker

    catalog = data_dir / "catalog"
    catalog.mkdir()
    (catalog / "aws-s3.yaml").write_text((ROOT / "catalog" / "aws-s3.yaml").read_text())
    running = start_broker(
        broker_settings(data_dir / "broker", [catalog], aws={"region": REGION, "endpoint_url": moto.url})
    )
    osb = running.client
    service_id, plan_id = osb.ids("aws-s3", "standard")

    def ok(response, instance_id: str, binding_id: str | None = None) -> None:  # type: ignore[no-untyped-def]
        if response.status_code == 202:
            state = osb.wait(instance_id, binding_id, response.json().get("operation"), timeout=60).json()
            assert state["state"] == "succeeded", state
        else:
            assert response.status_code in (200, 201), response.text

    def lifecycle() -> None:
        instance_id, binding_id = new_id(), new_id()
        ok(osb.provision(instance_id, service_id, plan_id, {}), instance_id)
        ok(osb.bind(instance_id, binding_id, service_id, plan_id, {}), instance_id, binding_id)
        ok(osb.unbind(instance_id, binding_id, service_id, plan_id), instance_id, binding_id)
        ok(osb.deprovision(instance_id, service_id, plan_id), instance_id)

    return lifecycle, running.stop


def measure(lifecycle: Callable[[], None]) -> list[float]:
    lifecycle()  # warm-up: clients, models, connections
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        lifecycle()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log per request
    with tempfile.TemporaryDirectory(prefix="moorage-bench-aws-") as tmp:
        moto, proc = start_moto(Path(tmp) / "moto.log")
        saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = (
            moto.admin_key_id,
            moto.admin_secret,
        )
        stop_broker = None
        try:
            results = {"direct": measure(direct(moto)), "providers": measure(providers(moto, Path(tmp)))}
            try:
                via_broker, stop_broker = broker(moto, Path(tmp))
                results["broker"] = measure(via_broker)
            except ImportError as exc:
                print(f"broker: not measured ({exc})")
        finally:
            if stop_broker is not None:
                stop_broker()
            stop_moto(proc)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    base = statistics.median(results["direct"])
    print(f"aws-s3 provision+bind+unbind+deprovision, {ROUNDS} rounds against moto (IAM enforcement on)")
    for name, times in results.items():
        median = statistics.median(times)
        p90 = sorted(times)[int(len(times) * 0.9) - 1]
        print(
            f"  {name:<10} median {median * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   ratio {median / base:4.2f}"
        )
    worst = max(statistics.median(t) for t in results.values()) / base
    print(f"target ratio <= 1.5: {'met' if worst <= 1.5 else 'NOT met'} (worst {worst:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
