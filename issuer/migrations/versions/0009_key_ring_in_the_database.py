"""The key ring in the database (ISSUER_KEYS_STORE=database): the manifest with a
version, and the sealed private keys. Empty until a ring is created or imported.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_ring",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "key_ring_private_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("sealed", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("key_ring_private_keys")
    op.drop_table("key_ring")
