"""platform services: brokers, service instances, bindings

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import moorage.store.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC = moorage.store.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    """Each table with its indexes, in the order their foreign keys need."""
    _create_platform_brokers()
    _create_platform_service_instances()
    _create_platform_service_bindings()


def _create_platform_brokers() -> None:
    op.create_table(
        "platform_brokers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("password_enc", sa.LargeBinary(), nullable=True),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("catalog", sa.JSON(), nullable=True),
        sa.Column("etag", sa.String(length=255), nullable=True),
        sa.Column("fetched_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_brokers")),
        sa.UniqueConstraint("name", name=op.f("uq_platform_brokers_name")),
    )


def _create_platform_service_instances() -> None:
    op.create_table(
        "platform_service_instances",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("broker_id", sa.Integer(), nullable=False),
        sa.Column("offering_id", sa.String(length=255), nullable=False),
        sa.Column("offering_name", sa.String(length=255), nullable=False),
        sa.Column("plan_id", sa.String(length=255), nullable=False),
        sa.Column("plan_name", sa.String(length=255), nullable=False),
        sa.Column("parameters_enc", sa.LargeBinary(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["platform_users.id"],
            name=op.f("fk_platform_service_instances_owner_id_platform_users"),
        ),
        sa.ForeignKeyConstraint(
            ["broker_id"],
            ["platform_brokers.id"],
            name=op.f("fk_platform_service_instances_broker_id_platform_brokers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_service_instances")),
        sa.UniqueConstraint("owner_id", "name", name="uq_platform_service_instances_owner_name"),
    )


def _create_platform_service_bindings() -> None:
    op.create_table(
        "platform_service_bindings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("alias", sa.String(length=63), nullable=False),
        sa.Column("credentials_enc", sa.LargeBinary(), nullable=True),
        sa.Column("var_names", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["platform_apps.id"],
            name=op.f("fk_platform_service_bindings_app_id_platform_apps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["platform_service_instances.id"],
            name=op.f("fk_platform_service_bindings_instance_id_platform_service_instances"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_service_bindings")),
    )
    with op.batch_alter_table("platform_service_bindings", schema=None) as batch_op:
        batch_op.create_index("ix_platform_service_bindings_app_id", ["app_id"], unique=False)
        batch_op.create_index("ix_platform_service_bindings_instance_id", ["instance_id"], unique=False)


def downgrade() -> None:
    op.drop_table("platform_service_bindings")
    op.drop_table("platform_service_instances")
    op.drop_table("platform_brokers")
