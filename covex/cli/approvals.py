"""The ``covex`` commands for governance: policies, requests, comments, rollback and placement history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from covex.cli import output
from covex.domain import errors
from covex.domain.policy import Comment, Placement, Policy, Rollback, TransitionRequest, scope_label, scope_of, to_ms
from covex.domain.scopes import AppliedPolicy

policies_app = typer.Typer(
    help="Policies protecting stages and aliases (global, or per model, name pattern or tag): approvals, "
    "approvers, gates, stage order.",
    no_args_is_help=True,
)
requests_app = typer.Typer(
    help="Requests to move versions into protected stages or aliases; approve, reject, cancel.", no_args_is_help=True
)
comments_app = typer.Typer(help="A version's comment thread.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Stage = Annotated[str | None, typer.Option("--stage", "-s", help="A stage, e.g. Production.")]
Alias = Annotated[str | None, typer.Option("--alias", "-a", help="An alias, e.g. champion.")]
Message = Annotated[str, typer.Option("--message", "-m", help="Why: kept with the request and in the history.")]
ScopeModel = Annotated[
    str | None, typer.Option("--model", help="The policy of one model, or of names matching a glob (network/*).")
]
ScopeTag = Annotated[str | None, typer.Option("--tag", help="The policy of models with this tag: key=value.")]


def register(app: typer.Typer) -> None:
    """Add this area's commands and groups to the main app."""
    app.add_typer(policies_app, name="policies")
    app.add_typer(requests_app, name="requests")
    app.add_typer(comments_app, name="comments")
    app.command("rollback")(rollback)
    app.command("history")(history)


def _approvals() -> Any:
    from covex.cli.context import client

    return client().approvals


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _target(stage: str | None, alias: str | None) -> tuple[str, str]:
    if (stage is None) == (alias is None):
        raise errors.InvalidInput("give exactly one of '--stage' or '--alias'")
    return ("stage", stage) if stage is not None else ("alias", str(alias))


def _print(text: str) -> None:
    output.console.print(text, highlight=False, soft_wrap=True)


# -- rendering --------------------------------------------------------------------------


def _policies_table(policies: Sequence[Policy]) -> None:
    table = Table(
        "id",
        "target",
        "scope",
        "approvals",
        "approvers",
        "gates",
        "require",
        "from",
        "archive",
        "checks",
        "ttl (days)",
        "updated by",
    )
    for p in policies:
        table.add_row(
            str(p.id),
            f"{p.target_kind}:{escape(p.target)}",
            escape(p.scope_label),
            str(p.approvals),
            ", ".join(p.approvers) or "(approver grants)",
            "\n".join(p.gates),
            ", ".join(p.require),
            ", ".join(p.from_),
            "yes" if p.archive_existing else "",
            "\n".join(c for c in ("not while serving" * p.not_while_serving, p.scan and f"scan {p.scan}") if c),
            str(p.approval_ttl_days or "-"),
            p.updated_by,
        )
    output.console.print(table)


def _requests_table(requests: Sequence[TransitionRequest]) -> None:
    table = Table(
        "id", "model", "version", "target", "status", "approvals", "policy", "requester", "comment", "updated"
    )
    for r in requests:
        table.add_row(
            str(r.id),
            r.model,
            str(r.version),
            f"{r.target_kind}:{r.target}",
            r.status,
            f"{r.approvals}/{r.approvals_needed}",
            _judged_by(r),
            r.requester,
            escape(r.comment[:60]),
            _when(r.last_updated_timestamp),
        )
    output.console.print(table)


def _scope_ref(ref: str) -> str:
    kind, _, text = ref.partition(":")
    return scope_label(kind, text)


def _judged_by(r: TransitionRequest) -> str:
    if r.policy_id is None:
        return "-"
    return f"policy {r.policy_id} ({_scope_ref(r.policy_scope)})"


