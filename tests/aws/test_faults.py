"""AWS answering 500 or throttling, IAM keys that are not usable yet, half-finished work.

The fault proxy sits between the providers and moto; every request still carries a real
signature checked by moto's IAM.
"""

from __future__ import annotations

import pytest

from moorage.errors import PermanentError, ProviderError
from moorage.providers.aws_rds import RdsPostgresProvider
from moorage.providers.aws_s3 import S3Provider
from moorage.providers.aws_sqs import SqsProvider
from tests.aws.engine import Instance, offering, until_done
from tests.aws.fault_proxy import FaultProxy
from tests.fixtures.aws import MotoServer, aws_settings


def test_5xx_and_throttling_are_retried_and_the_work_completes(
    aws_credentials: MotoServer, fault_proxy: FaultProxy, tmp_path
) -> None:
    settings = aws_settings(fault_proxy.url, tmp_path)
    s3 = S3Provider(settings)
    inst = Instance(offering("aws-s3"), "scratch", settings)
    fault_proxy.fail(
        "S3 PUT bucket", 2, status=500, code="InternalError", message="We encountered an internal error"
    )
    fault_proxy.fail(
        "S3 PUT bucket?encryption", 1, status=503, code="SlowDown", message="Please reduce your request rate"
    )
    fault_proxy.fail("CreateUser", 2, status=500, code="ServiceFailure", message="try again")
    inst.outputs.update(s3.provision(inst.ctx()).outputs)
    assert fault_proxy.count("S3 PUT bucket") == 3 and fault_proxy.count("S3 PUT bucket?encryption") == 2
    outputs: dict = {}
    result = until_done(lambda out: s3.bind(inst.binding("retried", out)), outputs)
    assert fault_proxy.count("CreateUser") == 3
    app = aws_credentials.client(
        "s3", result.credentials["access_key_id"], result.credentials["secret_access_key"]
    )
    app.put_object(Bucket=inst.outputs["bucket"], Key="k", Body=b"v")
    s3.unbind(inst.binding("retried", result.outputs))
    s3.deprovision(inst.ctx())
    s3.close()


def test_after_the_retry_budget_the_error_carries_aws_message(
    aws_credentials: MotoServer, fault_proxy: FaultProxy, tmp_path
) -> None:
    settings = aws_settings(fault_proxy.url, tmp_path, max_attempts=2)
    sqs = SqsProvider(settings)
    inst = Instance(offering("aws-sqs"), "standard", settings)
    fault_proxy.fail(
        "CreateQueue", 2, status=500, code="InternalFailure", message="the queue service is down"
    )
    with pytest.raises(ProviderError, match="the queue service is down") as info:
        sqs.provision(inst.ctx())
    assert not isinstance(info.value, PermanentError)  # the engine will retry later
    assert fault_proxy.count("CreateQueue") == 2
    inst.outputs.update(sqs.provision(inst.ctx()).outputs)  # the next attempt completes
    sqs.deprovision(inst.ctx())
    sqs.close()

    rds = RdsPostgresProvider(settings)
    db = Instance(offering("aws-rds-postgresql", poll_seconds=0), "dev", settings)
    fault_proxy.fail("CreateDBInstance", 2, status=400, code="Throttling", message="Rate exceeded")
    with pytest.raises(ProviderError, match="Throttling: Rate exceeded"):
        until_done(lambda out: rds.provision(db.ctx()), db.outputs)
    fault_proxy.fail(
        "CreateDBInstance", 1, status=400, code="InvalidParameterValue", message="Invalid DB engine"
    )
    with pytest.raises(PermanentError, match="Invalid DB engine"):  # 4xx: no retry at all
        until_done(lambda out: rds.provision(db.ctx()), db.outputs)
    assert fault_proxy.count("CreateDBInstance") == 3
    rds.close()


def test_a_new_key_is_returned_only_once_it_works(
    aws_credentials: MotoServer, fault_proxy: FaultProxy, tmp_path
) -> None:
    settings = aws_settings(fault_proxy.url, tmp_path)
    sqs = SqsProvider(settings)
    inst = Instance(offering("aws-sqs"), "standard", settings)
    inst.outputs.update(sqs.provision(inst.ctx()).outputs)
    fault_proxy.fail(
        "GetCallerIdentity",
        3,
        status=403,
        code="InvalidClientTokenId",
        message="The security token is invalid",
    )
    result = sqs.bind(inst.binding("eventual"))
    assert fault_proxy.count("GetCallerIdentity") == 4
    app = aws_credentials.client(
        "sqs", result.credentials["access_key_id"], result.credentials["secret_access_key"]
    )
    app.send_message(QueueUrl=result.credentials["queue_url"], MessageBody="first call works")
    sqs.unbind(inst.binding("eventual", result.outputs))
    sqs.deprovision(inst.ctx())
    sqs.close()


def test_unbind_after_half_finished_bind_removes_the_user(
    aws_credentials: MotoServer, fault_proxy: FaultProxy, tmp_path
) -> None:
    settings = aws_settings(fault_proxy.url, tmp_path, max_attempts=1)
    s3 = S3Provider(settings)
    inst = Instance(offering("aws-s3"), "scratch", settings)
    inst.outputs.update(s3.provision(inst.ctx()).outputs)
    fault_proxy.fail("CreateAccessKey", 1, status=500, code="ServiceFailure", message="lost")
    with pytest.raises(ProviderError):
        s3.bind(inst.binding("half"))
    iam = aws_credentials.client("iam")
    user = "moorage-s3-half"
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == ["moorage-binding"]
    s3.unbind(inst.binding("half"))  # no outputs were recorded: found by its derived name
    assert user not in {u["UserName"] for u in iam.list_users(PathPrefix="/moorage/")["Users"]}
    s3.deprovision(inst.ctx())
    s3.close()


def test_deprovision_after_half_finished_provision(
    aws_credentials: MotoServer, fault_proxy: FaultProxy, tmp_path
) -> None:
    settings = aws_settings(fault_proxy.url, tmp_path, max_attempts=1)
    s3, sqs = S3Provider(settings), SqsProvider(settings)
    bucket_inst = Instance(offering("aws-s3"), "standard", settings)
    fault_proxy.fail("S3 PUT bucket?publicAccessBlock", 1, status=500, code="InternalError", message="boom")
    with pytest.raises(ProviderError):
        s3.provision(bucket_inst.ctx())
    admin = aws_credentials.client("s3")
    bucket = f"moorage-{bucket_inst.instance_id}"
    admin.head_bucket(Bucket=bucket)  # the bucket was made before the failure
    s3.deprovision(bucket_inst.ctx())
    assert bucket not in {b["Name"] for b in admin.list_buckets()["Buckets"]}

    queue_inst = Instance(offering("aws-sqs"), "standard", settings, parameters={"dead_letter_queue": True})
    fault_proxy.fail("GetQueueAttributes", 1, status=500, code="InternalFailure", message="boom")
    with pytest.raises(ProviderError):
        sqs.provision(queue_inst.ctx())
    queues = (
        aws_credentials.client("sqs")
        .list_queues(QueueNamePrefix=f"moorage-{queue_inst.instance_id}")
        .get("QueueUrls", [])
    )
    assert [q.rsplit("/", 1)[1] for q in queues] == [f"moorage-{queue_inst.instance_id}-dlq"]
    sqs.deprovision(queue_inst.ctx())
    assert (
        not aws_credentials.client("sqs")
        .list_queues(QueueNamePrefix=f"moorage-{queue_inst.instance_id}")
        .get("QueueUrls")
    )
    s3.close()
    sqs.close()
