"""Putting a registered version where its config says: aliases and a stage, directly or by request.

A stage or alias protected by a policy is entered only through an approval request, so the
version is not moved there: a request is opened (its gates are checked when it opens) and left
for the approvers. A re-run asks once per version and place: it finds the request opened before
and reports it, whatever became of it, rather than opening another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from covex.domain.entities import ModelVersion
from covex.domain.errors import AlreadyExists, InvalidState
from covex.domain.policy import TargetKind, TransitionRequest

if TYPE_CHECKING:
    from covex.client import Client

REQUEST_COMMENT = "opened by covex register"

Outcome = Literal["moved", "already", "requested", "pending", "left", "refused"]


class Move(BaseModel):
    """What became of one place the config names (an alias or the stage).

    ``outcome`` is one of: ``moved`` (moved now, directly or by a request that needed no
    approval), ``already`` (the version holds it), ``requested`` (protected: a request opened
    now), ``pending`` (a request opened by an earlier run; see its ``status``), ``left``
    (someone moved things since: a re-run never undoes that), ``refused`` (protected, and the
    version does not meet the policy's gates: no request).
    """

    model_config = ConfigDict(frozen=True)

    target_kind: TargetKind
    target: str
    outcome: Outcome
    request: TransitionRequest | None = None
    message: str = ""

    @property
    def label(self) -> str:
        return f"@{self.target}" if self.target_kind == "alias" else f"stage {self.target!r}"


def place(
    client: Client,
    version: ModelVersion,
    *,
    aliases: Sequence[str],
    stage: str | None,
    new: bool,
) -> list[Move]:
    """Point ``aliases`` at ``version`` and move it to ``stage``, or ask where a policy protects them.

    A ``new`` version takes every place. A version found from an earlier run takes an alias only
    if the model has none of that name, and the stage only while it is still in the first stage:
    a re-run completes an interrupted run but never undoes a promotion or an alias moved on.
    """
    taken = set() if new else set(client.get_model(version.name).aliases)
    # Newest first: the request a re-run reports is the latest for each place.
    earlier = [] if new else client.approvals.list_requests(version.name, version=version.version, max_results=1000)
    moves = [_place_one(client, version, "alias", a, free=a not in taken, asked=earlier) for a in aliases]
    if stage is not None:
        free = new or version.stage == client.stages[0]
        moves.append(_place_one(client, version, "stage", stage, free=free, asked=earlier))
    return moves


def _place_one(
    client: Client,
    version: ModelVersion,
    kind: TargetKind,
    target: str,
    *,
    free: bool,
    asked: Sequence[TransitionRequest],
) -> Move:
    held = target in version.aliases if kind == "alias" else version.stage == target
    if held:
        return Move(target_kind=kind, target=target, outcome="already")
    before = next((r for r in asked if (r.target_kind, r.target) == (kind, target)), None)
    if before is not None:
        return Move(target_kind=kind, target=target, outcome="pending", request=before)
    if not free:
        where = "is on another version" if kind == "alias" else f"has moved on to stage {version.stage!r}"
        return Move(
            target_kind=kind,
            target=target,
            outcome="left",
            message=f"left alone: {'the alias' if kind == 'alias' else 'the version'} {where} since the first run",
        )
    if _protected(client, version.name, kind, target):
        return _ask(client, version, kind, target)
    if kind == "alias":
        client.set_alias(version.name, target, version.version)
    else:
        client.transition_stage(version.name, version.version, target)
    return Move(target_kind=kind, target=target, outcome="moved")


def _protected(client: Client, name: str, kind: TargetKind, target: str) -> bool:
    """Whether the policy governing ``name``'s moves into the place asks more than a stage order."""
    wanted = target if kind == "alias" else target.lower()
    return any(
        p.policy is not None and not p.policy.direct
        for p in client.approvals.applicable_policies(name)
        if p.target_kind == kind and (p.target if kind == "alias" else p.target.lower()) == wanted
    )


def _ask(client: Client, version: ModelVersion, kind: TargetKind, target: str) -> Move:
    where = {"stage": target} if kind == "stage" else {"alias": target}
    try:
        request: TransitionRequest = client.approvals.create_request(
            version.name, version.version, comment=REQUEST_COMMENT, **where
        )
    except AlreadyExists:
        # Another run of the same config opened it a moment ago: report that one.
        found = client.approvals.list_requests(version.name, status="OPEN", version=version.version)
        asked = next(r for r in found if (r.target_kind, r.target) == (kind, target))
        return Move(target_kind=kind, target=target, outcome="pending", request=asked)
    except InvalidState as exc:
        # The gates failed (or the place changed hands meanwhile): the version stays registered
        # where it is, and the caller reports why it could not go further.
        return Move(target_kind=kind, target=target, outcome="refused", message=exc.message)
    # A policy that needs no approvals applies the request at once.
    outcome: Outcome = "moved" if request.status == "APPLIED" else "requested"
    return Move(target_kind=kind, target=target, outcome=outcome, request=request)
