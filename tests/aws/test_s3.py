"""aws-s3 against the moto server with IAM enforcement on: lifecycle and isolation."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from botocore.exceptions import ClientError

from moorage.errors import PermanentError
from moorage.providers.aws_s3 import S3Provider
from moorage.settings import Settings
from tests.aws.engine import Instance, offering, until_done
from tests.fixtures.aws import MotoServer


@pytest.fixture
def s3(aws_env: Settings):
    provider = S3Provider(aws_env)
    yield provider
    provider.close()


def provision(provider: S3Provider, instance: Instance) -> None:
    result = until_done(lambda out: provider.provision(instance.ctx()), instance.outputs)
    instance.outputs.update(result.outputs)


def bind(provider: S3Provider, instance: Instance) -> tuple[str, dict, dict]:
    binding_id = f"b-{len(instance.outputs)}-{instance.instance_id[:8]}"
    outputs: dict = {}
    result = until_done(lambda out: provider.bind(instance.binding(binding_id, out)), outputs)
    outputs.update(result.outputs)
    return binding_id, dict(result.credentials), outputs


def denied(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"]


def test_bucket_is_private_encrypted_tagged_and_versioned(
    s3: S3Provider, aws_env: Settings, moto_server: MotoServer
) -> None:
    inst = Instance(offering("aws-s3"), "standard", aws_env, parameters={"versioning": True})
    provision(s3, inst)
    provision(s3, inst)  # idempotent: a second call finds its own bucket
    admin = moto_server.client("s3")
    bucket = inst.outputs["bucket"]
    assert bucket == f"moorage-{inst.instance_id}"
    assert admin.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = admin.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = admin.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    tags = {t["Key"]: t["Value"] for t in admin.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert tags["moorage:instance-id"] == inst.instance_id
    s3.deprovision(inst.ctx())
    assert denied(lambda: admin.head_bucket(Bucket=bucket)) == "404"


def test_binding_keys_reach_only_their_own_bucket_and_die_on_unbind(
    s3: S3Provider, aws_env: Settings, moto_server: MotoServer
) -> None:
    mine, other = (
        Instance(offering("aws-s3"), "scratch", aws_env),
        Instance(offering("aws-s3"), "scratch", aws_env),
    )
    provision(s3, mine)
    provision(s3, other)
    binding_id, creds, outputs = bind(s3, mine)
    assert set(creds) == {"bucket", "region", "endpoint", "access_key_id", "secret_access_key", "uri"}
    assert creds["access_key_id"] != moto_server.admin_key_id
    uri = urlsplit(creds["uri"])
    assert uri.scheme == "s3" and uri.hostname == creds["bucket"]
    assert (
        unquote(uri.username or "") == creds["access_key_id"]
        and unquote(uri.password or "") == creds["secret_access_key"]
    )
    assert parse_qs(uri.query) == {"region": [creds["region"]], "endpoint": [creds["endpoint"]]}

    app = moto_server.client("s3", creds["access_key_id"], creds["secret_access_key"], url=creds["endpoint"])
    app.put_object(Bucket=creds["bucket"], Key="hello.txt", Body=b"hi")
    assert app.get_object(Bucket=creds["bucket"], Key="hello.txt")["Body"].read() == b"hi"
    assert [o["Key"] for o in app.list_objects_v2(Bucket=creds["bucket"])["Contents"]] == ["hello.txt"]
    assert (
        denied(lambda: app.put_object(Bucket=other.outputs["bucket"], Key="x", Body=b"x")) == "AccessDenied"
    )
    assert denied(lambda: app.get_object(Bucket=other.outputs["bucket"], Key="x")) == "AccessDenied"
    assert denied(lambda: app.delete_bucket(Bucket=creds["bucket"])) == "AccessDenied"

    # bind is re-entrant: a repeated call returns the same working key, not a second one
    again = s3.bind(mine.binding(binding_id, outputs))
    assert again.credentials["access_key_id"] == creds["access_key_id"]

    s3.unbind(mine.binding(binding_id, outputs))
    s3.unbind(mine.binding(binding_id, outputs))  # already gone: still success
    assert denied(lambda: app.get_object(Bucket=creds["bucket"], Key="hello.txt")) == "InvalidAccessKeyId"
    iam = moto_server.client("iam")
    assert denied(lambda: iam.get_user(UserName=outputs["iam_user"])) == "NoSuchEntity"
    for inst in (mine, other):
        s3.deprovision(inst.ctx())  # scratch plan: force_delete from the plan config


def test_non_empty_bucket_is_refused_unless_force_delete(
    s3: S3Provider, aws_env: Settings, moto_server: MotoServer
) -> None:
    inst = Instance(offering("aws-s3"), "standard", aws_env)
    provision(s3, inst)
    admin = moto_server.client("s3")
    admin.put_object(Bucket=inst.outputs["bucket"], Key="keep.txt", Body=b"data")
    with pytest.raises(PermanentError, match="not empty.*force_delete"):
        s3.deprovision(inst.ctx())
    assert admin.get_object(Bucket=inst.outputs["bucket"], Key="keep.txt")["Body"].read() == b"data"
    inst.parameters["force_delete"] = True
    s3.update(inst.ctx())
    s3.deprovision(inst.ctx())
    assert denied(lambda: admin.head_bucket(Bucket=inst.outputs["bucket"])) == "404"
    s3.deprovision(inst.ctx())  # already gone: success


def test_no_secret_in_logs(s3: S3Provider, aws_env: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    inst = Instance(offering("aws-s3"), "scratch", aws_env)
    provision(s3, inst)
    binding_id, creds, outputs = bind(s3, inst)
    s3.unbind(inst.binding(binding_id, outputs))
    s3.deprovision(inst.ctx())
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "moorage-s3" in text  # the log did record the binding's user…
    assert creds["secret_access_key"] not in text  # …but never the secret
    assert aws_env.aws.endpoint_url and "AWS_SECRET" not in text
