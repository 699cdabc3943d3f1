"""`role` becomes a claim only the issuer sets (Neon's Data API switches to the
Postgres role a token names): a stored custom claim `role` is renamed `app_role`,
kept with its value, so that no user can name a Postgres role.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

users = sa.table("users", sa.column("id", sa.String), sa.column("claims", sa.JSON))


def upgrade() -> None:
    conn = op.get_bind()
    for row in conn.execute(sa.select(users.c.id, users.c.claims)).all():
        claims = dict(row.claims or {})
        if "role" not in claims:
            continue
        claims.setdefault("app_role", claims["role"])
        del claims["role"]
        conn.execute(sa.update(users).where(users.c.id == row.id).values(claims=claims))


def downgrade() -> None:
    """Nothing to undo: `app_role` is an ordinary custom claim."""
