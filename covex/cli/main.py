"""The ``covex`` command: the registry from a shell, through the public SDK only."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from covex import __version__
from covex.cli import access as access_cli
from covex.cli import approvals as approvals_cli
from covex.cli import audit as audit_cli
from covex.cli import deployments as deployments_cli
from covex.cli import evaluations as evaluations_cli
from covex.cli import maintenance as maintenance_cli
from covex.cli import monitor as monitor_cli
from covex.cli import output
from covex.cli import server as server_cli
from covex.cli import trust as trust_cli
from covex.cli import webhooks as webhooks_cli
from covex.cli.batch import batch
from covex.cli.compare import compare
from covex.cli.context import CovexGroup, client, numbers, pairs, read_text_file, state, version_number
from covex.cli.explain import explain
from covex.cli.mlflow_import import import_app
from covex.cli.register import register
from covex.cli.serving import serve
from covex.domain import errors

app = typer.Typer(
    cls=CovexGroup,
    help=(
        "Covex: a model registry. Store versioned, verified models; move them through stages; "
        "point aliases at them; find them by models:/ URI.\n\n"
        "Start here: `covex init` makes a registry in ./covex-data (or --uri PATH); "
        "`covex server` serves one on 127.0.0.1:8080; "
        "`covex models create churn`, `covex versions create churn ./model_dir`, "
        "`covex versions list churn`. Every command takes --help."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    add_completion=False,
)
models_app = typer.Typer(help="Create, list, show, rename, tag and delete models.", no_args_is_help=True)
versions_app = typer.Typer(help="Create, list, search, show, tag and delete versions.", no_args_is_help=True)
stages_app = typer.Typer(help="Move versions between stages; find the latest in a stage.", no_args_is_help=True)
aliases_app = typer.Typer(help="Point movable names (aliases) such as @champion at versions.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(versions_app, name="versions")
app.add_typer(stages_app, name="stages")
app.add_typer(aliases_app, name="aliases")
app.add_typer(import_app, name="import")
for _area in (
    server_cli,
    access_cli,
    approvals_cli,
    audit_cli,
    deployments_cli,
    evaluations_cli,
    maintenance_cli,
    monitor_cli,
    trust_cli,
    webhooks_cli,
):
    _area.register(app)


Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Filter = Annotated[str | None, typer.Option("--filter", "-f", help="e.g. \"name LIKE 'churn%' AND metrics.auc > 0.9\"")]
OrderBy = Annotated[list[str] | None, typer.Option("--order-by", help="e.g. 'metrics.auc DESC' (repeatable)")]
MaxResults = Annotated[int, typer.Option("--max-results", "-n", help="Page size.")]
PageToken = Annotated[str | None, typer.Option("--page-token", help="Token printed by the previous page.")]
Tags = Annotated[list[str] | None, typer.Option("--tag", "-t", help="KEY=VALUE (repeatable)")]
Ref = Annotated[str, typer.Argument(help="models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/STAGE, or NAME")]
VersionArg = Annotated[str | None, typer.Argument(help="Version number, @alias, stage or 'latest' when REF is a name")]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"covex {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    uri: Annotated[
        str | None,
        typer.Option(
            "--uri", envvar="COVEX_URI", help="Data folder, database URL or http(s):// server. Default ./covex-data"
        ),
    ] = None,
    token: Annotated[str | None, typer.Option("--token", envvar="COVEX_TOKEN", help="API token for a server.")] = None,
    artifacts: Annotated[
        str | None, typer.Option("--artifacts", envvar="COVEX_ARTIFACTS", help="fsspec URL for files (e.g. s3://b/p).")
    ] = None,
    _version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    state.reset(uri, token, artifacts)
    output.reset_consoles()
    ctx.call_on_close(state.close)


app.command("register")(register)
app.command("batch")(batch)
app.command("serve")(serve)
app.command("compare")(compare)
app.command("explain")(explain)


# -- models ---------------------------------------------------------------------------------


@models_app.command("create")
def models_create(
    name: str,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    tag: Tags = None,
    as_json: Json = False,
) -> None:
    """Register a new model name."""
    m = client().create_model(name, description, pairs(tag, "tag"))
    output.emit_json(m) if as_json else output.console.print(f"created model {m.name}")


@models_app.command("list")
def models_list(
    filter: Filter = None,
    order_by: OrderBy = None,
    max_results: MaxResults = 100,
    page_token: PageToken = None,
    as_json: Json = False,
) -> None:
    """List or search models."""
    page = client().search_models(filter, order_by=order_by, max_results=max_results, page_token=page_token)
    if as_json:
        output.emit_json(page)
    else:
        output.models_table(page.items, page.next_page_token)


@models_app.command("show")
def models_show(name: str, as_json: Json = False) -> None:
    """Show one model."""
    m = client().get_model(name)
    output.emit_json(m) if as_json else output.show_model(m)


@models_app.command("rename")
def models_rename(name: str, new_name: str) -> None:
    """Rename a model (its versions, aliases and files stay)."""
    client().rename_model(name, new_name)
    output.console.print(f"renamed {name} to {new_name}")


@models_app.command("update")
def models_update(name: str, description: Annotated[str, typer.Option("--description", "-d")]) -> None:
    """Change a model's description."""
    client().update_model(name, description=description)
    output.console.print(f"updated {name}")


