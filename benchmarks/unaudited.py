"""The ``covex`` command with the audit append replaced by a no-op: governance.py's baseline.

For benchmarks only. Covex itself has no switch to turn the audit trail off.
"""

from __future__ import annotations

from covex.cli.main import main
from covex.service.base import ServiceBase


def _no_audit(*_args: object, **_kwargs: object) -> None:
    return None


ServiceBase._audit = _no_audit  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
