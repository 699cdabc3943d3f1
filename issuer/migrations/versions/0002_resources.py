"""Resource indicators (RFC 8707): the audiences a client may obtain, and what each
code and refresh-token family was granted.

Existing clients may obtain no audience until an operator allows one
(`python -m issuer clients audiences`); existing grants cover no resource, so
their tokens stop opening the database and their users sign in again.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "oauth_clients", sa.Column("audiences", sa.Text, nullable=False, server_default="[]")
    )
    for table in ("oauth_authorization_codes", "oauth_refresh_tokens"):
        op.add_column(table, sa.Column("resources", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    for table in ("oauth_authorization_codes", "oauth_refresh_tokens"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("resources")
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("audiences")
