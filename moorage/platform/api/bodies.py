"""Reading JSON request bodies, with a clear error when they are not what a route needs."""

from __future__ import annotations

from typing import Any

from flask import request

from moorage.errors import InvalidParametersError


def json_object(optional: bool = False) -> dict[str, Any]:
    if optional and not request.get_data(cache=True):
        return {}
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # json's recursion limit: hundreds of nested [ or {
        raise InvalidParametersError(
            "the request body is nested too deeply; send a flat JSON object"
        ) from None
    if not isinstance(data, dict):
        raise InvalidParametersError(
            "the request body must be a JSON object (Content-Type: application/json)"
        )
    return data


class Collector:
    """A progress callback that keeps the lines, for routes that answer in one piece."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
