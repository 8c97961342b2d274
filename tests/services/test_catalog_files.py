"""The local services' offering files load, and agree with what their providers accept."""

from __future__ import annotations

import pytest

from moorage.catalog.loader import load_catalog
from moorage.catalog.model import Offering
from moorage.catalog.parameters import validate
from moorage.errors import InvalidParametersError
from moorage.providers.postgres import ALLOWED_EXTENSIONS
from tests.services.conftest import ROOT


def test_the_offering_files_load_with_the_rest_of_the_catalog() -> None:
    catalog = load_catalog([ROOT / "catalog", ROOT / "tests" / "catalog"])
    names = {o.name: o for o in catalog.offerings}
    assert {"postgresql", "redis", "noop"} <= set(names)
    assert [p.name for p in names["postgresql"].plans] == ["shared-small", "shared-large"]
    assert [p.asynchronous for p in names["noop"].plans] == [False, True, False]
    assert names["noop"].plan_named("no-maintenance").maintenance_version is None
    assert names["noop"].plan_named("async").maximum_polling_duration == 60


def test_postgresql_schema_offers_exactly_the_allowed_extensions(postgresql_offering: Offering) -> None:
    for plan in postgresql_offering.plans:
        schema = plan.schema("service_instance", "create")
        assert set(schema["properties"]["extensions"]["items"]["enum"]) == ALLOWED_EXTENSIONS
        assert schema["properties"]["connection_limit"]["maximum"] == plan.config["connection_limit"]


def test_examples_are_valid_and_bad_parameters_are_refused(
    postgresql_offering: Offering, redis_offering: Offering, noop_offering: Offering
) -> None:
    for offering in (postgresql_offering, redis_offering, noop_offering):
        for example in offering.examples:
            validate(
                offering.plan_named(example["plan"]), "service_instance", "create", example["parameters"]
            )
    small = postgresql_offering.plan_named("shared-small")
    with pytest.raises(InvalidParametersError, match="connection_limit"):
        validate(small, "service_instance", "create", {"connection_limit": 21})
    with pytest.raises(InvalidParametersError, match="extensions"):
        validate(small, "service_instance", "create", {"extensions": ["plpython3u"]})
