"""The app's tables exactly as release 0.1 created them with `create_all`.

A store made by that release has no version table; it is stamped at this
revision instead of running it.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_logins",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("sub", sa.Text, nullable=False),
        sa.Column("email", sa.Text),
        sa.Column("name", sa.Text),
        sa.Column("access_token", sa.Text, nullable=False),
        sa.Column("refresh_token", sa.Text),
        sa.Column("id_token", sa.Text),
        sa.Column("access_expires_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_app_logins_expires_at", "app_logins", ["expires_at"])
    op.create_table(
        "app_oauth_states",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_app_oauth_states_expires_at", "app_oauth_states", ["expires_at"])


def downgrade() -> None:
    op.drop_table("app_oauth_states")
    op.drop_table("app_logins")
