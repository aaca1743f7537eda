"""tracking: MLflow's experiments, runs, metrics, params, tags, logged models and artifact entries

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete="CASCADE"
    )


def _key_value(table: str, owner: str, owner_type: sa.types.TypeEngine[str] | sa.Integer, target: str) -> None:
    op.create_table(
        table,
        sa.Column(owner, owner_type, nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        _fk(table, owner, target),
        sa.PrimaryKeyConstraint(owner, "key", name=op.f(f"pk_{table}")),
    )


def upgrade() -> None:
    experiments = op.create_table(
        "tracking_experiments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("creation_time", sa.BigInteger(), nullable=False),
        sa.Column("last_update_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_experiments")),
        sa.UniqueConstraint("name", name=op.f("uq_tracking_experiments_name")),
        sqlite_autoincrement=True,
    )
    _key_value("tracking_experiment_tags", "experiment_id", sa.Integer(), "tracking_experiments")
    op.create_table(
        "tracking_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_time", sa.BigInteger(), nullable=False),
        sa.Column("end_time", sa.BigInteger(), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        _fk("tracking_runs", "experiment_id", "tracking_experiments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_runs")),
    )
    op.create_index("ix_tracking_runs_experiment_id_start_time", "tracking_runs", ["experiment_id", "start_time"])
    _key_value("tracking_run_params", "run_id", sa.String(length=32), "tracking_runs")
    _key_value("tracking_run_tags", "run_id", sa.String(length=32), "tracking_runs")
    op.create_table(
        "tracking_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("is_nan", sa.Boolean(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("model_id", sa.String(length=40), nullable=True),
        sa.Column("dataset_name", sa.String(length=500), nullable=True),
        sa.Column("dataset_digest", sa.String(length=100), nullable=True),
        _fk("tracking_metrics", "run_id", "tracking_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_metrics")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_tracking_metrics_run_id_key", "tracking_metrics", ["run_id", "key"])
    op.create_index("ix_tracking_metrics_model_id", "tracking_metrics", ["model_id"])
    op.create_table(
        "tracking_latest_metrics",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("is_nan", sa.Boolean(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        _fk("tracking_latest_metrics", "run_id", "tracking_runs"),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_tracking_latest_metrics")),
    )
    op.create_table(
        "tracking_run_io",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("model_id", sa.String(length=40), nullable=True),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _fk("tracking_run_io", "run_id", "tracking_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_run_io")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_tracking_run_io_run_id", "tracking_run_io", ["run_id"])
    op.create_table(
        "tracking_logged_models",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("model_type", sa.String(length=250), nullable=False),
        sa.Column("source_run_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("creation_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("last_updated_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        _fk("tracking_logged_models", "experiment_id", "tracking_experiments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_logged_models")),
    )
    op.create_index("ix_tracking_logged_models_experiment_id", "tracking_logged_models", ["experiment_id"])
    op.create_index("ix_tracking_logged_models_source_run_id", "tracking_logged_models", ["source_run_id"])
    _key_value("tracking_logged_model_params", "model_id", sa.String(length=40), "tracking_logged_models")
    _key_value("tracking_logged_model_tags", "model_id", sa.String(length=40), "tracking_logged_models")
    op.create_table(
        "tracking_artifacts",
        sa.Column("root", sa.String(length=128), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("root", "path", name=op.f("pk_tracking_artifacts")),
    )
    op.create_index("ix_tracking_artifacts_digest", "tracking_artifacts", ["digest"])
    # MLflow's Default experiment, which always exists and has id 0.
    op.bulk_insert(
        experiments,
        [
            {
                "id": 0,
                "name": "Default",
                "lifecycle_stage": "active",
                "created_by": "",
                "creation_time": 0,
                "last_update_time": 0,
            }
        ],
    )


def downgrade() -> None:
    for table in (
        "tracking_artifacts",
        "tracking_logged_model_tags",
        "tracking_logged_model_params",
        "tracking_logged_models",
        "tracking_run_io",
        "tracking_latest_metrics",
        "tracking_metrics",
        "tracking_run_tags",
        "tracking_run_params",
        "tracking_runs",
        "tracking_experiment_tags",
        "tracking_experiments",
    ):
        op.drop_table(table)
