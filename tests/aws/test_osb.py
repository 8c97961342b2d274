"""The AWS offerings through the OSB API of a real broker (HTTP, worker, state database)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from moorage.providers.aws_rds import db_identifier
from tests.aws.fault_proxy import FaultProxy
from tests.fixtures.aws import REGION, MotoServer
from tests.fixtures.broker import MAIN_CATALOG, OsbClient, RunningBroker, new_id


@pytest.fixture
def aws_catalog(tmp_path: Path) -> Path:
    """The three AWS offering files; RDS polls without delay (the proxy decides the pace)."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    for name in ("aws-s3", "aws-sqs"):
        shutil.copy(MAIN_CATALOG / f"{name}.yaml", folder)
    text = (MAIN_CATALOG / "aws-rds-postgresql.yaml").read_text()
    (folder / "aws-rds-postgresql.yaml").write_text(re.sub(r"poll_seconds: \d+", "poll_seconds: 0", text))
    return folder


def finish(osb: OsbClient, response, instance_id: str, binding_id: str | None = None):  # type: ignore[no-untyped-def]
    """The final answer: at once (200/201) or after polling last_operation (202; 410 once deleted)."""
    assert response.status_code in (200, 201, 202), response.text
    if response.status_code == 202:
        polled = osb.wait(instance_id, binding_id, response.json().get("operation"), timeout=60)
        if polled.status_code == 410:  # a finished deletion: the resource is gone
            return response
        assert polled.json()["state"] == "succeeded", polled.json()
    return response


def state_db_bytes(broker: RunningBroker) -> bytes:
    return b"".join(p.read_bytes() for p in broker.settings.data_dir.glob("*.db*"))


def test_s3_and_sqs_lifecycle_over_osb(aws_credentials: MotoServer, make_broker, aws_catalog: Path) -> None:
    broker = make_broker([aws_catalog], aws={"region": REGION, "endpoint_url": aws_credentials.url})
    osb = broker.client
    for offering, plan in (("aws-s3", "scratch"), ("aws-sqs", "standard")):
        service_id, plan_id = osb.ids(offering, plan)
        instance_id, binding_id = new_id(), new_id()
        finish(osb, osb.provision(instance_id, service_id, plan_id, {}), instance_id)
        response = osb.bind(instance_id, binding_id, service_id, plan_id, {})
        finish(osb, response, instance_id, binding_id)
        fetched = osb.http.get(f"/v2/service_instances/{instance_id}/service_bindings/{binding_id}")
        creds = (response.json() if response.status_code != 202 else fetched.json())["credentials"]
        if offering == "aws-s3":
            app = aws_credentials.client("s3", creds["access_key_id"], creds["secret_access_key"])
            app.put_object(Bucket=creds["bucket"], Key="osb", Body=b"ok")
            assert app.get_object(Bucket=creds["bucket"], Key="osb")["Body"].read() == b"ok"
        else:
            app = aws_credentials.client("sqs", creds["access_key_id"], creds["secret_access_key"])
            app.send_message(QueueUrl=creds["queue_url"], MessageBody="ok")
        blob = state_db_bytes(broker)
        assert instance_id.encode() in blob  # the state database was read…
        assert creds["secret_access_key"].encode() not in blob  # …and holds no secret in plaintext
        finish(osb, osb.unbind(instance_id, binding_id, service_id, plan_id), instance_id, binding_id)
        finish(osb, osb.deprovision(instance_id, service_id, plan_id), instance_id)
        assert osb.last_operation(instance_id).status_code == 410


