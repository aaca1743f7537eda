"""Metadata storage: the schema, its migrations, and the SQL more than one service module shares.

The service layer holds each transaction and writes the statements only one of its modules
runs; what two or more run (the version select, entity loaders, filter-to-SQL) lives here.
See ``covex.service`` for the whole rule.
"""

# The trust tables live in a module of their own; importing it here puts them on the schema's
# ``metadata`` whatever part of the store is imported first.
from covex.store import trust_schema as _trust_schema  # noqa: F401
