"""platform tables

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 01:17:18.223263
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import moorage.store.base  # noqa: F401  (UTCDateTime)

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Each table with its indexes, in the order their foreign keys need."""
    _create_platform_users()
    _create_platform_apps()
    _create_platform_tokens()
    _create_platform_builds()
    _create_platform_configs()
    _create_platform_domains()
    _create_platform_formations()
    _create_platform_perms()
    _create_platform_releases()


def _create_platform_users() -> None:
    op.create_table(
        "platform_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_users")),
        sa.UniqueConstraint("username", name=op.f("uq_platform_users_username")),
    )


def _create_platform_apps() -> None:
    op.create_table(
        "platform_apps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("created_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["platform_users.id"], name=op.f("fk_platform_apps_owner_id_platform_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_apps")),
        sa.UniqueConstraint("name", name=op.f("uq_platform_apps_name")),
    )


def _create_platform_tokens() -> None:
    op.create_table(
        "platform_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["platform_users.id"],
            name=op.f("fk_platform_tokens_user_id_platform_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_platform_tokens_token_hash")),
    )
    with op.batch_alter_table("platform_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_platform_tokens_user_id", ["user_id"], unique=False)


def _create_platform_builds() -> None:
    op.create_table(
        "platform_builds",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("source_version", sa.String(length=64), nullable=False),
        sa.Column("artifact", sa.Text(), nullable=False),
        sa.Column("procfile", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["platform_apps.id"],
            name=op.f("fk_platform_builds_app_id_platform_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_builds")),
    )


def _create_platform_configs() -> None:
    op.create_table(
        "platform_configs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("values_enc", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["platform_apps.id"],
            name=op.f("fk_platform_configs_app_id_platform_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_configs")),
    )


def _create_platform_domains() -> None:
    op.create_table(
        "platform_domains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("created_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["platform_apps.id"],
            name=op.f("fk_platform_domains_app_id_platform_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_domains")),
        sa.UniqueConstraint("domain", name=op.f("uq_platform_domains_domain")),
    )


def _create_platform_formations() -> None:
    op.create_table(
        "platform_formations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("process_type", sa.String(length=63), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["platform_apps.id"],
            name=op.f("fk_platform_formations_app_id_platform_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_formations")),
        sa.UniqueConstraint("app_id", "process_type", name="uq_platform_formations_app_type"),
    )


def _create_platform_perms() -> None:
    op.create_table(
        "platform_perms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["platform_apps.id"],
            name=op.f("fk_platform_perms_app_id_platform_apps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["platform_users.id"],
            name=op.f("fk_platform_perms_user_id_platform_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_perms")),
        sa.UniqueConstraint("app_id", "user_id", name="uq_platform_perms_app_user"),
    )


def _create_platform_releases() -> None:
    op.create_table(
        "platform_releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("build_id", sa.String(length=36), nullable=True),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["platform_apps.id"],
            name=op.f("fk_platform_releases_app_id_platform_apps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["build_id"], ["platform_builds.id"], name=op.f("fk_platform_releases_build_id_platform_builds")
        ),
        sa.ForeignKeyConstraint(
            ["config_id"],
            ["platform_configs.id"],
            name=op.f("fk_platform_releases_config_id_platform_configs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_releases")),
        sa.UniqueConstraint("app_id", "version", name="uq_platform_releases_app_version"),
    )


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_table("platform_releases")
    op.drop_table("platform_perms")
    op.drop_table("platform_formations")
    op.drop_table("platform_domains")
    op.drop_table("platform_configs")
    op.drop_table("platform_builds")
    with op.batch_alter_table("platform_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_platform_tokens_user_id")

    op.drop_table("platform_tokens")
    op.drop_table("platform_apps")
    op.drop_table("platform_users")
    # ### end Alembic commands ###
