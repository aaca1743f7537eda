"""The pure parts of trust: the ``scan:`` rule, the gate's verdicts, canonical statements and their checks."""

from __future__ import annotations

from typing import Any

import pytest

from covex.domain import signing
from covex.domain.errors import InvalidInput
from covex.domain.policy import Policy, PolicyRules, parse_policy_file
from covex.domain.scans import ScanReport, check_scan_rule, evaluate_scan, outcome


def _report(verdict: str = "FINDINGS", *severities: str, error: str | None = None) -> ScanReport:
    findings = [
        {"file": "m.pkl", "operation": "GLOBAL", "global": f"g{i}", "severity": s, "offset": i, "detail": ""}
        for i, s in enumerate(severities)
    ]
    files = [{"path": "m.pkl", "format": "pickle", "error": error}]
    return ScanReport.model_validate(
        {
            "id": 1,
            "model": "m",
            "version": 1,
            "verdict": verdict,
            "scanner": "picklescan",
            "scanner_version": "1",
            "trigger": "ready",
            "requested_by": "a",
            "created_at": 0,
            "files": files,
            "findings": findings,
        }
    )


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("clean", "clean"),
        (" Clean ", "clean"),
        ({"max_severity": "low"}, "max_severity: low"),
        ("max_severity:high", "max_severity: high"),
    ],
)
def test_scan_rules_are_stored_in_one_form(given: Any, stored: str) -> None:
    assert stored == check_scan_rule(given)


@pytest.mark.parametrize("given", ["dirty", {"max_severity": "critical"}, {"min": "low"}, 3, None, "x" * 500])
def test_a_bad_scan_rule_is_refused_by_name(given: Any) -> None:
    with pytest.raises(InvalidInput, match="'scan'"):
        check_scan_rule(given)


def test_a_policy_file_names_the_line_of_a_bad_scan_rule() -> None:
    with pytest.raises(InvalidInput, match=r"line 3.*scan"):
        parse_policy_file("policies:\n  - stage: Production\n    scan: dirty\n", stage=str, alias=str)


def test_a_scan_only_policy_moves_directly_and_dumps_its_rule() -> None:
    rules = PolicyRules.model_validate({"scan": {"max_severity": "low"}})
    assert (0, True, "max_severity: low") == (rules.approvals, rules.direct, rules.scan)
    stored = Policy(target_kind="stage", target="Production", scan="clean").rules()
    assert ("clean", False) == (stored["scan"], "scan" in Policy(target_kind="stage", target="Production").rules())


@pytest.mark.parametrize(
    ("rule", "report", "passed"),
    [
        ("clean", _report("CLEAN"), True),
        ("clean", _report("FINDINGS", "low"), False),
        ("max_severity: low", _report("FINDINGS", "low", "low"), True),
        ("max_severity: low", _report("FINDINGS", "low", "medium"), False),
        ("max_severity: high", _report("FINDINGS", "high"), True),
        ("max_severity: high", _report("ERROR", error="truncated"), False),
        ("max_severity: high", _report("PENDING"), False),
        ("max_severity: high", None, False),
    ],
)
def test_the_gate_passes_only_what_the_rule_allows(rule: str, report: ScanReport | None, passed: bool) -> None:
    assert passed == evaluate_scan(rule, report, 1).passed


def test_the_verdict_is_error_when_a_file_could_not_be_analysed() -> None:
    assert ("ERROR", "high") == outcome([{"path": "a", "error": "x"}], [{"severity": "high"}])
    assert ("CLEAN", None) == outcome([{"path": "a", "error": None}], [])


def test_a_statement_verifies_only_as_signed() -> None:
    _, signer = signing.generate()
    key = signing.SigningKey(
        key_id=signer.key_id, public_key=signer.public_key, name="k", origin="own", created_at=0, created_by="x"
    )
    body = {"model": "m", "version": 1, "manifest_digest": "d", "key_id": signer.key_id}
    text = signing.canonical(body)
    sig = signer.sign(text)
    assert "" == signing.check_statement(body, text, sig, key, {"model": "m", "version": 1})
    assert "not trust" in signing.check_statement(body, text, sig, None, {})
    assert "does not verify" in signing.check_statement(body, text + " ", sig, key, {})
    assert "version" in signing.check_statement(body, text, sig, key, {"version": 2})
    assert "canonical" in signing.check_statement(
        body, text.replace(",", ", ", 1), signer.sign(text.replace(",", ", ", 1)), key, {}
    )


def test_public_keys_are_read_as_base64_or_pem_and_bad_ones_refused() -> None:
    _, signer = signing.generate()
    assert signer.public_key == signing.public_key_of(signer.public_key)
    assert signer.public_key == signing.public_key_of(signer.public_pem.decode())
    for bad in ("", "not a key", "AAAA", "-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----"):
        with pytest.raises(InvalidInput, match="'public_key'"):
            signing.public_key_of(bad)