@models_app.command("tag")
def models_tag(name: str, tag: Annotated[list[str], typer.Argument(help="KEY=VALUE ...")]) -> None:
    """Set tags on a model."""
    c = client()
    for key, value in pairs(tag, "tag").items():
        c.set_model_tag(name, key, value)
    output.console.print(f"tagged {name}")


@models_app.command("untag")
def models_untag(name: str, key: str) -> None:
    """Remove a tag from a model."""
    client().delete_model_tag(name, key)
    output.console.print(f"removed tag {key} from {name}")


@models_app.command("delete")
def models_delete(name: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Delete a model with all of its versions."""
    c = client()
    m = c.get_model(name)
    if not yes:
        count = m.latest_version or 0
        if not sys.stdin.isatty():
            raise errors.InvalidInput("refusing to delete without confirmation; pass --yes")
        typer.confirm(f"Delete model {name!r} and all its versions (up to v{count})?", abort=True)
    c.delete_model(name)
    output.console.print(f"deleted model {name}")


# -- versions -------------------------------------------------------------------------------


def _local_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@versions_app.command("create")
def versions_create(
    name: str,
    path: Annotated[Path | None, typer.Argument(help="Folder or file to upload.")] = None,
    source: Annotated[str | None, typer.Option(help="Record this URI instead of (or besides) uploading.")] = None,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    tag: Tags = None,
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="NAME=NUMBER (repeatable)")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable)")] = None,
    run_id: Annotated[str, typer.Option()] = "",
    run_link: Annotated[str, typer.Option()] = "",
    as_json: Json = False,
) -> None:
    """Create the next version of a model from a folder or file (uploaded and verified) or a source URI."""
    c = client()
    total = _local_size(path) if path is not None and path.exists() else 0
    with output.progress_bar(f"uploading {name}", total, enabled=path is not None and not as_json) as progress:
        v = c.create_version(
            name,
            path,
            source=source,
            description=description,
            tags=pairs(tag, "tag"),
            metrics=numbers(metric),
            params=pairs(param, "param"),
            run_id=run_id,
            run_link=run_link,
            progress=progress,
        )
    output.emit_json(v) if as_json else output.console.print(f"created {v.uri} ({v.status})")
    scanned = c.trust.latest_scan(v.name, v.version) if v.status == "READY" and not as_json else None
    if scanned is not None and (scanned.high or scanned.verdict == "ERROR"):
        output.err_console.print(f"warning: its files' scan: {scanned.summary} (covex scan {v.uri})", highlight=False)


@versions_app.command("list")
def versions_list(
    name: str, max_results: MaxResults = 100, page_token: PageToken = None, as_json: Json = False
) -> None:
    """List the versions of a model, newest first."""
    page = client().list_versions(name, max_results=max_results, page_token=page_token)
    output.emit_json(page) if as_json else output.versions_table(page.items, page.next_page_token)


@versions_app.command("search")
def versions_search(
    filter: Annotated[str | None, typer.Argument(help="e.g. \"name = 'churn' AND metrics.auc > 0.9\"")] = None,
    order_by: OrderBy = None,
    max_results: MaxResults = 100,
    page_token: PageToken = None,
    as_json: Json = False,
) -> None:
    """Search versions of all models."""
    page = client().search_versions(filter, order_by=order_by, max_results=max_results, page_token=page_token)
    output.emit_json(page) if as_json else output.versions_table(page.items, page.next_page_token)


def _resolve(ref: str, version: str | None) -> tuple[str, int]:
    v = client().get_version(ref, version_number(version) if version is not None else None)
    return v.name, v.version


@versions_app.command("show")
def versions_show(ref: Ref, version: VersionArg = None, as_json: Json = False) -> None:
    """Show one version with its lineage (code, datasets, parent, run)."""
    c = client()
    v = c.get_version(ref, version_number(version) if version is not None else None)
    try:
        lineage: dict[str, Any] | None = c.get_lineage(v.uri)
    except errors.NotFound:
        lineage = None
    deployed = c.deployments(v.name, v.version)
    checked = c.monitoring.list_results(v.name, v.version, max_results=1)
    evaluated = c.evaluations(v.uri, max_results=20)
    scanned = c.trust.latest_scan(v.name, v.version)
    signed = c.trust.list_statements(v.name, v.version)
    if as_json:
        output.emit_json(
            {
                **v.model_dump(mode="json"),
                "lineage": lineage,
                "deployments": [d.model_dump() for d in deployed],
                "monitoring": checked[0].model_dump(mode="json") if checked else None,
                "evaluations": [e.model_dump(mode="json") for e in evaluated],
                "scan": scanned.model_dump(mode="json") if scanned else None,
                "statements": [st.model_dump(mode="json") for st in signed],
            }
        )
    else:
        output.show_version(v, lineage, deployed, checked, evaluated, scanned, signed)


@versions_app.command("history")
def versions_history(
    name: str,
    version: Annotated[int | None, typer.Option("--version", "-v", help="Only moves touching this version.")] = None,
    as_json: Json = False,
) -> None:
    """Stage moves and alias changes of a model, oldest first: who moved what, when."""
    events = client().history(name, version)
    output.emit_json(events) if as_json else output.history_table(events)


@app.command()
def card(
    ref: Ref,
    version: VersionArg = None,
    set_from: Annotated[
        Path | None, typer.Option("--set", help="Replace the card's fields from a YAML or JSON file.")
    ] = None,
    field: Annotated[list[str] | None, typer.Option("--field", "-f", help="FIELD=TEXT to change (repeatable)")] = None,
    as_json: Json = False,
) -> None:
    """Print a version's model card as Markdown (author's fields plus registry facts), or edit it."""
    c = client()
    number = version_number(version) if version is not None else None
    if set_from is not None or field:
        fields: dict[str, Any] = {} if set_from is None else _read_card(set_from)
        if set_from is None:
            fields = c.get_card(ref, number)
        fields.update(pairs(field, "field"))
        c.set_card(ref, fields, number, replace=set_from is not None)
    if as_json:
        output.emit_json(c.get_card(ref, number))
    else:
        print(c.render_card(ref, number), end="")


def _read_card(path: Path) -> dict[str, Any]:
    import yaml

    text = read_text_file(path, "'--set'")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise errors.InvalidInput(f"'--set' {str(path)!r} does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise errors.InvalidInput(f"'--set' {str(path)!r} must hold a mapping of card fields")
    return data


@versions_app.command("files")
def versions_files(ref: Ref, version: VersionArg = None, as_json: Json = False) -> None:
    """List the files of a version with their SHA-256 digests."""
    files = client().list_files(ref, version_number(version) if version is not None else None)
    if as_json:
        output.emit_json(files)
        return
    from rich.table import Table

    table = Table("path", "size", "sha256")
    for f in files:
        table.add_row(f.path, str(f.size), f.digest)
    output.console.print(table)


@versions_app.command("update")
def versions_update(
    ref: Ref, version: VersionArg = None, description: Annotated[str, typer.Option("--description", "-d")] = ""
) -> None:
    """Change a version's description."""
    name, number = _resolve(ref, version)
    client().update_version(name, number, description=description)
    output.console.print(f"updated models:/{name}/{number}")


