"""token limits: the latest expiry of tokens made with a token (a web session's is its sign-in token's)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tokens", sa.Column("limit_at", sa.BigInteger(), nullable=True))
    op.execute("UPDATE tokens SET limit_at = expires_at")  # as before: a token never outlives the one that made it


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("limit_at")
