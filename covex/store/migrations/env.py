"""Alembic environment: runs on the connection Covex hands in."""

from alembic import context

from covex.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
context.run_migrations()
