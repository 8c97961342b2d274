"""platform apps carry their uid; a ledger of every uid ever handed out

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import moorage.store.base  # UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "platform_app_uids",
        sa.Column("uid", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("app", sa.String(63), nullable=False),
        sa.Column("allocated_at", moorage.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("freed_at", moorage.store.base.UTCDateTime(timezone=True), nullable=True),
    )
    # Existing apps get theirs when the controller starts (controller.app_uids.adopt),
    # which also imports the uids of the JSON table that held them before.
    with op.batch_alter_table("platform_apps") as batch:
        batch.add_column(sa.Column("uid", sa.Integer(), nullable=True))
        batch.create_unique_constraint("uq_platform_apps_uid", ["uid"])
        batch.create_foreign_key("fk_platform_apps_uid", "platform_app_uids", ["uid"], ["uid"])


def downgrade() -> None:
    with op.batch_alter_table("platform_apps") as batch:
        batch.drop_constraint("fk_platform_apps_uid", type_="foreignkey")
        batch.drop_constraint("uq_platform_apps_uid", type_="unique")
        batch.drop_column("uid")
    op.drop_table("platform_app_uids")