def _show_request(r: TransitionRequest) -> None:
    champion = "none" if r.champion is None else f"version {r.champion}"
    _print(
        f"[bold]{'rollback ' if r.kind == 'rollback' else ''}request {r.id}[/]: "
        f"{escape(r.model)} version {r.version} → {r.target_kind} {escape(r.target)} "
        f"([bold]{r.status}[/]{': ' + escape(r.status_message) if r.status_message else ''})"
    )
    _print(f"requested by {escape(r.requester)} at {_when(r.creation_timestamp)}; champion then: {champion}")
    if r.comment:
        _print(f"comment: {escape(r.comment)}")
    _print(f"judged by: {_judged_by(r)}")
    if r.policy is not None and r.policy.from_:
        _print(f"entered only from: {', '.join(r.policy.from_)}")
    gates = Table("check", "value", "threshold", "passed", "detail")
    for g in r.gates:
        gates.add_row(
            escape(g.gate),
            "-" if g.value is None else f"{g.value:g}",
            "-" if g.threshold is None else f"{g.threshold:g}",
            "yes" if g.passed else "[red]no[/]",
            escape(g.message),
        )
    if r.gates:
        output.console.print(gates)
    _print(f"approvals: {r.approvals} of {r.approvals_needed}")
    for review in r.reviews:
        _print(
            f"  {review.decision} by {escape(review.reviewer)} at {_when(review.timestamp)}: {escape(review.comment)}"
        )


def _emit(value: Any, as_json: bool, show: Any) -> None:
    if as_json:
        output.emit_json(value)
    else:
        show(value)


# -- policies ---------------------------------------------------------------------------


@policies_app.command("apply")
def policies_apply(
    file: Annotated[Path, typer.Argument(help="A YAML file with a 'policies:' list.")],
    replace: Annotated[bool, typer.Option("--replace", help="Also delete policies the file does not list.")] = False,
    as_json: Json = False,
) -> None:
    """Apply a policy file (admins): every policy in it, or none if any line has an error."""
    from covex.cli.context import read_text_file

    applied = _approvals().apply_policy_file(read_text_file(file, "policy file"), replace)
    _emit(applied, as_json, lambda ps: _print(f"applied {len(ps)} polic{'y' if len(ps) == 1 else 'ies'} from {file}"))


