"""Scans of a version's files: the record, its verdict, and the policy rule ``scan:``. Pure: no I/O.

A scan looks at every file of a version without loading it (``covex.artifacts.scanner``). Its
verdict is ``CLEAN`` (nothing found), ``FINDINGS`` (imports outside the safe list, each with a
severity) or ``ERROR`` (a file could not be analysed, so nothing can be said of it); ``PENDING``
until a scanner has finished it. A policy asks ``scan: clean`` (no findings at all) or
``scan: {max_severity: low}`` (nothing worse than ``low``); a version whose latest scan does not
pass that, or that has no finished scan, does not enter the stage or alias.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from covex.domain.entities import _Entity
from covex.domain.errors import InvalidInput
from covex.domain.gates import GateResult

Verdict = Literal["PENDING", "CLEAN", "FINDINGS", "ERROR"]
VERDICTS: tuple[Verdict, ...] = ("PENDING", "CLEAN", "FINDINGS", "ERROR")
SEVERITIES = ("low", "medium", "high")
SHOWN_FINDINGS = 5


class ScanReport(_Entity):
    """One scan of a version's files: who asked, which scanner, what it found.

    ``files`` holds each file's ``path``, ``format`` and ``error`` (None when it was analysed);
    ``findings`` each finding's ``file``, ``operation``, ``global``, ``severity``, ``offset``
    and ``detail``.
    """

    id: int
    model: str
    version: int
    verdict: Verdict
    max_severity: str | None = None
    scanner: str
    scanner_version: str
    trigger: str
    requested_by: str
    created_at: int
    finished_at: int | None = None
    manifest_digest: str | None = None
    files: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    accepted_by: str | None = None  # a manager who reviewed the findings: the version loads despite them
    accepted_at: int | None = None
    accepted_reason: str = ""

    @property
    def high(self) -> list[dict[str, Any]]:
        """The high-severity findings (what ``load_model`` refuses)."""
        return [f for f in self.findings if f.get("severity") == "high"]

    @property
    def summary(self) -> str:
        """The verdict in one line: ``FINDINGS: 1 high, 2 low (picklescan 1.0.5)``."""
        if self.verdict == "PENDING":
            return "PENDING: not scanned yet"
        counts = [f"{n} {s}" for s in reversed(SEVERITIES) if (n := sum(f["severity"] == s for f in self.findings))]
        errors = [f"{f['path']}: {f['error']}" for f in self.files if f.get("error")]
        detail = ", ".join(counts) or (f"could not analyse {'; '.join(errors[:2])}" if errors else "nothing found")
        files = f"{len(self.files)} file{'' if len(self.files) == 1 else 's'}"
        accepted = f"; accepted by {self.accepted_by}: {self.accepted_reason}" if self.accepted_by else ""
        return f"{self.verdict}: {detail} in {files} ({self.scanner} {self.scanner_version}){accepted}"


def rank(severity: str | None) -> int:
    """0 for none, then 1 (low) to 3 (high)."""
    return SEVERITIES.index(severity) + 1 if severity in SEVERITIES else 0


def outcome(files: Iterable[Mapping[str, Any]], findings: Iterable[Mapping[str, Any]]) -> tuple[Verdict, str | None]:
    """The verdict and the worst severity of a finished scan."""
    found = list(findings)
    worst = max((f["severity"] for f in found), key=rank, default=None)
    if any(f.get("error") for f in files):
        return "ERROR", worst
    return ("FINDINGS" if found else "CLEAN"), worst


def check_scan_rule(value: object) -> str:
    """A policy's ``scan:`` as stored: ``clean`` or ``max_severity: <low|medium|high>``."""
    if isinstance(value, Mapping) and set(value) == {"max_severity"}:
        value = f"max_severity: {value['max_severity']}"
    if isinstance(value, str):
        text = " ".join(value.strip().lower().split())
        if text == "clean":
            return text
        key, _, severity = text.partition(":")
        if key.strip() == "max_severity" and severity.strip() in SEVERITIES:
            return f"max_severity: {severity.strip()}"
    raise InvalidInput(
        f"'scan' must be clean or {{max_severity: low|medium|high}}, got {value!r}"
        if not isinstance(value, str) or len(value) < 80
        else "'scan' must be clean or {max_severity: low|medium|high}"
    )


def findings_text(report: ScanReport, limit: int = SHOWN_FINDINGS) -> str:
    """The worst findings in one line: ``model.pkl: posix.system (high, offset 42)``."""
    worst = sorted(report.findings, key=lambda f: -rank(f["severity"]))
    parts = []
    for f in worst[:limit]:
        where = f", offset {f['offset']}" if f.get("offset") is not None else ""
        parts.append(f"{f['file']}: {f['global'] or f['operation']} ({f['severity']}{where})")
    more = f" and {len(worst) - limit} more" if len(worst) > limit else ""
    return "; ".join(parts) + more


def evaluate_scan(rule: str, report: ScanReport | None, version: int) -> GateResult:
    """Whether the version's latest scan passes ``rule`` (``clean`` or ``max_severity: <severity>``)."""
    gate = f"scan {rule}"
    if report is None or report.verdict == "PENDING":
        hint = "its files are scanned when it turns READY; run 'covex scan' to scan it now"
        return GateResult(gate=gate, passed=False, message=f"version {version} has not been scanned yet ({hint})")
    if report.verdict == "ERROR":
        return GateResult(gate=gate, passed=False, message=report.summary)
    allowed = 0 if rule == "clean" else rank(rule.partition(":")[2].strip())
    worst = max((rank(f["severity"]) for f in report.findings), default=0)
    if worst > allowed:
        return GateResult(gate=gate, passed=False, message=f"{report.summary}: {findings_text(report)}")
    return GateResult(gate=gate, passed=True, message=report.summary)
