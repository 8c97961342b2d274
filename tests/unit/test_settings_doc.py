"""Every ``MOORAGE_*`` variable is documented, and a misspelt one is refused with a hint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from moorage.errors import ConfigurationError
from moorage.settings import _GROUPS, Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def _variables() -> list[str]:
    names = [f"MOORAGE_{f.name.upper()}" for f in dataclasses.fields(Settings) if f.name not in _GROUPS]
    for group, cls in _GROUPS.items():
        names += [f"MOORAGE_{group.upper()}_{f.name.upper()}" for f in dataclasses.fields(cls)]
    return names


def test_docs_settings_lists_every_variable() -> None:
    text = DOC.read_text()
    assert [name for name in _variables() if f"`{name}`" not in text] == []


def test_a_misspelt_setting_is_refused_with_the_likely_name_and_where_the_list_is() -> None:
    with pytest.raises(ConfigurationError) as failure:
        Settings.from_env({"MOORAGE_BROKER_PROT": "6000"})
    message = str(failure.value)
    assert "MOORAGE_BROKER_PROT (did you mean MOORAGE_BROKER_PORT?)" in message
    assert "docs/settings.md" in message
