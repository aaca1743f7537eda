"""Tables of the metadata store (SQLAlchemy Core). Alembic migrations mirror this file."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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
    Index("ix_model_events_model_id_timestamp", "model_id", "timestamp"),
)
