"""Verified email addresses and single-use links (email verification, password reset).

Accounts made before this release have never proved their address: they start
unverified, and with ISSUER_REQUIRE_VERIFIED_EMAIL (the default) their next sign-in
to an app asks them to confirm it (one click on a mailed link). Their sessions,
tokens and passwords are kept.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("email_verified", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "account_links",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column(
            "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float),
    )
    op.create_index("ix_account_links_expires_at", "account_links", ["expires_at"])
    op.create_index("account_links_user_purpose", "account_links", ["user_id", "purpose"])


def downgrade() -> None:
    op.drop_table("account_links")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email_verified")
