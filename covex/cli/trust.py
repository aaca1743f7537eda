"""The trust commands: ``covex scan``, ``covex verify``, ``covex keys ...`` and ``covex bundle ...``."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from covex.cli import output
from covex.cli.context import client, fail, version_number
from covex.domain import signing
from covex.domain.errors import InvalidInput
from covex.domain.scans import ScanReport, rank
from covex.domain.signing import SigningKey

keys_app = typer.Typer(help="The registry's signing keys and the keys of registries it trusts.", no_args_is_help=True)
bundle_app = typer.Typer(
    help="Move a version between registries as one signed file, with its approvals.", no_args_is_help=True
)
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Ref = Annotated[str, typer.Argument(help="Model name or models:/ URI (models:/churn/7, models:/churn@champion)")]
VersionArg = Annotated[str | None, typer.Argument(help="Version number (when REF is a model name)")]
EXIT_UNSAFE = 1


def register(app: typer.Typer) -> None:
    """Add this area's commands and groups to the main app."""
    app.command("scan")(scan)
    app.command("verify")(verify)
    app.add_typer(keys_app, name="keys")
    app.add_typer(bundle_app, name="bundle")


def _target(ref: str, version: str | None) -> tuple[str, int]:
    v = client().get_version(ref, version_number(version) if version is not None else None)
    return v.name, v.version


def show_scan(report: ScanReport) -> None:
    output.console.print(f"[bold]{escape(report.model)}/{report.version}[/]: {escape(report.summary)}")
    if report.findings:
        table = Table("severity", "file", "global", "operation", "offset", "detail")
        for f in sorted(report.findings, key=lambda f: -rank(f["severity"])):
            offset = "-" if f.get("offset") is None else str(f["offset"])
            row = (f["severity"], f["file"], f["global"] or "-", f["operation"], offset, f.get("detail", ""))
            table.add_row(*map(escape, row))
        output.console.print(table)
    for f in report.files:
        if f.get("error"):
            output.console.print(f"[red]could not analyse[/] {escape(f['path'])}: {escape(f['error'])}")


