"""The refresh reuse window: each rotated refresh token keeps its successor's digest
and the successor sealed under the rotated token. Tokens rotated before have none:
presenting them again is a replay, as it always was.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_refresh_tokens") as batch:
        batch.add_column(sa.Column("successor_digest", sa.String(64)))
        batch.add_column(sa.Column("successor_sealed", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("oauth_refresh_tokens") as batch:
        batch.drop_column("successor_sealed")
        batch.drop_column("successor_digest")
