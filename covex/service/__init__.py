"""Use cases: one function per action, one transaction each.

Where SQL lives:

- A service function holds its transaction and writes, in SQLAlchemy Core, the statements
  only it (or its own module) runs, next to the rule they serve. A statement run on every
  call is built once, at module level, with bound parameters.
- ``covex.store`` holds the schema, the migrations, filter-to-SQL translation, and every
  statement or loader that more than one service module runs (``store/queries.py``; key/value
  rows such as tags in ``store/keyed.py``).
- ``service/base.py`` holds the statements of the plumbing every service shares: the
  principal's roles, the audit append, the webhook outbox's inserts.
- Nothing above this layer (server, SDK, CLI, workers) writes SQL: a worker acts through a
  service module (the webhook dispatcher through ``service/outbox.py``).
"""

from covex.service.factory import open_service
from covex.service.registry import RegistryService
from covex.store.database import WriteWouldWait, without_waiting

__all__ = ["RegistryService", "WriteWouldWait", "open_service", "without_waiting"]
