"""Model cards: the author's structured fields, rendered with the registry's own facts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from covex.domain.entities import ModelVersion
from covex.domain.errors import InvalidInput
from covex.domain.names import MAX_NAME_LENGTH, validate_text

if TYPE_CHECKING:
    from covex.domain.scans import ScanReport

CARD_FIELDS: dict[str, str] = {
    "overview": "Overview",
    "intended_use": "Intended use",
    "out_of_scope_use": "Out-of-scope use",
    "training_data": "Training data",
    "evaluation_data": "Evaluation data",
    "metrics": "Metrics (author's notes)",
    "limitations": "Limitations",
    "ethical_considerations": "Ethical considerations",
    "owners": "Owners",
}
MAX_OWNERS = 100


def validate_card(card: Any, field: str = "card") -> dict[str, Any]:
    """Check a card: known fields only; text values, or a list of strings for ``owners``."""
    if card is None:
        return {}
    if not isinstance(card, dict):
        raise InvalidInput(f"'{field}' must be a mapping of card fields")
    unknown = set(card) - set(CARD_FIELDS)
    if unknown:
        raise InvalidInput(
            f"'{field}' has unknown fields: {', '.join(sorted(map(str, unknown)))} (known: {', '.join(CARD_FIELDS)})"
        )
    out: dict[str, Any] = {}
    for key, value in card.items():
        if key == "owners":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidInput(f"'{field}.owners' must be a list of strings")
            if len(value) > MAX_OWNERS:
                raise InvalidInput(f"'{field}.owners' lists {len(value)} owners; the limit is {MAX_OWNERS}")
            value = [validate_text(v, f"{field}.owners[{i}]", MAX_NAME_LENGTH) for i, v in enumerate(value)]
        elif not isinstance(value, str):
            raise InvalidInput(f"'{field}.{key}' must be text")
        else:
            value = validate_text(value, f"{field}.{key}")
        out[key] = value
    return out


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def render_card(
    version: ModelVersion,
    card: dict[str, Any],
    *,
    signature: dict[str, Any] | None = None,
    lineage: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    deployments: list[dict[str, Any]] | None = None,
    monitoring: list[dict[str, Any]] | None = None,
    evaluations: list[dict[str, Any]] | None = None,
    scan: ScanReport | None = None,
) -> str:
    """Markdown combining the author's card with metrics, signature, lineage, history, deployments, the
    latest monitoring results (newest first) and the latest scan of its files."""
    out = [f"# {version.name} — version {version.version}", ""]
    if version.description:
        out += [version.description, ""]
    facts = [
        ["URI", f"`{version.uri}`"],
        ["Stage", version.stage],
        ["Aliases", ", ".join(f"@{a}" for a in version.aliases) or "—"],
        ["Status", version.status],
        ["Created", f"{_when(version.creation_timestamp)} by {version.created_by or 'unknown'}"],
        ["Content digest", f"`{version.manifest_digest}`" if version.manifest_digest else "—"],
    ]
    out += [*_table(["", ""], facts), ""]
    for key, title in CARD_FIELDS.items():
        value = card.get(key)
        if value:
            text = ", ".join(value) if isinstance(value, list) else str(value)
            out += [f"## {title}", "", text, ""]
    if version.metrics:
        out += ["## Metrics", ""]
        out += [*_table(["metric", "value"], [[k, f"{v:.6g}"] for k, v in sorted(version.metrics.items())]), ""]
    if version.params:
        out += ["## Parameters", ""]
        out += [*_table(["param", "value"], [[k, v] for k, v in sorted(version.params.items())]), ""]
    if signature:
        out += ["## Signature", ""]
        for part in ("inputs", "outputs"):
            cols = signature.get(part)
            if isinstance(cols, str):
                cols = json.loads(cols)
            if cols:
                rows = [[str(c.get("name", "")), str(c.get("type", "")), str(c.get("required", True))] for c in cols]
                out += [f"**{part}**", "", *_table(["name", "type", "required"], rows), ""]
    if lineage:
        out += ["## Lineage", ""]
        git = lineage.get("git")
        if git:
            dirty = " (uncommitted changes)" if git.get("dirty") else ""
            out.append(f"- Code: commit `{git.get('commit', '')[:12]}` on `{git.get('branch', '')}`{dirty}")
        if lineage.get("run_id") or lineage.get("run_link"):
            out.append(f"- Training run: {lineage.get('run_id', '')} {lineage.get('run_link', '')}".rstrip())
        if lineage.get("parent"):
            out.append(f"- Derived from: `{lineage['parent']}`")
        for ds in lineage.get("datasets", []):
            shape = f", {ds['rows']} rows" if "rows" in ds else ""
            digest = f", sha256 `{ds['digest'][:12]}`" if ds.get("digest") else ""
            out.append(
                f"- {ds.get('role', 'training').capitalize()} data: {ds['name']} {ds.get('uri', '')}{shape}{digest}"
            )
        out.append("")
    if history:
        out += ["## Stage and alias history", ""]
        rows = [
            [
                _when(h["timestamp"]),
                "stage" if h["kind"] == "stage" else f"alias @{h['subject']}",
                h.get("before") or "—",
                h.get("after") or "—",
                h.get("actor", ""),
            ]
            for h in history
        ]
        out += [*_table(["when", "what", "from", "to", "by"], rows), ""]
    if deployments:
        out += ["## Deployments", ""]
        rows = [
            [
                d["kind"],
                d["target"],
                d["status"] + (" (stale)" if d.get("stale") else ""),
                _when(d["started_at"]),
                d.get("started_by", ""),
            ]
            for d in deployments
        ]
        out += [*_table(["kind", "where", "status", "since", "by"], rows), ""]
    if monitoring:
        out += ["## Monitoring", ""]
        rows = [
            [
                _when(r["created_at"]),
                r["status"],
                str(r["rows"]),
                ", ".join(r["body"].get("drifted", [])) or "—",
                ", ".join(r["body"].get("degraded", [])) or "—",
            ]
            for r in monitoring
        ]
        out += [*_table(["checked", "status", "rows", "drifting", "degraded"], rows), ""]
        out += [f"The latest {len(monitoring)} checks; every one: `covex monitor status {version.name} --history`.", ""]
    out += _evaluations(version, evaluations or [])
    out += _scan(version, scan)
    return "\n".join(out).rstrip() + "\n"


def _scan(version: ModelVersion, scan: ScanReport | None) -> list[str]:
    """The latest scan of the version's files: its verdict and its worst findings."""
    from covex.domain.scans import rank

    if scan is None:
        return []
    out = ["## File scan", "", f"{scan.summary}, {_when(scan.finished_at or scan.created_at)}.", ""]
    worst = sorted(scan.findings, key=lambda f: -rank(f["severity"]))[:10]
    if worst:
        rows = [[f["severity"], f"`{f['file']}`", f"`{f['global'] or '-'}`", f["operation"]] for f in worst]
        out += [*_table(["severity", "file", "global", "operation"], rows), ""]
    return [*out, f"Scan again: `covex scan {version.uri}`.", ""]


