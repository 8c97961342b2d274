"""The aws-rds-postgresql offering: an RDS PostgreSQL instance, a login role per binding.

Why this shape: an RDS instance takes minutes to create, modify or delete, so every
method asks AWS once and raises :class:`TemporaryError` until ``DescribeDBInstances``
says the work is done; the operation engine calls again later (possibly in another
process after a crash), and each call starts by looking at what exists. A failure state,
or the plan's ``maximum_polling_duration`` running out, fails the operation with AWS's
status and latest event.

The master password is generated before anything is created and checkpointed: in the
instance's outputs (encrypted by the engine), or, with ``settings.aws.use_secrets_manager``,
in a Secrets Manager secret whose ARN alone is kept (see ``aws_rds_master.py``). It is
never handed to apps: each binding gets its own LOGIN role, created by connecting as
master, in the same scheme as the local ``postgres`` offering (:mod:`moorage.providers.pg_roles`: a NOLOGIN group owns
the database, bindings are its members).

``settings.aws.rds_endpoint_map`` (``host:port=host:port,…``) maps an RDS endpoint to
where PostgreSQL really answers (the emulator runs no database); a mapped address is used
both for the broker's master connection and in the binding's credentials.

Plan ``config``: ``instance_class``, ``allocated_storage``, ``engine_version``,
``final_snapshot`` (default true), ``poll_seconds``, ``backup_retention_days``,
``multi_az``. Parameters: ``allocated_storage`` (may only grow), ``deletion_protection``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn

import psycopg
from psycopg import sql

from moorage.catalog.provider import BindingContext, BindResult, InstanceContext, ProvisionResult
from moorage.clients.aws import aws_code
from moorage.errors import ConflictError, NotFoundError, PermanentError, ProviderError, TemporaryError
from moorage.providers import aws_iam, pg_roles
from moorage.providers.address_maps import parse_address_map
from moorage.providers.aws_provider import AwsProvider
from moorage.providers.aws_rds_master import MasterPasswords, db_identifier, master_username
from moorage.providers.driver_errors import as_provider_error, first_line
from moorage.providers.login_bindings import login_binding
from moorage.providers.postgres import binding_role, credentials, instance_names
from moorage.settings import Settings

log = logging.getLogger(__name__)

FAILED_STATES = frozenset(
    {
        "failed",
        "incompatible-network",
        "incompatible-option-group",
        "incompatible-parameters",
        "incompatible-restore",
        "inaccessible-encryption-credentials",
        "restore-error",
        "storage-full",
    }
)


class RdsPostgresProvider(AwsProvider):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.endpoint_map = parse_address_map(settings.aws.rds_endpoint_map, "MOORAGE_AWS_RDS_ENDPOINT_MAP")
        self.passwords = MasterPasswords(self.aws, settings.aws.use_secrets_manager)

    # -- instances -------------------------------------------------------------------------

    def provision(self, ctx: InstanceContext) -> ProvisionResult:
        ident = db_identifier(ctx.instance_id)
        outputs = {**ctx.outputs, "db_instance_identifier": ident}
        outputs.setdefault("started_at", time.time())
        password = self.passwords.ensure(ctx.instance_id, outputs)
        db = self._describe(ident)
        if db is None:
            self._create(ctx, ident, password)
            raise TemporaryError(self._poll(ctx), f"RDS instance {ident} requested", outputs=outputs)
        self._check_ours(db, ctx.instance_id)
        status = db["DBInstanceStatus"]
        if status == "available":
            return ProvisionResult(outputs={**outputs, **self._address(db)})
        self._fail_or_wait(ctx, ident, status, outputs, "to become available")

    def _create(self, ctx: InstanceContext, ident: str, password: str) -> None:
        config = ctx.config
        database = instance_names(ctx.instance_id)[0]
        params: dict[str, Any] = {
            "DBInstanceIdentifier": ident,
            "Engine": "postgres",
            "DBInstanceClass": config.get("instance_class", "db.t4g.micro"),
            "AllocatedStorage": int(
                ctx.parameters.get("allocated_storage", config.get("allocated_storage", 20))
            ),
            "DBName": database,
            "MasterUsername": master_username(ctx.instance_id),
            "MasterUserPassword": password,
            "StorageEncrypted": True,
            "PubliclyAccessible": bool(config.get("publicly_accessible", False)),
            "MultiAZ": bool(config.get("multi_az", False)),
            "BackupRetentionPeriod": int(config.get("backup_retention_days", 7)),
            "DeletionProtection": bool(ctx.parameters.get("deletion_protection", False)),
            "CopyTagsToSnapshot": True,
            "Tags": [{"Key": k, "Value": v} for k, v in aws_iam.instance_tags(ctx.instance_id).items()],
        }
        if config.get("engine_version"):
            params["EngineVersion"] = str(config["engine_version"])
        try:
            self.aws.call("rds", "create_db_instance", **params)
        except ConflictError as exc:
            if aws_code(exc) not in {"DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"}:
                raise
        log.info(
            "requested RDS instance %s", ident, extra={"instance_id": ctx.instance_id, "db_instance": ident}
        )

    def update(self, ctx: InstanceContext) -> ProvisionResult:
        ident = db_identifier(ctx.instance_id)
        db = self._describe(ident)
        if db is None:
            raise PermanentError(
                f"RDS instance {ident} no longer exists; deprovision this instance and create a new one"
            )
        outputs = dict(ctx.outputs)
        status = db["DBInstanceStatus"]
        if status != "available":
            outputs.setdefault("update_started_at", time.time())
            self._fail_or_wait(
                ctx, ident, status, outputs, "to finish modifying", started_key="update_started_at"
            )
        wanted = self._wanted(ctx, db)
        if wanted:
            self.aws.call(
                "rds", "modify_db_instance", DBInstanceIdentifier=ident, ApplyImmediately=True, **wanted
            )
            log.info(
                "modifying RDS instance %s: %s",
                ident,
                ", ".join(sorted(wanted)),
                extra={"db_instance": ident},
            )
            outputs["update_started_at"] = time.time()
            raise TemporaryError(self._poll(ctx), f"RDS instance {ident} is being modified", outputs=outputs)
        outputs.pop("update_started_at", None)
        return ProvisionResult(outputs={**outputs, **self._address(db)})

    def _wanted(self, ctx: InstanceContext, db: Mapping[str, Any]) -> dict[str, Any]:
        """The modifications still needed (pending ones count as done)."""
        current = {**db, **db.get("PendingModifiedValues", {})}
        wanted: dict[str, Any] = {}
        instance_class = ctx.config.get("instance_class")
        if instance_class and instance_class != current.get("DBInstanceClass"):
            wanted["DBInstanceClass"] = instance_class
        storage = ctx.parameters.get("allocated_storage", ctx.config.get("allocated_storage"))
        if storage is not None and int(storage) != int(current.get("AllocatedStorage", 0)):
            if int(storage) < int(current.get("AllocatedStorage", 0)):
                raise PermanentError(
                    f"allocated_storage can only grow (the instance has {current['AllocatedStorage']} GiB); nothing was changed"
                )
            wanted["AllocatedStorage"] = int(storage)
        if "deletion_protection" in ctx.parameters and bool(ctx.parameters["deletion_protection"]) != bool(
            db.get("DeletionProtection")
        ):
            wanted["DeletionProtection"] = bool(ctx.parameters["deletion_protection"])
        return wanted

    def deprovision(self, ctx: InstanceContext) -> None:
        ident = db_identifier(ctx.instance_id)
        final = bool(ctx.config.get("final_snapshot", True))
        db = self._describe(ident)
        if db is not None and db["DBInstanceStatus"] != "deleting":
            self._check_ours(db, ctx.instance_id)
            if db.get("DeletionProtection"):
                raise PermanentError(
                    f"RDS instance {ident} has deletion protection on, so it was not deleted; update the "
                    'instance with {"deletion_protection": false} first'
                )
            params: dict[str, Any] = {"DBInstanceIdentifier": ident, "SkipFinalSnapshot": not final}
            if final:
                params["FinalDBSnapshotIdentifier"] = f"{ident}-final"
            try:
                self.aws.call("rds", "delete_db_instance", **params)
            except ConflictError as exc:
                if aws_code(exc) not in {"InvalidDBInstanceState", "InvalidDBInstanceStateFault"}:
                    raise
            except NotFoundError:
                pass
            log.info(
                "deleting RDS instance %s (final snapshot: %s)", ident, final, extra={"db_instance": ident}
            )
            db = self._describe(ident)
        if db is not None:
            raise TemporaryError(self._poll(ctx), f"RDS instance {ident} is being deleted")
        self.passwords.forget(ctx.instance_id, keep_days=7 if final else 0)

    # -- bindings --------------------------------------------------------------------------

    def bind(self, ctx: BindingContext) -> BindResult:
        instance = ctx.instance
        if not instance.outputs.get("host"):
            raise PermanentError("the RDS instance is not available yet; bind once provisioning has finished")
        database, group = instance_names(instance.instance_id)
        role = binding_role(instance.instance_id, ctx.binding_id)
        password = secrets.token_urlsafe(24)
        master = master_username(instance.instance_id)
        with self._connect(instance, database) as conn:
            pg_roles.create_group_role(conn, group)
            if not pg_roles.is_member(conn, master, group):
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(master)))
            pg_roles.create_database(conn, database, group)
            pg_roles.give_public_schema(conn, group)
            pg_roles.create_login_role(conn, role, password, group)
        log.info(
            "created RDS binding role",
            extra={"instance_id": instance.instance_id, "binding_id": ctx.binding_id},
        )
        host, port = self._mapped(instance.outputs)
        return login_binding(credentials(host, port, database, role, password), host, port, role)

    def unbind(self, ctx: BindingContext) -> None:
        instance = ctx.instance
        if not instance.outputs.get("host") or self._describe(db_identifier(instance.instance_id)) is None:
            return  # no instance, no role
        database, group = instance_names(instance.instance_id)
        role = binding_role(instance.instance_id, ctx.binding_id)
        master = master_username(instance.instance_id)
        with self._connect(instance, database) as conn:
            if pg_roles.role_exists(conn, role) and not pg_roles.is_member(conn, master, role):
                # not a superuser: REASSIGN/DROP OWNED need master to hold the role's privileges
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(master)))
            pg_roles.drop_login_role(conn, role, group)
        log.info(
            "dropped RDS binding role",
            extra={"instance_id": instance.instance_id, "binding_id": ctx.binding_id},
        )

    # -- helpers ---------------------------------------------------------------------------

    def _describe(self, ident: str) -> dict[str, Any] | None:
        try:
            found = self.aws.call("rds", "describe_db_instances", DBInstanceIdentifier=ident)["DBInstances"]
        except NotFoundError:
            return None
        return found[0] if found else None

    @staticmethod
    def _check_ours(db: Mapping[str, Any], instance_id: str) -> None:
        owner = {t["Key"]: t["Value"] for t in db.get("TagList", [])}.get("moorage:instance-id")
        if owner != instance_id:
            raise PermanentError(
                f"RDS instance {db['DBInstanceIdentifier']} is not tagged as belonging to instance {instance_id}; "
                "Moorage will not touch it"
            )

    @staticmethod
    def _poll(ctx: InstanceContext) -> float:
        return float(ctx.config.get("poll_seconds", 15))

    def _fail_or_wait(
        self,
        ctx: InstanceContext,
        ident: str,
        status: str,
        outputs: dict[str, Any],
        goal: str,
        started_key: str = "started_at",
    ) -> NoReturn:
        if status in FAILED_STATES:
            raise PermanentError(f"RDS instance {ident} is {status!r}{self._latest_event(ident)}")
        limit = ctx.plan.maximum_polling_duration or int(ctx.config.get("timeout_seconds", 3600))
        waited = time.time() - float(outputs.get(started_key, time.time()))
        # The operation's deadline when the engine gives one (so this reason, with AWS's
        # latest event, is what the user sees), else the time since this work started.
        if (time.time() > ctx.deadline) if ctx.deadline is not None else (waited > limit):
            raise PermanentError(
                f"RDS instance {ident} was still {status!r} after {int(waited)} s, longer than the plan's "
                f"limit of {limit} s{self._latest_event(ident)}"
            )
        raise TemporaryError(
            self._poll(ctx), f"waiting for RDS instance {ident} {goal} (now {status!r})", outputs=outputs
        )

    def _latest_event(self, ident: str) -> str:
        try:
            events = self.aws.call(
                "rds", "describe_events", SourceIdentifier=ident, SourceType="db-instance"
            )["Events"]
        except (PermanentError, ProviderError):
            return ""
        return f"; AWS says: {events[-1]['Message']}" if events else ""

    @staticmethod
    def _address(db: Mapping[str, Any]) -> dict[str, Any]:
        endpoint = db.get("Endpoint") or {}
        return {
            "host": endpoint.get("Address"),
            "port": int(endpoint.get("Port") or 5432),
            "database": db.get("DBName"),
            "master_username": db.get("MasterUsername"),
            "arn": db.get("DBInstanceArn"),
        }

    def _mapped(self, outputs: Mapping[str, Any]) -> tuple[str, int]:
        address = (str(outputs["host"]), int(outputs["port"]))
        return self.endpoint_map.get(address, address)

    @contextmanager
    def _connect(self, instance: InstanceContext, database: str) -> Iterator[psycopg.Connection]:
        """An autocommit connection as master; psycopg errors become ProviderError here."""
        host, port = self._mapped(instance.outputs)
        where = f"RDS instance at {host}:{port}"
        with as_provider_error((psycopg.Error, f"could not manage roles on {where}"), describe=first_line):
            master = master_username(instance.instance_id)
            password = self.passwords.stored(instance.instance_id, instance.outputs)
            with pg_roles.connect(host, port, database, master, password) as conn:
                yield conn