def scan(
    ref: Ref,
    version: VersionArg = None,
    accept: Annotated[
        str | None,
        typer.Option("--accept", help="Accept the latest scan's findings after a review (the reason; managers)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Scan a version's files now, without loading them (pickles, joblib, PyTorch, skops, ...).

    Exits 1 when the scan finds something of high severity or cannot analyse a file. With --accept, scans
    nothing: the latest scan's findings are accepted (audited), so the version loads, serves and scores
    despite them.
    """
    name, number = _target(ref, version)
    trust = client().trust
    report = trust.scan_version(name, number) if accept is None else trust.accept_scan(name, number, accept)
    if as_json:
        output.emit_json(report)
    else:
        show_scan(report)
    if (report.high or report.verdict == "ERROR") and not report.accepted_by:
        raise typer.Exit(EXIT_UNSAFE)


def verify(ref: Ref, version: VersionArg = None, as_json: Json = False) -> None:
    """Check the signed statements about a version and hash every one of its files again.

    Exits 1 unless every file matches and at least one statement, signed by a trusted key, vouches for it.
    """
    name, number = _target(ref, version)
    found = client().trust.verify_version(name, number)
    if as_json:
        output.emit_json(found)
    else:
        files = "every file matches" if not found.problems else "; ".join(found.problems)
        output.console.print(f"[bold]{escape(name)}/{number}[/]: {found.files_checked} files checked: {escape(files)}")
        for s in found.statements:
            mark = "[green]valid[/]" if s.valid else f"[red]invalid[/]: {escape(s.reason)}"
            output.console.print(f"  statement {s.id} ({escape(s.target)}, key {s.key_id}): {mark}")
        if not found.statements:
            output.console.print("  no signed statement vouches for this version (it never entered a protected stage)")
        output.console.print("[green]verified[/]" if found.verified else "[red]not verified[/]")
    if not found.verified:
        raise typer.Exit(1)


def _keys_table(keys: list[SigningKey]) -> None:
    table = Table("key id", "origin", "name", "public key (base64)")
    for k in keys:
        table.add_row(k.key_id, k.origin, escape(k.name), k.public_key)
    output.console.print(table)


@keys_app.command("generate")
def keys_generate(
    out: Annotated[Path, typer.Option("--out", help="Where to write the private key (PEM; never overwritten)")],
) -> None:
    """Make an Ed25519 signing key (and FILE.pub, its public half); point COVEX_SIGNING_KEY_FILE at it to sign
    promotions and bundles."""
    pem, signer = signing.generate()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(f"{out} exists already; choose another path (a key is never overwritten)", 2)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}", 2)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = out.with_name(out.name + ".pub")
    public.write_bytes(signer.public_pem)  # what other registries trust: covex keys trust NAME FILE.pub
    output.console.print(f"wrote {out} (private: keep it secret) and {public} (public)")
    output.console.print(f"key id {signer.key_id}")
    output.console.print(f"public key {signer.public_key}")


@keys_app.command("list")
def keys_list(as_json: Json = False) -> None:
    """The registry's own public keys and the keys it trusts."""
    keys = client().trust.list_keys()
    if as_json:
        output.emit_json(keys)
    else:
        _keys_table(keys)


@keys_app.command("trust")
def keys_trust(
    name: Annotated[str, typer.Argument(help="What to call the key, e.g. the registry it belongs to")],
    public_key: Annotated[str, typer.Argument(help="The public key: base64 (as keys list prints it) or a PEM file")],
) -> None:
    """Trust another registry's public key: its signed statements and bundles verify here (admins)."""
    path = Path(public_key)
    text = public_key
    if len(public_key) < 1024 and path.is_file():
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read {public_key}: {exc}") from None
    key = client().trust.trust_key(name, text)
    output.console.print(f"trusted key {key.key_id} ({escape(key.name)})")


@keys_app.command("untrust")
def keys_untrust(key_id: Annotated[str, typer.Argument(help="The key id, as keys list prints it")]) -> None:
    """Stop trusting a key (admins)."""
    client().trust.untrust_key(key_id)
    output.console.print(f"key {escape(key_id)} is no longer trusted")


@bundle_app.command("export")
def bundle_export(
    ref: Ref,
    out: Annotated[Path, typer.Option("--out", "-o", help="The bundle file to write (.cvxb)")],
    version: VersionArg = None,
) -> None:
    """Write one signed file with a version's files, metadata, card, evaluations, statements and audit records."""
    name, number = _target(ref, version)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with open(partial, "wb") as f:
            size = client().trust.export_bundle(name, number, f)
        partial.replace(out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        fail(f"cannot write {out}: {exc.strerror or exc}", 2)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    output.console.print(f"wrote {out} ({size} bytes): {escape(name)}/{number}")


@bundle_app.command("show")
def bundle_show(ref: Ref, version: VersionArg = None, as_json: Json = False) -> None:
    """Where an imported version came from: the bundle, its key, and the source's audit records about it."""
    name, number = _target(ref, version)
    found = client().trust.get_provenance(name, number)
    if as_json:
        output.emit_json(found if found is not None else {"provenance": None})
        return
    if found is None:
        output.console.print(f"{escape(name)}/{number} was made here, not imported from a bundle")
        return
    output.console.print(
        f"{escape(name)}/{number} was imported from {escape(found.source)} by {escape(found.imported_by)} "
        f"(bundle {found.bundle_digest[:12]}…, sealed by key {found.key_id}); its history there:"
    )
    table = Table("seq", "when (UTC)", "actor", "action", "outcome")
    for r in found.audit:
        when = datetime.fromtimestamp(int(r.get("timestamp") or 0) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        cells = (r.get("seq"), when, r.get("actor"), r.get("action"), r.get("outcome"))
        table.add_row(*(escape(str(c)) for c in cells))
    output.console.print(table)


@bundle_app.command("import")
def bundle_import(
    path: Annotated[Path, typer.Argument(help="The bundle file (.cvxb)")],
    name: Annotated[str | None, typer.Option("--as", help="Import into this model (default: the same name)")] = None,
    stage: Annotated[str | None, typer.Option("--stage", help="Ask for this stage (this registry's policy)")] = None,
    as_json: Json = False,
) -> None:
    """Import a bundle: every signature, approval and byte is checked before anything is written."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", 2)
    with f:
        found = client().trust.import_bundle(f, name=name, stage=stage)
    if as_json:
        output.emit_json(found)
    else:
        again = " (imported before: nothing written)" if found.already_imported else ""
        output.console.print(
            f"imported {escape(found.source)} as models:/{escape(found.model)}/{found.version}{again}; "
            f"{found.statements} signed statement{'' if found.statements == 1 else 's'}, key {found.key_id}"
        )
        if found.request is not None:
            output.console.print(
                f"stage {escape(str(stage))} is protected here: request {found.request.id} is open "
                f"(covex requests show {found.request.id})"
            )
        elif stage is not None and not found.stage_refused:
            output.console.print(f"now in stage {escape(str(found.stage))}")
    if found.stage_refused:
        fail(f"imported, but stage {stage!r} was refused: {found.stage_refused}", 5)