@versions_app.command("tag")
def versions_tag(name: str, version: int, tag: Annotated[list[str], typer.Argument(help="KEY=VALUE ...")]) -> None:
    """Set tags on a version."""
    c = client()
    for key, value in pairs(tag, "tag").items():
        c.set_version_tag(name, version, key, value)
    output.console.print(f"tagged models:/{name}/{version}")


@versions_app.command("untag")
def versions_untag(name: str, version: int, key: str) -> None:
    """Remove a tag from a version."""
    client().delete_version_tag(name, version, key)
    output.console.print(f"removed tag {key} from models:/{name}/{version}")


@versions_app.command("log-metric")
def versions_log_metric(
    name: str, version: int, metric: Annotated[list[str], typer.Argument(help="NAME=NUMBER ...")]
) -> None:
    """Add or overwrite metrics of a version."""
    client().log_metrics(name, version, numbers(metric))
    output.console.print(f"logged metrics on models:/{name}/{version}")


@versions_app.command("log-param")
def versions_log_param(
    name: str, version: int, param: Annotated[list[str], typer.Argument(help="NAME=VALUE ...")]
) -> None:
    """Add or overwrite params of a version."""
    client().log_params(name, version, pairs(param, "param"))
    output.console.print(f"logged params on models:/{name}/{version}")


