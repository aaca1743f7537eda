"""Tables of trust: file scans, signing keys, signed statements and imported bundles.

They join ``covex.store.schema.metadata`` (``covex.store`` imports this module), so migrations and
``create_all`` see them with the rest.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from covex.store.schema import metadata

# One scan of a version's files: PENDING until a scanner claims and finishes it, then its verdict.
version_scans = Table(
    "version_scans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("verdict", String(16), nullable=False),  # PENDING, CLEAN, FINDINGS, ERROR
    Column("max_severity", String(16), nullable=True),
    Column("scanner", String(64), nullable=False),
    Column("scanner_version", String(64), nullable=False),
    Column("trigger", String(16), nullable=False),  # ready, demand
    Column("requested_by", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("claimed_at", BigInteger, nullable=True),
    Column("finished_at", BigInteger, nullable=True),
    Column("manifest_digest", String(80), nullable=True),
    Column("files", Text, nullable=False),
    Column("findings", Text, nullable=False),
    # A manager's review of the findings: the version loads (load_model, serve, batch) despite them.
    Column("accepted_by", String(256), nullable=True),
    Column("accepted_at", BigInteger, nullable=True),
    Column("accepted_reason", Text, nullable=True),
    Index("ix_version_scans_version_id", "version_id"),
    Index("ix_version_scans_verdict", "verdict"),
    sqlite_autoincrement=True,
)

# Public Ed25519 keys: the registry's own (the private half stays in a file or the environment)
# and the keys of other registries whose statements and bundles it trusts.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("public_key", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    Column("origin", String(16), nullable=False),  # own, trusted
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
)

# Signed statements about a version: a promotion into a protected stage or alias, signed here or
# carried in by a bundle (``origin``: signed, imported). ``body`` is the exact text that was signed.
version_statements = Table(
    "version_statements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("signature", String(128), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_version_statements_version_id", "version_id"),
    sqlite_autoincrement=True,
)

# Bundles imported into a model: importing the same bundle again answers the version it made.
bundle_imports = Table(
    "bundle_imports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bundle_digest", String(80), nullable=False),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("imported_at", BigInteger, nullable=False),
    Column("imported_by", String(256), nullable=False),
    Column("history", Text, nullable=False),  # the source's audit records and requests, as carried
    UniqueConstraint("bundle_digest", "model_id"),
    Index("ix_bundle_imports_version_id", "version_id"),
    sqlite_autoincrement=True,
)
