"""Tables of the metadata store (SQLAlchemy Core). Alembic migrations mirror this file."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_by", String(256), nullable=False, default=""),
    # The last version number handed out; bumped atomically in the inserting transaction.
    Column("last_version", Integer, nullable=False, default=0),
    Column("creation_timestamp", BigInteger, nullable=False),
    Column("last_updated_timestamp", BigInteger, nullable=False),
    UniqueConstraint("name"),
    Index("ix_models_name_pattern", "name", postgresql_ops={"name": "text_pattern_ops"}),
    Index("ix_models_creation_timestamp", "creation_timestamp"),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_message", Text, nullable=False, default=""),
    Column("stage", String(64), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("source", Text, nullable=False, default=""),
    Column("run_id", String(256), nullable=False, default=""),
    Column("run_link", Text, nullable=False, default=""),
    Column("created_by", String(256), nullable=False, default=""),
    Column("manifest_digest", String(64), nullable=True),
    Column("file_count", Integer, nullable=False, default=0),
    Column("size", BigInteger, nullable=False, default=0),
    Column("creation_timestamp", BigInteger, nullable=False),
    Column("last_updated_timestamp", BigInteger, nullable=False),
    UniqueConstraint("model_id", "version"),
    Index("ix_model_versions_model_id_stage", "model_id", "stage"),
    Index("ix_model_versions_stage", "stage"),
    Index("ix_model_versions_creation_timestamp", "creation_timestamp"),
    Index("ix_model_versions_run_id", "run_id"),
)

version_tags = Table(
    "version_tags",
    metadata,
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

version_params = Table(
    "version_params",
    metadata,
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

version_metrics = Table(
    "version_metrics",
    metadata,
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float, nullable=False),
    Index("ix_version_metrics_key_value", "key", "value"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(250), primary_key=True),
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False),
    Index("ix_model_aliases_version_id", "version_id"),
    Index("ix_model_aliases_alias", "alias"),
)

version_files = Table(
    "version_files",
    metadata,
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mode", Integer, nullable=False, default=0o644),
    Index("ix_version_files_digest", "digest"),
)

# JSON documents of a version: lineage, signature, profile (written with the version) and card (editable).
version_documents = Table(
    "version_documents",
    metadata,
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("body", Text, nullable=False),
    Column("last_updated_timestamp", BigInteger, nullable=False),
)

# Stage moves and alias changes, in order: who moved what, from where to where, and when.
model_events = Table(
    "model_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=True),
    Column("kind", String(16), nullable=False),
    Column("subject", String(250), nullable=False, default=""),
    Column("before", String(250), nullable=True),
    Column("after", String(250), nullable=True),
    Column("actor", String(256), nullable=False, default=""),
    Column("timestamp", BigInteger, nullable=False),
    # Why it moved: the mover's comment, and the approval request that moved it (if any).
    Column("comment", Text, nullable=False, default="", server_default=""),
    Column("request_id", Integer, nullable=True),
    Index("ix_model_events_model_id_timestamp", "model_id", "timestamp"),
)

# -- identity and access ----------------------------------------------------------------
# Governance rows are named by id in the audit trail, so SQLite must never reuse an id.

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    # "user" (a person) or "service" (a service account: tokens only, never an approver of its own work).
    Column("kind", String(16), nullable=False, default="user"),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_by", String(256), nullable=False, default=""),
    Column("creation_timestamp", BigInteger, nullable=False),
    UniqueConstraint("name"),
    sqlite_autoincrement=True,
)

groups = Table(
    "groups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("creation_timestamp", BigInteger, nullable=False),
    UniqueConstraint("name"),
    sqlite_autoincrement=True,
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_group_members_user_id", "user_id"),
)

# API tokens: only the SHA-256 of the secret is kept; the secret is shown once.
tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(256), nullable=False, default=""),
    Column("token_hash", String(64), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("creation_timestamp", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    UniqueConstraint("token_hash"),
    Index("ix_tokens_user_id", "user_id"),
    sqlite_autoincrement=True,
)

# Who may do what. subject: "user:<name>", "group:<name>" or "everyone". model_id NULL: every model.
# role: reader < editor < manager, or approver (with scope "stage:<Stage>" or "alias:<alias>").
grants = Table(
    "grants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=True),
    Column("subject", String(300), nullable=False),
    Column("role", String(16), nullable=False),
    Column("scope", String(300), nullable=False, default=""),
    Column("created_by", String(256), nullable=False, default=""),
    Column("creation_timestamp", BigInteger, nullable=False),
    Index("ix_grants_subject_model_id", "subject", "model_id"),
    Index("ix_grants_model_id", "model_id"),
    sqlite_autoincrement=True,
)

# -- policies and approval requests -------------------------------------------------------

# Policies of protected stages and aliases, one per scope; body is the policy's rules as JSON.
# scope_kind: "global" (scope ""), "model" (a name), "pattern" (a glob of names), "tag" ("key=value").
policies = Table(
    "policies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope_kind", String(16), nullable=False, default="global", server_default="global"),
    Column("scope", String(512), nullable=False, default="", server_default=""),
    Column("target_kind", String(16), nullable=False),
    Column("target", String(250), nullable=False),
    Column("body", Text, nullable=False),
    Column("updated_by", String(256), nullable=False, default=""),
    Column("last_updated_timestamp", BigInteger, nullable=False),
    UniqueConstraint("target_kind", "target", "scope_kind", "scope"),
    sqlite_autoincrement=True,
)

transition_requests = Table(
    "transition_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("target_kind", String(16), nullable=False),
    Column("target", String(250), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_message", Text, nullable=False, default=""),
    # "promotion", or "rollback": a return to a version that held the target before.
    Column("kind", String(16), nullable=False, default="promotion", server_default="promotion"),
    Column("requester", String(256), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    # The version that held the target when the request was made (the champion gates compare with).
    Column("champion", Integer, nullable=True),
    Column("gates", Text, nullable=False, default="[]"),
    # The policy the request was judged by: its rules then (policy), its id and its scope
    # ("global", "model:<name>", "pattern:<glob>", "tag:<key>=<value>").
    Column("policy", Text, nullable=False, default="{}"),
    Column("policy_id", Integer, nullable=True),
    Column("policy_scope", String(530), nullable=False, default="global", server_default="global"),
    Column("creation_timestamp", BigInteger, nullable=False),
    Column("last_updated_timestamp", BigInteger, nullable=False),
    Index("ix_transition_requests_model_id_status", "model_id", "status"),
    Index("ix_transition_requests_status", "status"),
    sqlite_autoincrement=True,
)

request_reviews = Table(
    "request_reviews",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Integer, ForeignKey("transition_requests.id", ondelete="CASCADE"), nullable=False),
    Column("reviewer", String(256), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("timestamp", BigInteger, nullable=False),
    UniqueConstraint("request_id", "reviewer"),
    sqlite_autoincrement=True,
)

version_comments = Table(
    "version_comments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False),
    Column("author", String(256), nullable=False),
    Column("body", Text, nullable=False),
    Column("request_id", Integer, nullable=True),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_version_comments_version_id", "version_id"),
    sqlite_autoincrement=True,
)

# Where versions run: scoring servers and batch runs (``covex.domain.deployments``).
deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    # The number stays when the version is deleted (the id is then NULL): the history keeps what ran.
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True),
    Column("version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("target", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("started_by", String(256), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("stopped_at", BigInteger, nullable=True),
    Column("heartbeat_at", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=True),
    Column("duration_s", Float, nullable=True),
    # Where a serving process writes its inference log (monitoring reads it from there).
    Column("log_location", Text, nullable=True),
    Index("ix_deployments_model_id", "model_id"),
    Index("ix_deployments_version_id", "version_id"),
    sqlite_autoincrement=True,
)

# -- monitoring ---------------------------------------------------------------------------

# One row per check of a version: its window, status and findings (the body, JSON). Kept when the
# version is deleted (version_id NULL), like deployments: the history keeps what was seen.
monitor_results = Table(
    "monitor_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True),
    Column("version", Integer, nullable=False),
    Column("status", String(24), nullable=False),
    Column("source", Text, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("window_start", BigInteger, nullable=True),
    Column("window_end", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_monitor_results_model_id_version", "model_id", "version"),
    Index("ix_monitor_results_version_id", "version_id"),
    sqlite_autoincrement=True,
)

# What a version scored on a set of rows (covex.domain.evaluations); ``key`` finds the same one again.
evaluations = Table(
    "evaluations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True),
    Column("version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("key", String(128), nullable=False),
    Column("data_digest", String(80), nullable=False),
    Column("source", Text, nullable=False),
    Column("data_tags", Text, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_evaluations_model_id_version", "model_id", "version"),
    Index("ix_evaluations_model_id_key", "model_id", "key"),
    Index("ix_evaluations_version_id", "version_id"),
    sqlite_autoincrement=True,
)

# Who runs a job that only one process may run at a time (the monitor runner), until when.
worker_leases = Table(
    "worker_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

# A model's monitor config, as its YAML text (validated when set; comments kept).
monitor_configs = Table(
    "monitor_configs",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("body", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(256), nullable=False),
)

# -- audit trail --------------------------------------------------------------------------

# Append-only, hash-chained: each record's hash covers its fields and the previous record's hash.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(600), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
    Column("request_id", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_timestamp", "timestamp"),
    Index("ix_audit_log_target", "target"),
)

# One row: the chain's last sequence number and hash. Appenders lock it, so the chain never forks,
# and verify compares with it, so deleting the newest records is caught too.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# -- webhooks -----------------------------------------------------------------------------

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=True),
    Column("secret", String(128), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_by", String(256), nullable=False, default=""),
    Column("creation_timestamp", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

# The outbox: one row per event per subscribed webhook, written in the transaction of the change.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("webhook_id", Integer, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("lease_until", BigInteger, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=False, default=""),
    Column("creation_timestamp", BigInteger, nullable=False),
    Column("delivered_timestamp", BigInteger, nullable=True),
    Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_webhook_id", "webhook_id"),
    sqlite_autoincrement=True,
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=False, default=""),
    Column("duration_ms", Integer, nullable=False, default=0),
    Index("ix_webhook_attempts_delivery_id", "delivery_id"),
    sqlite_autoincrement=True,
)

# -- MLflow tracking (covex.domain.tracking): what MLflow clients log through Covex's MLflow API --


LOGGED = "tracking_logged_models"


def _key_values(name: str, owner: str, owner_type: Any, target: str) -> Table:
    owner_column = Column(owner, owner_type, ForeignKey(f"{target}.id", ondelete="CASCADE"), primary_key=True)
    key, value = Column("key", String(250), primary_key=True), Column("value", Text, nullable=False)
    return Table(name, metadata, owner_column, key, value)


tracking_experiments = Table(
    "tracking_experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(500), nullable=False),
    Column("lifecycle_stage", String(16), nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    UniqueConstraint("name"),
    sqlite_autoincrement=True,
)

tracking_experiment_tags = _key_values("tracking_experiment_tags", "experiment_id", Integer, "tracking_experiments")

tracking_runs = Table(
    "tracking_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("tracking_experiments.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("lifecycle_stage", String(16), nullable=False),
    Index("ix_tracking_runs_experiment_id_start_time", "experiment_id", "start_time"),
)

tracking_run_params = _key_values("tracking_run_params", "run_id", String(32), "tracking_runs")
tracking_run_tags = _key_values("tracking_run_tags", "run_id", String(32), "tracking_runs")

# Every logged value of a run's metrics (the history); the latest per key is kept beside it.
tracking_metrics = Table(
    "tracking_metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("tracking_runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Float, nullable=False),
    Column("is_nan", Boolean, nullable=False),  # SQLite stores NaN as NULL: value holds 0 then
    Column("timestamp", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("model_id", String(40), nullable=True),
    Column("dataset_name", String(500), nullable=True),
    Column("dataset_digest", String(100), nullable=True),
    Index("ix_tracking_metrics_run_id_key", "run_id", "key"),
    Index("ix_tracking_metrics_model_id", "model_id"),
    sqlite_autoincrement=True,
)

# The latest value per run and key, as MLflow picks it: the largest step, then timestamp, then value.
tracking_latest_metrics = Table(
    "tracking_latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("tracking_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float, nullable=False),
    Column("is_nan", Boolean, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False),
)

# A run's inputs and outputs: datasets (``body`` as MLflow's JSON) and logged models.
tracking_run_io = Table(
    "tracking_run_io",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("tracking_runs.id", ondelete="CASCADE"), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("model_id", String(40), nullable=True),
    Column("step", BigInteger, nullable=False, default=0),
    Column("body", Text, nullable=False, default=""),
    Index("ix_tracking_run_io_run_id", "run_id"),
    sqlite_autoincrement=True,
)

tracking_logged_models = Table(
    "tracking_logged_models",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("tracking_experiments.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("model_type", String(250), nullable=False, default=""),
    Column("source_run_id", String(32), nullable=False, default=""),
    Column("status", String(32), nullable=False),
    Column("status_message", Text, nullable=False, default=""),
    Column("created_by", String(256), nullable=False),
    Column("creation_timestamp", BigInteger, nullable=False),
    Column("last_updated_timestamp", BigInteger, nullable=False),
    Column("lifecycle_stage", String(16), nullable=False),
    Index("ix_tracking_logged_models_experiment_id", "experiment_id"),
    Index("ix_tracking_logged_models_source_run_id", "source_run_id"),
)

tracking_logged_model_params = _key_values("tracking_logged_model_params", "model_id", String(40), LOGGED)

tracking_logged_model_tags = _key_values("tracking_logged_model_tags", "model_id", String(40), LOGGED)

# Files under a run's or logged model's artifact root (like "1/<run id>/artifacts"), each a blob like a version's.
tracking_artifacts = Table(
    "tracking_artifacts",
    metadata,
    Column("root", String(128), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_tracking_artifacts_digest", "digest"),
)
