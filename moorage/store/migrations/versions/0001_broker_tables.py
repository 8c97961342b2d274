"""broker tables

Revision ID: 0001
Revises:
Create Date: 2026-11-26 01:14:27.701358
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import moorage.store.base

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Each table with its indexes, in the order their foreign keys need."""
    _create_operations()
    _create_service_instances()
    _create_service_bindings()


def _create_operations() -> None:
    op.create_table(
        "operations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=255), nullable=False),
        sa.Column("binding_id", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("payload_enc", sa.LargeBinary(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", moorage.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deadline", moorage.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("request_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", moorage.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
    )
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.create_index("ix_operations_instance", ["instance_id", "created_at"], unique=False)
        batch_op.create_index("ix_operations_runnable", ["state", "run_at"], unique=False)
        batch_op.create_index(
            "uq_operations_active_binding",
            ["binding_id"],
            unique=True,
            sqlite_where=sa.text("state = 'in progress' AND binding_id IS NOT NULL"),
            postgresql_where=sa.text("state = 'in progress' AND binding_id IS NOT NULL"),
        )
        batch_op.create_index(
            "uq_operations_active_instance",
            ["instance_id"],
            unique=True,
            sqlite_where=sa.text("state = 'in progress' AND binding_id IS NULL"),
            postgresql_where=sa.text("state = 'in progress' AND binding_id IS NULL"),
        )


def _create_service_instances() -> None:
    op.create_table(
        "service_instances",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("service_id", sa.String(length=255), nullable=False),
        sa.Column("plan_id", sa.String(length=255), nullable=False),
        sa.Column("organization_guid", sa.String(length=255), nullable=True),
        sa.Column("space_guid", sa.String(length=255), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("parameters_enc", sa.LargeBinary(), nullable=True),
        sa.Column("outputs_enc", sa.LargeBinary(), nullable=True),
        sa.Column("dashboard_url", sa.Text(), nullable=True),
        sa.Column("maintenance_version", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_instances")),
    )
    with op.batch_alter_table("service_instances", schema=None) as batch_op:
        batch_op.create_index("ix_service_instances_status", ["status"], unique=False)


def _create_service_bindings() -> None:
    op.create_table(
        "service_bindings",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("instance_id", sa.String(length=255), nullable=False),
        sa.Column("service_id", sa.String(length=255), nullable=False),
        sa.Column("plan_id", sa.String(length=255), nullable=False),
        sa.Column("app_guid", sa.String(length=255), nullable=True),
        sa.Column("bind_resource", sa.JSON(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("parameters_enc", sa.LargeBinary(), nullable=True),
        sa.Column("outputs_enc", sa.LargeBinary(), nullable=True),
        sa.Column("credentials_enc", sa.LargeBinary(), nullable=True),
        sa.Column("endpoints", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["service_instances.id"],
            name=op.f("fk_service_bindings_instance_id_service_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_bindings")),
    )
    with op.batch_alter_table("service_bindings", schema=None) as batch_op:
        batch_op.create_index("ix_service_bindings_instance_id", ["instance_id"], unique=False)


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table("service_bindings", schema=None) as batch_op:
        batch_op.drop_index("ix_service_bindings_instance_id")

    op.drop_table("service_bindings")
    with op.batch_alter_table("service_instances", schema=None) as batch_op:
        batch_op.drop_index("ix_service_instances_status")

    op.drop_table("service_instances")
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_operations_active_instance",
            sqlite_where=sa.text("state = 'in progress' AND binding_id IS NULL"),
            postgresql_where=sa.text("state = 'in progress' AND binding_id IS NULL"),
        )
        batch_op.drop_index(
            "uq_operations_active_binding",
            sqlite_where=sa.text("state = 'in progress' AND binding_id IS NOT NULL"),
            postgresql_where=sa.text("state = 'in progress' AND binding_id IS NOT NULL"),
        )
        batch_op.drop_index("ix_operations_runnable")
        batch_op.drop_index("ix_operations_instance")

    op.drop_table("operations")
    # ### end Alembic commands ###
