"""Second factors and account security: authenticator apps (TOTP) with recovery
codes, passkeys, how each login session was authenticated (`amr`) and what the
account page shows about it.

Sessions made before this release were password logins: they read as `pwd`.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _user_id(**kwargs: object) -> sa.Column:
    return sa.Column(
        "user_id",
        sa.String(36),
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        **kwargs,
    )


def upgrade() -> None:
    with op.batch_alter_table("login_sessions") as batch:
        batch.add_column(sa.Column("amr", sa.String(64), nullable=False, server_default="pwd"))
        batch.add_column(sa.Column("user_agent", sa.String(200)))
        batch.add_column(sa.Column("address", sa.String(64)))
    with op.batch_alter_table("oauth_authorization_codes") as batch:
        batch.add_column(sa.Column("amr", sa.Text, nullable=False, server_default=""))
    op.create_table(
        "totp_credentials",
        _user_id(primary_key=True),
        sa.Column("secret", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_step", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.String(64), primary_key=True),
        _user_id(),
        sa.Column("used_at", sa.Float),
    )
    op.create_index("recovery_codes_user_id", "recovery_codes", ["user_id"])
    op.create_table(
        "passkeys",
        sa.Column("id", sa.String(1400), primary_key=True),
        _user_id(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("sign_count", sa.Integer, nullable=False),
        sa.Column("transports", sa.JSON, nullable=False),
        sa.Column("backed_up", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_used_at", sa.Float),
    )
    op.create_index("passkeys_user_id", "passkeys", ["user_id"])


def downgrade() -> None:
    op.drop_table("passkeys")
    op.drop_table("recovery_codes")
    op.drop_table("totp_credentials")
    with op.batch_alter_table("oauth_authorization_codes") as batch:
        batch.drop_column("amr")
    with op.batch_alter_table("login_sessions") as batch:
        batch.drop_column("address")
        batch.drop_column("user_agent")
        batch.drop_column("amr")
