"""aws-rds-postgresql: moto behind the fault proxy, the instance endpoint mapped to a real PostgreSQL.

moto makes an instance ``available`` at once and runs no database. The proxy reports
``creating`` for the first DescribeDBInstances answers (the waiting path), and the test
plays the part RDS plays at creation on the real server: the master role and database.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace

import psycopg
import pytest
from botocore.exceptions import ClientError
from psycopg import sql

from moorage.errors import PermanentError, TemporaryError
from moorage.providers.aws_rds import RdsPostgresProvider, db_identifier
from moorage.settings import Settings
from tests.aws.engine import Instance, Run, offering, until_done
from tests.aws.fault_proxy import FaultProxy
from tests.fixtures.aws import MotoServer, aws_settings
from tests.polling import wait_for


def rds_settings(proxy: FaultProxy, pg, instance_id: str, tmp_path, **aws) -> Settings:  # type: ignore[no-untyped-def]
    emulated = f"{db_identifier(instance_id)}.aaaaaaaaaa.us-east-1.rds.amazonaws.com:5432"
    return aws_settings(proxy.url, tmp_path, rds_endpoint_map=f"{emulated}={pg.host}:{pg.port}", **aws)


def new_instance(proxy: FaultProxy, pg, tmp_path, plan: str = "dev", **aws) -> Instance:  # type: ignore[no-untyped-def]
    inst = Instance(offering("aws-rds-postgresql", poll_seconds=0), plan, Settings())
    inst.settings = rds_settings(proxy, pg, inst.instance_id, tmp_path, **aws)
    return inst


def play_rds_creation(pg, inst: Instance, password: str) -> None:  # type: ignore[no-untyped-def]
    """What RDS does when it creates an instance: a master role that owns the database."""
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        master, database = (
            sql.Identifier(inst.outputs["master_username"]),
            sql.Identifier(inst.outputs["database"]),
        )
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {}").format(
                master, sql.Literal(password)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, master))


def provision(provider: RdsPostgresProvider, inst: Instance, run: Run | None = None) -> None:
    result = until_done(
        lambda out: provider.provision(replace(inst.ctx(), outputs=out)), inst.outputs, run=run
    )
    inst.outputs.update(result.outputs)


def test_lifecycle_waits_for_available_and_binds_roles_on_real_postgres(
    aws_credentials: MotoServer,
    fault_proxy: FaultProxy,
    postgres_server,
    tmp_path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    inst = new_instance(fault_proxy, postgres_server, tmp_path, plan="standard")
    rds = RdsPostgresProvider(inst.settings)
    fault_proxy.report_creating(3)
    run = Run()
    provision(rds, inst, run)
    assert run.waits[0] == "generated the RDS master password"
    assert run.waits[1].endswith("requested")
    assert sum("now 'creating'" in w for w in run.waits) == 3
    db = aws_credentials.client("rds").describe_db_instances(
        DBInstanceIdentifier=db_identifier(inst.instance_id)
    )["DBInstances"][0]
    assert db["StorageEncrypted"] and db["DBInstanceClass"] == "db.t4g.small" and db["AllocatedStorage"] == 50
    assert {"Key": "moorage:instance-id", "Value": inst.instance_id} in db["TagList"]
    assert inst.outputs["host"] == db["Endpoint"]["Address"]
    play_rds_creation(postgres_server, inst, inst.outputs["master_password"])

    first = rds.bind(inst.binding("binding-one"))
    second = rds.bind(inst.binding("binding-two"))
    creds = dict(first.credentials)
    assert (creds["host"], creds["port"]) == (postgres_server.host, postgres_server.port)
    assert creds["username"] != inst.outputs["master_username"]
    assert inst.outputs["master_password"] not in json.dumps([first.credentials, second.credentials])
    with psycopg.connect(creds["uri"], autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (body text)")
        conn.execute("INSERT INTO notes VALUES ('hello')")
    with psycopg.connect(second.credentials["uri"], autocommit=True) as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("hello",)]

    rds.unbind(inst.binding("binding-one"))
    rds.unbind(inst.binding("binding-one"))  # already gone: success
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(creds["uri"]).close()
    with psycopg.connect(
        second.credentials["uri"], autocommit=True
    ) as conn:  # the table outlived its creator
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (1,)
    rds.unbind(inst.binding("binding-two"))

    until_done(lambda out: rds.deprovision(inst.ctx()), {})
    rds_admin = aws_credentials.client("rds")
    snapshots = rds_admin.describe_db_snapshots(DBInstanceIdentifier=db_identifier(inst.instance_id))[
        "DBSnapshots"
    ]
    assert [s["DBSnapshotIdentifier"] for s in snapshots] == [f"{db_identifier(inst.instance_id)}-final"]
    rds.deprovision(inst.ctx())  # already gone: success
    rds.close()
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "RDS instance" in logged
    for secret in (inst.outputs["master_password"], creds["password"], second.credentials["password"]):
        assert secret not in logged


def test_update_changes_class_and_storage_and_deletion_protection_guards_delete(
    aws_credentials: MotoServer, fault_proxy: FaultProxy, postgres_server, tmp_path
) -> None:
    inst = new_instance(fault_proxy, postgres_server, tmp_path, plan="dev")
    inst.parameters = {"deletion_protection": True}
    rds = RdsPostgresProvider(inst.settings)
    provision(rds, inst)
    with pytest.raises(PermanentError, match="has deletion protection on"):
        rds.deprovision(inst.ctx())

    inst.parameters = {"deletion_protection": False, "allocated_storage": 60}
    inst.plan_name = "standard"
    run = Run()
    result = until_done(
        lambda out: rds.update(replace(inst.ctx(previous_plan_name="dev"), outputs=out)),
        inst.outputs,
        run=run,
    )
    assert any("being modified" in w for w in run.waits)
    inst.outputs.update(result.outputs)
    db = aws_credentials.client("rds").describe_db_instances(
        DBInstanceIdentifier=db_identifier(inst.instance_id)
    )["DBInstances"][0]
    assert (db["DBInstanceClass"], db["AllocatedStorage"], db["DeletionProtection"]) == (
        "db.t4g.small",
        60,
        False,
    )

    inst.parameters = {"allocated_storage": 50}
    with pytest.raises(PermanentError, match="can only grow"):
        rds.update(inst.ctx())

    inst.plan_name = "dev"  # dev plan: no final snapshot
    until_done(lambda out: rds.deprovision(inst.ctx()), {})
    rds_admin = aws_credentials.client("rds")
    assert (
        rds_admin.describe_db_snapshots(DBInstanceIdentifier=db_identifier(inst.instance_id))["DBSnapshots"]
        == []
    )
    rds.close()


def test_failure_state_and_time_limit_fail_with_aws_reason(
    aws_credentials: MotoServer, fault_proxy: FaultProxy, postgres_server, tmp_path
) -> None:
    inst = new_instance(fault_proxy, postgres_server, tmp_path)
    rds = RdsPostgresProvider(inst.settings)
    fault_proxy.report_creating(1000)
    run = Run()

    def one_step() -> bool:  # one step at a time, never done
        with pytest.raises(TemporaryError):
            until_done(
                lambda out: rds.provision(replace(inst.ctx(), outputs=out)), inst.outputs, timeout=0, run=run
            )
        return bool(run.waits) and "now 'creating'" in run.waits[-1]

    wait_for(
        one_step, 30, interval=0, what="the provision to wait on 'creating'", detail=lambda: repr(run.waits)
    )
    inst.outputs["started_at"] = time.time() - 3601  # the plan's maximum_polling_duration has passed
    with pytest.raises(PermanentError, match="longer than the plan's limit of 3600 s"):
        rds.provision(inst.ctx())

    fault_proxy.report_creating(5, status="incompatible-parameters")
    with pytest.raises(PermanentError, match="is 'incompatible-parameters'"):
        rds.provision(inst.ctx())
    fault_proxy.reset()
    until_done(lambda out: rds.deprovision(inst.ctx()), {})
    rds.close()


def test_master_password_in_secrets_manager(
    aws_credentials: MotoServer, fault_proxy: FaultProxy, postgres_server, tmp_path
) -> None:
    inst = new_instance(fault_proxy, postgres_server, tmp_path, use_secrets_manager=True)
    rds = RdsPostgresProvider(inst.settings)
    provision(rds, inst)
    assert "master_password" not in inst.outputs and inst.outputs["master_secret_arn"].startswith(
        "arn:aws:secretsmanager:"
    )
    secrets = aws_credentials.client("secretsmanager")
    stored = json.loads(secrets.get_secret_value(SecretId=inst.outputs["master_secret_arn"])["SecretString"])
    assert stored["username"] == inst.outputs["master_username"]
    play_rds_creation(postgres_server, inst, stored["password"])
    creds = rds.bind(inst.binding("sm-binding")).credentials
    with psycopg.connect(creds["uri"], autocommit=True) as conn:
        assert conn.execute("SELECT session_user, current_user").fetchone() == (
            creds["username"],
            inst.outputs["database"] + "_owner",
        )
    rds.unbind(inst.binding("sm-binding"))
    until_done(lambda out: rds.deprovision(inst.ctx()), {})
    with pytest.raises(ClientError) as refused:
        secrets.get_secret_value(SecretId=inst.outputs["master_secret_arn"])
    assert (
        refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
    )  # deleted at once: no recovery window
    rds.close()


def test_a_new_process_resumes_a_provision_from_its_checkpoint(
    aws_credentials: MotoServer, fault_proxy: FaultProxy, postgres_server, tmp_path
) -> None:
    """What the engine does after a worker dies: a fresh provider, the checkpointed outputs."""
    inst = new_instance(fault_proxy, postgres_server, tmp_path)
    fault_proxy.report_creating(1000)
    first = RdsPostgresProvider(inst.settings)
    with pytest.raises(TemporaryError):
        until_done(lambda out: first.provision(replace(inst.ctx(), outputs=out)), inst.outputs, timeout=0.3)
    first.close()  # the worker is gone; only its checkpoint survives
    password = inst.outputs["master_password"]
    fault_proxy.reset()
    second = RdsPostgresProvider(inst.settings)
    provision(second, inst)
    assert inst.outputs["master_password"] == password
    assert fault_proxy.count("CreateDBInstance") == 0  # found the instance, did not ask again
    ours = [
        d
        for d in aws_credentials.client("rds").describe_db_instances()["DBInstances"]
        if {"Key": "moorage:instance-id", "Value": inst.instance_id} in d["TagList"]
    ]
    assert len(ours) == 1
    until_done(lambda out: second.deprovision(inst.ctx()), {})
    second.close()
