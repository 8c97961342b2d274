"""SIGKILL of the broker (gunicorn, with its worker threads) while an RDS instance is being created.

The broker runs as ``moorage broker`` in a subprocess against the moto server (through the
fault proxy, which keeps answering ``creating``). Once the provider is waiting for the
instance, the whole process group is killed; a new broker on the same state database
resumes the operation from its checkpoint: it does not create a second instance, and the
operation ends ``succeeded`` when RDS reports the instance available.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.aws.fault_proxy import FaultProxy
from tests.fixtures.aws import REGION, MotoServer
from tests.fixtures.broker import (
    MAIN_CATALOG,
    BrokerProcess,
    OsbClient,
    broker_settings,
    new_id,
    settings_env,
)
from tests.polling import wait_for


@pytest.mark.slow
def test_sigkill_during_rds_provision_is_resumed_after_restart(
    aws_credentials: MotoServer, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    text = (MAIN_CATALOG / "aws-rds-postgresql.yaml").read_text()
    (catalog / "aws-rds-postgresql.yaml").write_text(re.sub(r"poll_seconds: \d+", "poll_seconds: 0.5", text))
    settings = broker_settings(tmp_path / "state", [catalog])
    env = settings_env(settings)
    env.update(MOORAGE_AWS_REGION=REGION, MOORAGE_AWS_ENDPOINT_URL=fault_proxy.url)
    process = BrokerProcess(settings, env)
    process.start()
    osb = OsbClient(process.url)
    try:
        service_id, plan_id = osb.ids("aws-rds-postgresql", "dev")
        instance_id = new_id()
        fault_proxy.report_creating(12)
        response = osb.provision(instance_id, service_id, plan_id, {})
        assert response.status_code == 202, response.text
        operation = response.json()["operation"]
        wait_for(
            lambda: fault_proxy.count("DescribeDBInstances") >= 2,
            30,
            what="the provider to wait for the instance",
        )
        process.kill()
        with pytest.raises(httpx.TransportError):  # really down: nothing answers any more
            osb.last_operation(instance_id)
        process.start()
        final = osb.wait(instance_id, operation=operation, timeout=60)
        assert final.json()["state"] == "succeeded", final.json()
        assert fault_proxy.count("CreateDBInstance") == 1, "resuming must not create a second instance"
        assert fault_proxy.count("DescribeDBInstances") > 12
    finally:
        osb.close()
        process.stop()
        shutil.rmtree(tmp_path / "state", ignore_errors=True)
