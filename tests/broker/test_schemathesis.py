"""Property-based tests of the running broker against the official OSB 2.17 API document.

Schemathesis generates requests from ``shared/osb/openapi.yaml`` (valid and invalid
bodies, odd ids, headers) and sends them over HTTP to a real broker. Every answer must
be a non-5xx with a body that matches the document's schema for its status code.
Status codes the document does not list are not checked: the spec itself allows some
(412 for an unsupported version, 413 for an oversized body).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.fixtures.broker import PASSWORD, RunningBroker, broker_settings, start_broker

OPENAPI = Path(__file__).resolve().parents[3] / "shared" / "osb" / "openapi.yaml"
schema = schemathesis.openapi.from_path(str(OPENAPI))
CASES: list[str] = []


@pytest.fixture(scope="module")
def live_broker(tmp_path_factory: pytest.TempPathFactory) -> RunningBroker:
    broker = start_broker(broker_settings(tmp_path_factory.mktemp("schemathesis")))
    yield broker
    broker.stop()
    Path(__file__).with_name(".schemathesis-cases").write_text(f"{len(CASES)}\n")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_broker_conforms_to_the_osb_document(case: schemathesis.Case, live_broker: RunningBroker) -> None:
    CASES.append(case.operation.label)
    headers = dict(case.headers or {})
    headers["X-Broker-API-Version"] = "2.17"
    headers.pop("X-Broker-API-Originating-Identity", None)
    case.headers = headers
    response = case.call(base_url=live_broker.url, auth=("moorage", PASSWORD))
    case.validate_response(
        response, checks=[not_a_server_error, response_schema_conformance, content_type_conformance]
    )