@policies_app.command("set")
def policies_set(
    stage: Stage = None,
    alias: Alias = None,
    model: ScopeModel = None,
    tag: ScopeTag = None,
    approvals: Annotated[
        int | None,
        typer.Option("--approvals", help="Default 1; 0 with only --from, --not-while-serving, --scan)."),
    ] = None,
    approver: Annotated[
        list[str] | None, typer.Option("--approver", help="Whose approvals count (repeat): group:ml-leads, user:bob.")
    ] = None,
    gate: Annotated[list[str] | None, typer.Option("--gate", help="A gate (repeat): 'metrics.auc >= 0.8'.")] = None,
    require: Annotated[
        list[str] | None, typer.Option("--require", help="Required (repeat): description, card.intended_use ...")
    ] = None,
    from_: Annotated[
        list[str] | None, typer.Option("--from", help="A stage the stage may be entered from (repeat).")
    ] = None,
    archive_existing: Annotated[
        bool, typer.Option("--archive-existing", help="Other versions in the stage go to the archive stage.")
    ] = False,
    not_while_serving: Annotated[
        bool,
        typer.Option("--not-while-serving", help="A version a serving deployment runs cannot enter the stage."),
    ] = False,
    allow_self_approval: Annotated[
        bool, typer.Option("--allow-self-approval", help="The requester and the author may approve.")
    ] = False,
    ttl_days: Annotated[int | None, typer.Option("--ttl-days", help="Approvals older than this lapse.")] = None,
    scan: Annotated[
        str | None, typer.Option("--scan", help="What the latest file scan may find: clean or 'max_severity: low'.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Create or replace one policy (admins): global, or for a model, a name pattern (--model) or a tag (--tag)."""
    kind, target = _target(stage, alias)
    given: dict[str, Any] = {
        "approvals": approvals,
        "approvers": approver,
        "gates": gate,
        "require": require,
        "from": from_,
        "approval_ttl_days": ttl_days,
        "scan": scan,
    }
    body = {k: v for k, v in given.items() if v is not None}
    if archive_existing:
        body["archive_existing"] = True
    if not_while_serving:
        body["not_while_serving"] = True
    if allow_self_approval:
        body["forbid_self_approval"] = False
    policy = _approvals().set_policy(kind, target, body, model=model, tag=tag)
    _emit(policy, as_json, lambda p: _policies_table([p]))


@policies_app.command("list")
def policies_list(as_json: Json = False) -> None:
    """Every policy, with its approvals, approvers, gates and requirements."""
    _emit(_approvals().list_policies(), as_json, _policies_table)


def _show_applied(places: Sequence[AppliedPolicy]) -> None:
    for place in places:
        where = f"{place.target_kind} {escape(place.target)}"
        p = place.policy
        if p is None:
            _print(f"[bold]{where}[/]: no policy: {escape(place.reason)}")
        else:
            rules = [f"{p.approvals} approval{'' if p.approvals == 1 else 's'}"]
            rules += [f"gate {escape(g)}" for g in p.gates] + [f"require {escape(r)}" for r in p.require]
            rules += [f"from {', '.join(p.from_)}"] if p.from_ else []
            rules += ["not while serving"] if p.not_while_serving else []
            rules += [f"scan {p.scan}"] if p.scan else []
            _print(f"[bold]{where}[/]: policy {p.id} ({escape(p.scope_label)}): {escape(place.reason)}")
            _print(f"  {'; '.join(rules)}")
        for other in place.passed_over:
            _print(
                f"  passed over: policy {other.policy_id} ({escape(_scope_ref(other.scope))}): {escape(other.reason)}"
            )


@policies_app.command("show")
def policies_show(
    name: Annotated[
        str | None, typer.Argument(help="A model: which policy applies to each of its stages and aliases, and why.")
    ] = None,
    stage: Stage = None,
    alias: Alias = None,
    model: ScopeModel = None,
    tag: ScopeTag = None,
    as_json: Json = False,
) -> None:
    """Which policy applies to each stage and alias of model NAME and why; or one policy (--stage/--alias)."""
    if name is not None:
        if model is not None or tag is not None:
            raise errors.InvalidInput("give a model NAME or --model/--tag, not both")
        places = _approvals().applicable_policies(name)
        if stage is not None or alias is not None:
            kind, target = _target(stage, alias)
            places = [p for p in places if p.target_kind == kind and p.target.lower() == target.lower()]
        _emit(places, as_json, _show_applied)
        return
    policy = _approvals().get_policy(*_target(stage, alias), model=model, tag=tag)
    _emit(policy, as_json, lambda p: _policies_table([p]))


@policies_app.command("delete")
def policies_delete(stage: Stage = None, alias: Alias = None, model: ScopeModel = None, tag: ScopeTag = None) -> None:
    """Remove a policy (admins); the models it covered fall back to the next policy that covers them."""
    kind, target = _target(stage, alias)
    _approvals().delete_policy(kind, target, model=model, tag=tag)
    scope_kind, scope_text = scope_of(model, tag)
    scope = "" if scope_kind == "global" else f" for {scope_label(scope_kind, scope_text)}"
    _print(f"deleted the policy of {kind} {target}{scope}")


# -- requests ---------------------------------------------------------------------------


@requests_app.command("create")
def requests_create(
    name: str, version: int, stage: Stage = None, alias: Alias = None, message: Message = "", as_json: Json = False
) -> None:
    """Ask to move VERSION of NAME into a protected stage or alias; its gates are checked now."""
    _target(stage, alias)
    request = _approvals().create_request(name, version, stage=stage, alias=alias, comment=message)
    _emit(request, as_json, _show_request)


@requests_app.command("list")
def requests_list(
    model: Annotated[str | None, typer.Option("--model", help="Only this model's requests.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="OPEN, APPLIED, REJECTED, CANCELLED or STALE.")] = None,
    as_json: Json = False,
) -> None:
    """Requests, newest first."""
    _emit(_approvals().list_requests(model, status), as_json, _requests_table)


@requests_app.command("show")
def requests_show(request_id: int, as_json: Json = False) -> None:
    """One request with its gate results and reviews."""
    _emit(_approvals().get_request(request_id), as_json, _show_request)


@requests_app.command("inbox")
def requests_inbox(as_json: Json = False) -> None:
    """OPEN requests you may approve and have not reviewed yet."""
    _emit(_approvals().inbox(), as_json, _requests_table)


@requests_app.command("approve")
def requests_approve(request_id: int, message: Message = "", as_json: Json = False) -> None:
    """Approve a request; the approval that completes it moves the version."""
    _emit(_approvals().approve(request_id, message), as_json, _show_request)


@requests_app.command("reject")
def requests_reject(request_id: int, message: Message = "", as_json: Json = False) -> None:
    """Reject a request; it closes."""
    _emit(_approvals().reject(request_id, message), as_json, _show_request)


@requests_app.command("cancel")
def requests_cancel(request_id: int, message: Message = "", as_json: Json = False) -> None:
    """Withdraw your own OPEN request."""
    _emit(_approvals().cancel(request_id, message), as_json, _show_request)


# -- comments ---------------------------------------------------------------------------


def _comments_table(comments: Sequence[Comment]) -> None:
    table = Table("when", "author", "comment", "request")
    for c in comments:
        table.add_row(_when(c.timestamp), c.author, escape(c.body), str(c.request_id or ""))
    output.console.print(table)


@comments_app.command("add")
def comments_add(name: str, version: int, body: str, as_json: Json = False) -> None:
    """Add a comment to VERSION of NAME."""
    _emit(_approvals().add_comment(name, version, body), as_json, lambda c: _print(f"comment {c.id} added"))


@comments_app.command("list")
def comments_list(name: str, version: int, as_json: Json = False) -> None:
    """The comment thread of VERSION of NAME, oldest first (request and review comments included)."""
    _emit(_approvals().list_comments(name, version), as_json, _comments_table)


# -- rollback and placement -------------------------------------------------------------


def _show_rollback(r: Rollback) -> None:
    place = f"{r.target_kind} {escape(r.target)}"
    if r.request is None or r.applied:
        _print(f"{escape(r.model)}: {place} is back on version {r.to_version} (was {r.from_version})")
    else:
        _print(
            f"{escape(r.model)}: request {r.request.id} opened to put version {r.to_version} back in {place} "
            f"(now {r.from_version}); it needs {r.request.approvals_needed} approval(s)"
        )


def rollback(name: str, stage: Stage = None, alias: Alias = None, message: Message = "", as_json: Json = False) -> None:
    """Put back the version that held a stage or alias before (a request, if a policy protects it)."""
    _target(stage, alias)
    _emit(_approvals().rollback(name, stage=stage, alias=alias, comment=message), as_json, _show_rollback)


def _show_placement(p: Placement) -> None:
    place = f"{p.target_kind} {escape(p.target)}"
    if not p.versions:
        _print(f"{escape(p.model)}: nothing held {place} at {_when(p.at)}")
        return
    held = ", ".join(str(v) for v in p.versions)
    line = f"{escape(p.model)}: version {held} held {place} at {_when(p.at)}, since {_when(p.since)}"
    if p.actor:
        line += f", moved by {escape(p.actor)}"
    if p.request_id is not None:
        line += f" (request {p.request_id})"
    if p.comment:
        line += f": {escape(p.comment)}"
    _print(line)


def history(
    name: str,
    stage: Stage = None,
    alias: Alias = None,
    at: Annotated[
        str | None, typer.Option("--at", help="When: 2026-11-20T10:00 (local time) or milliseconds; default now.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Which version held a stage or alias at a moment, since when, who moved it there and why."""
    _target(stage, alias)
    moment = None if at is None else to_ms(at, 0)
    _emit(_approvals().placement(name, stage=stage, alias=alias, at=moment), as_json, _show_placement)
