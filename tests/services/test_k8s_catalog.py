"""The in-cluster offerings' files agree with what their providers do."""

from __future__ import annotations

import pytest

from moorage.catalog.loader import load_catalog
from moorage.catalog.parameters import validate
from moorage.catalog.registry import load_provider_class
from moorage.errors import InvalidParametersError
from moorage.providers.k8s_workload import instance_label, names_for
from tests.services.conftest import ROOT


@pytest.mark.parametrize("name", ["k8s-postgresql", "k8s-redis"])
def test_each_plan_names_its_image_and_its_version_is_the_image_version(name: str) -> None:
    offering = next(o for o in load_catalog([ROOT / "catalog"]).offerings if o.name == name)
    load_provider_class(offering.provider)
    for plan in offering.plans:
        tag = offering.plan_config(plan)["image"].rsplit(":", 1)[1]
        # SemVer (OSB) of the image's tag: "16.4" is 16.4.0, "7.2.5" is itself
        assert plan.maintenance_version in (tag, f"{tag}.0"), (plan.name, tag)
        schema = plan.schema("service_instance", "create")["properties"]["storage_gb"]
        assert schema["default"] == schema["minimum"] == offering.plan_config(plan)["storage_gb"]
        with pytest.raises(InvalidParametersError, match="storage_gb"):
            validate(plan, "service_instance", "create", {"storage_gb": schema["minimum"] - 1})
        for example in offering.examples:
            validate(
                offering.plan_named(example["plan"]), "service_instance", "create", example["parameters"]
            )


def test_names_and_labels_are_valid_for_any_instance_id() -> None:
    names = names_for("postgresql", "any id / with spaces", "services")
    assert names.base.startswith("moorage-postgresql-") and len(names.base) == len("moorage-postgresql-") + 12
    assert names.host == f"{names.base}.services.svc.cluster.local"
    assert instance_label("0f1e2d3c-aaaa-bbbb-cccc-123456789012") == "0f1e2d3c-aaaa-bbbb-cccc-123456789012"
    hashed = instance_label("any id / with spaces")
    assert hashed.startswith("h-") and len(hashed) <= 63 and hashed == instance_label("any id / with spaces")
