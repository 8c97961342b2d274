"""The platform's OSB client against a real broker: the platform duties of the spec.

Polling with Retry-After, the plan's polling limit, orphan mitigation after a failed
bind or provision, credentials fetched after an async bind, a broker that is down.
"""

from __future__ import annotations

import time

import httpx
import pytest

from moorage.embedded.ports import free_port
from moorage.errors import NotFoundError
from moorage.platform.osb_client import OsbClient
from moorage.platform.osb_errors import BrokerError
from tests.fixtures.broker import PASSWORD, RunningBroker, new_id


@pytest.fixture
def client(broker: RunningBroker) -> OsbClient:
    c = OsbClient(
        broker.url, "moorage", PASSWORD, min_poll_interval=0.05, sleep=lambda s: time.sleep(min(s, 0.1))
    )
    yield c
    c.close()


def test_lifecycle_sync_and_async(client: OsbClient, broker: RunningBroker) -> None:
    catalog = client.catalog()
    for plan_name in ("sync", "async"):
        offering, plan = catalog.find("noop", plan_name)
        iid, bid = new_id(), new_id()
        assert (
            client.provision(iid, offering, plan, {"steps": 2}, {"app_name": "web"}, user="alice").state
            == "succeeded"
        )
        bound = client.bind(iid, bid, offering, plan, {}, {"app_name": "web"}, "app-guid", user="alice")
        assert bound.body["credentials"]["password"]
        client.unbind(iid, bid, offering["id"], plan, user="alice")
        client.deprovision(iid, offering["id"], plan, user="alice")
        assert broker.client.last_operation(iid).status_code == 410


def test_failed_bind_is_cleaned_up_at_the_broker(client: OsbClient, broker: RunningBroker) -> None:
    offering, plan = client.catalog().find("noop", "sync")
    iid, bid = new_id(), new_id()
    client.provision(iid, offering, plan, {}, {})
    with pytest.raises(BrokerError, match="refused by test"):
        client.bind(iid, bid, offering, plan, {"fail": "refused by test"}, {}, "app")
    # Orphan mitigation deleted the half-made binding: the broker no longer knows it.
    assert broker.client.unbind(iid, bid, offering["id"], plan["id"]).status_code == 410


def test_polling_limit_fails_the_operation_and_deletes_the_orphan(broker: RunningBroker) -> None:
    client = OsbClient(
        broker.url,
        "moorage",
        PASSWORD,
        max_polling_seconds=0.5,
        min_poll_interval=0.05,
        sleep=lambda s: time.sleep(min(s, 0.1)),
    )
    offering, plan = client.catalog().find("noop", "async")
    iid = new_id()
    with pytest.raises(BrokerError, match="did not finish within"):
        client.provision(iid, offering, plan, {"steps": 1000, "step_seconds": 0.05}, {})
    client.close()
    assert broker.client.wait(iid).status_code == 410


def test_a_broker_that_is_down_fails_fast_with_a_readable_error() -> None:
    client = OsbClient(f"http://127.0.0.1:{free_port()}", "u", "p", timeout=2)
    started = time.monotonic()
    with pytest.raises(BrokerError, match="cannot be reached"):
        client.catalog()
    assert time.monotonic() - started < 2


def test_catalog_find_names_what_exists(client: OsbClient) -> None:
    catalog = client.catalog()
    with pytest.raises(NotFoundError, match="services: noop"):
        catalog.find("nosuch")
    with pytest.raises(NotFoundError, match="plans: sync"):
        catalog.find("noop", "gold")


def test_requests_carry_the_platform_headers(broker: RunningBroker) -> None:
    seen: list[httpx.Request] = []
    inner = httpx.HTTPTransport()

    class Spy(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return inner.handle_request(request)

    client = OsbClient(broker.url, "moorage", PASSWORD, transport=Spy())
    offering, plan = client.catalog().find("noop", "sync")
    client.provision(new_id(), offering, plan, {}, {"app_name": "web"}, user="alice")
    put = next(r for r in seen if r.method == "PUT")
    assert put.headers["X-Broker-API-Version"] == "2.17"
    assert put.headers["X-Broker-API-Originating-Identity"].startswith("moorage ")
    assert put.headers["X-Broker-API-Request-Identity"]
    assert b'"platform": "moorage"' in put.content or b'"platform":"moorage"' in put.content


def test_polling_waits_as_long_as_retry_after_says(broker: RunningBroker) -> None:
    asked: list[float] = []

    def sleep(seconds: float) -> None:  # records what the client asked for, waits a little
        asked.append(seconds)
        time.sleep(min(seconds, 0.1))

    client = OsbClient(broker.url, "moorage", PASSWORD, min_poll_interval=0.05, sleep=sleep)
    offering, plan = client.catalog().find("noop", "async")
    result = client.provision(new_id(), offering, plan, {"steps": 2, "step_seconds": 1.5}, {})
    client.close()
    assert result.state == "succeeded"
    # The broker answers Retry-After >= 1 s while a step is 1.5 s away; the client's own
    # minimum is 0.05 s, so shorter waits would mean it ignored the header.
    assert asked and min(asked) >= 1, asked


def test_an_unchanged_catalog_is_revalidated_with_its_etag(client: OsbClient) -> None:
    first = client.catalog()
    assert first is not None and first.etag
    assert client.catalog(first.etag) is None, "304 Not Modified: nothing to download again"
    again = client.catalog('"another-etag"')
    assert again is not None and again.services == first.services
