"""monitoring: check results, monitor configs, where a server logs inferences, the runner's lease

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
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("log_location", sa.Text(), nullable=True))
    op.create_table(
        "monitor_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=True),
        sa.Column("window_end", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_monitor_results_model_id_models"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_monitor_results_version_id_model_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_results")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("monitor_results", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_results_model_id_version", ["model_id", "version"], unique=False)
        batch_op.create_index("ix_monitor_results_version_id", ["version_id"], unique=False)
    op.create_table(
        "monitor_configs",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_monitor_configs_model_id_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_monitor_configs")),
    )

    op.create_table(
        "worker_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=256), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_leases")),
    )


def downgrade() -> None:
    op.drop_table("worker_leases")
    op.drop_table("monitor_configs")
    with op.batch_alter_table("monitor_results", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_results_version_id")
        batch_op.drop_index("ix_monitor_results_model_id_version")
    op.drop_table("monitor_results")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("log_location")
