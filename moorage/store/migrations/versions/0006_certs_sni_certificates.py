"""custom domain certificates (certs:add) and the per-app HTTPS redirect

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import moorage.store.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "platform_certs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(length=1024), nullable=False),
        sa.Column("issuer", sa.String(length=1024), nullable=False),
        sa.Column("not_before", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("not_after", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("chain_enc", sa.LargeBinary(), nullable=False),
        sa.Column("key_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["platform_apps.id"],
            name=op.f("fk_platform_certs_app_id_platform_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_certs")),
    )
    op.create_index("ix_platform_certs_app_id", "platform_certs", ["app_id"])
    op.create_table(
        "platform_app_tls",
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("force_https", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["platform_apps.id"],
            name=op.f("fk_platform_app_tls_app_id_platform_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_platform_app_tls")),
    )


def downgrade() -> None:
    op.drop_table("platform_app_tls")
    op.drop_index("ix_platform_certs_app_id", table_name="platform_certs")
    op.drop_table("platform_certs")
