"""Deployments: where a version runs (a scoring server, a batch run), recorded on the version.

A serving process records itself when it starts (``STARTING``), says ``SERVING`` once its model is
loaded, heartbeats while it runs, moves the record to another version when it swaps, and ends
``STOPPED`` or ``FAILED``. A batch run starts ``RUNNING`` and ends ``SUCCEEDED`` (with its rows and
duration) or ``FAILED``. An ended record never changes again. A running record whose heartbeat is
older than its ``stale_after`` seconds reads as ``stale``: the process went away without saying so.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from covex.domain.errors import InvalidInput, InvalidState

DeploymentKind = Literal["serving", "batch"]
KINDS: tuple[str, ...] = ("serving", "batch")
STATUSES: dict[str, tuple[str, ...]] = {
    "serving": ("STARTING", "SERVING", "FAILED", "STOPPED"),
    "batch": ("RUNNING", "SUCCEEDED", "FAILED"),
}
FIRST_STATUS = {"serving": "STARTING", "batch": "RUNNING"}
ENDED = frozenset({"FAILED", "STOPPED", "SUCCEEDED"})
# A serving process heartbeats every HEARTBEAT_SECONDS; three missed beats make it stale.
HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS
MAX_TARGET = 2048
MAX_MESSAGE = 4000
# The webhook event each change of status emits (a swap emits ``deployment.swapped``).
EVENT_OF_STATUS = {
    "STARTING": "deployment.started",
    "RUNNING": "deployment.started",
    "SERVING": None,
    "FAILED": "deployment.failed",
    "STOPPED": "deployment.stopped",
    "SUCCEEDED": "deployment.stopped",
}


class Deployment(BaseModel):
    """One deployment of a model: the version it runs now, where, since when, and how it is doing."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    version: int
    kind: DeploymentKind
    target: str
    status: str
    message: str = ""
    started_by: str
    started_at: int
    stopped_at: int | None = None
    heartbeat_at: int
    rows: int | None = None
    duration_s: float | None = None
    log_location: str | None = None
    stale: bool = False

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def active(self) -> bool:
        """Running, and heard from recently."""
        return self.status not in ENDED and not self.stale


def check_kind(kind: object) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    return str(kind)


def check_status(kind: str, status: object) -> str:
    allowed = STATUSES[kind]
    if not isinstance(status, str) or status.upper() not in allowed:
        raise InvalidInput(f"'status' of a {kind} deployment must be one of {', '.join(allowed)}, got {status!r}")
    return status.upper()


# C0 and C1 control characters: printed by a terminal, they would rewrite what `covex deployments` shows.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def check_printable(value: str, field: str, *, lines: bool = False) -> str:
    """Refuse control characters (a ``message`` may hold tabs and line breaks)."""
    found = (_CONTROL_BUT_LINES if lines else _CONTROL).search(value)
    if found:
        raise InvalidInput(f"'{field}' must not contain control characters (found {found.group()!r})")
    return value


# A status never goes back: a serving process says STARTING once, then SERVING, then it ends.
_ORDER = {"STARTING": 0, "RUNNING": 0, "SERVING": 1, "FAILED": 2, "STOPPED": 2, "SUCCEEDED": 2}


def check_transition(current: str, new: str, deployment_id: int) -> None:
    if _ORDER[new] < _ORDER[current]:
        raise InvalidState(f"deployment {deployment_id} is {current}; it cannot go back to {new}")


def check_open(status: str, deployment_id: int) -> None:
    """An ended deployment never changes again."""
    if status in ENDED:
        raise InvalidState(f"deployment {deployment_id} has ended ({status}); start a new one")


def is_stale(status: str, heartbeat_at: int, now: int, stale_after: float = STALE_AFTER_SECONDS) -> bool:
    return status not in ENDED and now - heartbeat_at > stale_after * 1000
