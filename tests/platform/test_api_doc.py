"""docs/api.md lists every route of the controller (the 404 message points there).

Only the routes matter, so the controller runs on ``InertRuntime``.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.fixtures.platform import Controller

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _documented_paths(rule: str) -> list[str]:
    """``/<app>.git/<any('a', 'b'):service>`` → ``/<app>.git/a``, ``/<app>.git/b``."""
    choice = re.search(r"<any\(([^)]*)\):\w+>", rule)
    if not choice:
        return [rule]
    options = re.findall(r"'([^']+)'", choice.group(1))
    return [rule.replace(choice.group(0), option) for option in options]


def test_every_route_is_documented(controller: Controller) -> None:
    text = DOC.read_text()
    rules = [r.rule for r in controller.flask_app.url_map.iter_rules() if r.endpoint != "static"]
    assert len(rules) > 30
    missing = [p for rule in rules for p in _documented_paths(rule) if f"`{p}`" not in text]
    assert missing == []


def test_an_unknown_route_points_to_the_api_reference(controller: Controller) -> None:
    r = controller.user("alice").get("/v2/no-such-thing")
    assert r.status_code == 404
    assert "docs/api.md" in r.json()["message"]
