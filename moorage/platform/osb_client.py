"""The platform side of OSB: a client for any broker, with the spec's platform duties.

Why its own module: the platform reaches every broker — its own included — only over
HTTP, exactly as Cloud Foundry would. The duties the spec puts on platforms live here
so nothing above has to remember them:

- headers on every request: ``X-Broker-API-Version: 2.17``, basic auth,
  ``X-Broker-API-Request-Identity``, and ``X-Broker-API-Originating-Identity`` carrying the
  user (platform ``moorage``); a ``context`` object with ``platform: moorage``;
- polling ``last_operation`` while honouring ``Retry-After`` and giving up after the plan's
  ``maximum_polling_duration`` (or our own limit), the operation then counting as failed;
- orphan mitigation: after a 5xx, a timeout or a failed async provision/bind, DELETE the
  resource (retried) so nothing is left behind at the broker; an accepted DELETE is
  polled within the same plan's limit only (the broker finishes it on its own); a 4xx is
  a refusal instead (``osb_errors.Refusal``): nothing exists at the broker to clean up;
- the catalog fetched with ``If-None-Match`` when the broker gave an ETag.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from moorage.errors import Error, NotFoundError
from moorage.platform.osb_errors import (
    BrokerError,
    OrphanLeft,
    Refusal,
    RefusedByBroker,
    RefusedConflict,
    RefusedParameters,
    RefusedRequest,
)

log = logging.getLogger(__name__)

API_VERSION = "2.17"
PLATFORM = "moorage"


@dataclass(frozen=True)
class BrokerCatalog:
    services: list[dict[str, Any]]
    etag: str | None = None

    def find(self, service: str, plan: str | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """An offering and plan by name or id; NotFoundError listing what exists."""
        for offering in self.services:
            if service in (offering["name"], offering["id"]):
                if plan is None:
                    return offering, None
                for p in offering["plans"]:
                    if plan in (p["name"], p["id"]):
                        return offering, p
                names = ", ".join(p["name"] for p in offering["plans"])
                raise NotFoundError(f"service {offering['name']} has no plan {plan!r}; plans: {names}")
        names = ", ".join(sorted(o["name"] for o in self.services))
        raise NotFoundError(f"no service {service!r} in the marketplace; services: {names}")


@dataclass
class OperationResult:
    state: str
    description: str = ""
    body: dict[str, Any] = field(default_factory=dict)


class OsbClient:
    """One broker: ``provision``, ``bind``, … each returning only when the work is done."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        timeout: float = 60.0,
        max_polling_seconds: float = 600.0,
        min_poll_interval: float = 0.2,
        orphan_attempts: int = 3,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url,
            auth=(username, password),
            timeout=timeout,
            headers={"X-Broker-API-Version": API_VERSION},
            transport=transport,
        )
        self.max_polling_seconds = max_polling_seconds
        self.min_poll_interval = min_poll_interval
        self.orphan_attempts = orphan_attempts
        self._sleep = sleep
        #: Told each ``in progress`` description while polling (for progress lines).
        self.on_progress: Callable[[str], None] | None = None

    def close(self) -> None:
        self.http.close()

    # -- requests -----------------------------------------------------------------------

    def _request(self, method: str, path: str, user: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"X-Broker-API-Request-Identity": str(uuid.uuid4())}
        if user:
            identity = base64.b64encode(json.dumps({"user_id": user}).encode()).decode()
            headers["X-Broker-API-Originating-Identity"] = f"{PLATFORM} {identity}"
        headers.update(kwargs.pop("headers", {}))
        try:
            return self.http.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise BrokerError(f"the broker at {self.url} did not answer in time") from None
        except httpx.TransportError as exc:
            raise BrokerError(f"the broker at {self.url} cannot be reached: {exc}") from None

    def catalog(self, etag: str | None = None) -> BrokerCatalog | None:
        """The catalog; None when ``etag`` still matches (304 Not Modified)."""
        headers = {"If-None-Match": etag} if etag else {}
        resp = self._request("GET", "/v2/catalog", headers=headers)
        if resp.status_code == 304:
            return None
        body = self._json(resp, "fetching the catalog")
        if resp.status_code != 200 or not isinstance(body.get("services"), list):
            raise BrokerError(
                f"the broker's catalog could not be read: {_describe(resp, body)}", resp.status_code
            )
        return BrokerCatalog(body["services"], resp.headers.get("ETag"))

    def provision(
        self,
        instance_id: str,
        offering: Mapping[str, Any],
        plan: Mapping[str, Any],
        parameters: Mapping[str, Any],
        context: Mapping[str, Any],
        user: str | None = None,
    ) -> OperationResult:
        body = {
            "service_id": offering["id"],
            "plan_id": plan["id"],
            "organization_guid": PLATFORM,
            "space_guid": context.get("app_name") or context.get("space_guid") or PLATFORM,
            "parameters": dict(parameters),
            "context": {"platform": PLATFORM, **context},
        }
        if "maintenance_info" in plan:
            body["maintenance_info"] = plan["maintenance_info"]
        path = f"/v2/service_instances/{instance_id}"
        query = {"service_id": offering["id"], "plan_id": plan["id"]}
        resp, result = self._put(path, body, user, "provisioning", plan, query)
        if result.state != "succeeded":
            raise self._failed(
                path, query, plan, f"provisioning failed: {result.description or 'no reason given'}"
            )
        return result

    def update(
        self,
        instance_id: str,
        offering: Mapping[str, Any],
        plan: Mapping[str, Any],
        parameters: Mapping[str, Any] | None,
        previous_plan_id: str,
        user: str | None = None,
    ) -> OperationResult:
        body: dict[str, Any] = {
            "service_id": offering["id"],
            "plan_id": plan["id"],
            "previous_values": {"plan_id": previous_plan_id},
            "context": {"platform": PLATFORM},
        }
        if parameters is not None:
            body["parameters"] = dict(parameters)
        path = f"/v2/service_instances/{instance_id}"
        resp = self._request("PATCH", path, user, json=body, params={"accepts_incomplete": "true"})
        query = {"service_id": offering["id"], "plan_id": previous_plan_id}
        result = self._finish(resp, path, "updating", plan, query)
        if result.state != "succeeded":
            raise BrokerError(f"the update failed: {result.description or 'no reason given'}")
        return result

    def deprovision(
        self, instance_id: str, service_id: str, plan: Mapping[str, Any], user: str | None = None
    ) -> OperationResult:
        return self._delete(f"/v2/service_instances/{instance_id}", service_id, plan, "deprovisioning", user)

    def bind(
        self,
        instance_id: str,
        binding_id: str,
        offering: Mapping[str, Any],
        plan: Mapping[str, Any],
        parameters: Mapping[str, Any],
        context: Mapping[str, Any],
        app_guid: str,
        user: str | None = None,
    ) -> OperationResult:
        """Bind and return the credentials (fetched after an async bind) in ``body``."""
        path = f"/v2/service_instances/{instance_id}/service_bindings/{binding_id}"
        query = {"service_id": offering["id"], "plan_id": plan["id"]}
        body = {
            "service_id": offering["id"],
            "plan_id": plan["id"],
            "bind_resource": {"app_guid": app_guid},
            "parameters": dict(parameters),
            "context": {"platform": PLATFORM, **context},
        }
        resp, result = self._put(path, body, user, "binding", plan, query)
        if result.state != "succeeded":
            raise self._failed(
                path, query, plan, f"binding failed: {result.description or 'no reason given'}"
            )
        if resp.status_code == 202 or "credentials" not in result.body:
            fetched = self._request("GET", path, user)
            result.body = self._json(fetched, "fetching the binding")
            if fetched.status_code != 200:
                raise self._failed(
                    path,
                    query,
                    plan,
                    f"the new binding could not be fetched: {_describe(fetched, result.body)}",
                )
        if not isinstance(result.body.get("credentials"), dict):
            raise self._failed(path, query, plan, "the broker returned a binding without credentials")
        return result

    def unbind(
        self,
        instance_id: str,
        binding_id: str,
        service_id: str,
        plan: Mapping[str, Any],
        user: str | None = None,
    ) -> OperationResult:
        path = f"/v2/service_instances/{instance_id}/service_bindings/{binding_id}"
        return self._delete(path, service_id, plan, "unbinding", user)

    def _delete(
        self, path: str, service_id: str, plan: Mapping[str, Any], doing: str, user: str | None
    ) -> OperationResult:
        """DELETE an instance or binding and wait for the end; 410 counts as done."""
        query = {"service_id": service_id, "plan_id": plan["id"]}
        resp = self._request("DELETE", path, user, params={**query, "accepts_incomplete": "true"})
        if resp.status_code == 410:
            return OperationResult("succeeded", "already gone")
        result = self._finish(resp, path, doing, plan, query)
        if result.state != "succeeded":
            raise BrokerError(f"{doing} failed: {result.description or 'no reason given'}")
        return result

    # -- answers, polling, orphan mitigation --------------------------------------------------

    def _put(
        self,
        path: str,
        body: Mapping[str, Any],
        user: str | None,
        doing: str,
        plan: Mapping[str, Any],
        query: Mapping[str, str],
    ) -> tuple[httpx.Response, OperationResult]:
        """PUT an instance or binding and wait for the end; orphan mitigation after a failure.

        A refusal (4xx) created nothing, so there is nothing to delete; after a time-out, a
        5xx or a broken answer the broker may hold a half-made resource, and it is deleted.
        """
        try:
            resp = self._request("PUT", path, user, json=body, params={"accepts_incomplete": "true"})
            return resp, self._finish(resp, path, doing, plan, query)
        except Refusal:
            raise
        except BrokerError as exc:
            if not self._mitigate(path, query, plan):
                raise OrphanLeft(
                    f"{exc.message}; cleaning up at the broker failed too, so Moorage keeps the record",
                    status=exc.status,
                    error=exc.error,
                ) from None
            raise

    def _finish(
        self, resp: httpx.Response, path: str, doing: str, plan: Mapping[str, Any], query: Mapping[str, str]
    ) -> OperationResult:
        try:
            body = self._json(resp, doing)
        except BrokerError:
            if not 400 <= resp.status_code < 500:
                raise
            body = {}  # a refusal all the same, from a proxy or a broker that says no more
        if resp.status_code in (200, 201):
            return OperationResult("succeeded", body=body)
        if resp.status_code == 202:
            return self._poll(path, body.get("operation"), doing, plan, query)
        status, error = resp.status_code, body.get("error")
        if status == 409:
            raise RefusedConflict(
                f"{doing} conflicts with an existing resource at the broker: {_describe(resp, body)}",
                status=status,
                error=error,
            )
        if status == 400:
            raise RefusedParameters(
                f"the broker refused the request: {_describe(resp, body)}", status=status, error=error
            )
        if status == 422:
            raise RefusedRequest(f"{doing} was refused: {_describe(resp, body)}", status=status, error=error)
        if 400 <= status < 500:
            raise RefusedByBroker(
                f"{doing} was refused at the broker: {_describe(resp, body)}", status, error
            )
        raise BrokerError(
            f"{doing} failed at the broker: {_describe(resp, body)}", resp.status_code, body.get("error")
        )

    def _poll(
        self, path: str, operation: str | None, doing: str, plan: Mapping[str, Any], query: Mapping[str, str]
    ) -> OperationResult:
        limit = float(plan.get("maximum_polling_duration") or self.max_polling_seconds)
        limit = min(limit, self.max_polling_seconds)
        deadline = time.monotonic() + limit
        params = dict(query)
        if operation:
            params["operation"] = operation
        while True:
            resp = self._request("GET", f"{path}/last_operation", params=params)
            if resp.status_code == 410:
                return OperationResult("succeeded", "gone")
            body = self._json(resp, f"polling {doing}")
            if resp.status_code != 200:
                raise BrokerError(f"polling {doing} failed: {_describe(resp, body)}", resp.status_code)
            state = body.get("state")
            if state in ("succeeded", "failed"):
                return OperationResult(state, body.get("description", ""), body)
            if self.on_progress is not None and body.get("description"):
                self.on_progress(str(body["description"]))
            if time.monotonic() >= deadline:
                return OperationResult(
                    "failed", f"{doing} did not finish within {limit:.0f} s (the plan's polling limit)"
                )
            remaining = max(deadline - time.monotonic(), 0.0)
            self._sleep(min(max(self.min_poll_interval, _retry_after(resp)), remaining))

    def _mitigate(self, path: str, query: Mapping[str, str], plan: Mapping[str, Any]) -> bool:
        """Orphan mitigation: DELETE what may exist at the broker, retried, never raising;
        False when every attempt failed (the broker may keep an orphan).

        An accepted (202) DELETE is polled only within the same plan's polling limit: the
        broker finishes it on its own, and the caller is waiting to record the failure.
        """
        for attempt in range(self.orphan_attempts):
            try:
                resp = self._request("DELETE", path, params={**query, "accepts_incomplete": "true"})
                if resp.status_code in (200, 410):
                    return True
                if resp.status_code == 202:
                    operation = self._json(resp, "cleaning up").get("operation")
                    result = self._poll(path, operation, "cleaning up", plan, query)
                    if result.state != "succeeded":
                        log.warning(
                            "orphan clean-up of %s%s accepted but not finished: %s",
                            self.url,
                            path,
                            result.description or "no reason given",
                        )
                    return True
            except Error as exc:
                log.warning("orphan mitigation attempt %d failed: %s", attempt + 1, exc)
            self._sleep(min(2**attempt * self.min_poll_interval, 5.0))
        log.error("orphan mitigation gave up on %s%s; the broker may keep an orphan", self.url, path)
        return False

    def _failed(
        self, path: str, query: Mapping[str, str], plan: Mapping[str, Any], message: str
    ) -> BrokerError:
        """The error of a failed create or bind, after cleaning up at the broker."""
        if self._mitigate(path, query, plan):
            return BrokerError(message)
        return OrphanLeft(f"{message}; cleaning up at the broker failed too, so Moorage keeps the record")

    @staticmethod
    def _json(resp: httpx.Response, doing: str) -> dict[str, Any]:
        try:
            body = resp.json() if resp.content else {}
        except ValueError:
            raise BrokerError(
                f"the broker answered {doing} with something that is not JSON", resp.status_code
            ) from None
        return body if isinstance(body, dict) else {}


def _retry_after(resp: httpx.Response) -> float:
    """The broker's Retry-After in seconds; absent, odd or non-finite values count as 0."""
    try:
        seconds = float(resp.headers.get("Retry-After", "0"))
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def _describe(resp: httpx.Response, body: Mapping[str, Any]) -> str:
    text = body.get("description") or body.get("error") or resp.reason_phrase
    return f"{resp.status_code} {text}"
