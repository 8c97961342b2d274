"""Validating user parameters against a plan's JSON Schema, and merging defaults.

Why before anything happens: the OSB spec asks brokers to validate ``parameters``, and
our rule is that bad input changes nothing. So the broker calls :func:`validate` before
it writes a row; the error names the offending parameter and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from moorage.catalog.model import Plan
from moorage.errors import InvalidParametersError

#: Compiled validators by schema identity; catalog schemas are immutable after loading,
#: and the schema is kept in the value so its id cannot be reused.
_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any]] = {}


def _validator_for(schema: Mapping[str, Any]) -> Any:
    entry = _VALIDATORS.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = _VALIDATORS[id(schema)] = (schema, jsonschema.validators.validator_for(schema)(schema))
    return entry[1]


def validate(plan: Plan, resource: str, action: str, parameters: Any) -> dict[str, Any]:
    """Check ``parameters`` for ``service_instance.create`` etc.; return them with defaults.

    A plan without a schema for the action accepts no parameters at all: anything given
    would otherwise be silently ignored.
    """
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise InvalidParametersError("parameters must be a JSON object")
    schema = plan.schema(resource, action)
    if schema is None:
        if parameters:
            raise InvalidParametersError(
                f"plan {plan.name!r} takes no parameters for {resource.replace('_', ' ')} {action}; "
                f"remove {', '.join(sorted(parameters))}"
            )
        return {}
    check(schema, parameters, _validator_for(schema))
    return with_defaults(schema, parameters)


def check(schema: Mapping[str, Any], parameters: Mapping[str, Any], validator: Any = None) -> None:
    """InvalidParametersError naming the offending parameter and what was expected.

    The platform checks against the schema a broker published with this same function,
    so a user sees the same message whether the platform or the broker refuses.
    """
    if validator is None:
        validator = jsonschema.validators.validator_for(schema)(schema)
    error = best_match(validator.iter_errors(parameters))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties":
            known = sorted((schema.get("properties") or {}).keys())
            raise InvalidParametersError(
                f"invalid parameters: {error.message}; allowed parameters are: {', '.join(known) or 'none'}"
            )
        prefix = f"invalid parameter {where!r}" if where else "invalid parameters"
        raise InvalidParametersError(f"{prefix}: {error.message}")


def with_defaults(schema: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level property defaults from the schema, overridden by what the user gave."""
    merged = {
        name: prop["default"]
        for name, prop in (schema.get("properties") or {}).items()
        if isinstance(prop, Mapping) and "default" in prop
    }
    merged.update(parameters)
    return merged
