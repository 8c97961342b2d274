"""Reading ``catalog/*.yaml`` into a validated :class:`~moorage.catalog.model.Catalog`.

Why marshmallow and a strict schema: the catalog is data an operator edits by hand, and
a mistake there (a missing plan id, a schema without ``$schema``, a duplicate name) must
stop start-up with a message naming the file, the field and the problem, rather than
surface later as a confusing OSB answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from moorage.catalog.model import Catalog, Offering, Plan
from moorage.catalog.registry import PROVIDERS
from moorage.errors import ConfigurationError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
MAX_SCHEMA_BYTES = 64 * 1024


def _check_parameters_schema(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValidationError("must be a mapping (a JSON Schema)")
    if "$schema" not in value:
        raise ValidationError("a parameters schema must declare $schema (OSB requires it)")
    if len(yaml.safe_dump(value)) > MAX_SCHEMA_BYTES:
        raise ValidationError("a parameters schema may be at most 64 kB")
    if _has_external_ref(value):
        raise ValidationError("external $ref is not allowed in a parameters schema")
    try:
        jsonschema.validators.validator_for(value).check_schema(value)
    except jsonschema.SchemaError as exc:
        raise ValidationError(f"not a valid JSON Schema: {exc.message}") from None


def _has_external_ref(node: Any) -> bool:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return True
        return any(_has_external_ref(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_external_ref(v) for v in node)
    return False


class ActionSchema(Schema):
    class Meta:
        unknown = RAISE

    parameters = fields.Dict(required=True, validate=_check_parameters_schema)


class InstanceSchemas(Schema):
    class Meta:
        unknown = RAISE

    create = fields.Nested(ActionSchema)
    update = fields.Nested(ActionSchema)


class BindingSchemas(Schema):
    class Meta:
        unknown = RAISE

    create = fields.Nested(ActionSchema)


class SchemasSchema(Schema):
    class Meta:
        unknown = RAISE

    service_instance = fields.Nested(InstanceSchemas)
    service_binding = fields.Nested(BindingSchemas)


class MaintenanceInfoSchema(Schema):
    class Meta:
        unknown = RAISE

    version = fields.String(
        required=True, validate=validate.Regexp(SEMVER, error="must be a SemVer 2.0 version")
    )
    description = fields.String()


class PlanSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.UUID(required=True)
    name = fields.String(required=True, validate=[validate.Length(1, 255), validate.Regexp(NAME)])
    description = fields.String(required=True, validate=validate.Length(1, 1024))
    free = fields.Boolean(load_default=True)
    bindable = fields.Boolean(load_default=None, allow_none=True)
    plan_updateable = fields.Boolean(load_default=None, allow_none=True)
    binding_rotatable = fields.Boolean(load_default=False)
    maintenance_info = fields.Nested(MaintenanceInfoSchema, load_default=None)
    maximum_polling_duration = fields.Integer(load_default=None, validate=validate.Range(min=1))
    metadata = fields.Dict(load_default=dict)
    schemas = fields.Nested(SchemasSchema, load_default=dict)
    config = fields.Dict(load_default=dict)
    asynchronous = fields.Boolean(load_default=False)


class CredentialsEnvSchema(Schema):
    class Meta:
        unknown = RAISE

    prefix = fields.String(required=True, validate=validate.Regexp(r"^[A-Z][A-Z0-9_]*$"))
    url = fields.String(load_default=None)
    parts = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[A-Z][A-Z0-9_]*$")), values=fields.String()
    )
    #: Part → credential key whose binding file's path the var holds.
    files = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[A-Z][A-Z0-9_]*$")),
        values=fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_][-._A-Za-z0-9]*$")),
    )
    #: Well-known name → the part it copies (set only without an alias).
    unprefixed = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[A-Z][A-Z0-9_]*$")), values=fields.String()
    )

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        parts, files = set(data.get("parts") or {}), set(data.get("files") or {})
        if parts & files or "URL" in parts | files:
            raise ValidationError(
                f"a part may be in parts or files, not both, and none is URL: {sorted(parts & files) or ['URL']}",
                "files",
            )
        prefixed = {f"{data['prefix']}_{p}" for p in parts | files | {"URL"}}
        for name, part in (data.get("unprefixed") or {}).items():
            if part not in parts | files | {"URL"}:
                raise ValidationError(
                    f"{name} copies {part}, which is not URL nor in parts or files", "unprefixed"
                )
            if name in prefixed:
                raise ValidationError(f"{name} is already one of the prefixed names", "unprefixed")


class ExampleSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True)
    description = fields.String()
    plan = fields.String(required=True)
    parameters = fields.Dict(load_default=dict)


class OfferingSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.UUID(required=True)
    name = fields.String(required=True, validate=[validate.Length(1, 255), validate.Regexp(NAME)])
    description = fields.String(required=True, validate=validate.Length(1, 1024))
    provider = fields.String(
        required=True,
        validate=validate.OneOf(sorted(PROVIDERS), error="unknown provider {input!r}; known: {choices}"),
    )
    bindable = fields.Boolean(required=True)
    plan_updateable = fields.Boolean(load_default=False)
    instances_retrievable = fields.Boolean(load_default=True)
    bindings_retrievable = fields.Boolean(load_default=True)
    allow_context_updates = fields.Boolean(load_default=False)
    tags = fields.List(fields.String(), load_default=list)
    requires = fields.List(
        fields.String(validate=validate.OneOf(["syslog_drain", "route_forwarding", "volume_mount"])),
        load_default=list,
    )
    metadata = fields.Dict(load_default=dict)
    credentials_env = fields.Nested(CredentialsEnvSchema, load_default=None)
    config = fields.Dict(load_default=dict)
    plans = fields.List(
        fields.Nested(PlanSchema),
        required=True,
        validate=validate.Length(min=1, error="an offering needs at least one plan"),
    )
    examples = fields.List(fields.Nested(ExampleSchema), load_default=list)

    @validates_schema
    def _unique_plans(self, data: dict[str, Any], **_: Any) -> None:
        names = [p["name"] for p in data.get("plans", [])]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValidationError(
                f"plan names must be unique within the offering: {', '.join(dupes)}", "plans"
            )
        plan_names = set(names)
        for example in data.get("examples", []):
            if example["plan"] not in plan_names:
                raise ValidationError(
                    f"example {example['name']!r} names unknown plan {example['plan']!r}", "examples"
                )


def _plan(data: dict[str, Any]) -> Plan:
    info = data.get("maintenance_info") or {}
    return Plan(
        id=str(data["id"]),
        name=data["name"],
        description=data["description"],
        free=data["free"],
        bindable=data["bindable"],
        plan_updateable=data["plan_updateable"],
        binding_rotatable=data["binding_rotatable"],
        maintenance_version=info.get("version"),
        maintenance_description=info.get("description"),
        maximum_polling_duration=data["maximum_polling_duration"],
        metadata=data["metadata"],
        schemas=data["schemas"],
        config=data["config"],
        asynchronous=data["asynchronous"],
    )


def load_offering(path: Path) -> Offering:
    """Load one offering file; raise ConfigurationError naming file, field and problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{path}: an offering file must hold a mapping at the top level")
    try:
        data = OfferingSchema().load(raw)
    except ValidationError as exc:
        raise ConfigurationError(f"{path}: {_describe(exc.messages)}") from None
    return Offering(
        id=str(data["id"]),
        name=data["name"],
        description=data["description"],
        provider=data["provider"],
        bindable=data["bindable"],
        plans=tuple(_plan(p) for p in data["plans"]),
        tags=tuple(data["tags"]),
        requires=tuple(data["requires"]),
        plan_updateable=data["plan_updateable"],
        instances_retrievable=data["instances_retrievable"],
        bindings_retrievable=data["bindings_retrievable"],
        allow_context_updates=data["allow_context_updates"],
        metadata=data["metadata"],
        credentials_env=data["credentials_env"] or {},
        config=data["config"],
        examples=tuple(data["examples"]),
        source=path,
    )


