"""A user's parameters checked against the JSON Schema a broker published, before anything is recorded.

Why the platform checks when the broker checks again: the broker's refusal comes after
the platform recorded the instance or the binding; checking first gives bad input its
error at once, and nothing is written anywhere. The check is the broker's own
(:func:`moorage.catalog.parameters.check`), so the message is the same whoever refuses.

What is left to the broker: a plan that publishes no schema (schemas are optional in
OSB, and many brokers take parameters without one), and a schema the platform cannot
use — not a valid schema, or one with a ``$ref`` to another document: the controller
never fetches what a broker's catalog points at.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import jsonschema
import referencing
import referencing.exceptions
from jsonschema.exceptions import SchemaError

from moorage.catalog.parameters import check as check_against

log = logging.getLogger(__name__)


def published_schema(plan: Mapping[str, Any], resource: str, action: str) -> Mapping[str, Any] | None:
    """``plan.schemas.<resource>.<action>.parameters`` from a catalog; None when absent or odd."""
    node: Any = plan.get("schemas")
    for key in (resource, action, "parameters"):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else None


def check(plan: Mapping[str, Any], resource: str, action: str, parameters: Mapping[str, Any]) -> None:
    """InvalidParametersError when ``parameters`` break the plan's published schema."""
    schema = published_schema(plan, resource, action)
    if schema is None:
        return
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        # An empty registry: references inside the schema resolve, others are never fetched.
        check_against(schema, parameters, cls(schema, registry=referencing.Registry()))
    except (SchemaError, referencing.exceptions.Unresolvable) as exc:
        log.warning(
            "a plan's published schema cannot be used; the broker checks the parameters alone: %s",
            str(exc).splitlines()[0],
            extra={"plan": plan.get("id")},
        )