@versions_app.command("delete")
def versions_delete(name: str, version: int, yes: Annotated[bool, typer.Option("--yes", "-y")] = False) -> None:
    """Delete a version (its number is never reused)."""
    if not yes:
        if not sys.stdin.isatty():
            raise errors.InvalidInput("refusing to delete without confirmation; pass --yes")
        typer.confirm(f"Delete models:/{name}/{version}?", abort=True)
    client().delete_version(name, version)
    output.console.print(f"deleted models:/{name}/{version}")


@app.command()
def download(
    ref: Ref,
    dst: Annotated[Path, typer.Argument(help="Folder to write the files into.")],
    version: Annotated[str | None, typer.Option("--version", "-v", help="When REF is a name.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Download every file of a version, verifying each digest."""
    c = client()
    v = c.get_version(ref, version_number(version) if version is not None else None)
    with output.progress_bar(f"downloading {v.uri}", v.size, enabled=not quiet) as progress:
        root = c.download(v.uri, dst, progress=progress)
    output.console.print(f"downloaded {v.uri} ({v.file_count} files) to {root}")


# -- stages and aliases ---------------------------------------------------------------------


@stages_app.command("list")
def stages_list(as_json: Json = False) -> None:
    """The configured stages, in order."""
    stages = client().stages
    output.emit_json({"stages": stages}) if as_json else output.console.print(" → ".join(stages))


@stages_app.command("set")
def stages_set(
    name: str,
    version: int,
    stage: str,
    archive_existing: Annotated[bool, typer.Option(help="Archive the other versions in that stage.")] = False,
    as_json: Json = False,
) -> None:
    """Move a version to a stage."""
    v = client().transition_stage(name, version, stage, archive_existing=archive_existing)
    output.emit_json(v) if as_json else output.console.print(f"{v.uri} is now in {v.stage}")


@stages_app.command("latest")
def stages_latest(name: str, stage: str, as_json: Json = False) -> None:
    """The latest READY version in a stage."""
    v = client().get_latest_version(name, stage)
    output.emit_json(v) if as_json else output.show_version(v)


@aliases_app.command("set")
def aliases_set(name: str, alias: str, version: int) -> None:
    """Point ALIAS at VERSION (moving it off any other version)."""
    client().set_alias(name, alias, version)
    output.console.print(f"models:/{name}@{alias} → {version}")


@aliases_app.command("delete")
def aliases_delete(name: str, alias: str) -> None:
    """Remove an alias."""
    client().delete_alias(name, alias)
    output.console.print(f"removed alias {alias} from {name}")


@aliases_app.command("show")
def aliases_show(name: str, alias: str, as_json: Json = False) -> None:
    """The version an alias points at."""
    v = client().get_version(f"models:/{name}@{alias}")
    output.emit_json(v) if as_json else output.show_version(v)


def main() -> None:
    """Entry point of the ``covex`` command."""
    app()