def _evaluations(version: ModelVersion, evaluations: list[dict[str, Any]]) -> list[str]:
    """The latest comparisons (``covex compare``) and the latest explanation's top features."""
    from covex.domain.evaluations import importances, summary

    out: list[str] = []
    compared = [e for e in evaluations if e["kind"] != "explanation"]
    if compared:
        out += ["## Evaluations", ""]
        rows = [
            [
                _when(e["created_at"]),
                e["kind"],
                f"{e['source']} ({e['rows']} rows{', ' + ', '.join(e['data_tags']) if e.get('data_tags') else ''})",
                summary(e["kind"], e["body"]),
            ]
            for e in compared
        ]
        out += [*_table(["when", "kind", "data", "result"], rows), ""]
        out += [f"Every evaluation: `covex evaluations list {version.uri}`.", ""]
    explained = [e for e in evaluations if e["kind"] == "explanation"]
    if explained:
        e = explained[0]
        out += ["## Explanation", ""]
        out += [
            f"Global importance (mean |SHAP|, in units of the {e['body'].get('output', 'output')} explained, over "
            f"{e['rows']} rows of {e['source']}, {e['body'].get('explainer', '?')} explainer, "
            f"{_when(e['created_at'])}):",
            "",
        ]
        out += [
            *_table(["feature", "mean abs. contribution"], [[n, f"{v:.4g}"] for n, v in importances(e["body"])[:10]]),
            "",
        ]
    return out
