"""``covex register --config registry.yaml``: register a finished model from a pipeline's config file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from covex.cli import output


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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a sentence.")] = False,
) -> None:
    """Register a finished model from a YAML config (see examples/README.md).

    The config names the model, where it comes from (an MLflow model folder, a pickle or
    joblib file, or an MLflow run), its metrics (inline or a JSON/CSV file), params, tags,
    datasets, card, aliases and stage. Everything is checked before anything is written;
    errors name the key and its line. Running the same config on the same files again
    returns the version registered the first time.
    """
    from covex.extras import needs_extra, require_extra

    require_extra("'covex register'", "ml")  # also for --dry-run: it would pass, then the real run fail
    with needs_extra("'covex register'"):
        _register(config, dry_run, as_json)


def _register(config: Path, dry_run: bool, as_json: bool) -> None:
    from covex.cli.main import client
    from covex.ml.config import check_against_registry, load_config, register_config

    loaded = load_config(config)
    if dry_run:
        check_against_registry(client(), loaded)  # stage names and the parent: read-only
        summary = {
            "valid": True,
            "config": str(config),
            "model": loaded.model,
            "source": loaded.model_source.kind,
            "metrics": loaded.all_metrics,
            "datasets": [d["name"] for d in loaded.described_datasets],
            "digest": loaded.digest(),
        }
        if as_json:
            output.emit_json(summary)
        else:
            output.console.print(
                f"{config} is valid: would register {loaded.model} from {loaded.model_source.kind} "
                f"with {len(loaded.all_metrics)} metrics and {len(loaded.datasets)} datasets "
                f"(inputs digest {loaded.digest()[:12]}); dry run, nothing written",
                highlight=False,
            )
        return
    result = register_config(client(), loaded)
    if as_json:
        output.emit_json(result)
        return
    v = result.version
    labels = ", ".join([v.stage, *(f"@{a}" for a in v.aliases)])
    if result.created:
        output.console.print(f"created {v.uri} ({v.status}; {labels})", highlight=False)
    else:
        output.console.print(
            f"{v.uri} already holds these inputs (digest {result.digest[:12]}); no new version ({labels})",
            highlight=False,
        )