def load_catalog(dirs: Iterable[Path]) -> Catalog:
    """Load every ``*.yaml``/``*.yml`` in the given folders; ids and names must be unique."""
    offerings: list[Offering] = []
    for folder in dirs:
        if not folder.is_dir():
            raise ConfigurationError(f"catalog folder {folder} does not exist (MOORAGE_CATALOG_DIR)")
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            offerings.append(load_offering(path))
    if not offerings:
        raise ConfigurationError(
            "the catalog is empty: no *.yaml offering files in " + ", ".join(map(str, dirs))
        )
    _check_unique(offerings)
    return Catalog(tuple(offerings))


def _check_unique(offerings: list[Offering]) -> None:
    seen_ids: dict[str, Path | None] = {}
    seen_names: dict[str, Path | None] = {}
    for offering in offerings:
        if offering.name in seen_names:
            raise ConfigurationError(
                f"{offering.source}: offering name {offering.name!r} is already used by {seen_names[offering.name]}"
            )
        seen_names[offering.name] = offering.source
        for kind, ident in [("offering", offering.id), *(("plan", p.id) for p in offering.plans)]:
            if ident in seen_ids:
                raise ConfigurationError(
                    f"{offering.source}: {kind} id {ident} is already used by {seen_ids[ident]}; ids must be unique"
                )
            seen_ids[ident] = offering.source


def _describe(messages: Any, path: str = "") -> str:
    """Flatten marshmallow's nested messages into ``plans.0.schemas: problem``."""
    if isinstance(messages, dict):
        return "; ".join(_describe(v, f"{path}.{k}" if path else str(k)) for k, v in messages.items())
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return f"{path}: {' '.join(messages)}" if path else " ".join(messages)
    if isinstance(messages, list):
        return "; ".join(_describe(m, path) for m in messages)
    return f"{path}: {messages}"
