"""``covex register --config registry.yaml``: register a finished model from a pipeline's config file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from covex.cli import output
from covex.domain.errors import InvalidState

if TYPE_CHECKING:
    from covex.ml.config import Change, Config, Move, RegistrationResult


def register(
    config: Annotated[
        Path,
        typer.Option(
            "--config", "-c", help="The registration config (YAML); relative paths in it resolve against its folder."
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the config and every file it names; register nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of sentences.")] = False,
) -> None:
    """Register a finished model from a YAML config (see examples/README.md).

    The config names the model, where it comes from (an MLflow model folder, a pickle or
    joblib file, or an MLflow run), its metrics (inline or a JSON/CSV file), params, tags,
    datasets, card, aliases and stage. Everything is checked before anything is written;
    errors name the key and its line. Running it again with the same model files, metrics,
    params and datasets finds the version registered the first time and writes the config's
    tags, description and card onto it. A stage or alias protected by a policy gets an
    approval request (its id and gate results are printed); exit code 4 if the version does
    not meet the policy.
    """
    from covex.extras import needs_extra, require_extra

    require_extra("'covex register'", "ml")  # also for --dry-run: it would pass, then the real run fail
    with needs_extra("'covex register'"):
        _register(config, dry_run, as_json)


def _register(path: Path, dry_run: bool, as_json: bool) -> None:
    from covex.cli.context import client
    from covex.ml.config import check_against_registry, load_config, register_config

    loaded = load_config(path)
    if dry_run:
        checked = check_against_registry(client(), loaded)  # stage names and the parent: read-only
        _dry_run(path, loaded, list(checked.notes), as_json)
        return
    result = register_config(client(), loaded)
    if as_json:
        output.emit_json(result)
    else:
        _show(result)
    if result.refused:
        # Registered, but the version may not even ask for a place it was meant for: the step failed.
        why = "; ".join(f"not in {m.label}: {m.message}" for m in result.refused)
        raise InvalidState(f"{result.version.uri} is registered, but {why}")


def _say(text: str) -> None:
    output.console.print(text, highlight=False, soft_wrap=True)


def _dry_run(path: Path, loaded: Config, notes: list[str], as_json: bool) -> None:
    if as_json:
        output.emit_json(
            {
                "valid": True,
                "config": str(path),
                "model": loaded.model,
                "source": loaded.model_source.kind,
                "metrics": loaded.all_metrics,
                "datasets": [d["name"] for d in loaded.described_datasets],
                "digest": loaded.digest(),
                "notes": notes,
            }
        )
        return
    _say(
        f"{escape(str(path))} is valid: would register {escape(loaded.model)} from {loaded.model_source.kind} "
        f"with {len(loaded.all_metrics)} metrics and {len(loaded.datasets)} datasets "
        f"(identity digest {loaded.digest()[:12]}); dry run, nothing written"
    )
    for note in notes:
        _say(f"note: {escape(note)}")


def _show(result: RegistrationResult) -> None:
    v = result.version
    labels = ", ".join([v.stage, *(f"@{a}" for a in v.aliases)])
    if result.created:
        _say(f"created {v.uri} ({v.status}; {escape(labels)})")
    else:
        _say(f"{v.uri} already holds these inputs (digest {result.digest[:12]}); no new version ({escape(labels)})")
    for change in result.changes:
        _say(f"updated {escape(change.field)} on {v.uri}{escape(_what_changed(change))}")
    for note in result.notes:
        _say(f"note: {escape(note)}")
    for move in result.moves:
        _show_move(v.name, v.version, move)


def _what_changed(change: Change) -> str:
    if change.field.startswith("tags."):
        tagged = "(not set)" if change.before is None else repr(change.before)
        return f": {tagged} -> {change.after!r}"
    if change.field == "card":
        card, merged = change.before or {}, change.after or {}
        return f": {', '.join(sorted(k for k in merged if card.get(k) != merged[k]))}"
    return ""


def _show_move(name: str, version: int, move: Move) -> None:
    r = move.request
    place = escape(move.label)
    if move.outcome == "requested" and r is not None:
        _say(
            f"{place} is protected by a policy: opened request {r.id} "
            f"(needs {r.approvals_needed} approval{'' if r.approvals_needed == 1 else 's'})"
        )
    elif move.outcome == "pending" and r is not None:
        if r.status == "OPEN":
            _say(f"{place}: request {r.id} is open ({r.approvals} of {r.approvals_needed} approvals)")
        else:
            where = f"--stage {move.target}" if move.target_kind == "stage" else f"--alias {move.target}"
            _say(
                f"{place}: request {r.id} is {r.status}; not asking again for this version "
                f"(covex requests create {escape(name)} {version} {escape(where)})"
            )
    elif move.outcome == "moved" and r is not None:
        _say(f"{place}: request {r.id} applied at once (the policy needs no approvals)")
    elif move.outcome == "left":
        _say(f"{place}: {escape(move.message)}")
    if move.outcome in ("requested", "pending") and r is not None:
        for gate in r.gates:
            _say(f"  {'passed' if gate.passed else 'failed'}: {escape(gate.gate)} ({escape(gate.message)})")
