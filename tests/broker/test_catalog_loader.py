"""A bad offering file stops start-up with a message naming the file, the field and the problem.

Each case starts from the real no-op offering, breaks one thing, and loads the folder the
way the broker does at start-up.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from moorage.broker.app import BrokerRuntime
from moorage.catalog.loader import load_catalog
from moorage.errors import ConfigurationError
from moorage.settings import Settings
from tests.fixtures.broker import MAIN_CATALOG, TEST_CATALOG

NOOP = yaml.safe_load((TEST_CATALOG / "noop.yaml").read_text())


def _write(folder: Path, name: str, data: Any) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(NOOP)
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        (lambda d: d.pop("bindable"), "bindable", "Missing data"),
        (lambda d: d.update(id="not-a-uuid"), "id", "UUID"),
        (lambda d: d.update(provider="mainframe"), "provider", "unknown provider 'mainframe'"),
        (lambda d: d.update(plans=[]), "plans", "at least one plan"),
        (
            lambda d: d["plans"][0].update(maintenance_info={"version": "v1"}),
            "plans.0.maintenance_info.version",
            "SemVer",
        ),
        (
            lambda d: d["plans"][0]["schemas"]["service_instance"]["create"]["parameters"].pop("$schema"),
            "plans.0.schemas.service_instance.create.parameters",
            "$schema",
        ),
        (
            lambda d: d["plans"][0]["schemas"]["service_instance"]["create"]["parameters"].update(
                type="objekt"
            ),
            "plans.0.schemas.service_instance.create.parameters",
            "not a valid JSON Schema",
        ),
        (lambda d: d["plans"][1].update(name=d["plans"][0]["name"]), "plans", "unique"),
        (lambda d: d.update(colour="blue"), "colour", "Unknown field"),
        (lambda d: d["examples"][0].update(plan="gold"), "examples", "unknown plan 'gold'"),
    ],
)
def test_a_broken_offering_names_file_field_and_problem(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], field: str, problem: str
) -> None:
    path = _write(tmp_path / "catalog", "broken.yaml", _broken(change))
    with pytest.raises(ConfigurationError) as err:
        load_catalog([path.parent])
    message = str(err.value)
    assert str(path) in message and field in message and problem in message, message


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    folder = tmp_path / "catalog"
    _write(folder, "a.yaml", "id: [unclosed")
    with pytest.raises(ConfigurationError, match="a.yaml: not valid YAML"):
        load_catalog([folder])
    (folder / "a.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigurationError, match="a.yaml: an offering file must hold a mapping"):
        load_catalog([folder])


def test_duplicate_ids_and_names_across_files_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "catalog"
    _write(folder, "a.yaml", NOOP)
    _write(folder, "b.yaml", _broken(lambda d: d.update(id="00000000-0000-4000-8000-000000000001")))
    with pytest.raises(ConfigurationError, match="offering name 'noop' is already used by .*a.yaml"):
        load_catalog([folder])
    _write(folder, "b.yaml", _broken(lambda d: d.update(name="noop-two")))
    with pytest.raises(ConfigurationError, match="b.yaml: offering id .* is already used by .*a.yaml"):
        load_catalog([folder])


def test_missing_or_empty_catalog_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_catalog([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match="the catalog is empty"):
        load_catalog([tmp_path / "empty"])


def test_the_shipped_catalog_and_several_folders_load(tmp_path: Path) -> None:
    catalog = load_catalog([MAIN_CATALOG, TEST_CATALOG])
    names = {o.name for o in catalog.offerings}
    assert {"postgresql", "redis", "aws-s3", "aws-sqs", "aws-rds-postgresql", "noop"} <= names


def test_broker_start_up_stops_on_a_bad_catalog(tmp_path: Path) -> None:
    _write(tmp_path / "catalog", "broken.yaml", _broken(lambda d: d.pop("plans")))
    settings = Settings(data_dir=tmp_path / "data", catalog_dir=str(tmp_path / "catalog"))
    with pytest.raises(ConfigurationError, match="broken.yaml: plans: Missing data"):
        BrokerRuntime.start(settings)
    assert not (tmp_path / "data" / "moorage.db").exists(), "nothing is written before the catalog is valid"
