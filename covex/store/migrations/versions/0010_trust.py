"""trust: file scans, signing keys, signed statements, imported bundles

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, referred: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{referred}.id"], name=op.f(f"fk_{table}_{column}_{referred}"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "version_scans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("max_severity", sa.String(length=16), nullable=True),
        sa.Column("scanner", sa.String(length=64), nullable=False),
        sa.Column("scanner_version", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_at", sa.BigInteger(), nullable=True),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.Column("manifest_digest", sa.String(length=80), nullable=True),
        sa.Column("files", sa.Text(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("accepted_by", sa.String(length=256), nullable=True),
        sa.Column("accepted_at", sa.BigInteger(), nullable=True),
        sa.Column("accepted_reason", sa.Text(), nullable=True),
        _fk("version_scans", "model_id", "models"),
        _fk("version_scans", "version_id", "model_versions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_version_scans")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("version_scans", schema=None) as batch_op:
        batch_op.create_index("ix_version_scans_version_id", ["version_id"], unique=False)
        batch_op.create_index("ix_version_scans_verdict", ["verdict"], unique=False)
    op.create_table(
        "signing_keys",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_signing_keys")),
    )
    op.create_table(
        "version_statements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        _fk("version_statements", "model_id", "models"),
        _fk("version_statements", "version_id", "model_versions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_version_statements")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("version_statements", schema=None) as batch_op:
        batch_op.create_index("ix_version_statements_version_id", ["version_id"], unique=False)
    op.create_table(
        "bundle_imports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("bundle_digest", sa.String(length=80), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("imported_at", sa.BigInteger(), nullable=False),
        sa.Column("imported_by", sa.String(length=256), nullable=False),
        sa.Column("history", sa.Text(), nullable=False),
        _fk("bundle_imports", "model_id", "models"),
        _fk("bundle_imports", "version_id", "model_versions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bundle_imports")),
        sa.UniqueConstraint("bundle_digest", "model_id", name=op.f("uq_bundle_imports_bundle_digest_model_id")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("bundle_imports", schema=None) as batch_op:
        batch_op.create_index("ix_bundle_imports_version_id", ["version_id"], unique=False)


def downgrade() -> None:
    for table, index in (
        ("bundle_imports", "ix_bundle_imports_version_id"),
        ("version_statements", "ix_version_statements_version_id"),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(index)
        op.drop_table(table)
    op.drop_table("signing_keys")
    with op.batch_alter_table("version_scans", schema=None) as batch_op:
        batch_op.drop_index("ix_version_scans_verdict")
        batch_op.drop_index("ix_version_scans_version_id")
    op.drop_table("version_scans")
