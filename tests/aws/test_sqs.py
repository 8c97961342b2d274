"""aws-sqs against the moto server with IAM enforcement on: lifecycle and isolation."""

from __future__ import annotations

import json
import re

import pytest
from botocore.exceptions import ClientError

from moorage.errors import InvalidParametersError, PermanentError
from moorage.providers.aws_sqs import SqsProvider
from moorage.settings import Settings
from tests.aws.engine import Instance, offering, until_done
from tests.fixtures.aws import MotoServer


@pytest.fixture
def sqs(aws_env: Settings):
    provider = SqsProvider(aws_env)
    yield provider
    provider.close()


def provision(provider: SqsProvider, instance: Instance) -> None:
    result = until_done(lambda out: provider.provision(instance.ctx()), instance.outputs)
    instance.outputs.update(result.outputs)


def error_code(call) -> str:  # type: ignore[no-untyped-def]
    """The refusal's AWS code (moto answers SQS's JSON protocol with an XML 403 body)."""
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response["Error"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    found = re.search(r"<Code>([^<]+)</Code>", error.get("Message", ""))
    return found.group(1) if error["Code"] == "403" and found else error["Code"]


def queue_names(moto_server: MotoServer) -> set[str]:
    urls = moto_server.client("sqs").list_queues(QueueNamePrefix="moorage-").get("QueueUrls", [])
    return {u.rsplit("/", 1)[1] for u in urls}


def test_standard_queue_with_dead_letter_queue(
    sqs: SqsProvider, aws_env: Settings, moto_server: MotoServer
) -> None:
    inst = Instance(
        offering("aws-sqs"),
        "standard",
        aws_env,
        parameters={"visibility_timeout": 45, "dead_letter_queue": True, "max_receive_count": 3},
    )
    provision(sqs, inst)
    provision(sqs, inst)  # idempotent
    admin = moto_server.client("sqs")
    attrs = admin.get_queue_attributes(QueueUrl=inst.outputs["queue_url"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert attrs["VisibilityTimeout"] == "45"
    assert json.loads(attrs["RedrivePolicy"]) == {
        "deadLetterTargetArn": inst.outputs["dlq_arn"],
        "maxReceiveCount": 3,
    }
    tags = admin.list_queue_tags(QueueUrl=inst.outputs["queue_url"])["Tags"]
    assert tags["moorage:instance-id"] == inst.instance_id
    assert {f"moorage-{inst.instance_id}", f"moorage-{inst.instance_id}-dlq"} <= queue_names(moto_server)

    inst.parameters["visibility_timeout"] = 90
    sqs.update(inst.ctx())
    attrs = admin.get_queue_attributes(
        QueueUrl=inst.outputs["queue_url"], AttributeNames=["VisibilityTimeout"]
    )["Attributes"]
    assert attrs["VisibilityTimeout"] == "90"

    sqs.deprovision(inst.ctx())
    sqs.deprovision(inst.ctx())  # already gone: success
    assert not {f"moorage-{inst.instance_id}", f"moorage-{inst.instance_id}-dlq"} & queue_names(moto_server)


def test_fifo_plan_makes_a_fifo_queue(sqs: SqsProvider, aws_env: Settings, moto_server: MotoServer) -> None:
    inst = Instance(offering("aws-sqs"), "fifo", aws_env, parameters={"content_based_deduplication": True})
    provision(sqs, inst)
    assert inst.outputs["queue_name"] == f"moorage-{inst.instance_id}.fifo"
    binding_id = "fifo-binding-" + inst.instance_id[:8]
    outputs: dict = {}
    result = until_done(lambda out: sqs.bind(inst.binding(binding_id, out)), outputs)
    creds = result.credentials
    app = moto_server.client("sqs", creds["access_key_id"], creds["secret_access_key"], url=creds["endpoint"])
    for n in range(3):
        app.send_message(QueueUrl=creds["queue_url"], MessageBody=f"m{n}", MessageGroupId="g")
    got = app.receive_message(QueueUrl=creds["queue_url"], MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["m0", "m1", "m2"]
    sqs.unbind(inst.binding(binding_id, result.outputs))
    sqs.deprovision(inst.ctx())
    assert f"moorage-{inst.instance_id}.fifo" not in queue_names(moto_server)


def test_binding_keys_reach_only_their_own_queue_and_die_on_unbind(
    sqs: SqsProvider, aws_env: Settings, moto_server: MotoServer
) -> None:
    mine = Instance(offering("aws-sqs"), "standard", aws_env, parameters={"dead_letter_queue": True})
    other = Instance(offering("aws-sqs"), "standard", aws_env)
    provision(sqs, mine)
    provision(sqs, other)
    binding_id = "sqs-binding-" + mine.instance_id[:8]
    outputs: dict = {}
    result = until_done(lambda out: sqs.bind(mine.binding(binding_id, out)), outputs)
    creds = dict(result.credentials)
    assert {
        "queue_url",
        "queue_arn",
        "region",
        "access_key_id",
        "secret_access_key",
        "dlq_url",
        "dlq_arn",
    } <= set(creds)
    app = moto_server.client("sqs", creds["access_key_id"], creds["secret_access_key"], url=creds["endpoint"])
    app.send_message(QueueUrl=creds["queue_url"], MessageBody="hello")
    got = app.receive_message(QueueUrl=creds["queue_url"], WaitTimeSeconds=0)["Messages"]
    assert [m["Body"] for m in got] == ["hello"]
    app.delete_message(QueueUrl=creds["queue_url"], ReceiptHandle=got[0]["ReceiptHandle"])
    app.get_queue_attributes(QueueUrl=creds["dlq_url"], AttributeNames=["ApproximateNumberOfMessages"])
    assert (
        error_code(lambda: app.send_message(QueueUrl=other.outputs["queue_url"], MessageBody="x"))
        == "AccessDenied"
    )
    assert error_code(lambda: app.receive_message(QueueUrl=other.outputs["queue_url"])) == "AccessDenied"
    assert error_code(lambda: app.delete_queue(QueueUrl=creds["queue_url"])) == "AccessDenied"

    sqs.unbind(mine.binding(binding_id, result.outputs))
    sqs.unbind(mine.binding(binding_id, result.outputs))
    assert (
        error_code(lambda: app.send_message(QueueUrl=creds["queue_url"], MessageBody="x"))
        == "InvalidClientTokenId"
    )
    for inst in (mine, other):
        sqs.deprovision(inst.ctx())


def test_bad_input_is_refused_and_changes_nothing(
    sqs: SqsProvider, aws_env: Settings, moto_server: MotoServer
) -> None:
    inst = Instance(offering("aws-sqs"), "standard", aws_env, parameters={"visibility_timeout": 99999})
    with pytest.raises(InvalidParametersError, match="visibility_timeout"):
        inst.ctx()
    inst.parameters = {}
    provision(sqs, inst)
    inst.parameters = {"dead_letter_queue": True}
    with pytest.raises(PermanentError, match="dead-letter queue can only be chosen"):
        sqs.update(inst.ctx())
    assert f"moorage-{inst.instance_id}-dlq" not in queue_names(moto_server)
    sqs.deprovision(inst.ctx())