def test_rds_async_lifecycle_over_osb(
    aws_credentials: MotoServer, fault_proxy: FaultProxy, postgres_server, make_broker, aws_catalog: Path
) -> None:
    instance_id, binding_id = new_id(), new_id()
    emulated = f"{db_identifier(instance_id)}.aaaaaaaaaa.{REGION}.rds.amazonaws.com:5432"
    broker = make_broker(
        [aws_catalog],
        aws={
            "region": REGION,
            "endpoint_url": fault_proxy.url,
            "rds_endpoint_map": f"{emulated}={postgres_server.host}:{postgres_server.port}",
            "use_secrets_manager": True,
        },
    )
    osb = broker.client
    service_id, plan_id = osb.ids("aws-rds-postgresql", "dev")
    assert osb.provision(instance_id, service_id, plan_id, {}, accepts_incomplete=False).status_code == 422
    fault_proxy.report_creating(3)
    response = osb.provision(instance_id, service_id, plan_id, {})
    assert response.status_code == 202
    finish(osb, response, instance_id)
    assert fault_proxy.count("DescribeDBInstances") >= 4  # three "creating" answers, then available

    # play RDS: the master role and database on the real server, with the password from Secrets Manager
    secret = aws_credentials.client("secretsmanager").get_secret_value(
        SecretId=f"moorage/rds/{db_identifier(instance_id)}/master"
    )
    master = json.loads(secret["SecretString"])
    db = aws_credentials.client("rds").describe_db_instances(DBInstanceIdentifier=db_identifier(instance_id))[
        "DBInstances"
    ][0]
    with psycopg.connect(postgres_server.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {}").format(
                sql.Identifier(master["username"]), sql.Literal(master["password"])
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(db["DBName"]), sql.Identifier(master["username"])
            )
        )

    response = osb.bind(instance_id, binding_id, service_id, plan_id, {})
    finish(osb, response, instance_id, binding_id)
    if response.status_code == 202:
        response = osb.http.get(f"/v2/service_instances/{instance_id}/service_bindings/{binding_id}")
    creds = response.json()["credentials"]
    assert master["password"] not in json.dumps(creds)
    with psycopg.connect(creds["uri"], autocommit=True) as conn:
        assert conn.execute("SELECT session_user").fetchone() == (creds["username"],)
    blob = state_db_bytes(broker)
    assert instance_id.encode() in blob
    assert master["password"].encode() not in blob and creds["password"].encode() not in blob

    finish(osb, osb.unbind(instance_id, binding_id, service_id, plan_id), instance_id, binding_id)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(creds["uri"]).close()
    finish(osb, osb.deprovision(instance_id, service_id, plan_id), instance_id)
    rds = aws_credentials.client("rds")
    assert not [
        d
        for d in rds.describe_db_instances()["DBInstances"]
        if d["DBInstanceIdentifier"] == db_identifier(instance_id)
    ]


def test_rds_provision_past_the_plans_limit_fails_with_the_providers_reason(
    aws_credentials: MotoServer, fault_proxy: FaultProxy, make_broker, aws_catalog: Path
) -> None:
    """The engine's deadline and the provider's agree: at the limit, the user reads the
    provider's explanation (the RDS status, AWS's latest event), not a generic timeout."""
    rds = aws_catalog / "aws-rds-postgresql.yaml"
    text = rds.read_text()
    # Polled every second: the step after the 2 s deadline starts past it.
    text = text.replace("maximum_polling_duration: 3600", "maximum_polling_duration: 2", 1)
    rds.write_text(re.sub(r"poll_seconds: \d+", "poll_seconds: 1", text))
    broker = make_broker([aws_catalog], aws={"region": REGION, "endpoint_url": fault_proxy.url})
    osb = broker.client
    service_id, plan_id = osb.ids("aws-rds-postgresql", "dev")
    fault_proxy.report_creating(100_000)  # never becomes available
    instance_id = new_id()
    response = osb.provision(instance_id, service_id, plan_id, {})
    assert response.status_code == 202
    final = osb.wait(instance_id, operation=response.json()["operation"], timeout=60).json()
    assert final["state"] == "failed"
    assert "was still 'creating'" in final["description"], final
    assert "longer than the plan's limit of 2 s" in final["description"], final
    fault_proxy.reset()
    finish(osb, osb.deprovision(instance_id, service_id, plan_id), instance_id)
