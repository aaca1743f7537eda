"""Policy files, gate grammar and gate evaluation (pure domain, no I/O)."""

from __future__ import annotations

from datetime import datetime

import pytest

from covex.domain.errors import InvalidInput
from covex.domain.gates import Candidate, GateResult, evaluate, evaluate_gate, failures, parse_gate
from covex.domain.policy import Policy, dump_policies, parse_policy_file, to_ms, validate_rules

STAGES = {s.lower(): s for s in ("None", "Dev", "Test", "Production", "Archived")}


def stage(name: str) -> str:
    if name.lower() not in STAGES:
        raise InvalidInput(f"'stage' {name!r} is not a stage")
    return STAGES[name.lower()]


def alias(name: str) -> str:
    if not name or name.lower() in STAGES:
        raise InvalidInput(f"'alias' {name!r} is not valid")
    return name


def parse(text: str) -> list[Policy]:
    return parse_policy_file(text, stage=stage, alias=alias, stages=list(STAGES.values()))


FILE = """\
policies:
  - stage: production
    approvals: 2
    approvers: [group:ml-leads, bob]
    forbid_self_approval: true
    gates: ["metrics.auc >= 0.80", "metrics.auc >= champion.metrics.auc - 0.005"]
    require: [description, card.intended_use, signature]
    archive_existing: true
    approval_ttl_days: 14
  - alias: champion
"""


def test_a_policy_file_parses_with_defaults_and_normalised_names() -> None:
    production, champion = parse(FILE)
    assert ("stage", "Production", 2) == (production.target_kind, production.target, production.approvals)
    assert ["group:ml-leads", "user:bob"] == production.approvers
    assert ["description", "card.intended_use", "signature"] == production.require
    assert (True, 14) == (production.archive_existing, production.approval_ttl_days)
    assert ("alias", "champion", 1, True, []) == (
        champion.target_kind,
        champion.target,
        champion.approvals,
        champion.forbid_self_approval,
        champion.gates,
    )


def test_dump_reads_back() -> None:
    policies = parse(FILE)
    assert policies == parse(dump_policies(policies))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "policies:\n  - stage: Production\n    approvals: -1\n",
            "line 3: 'approvals' must be an integer from 0 to 100",
        ),
        (
            "policies:\n  - stage: Production\n    approvals: '2'\n",
            "line 3: 'approvals' must be an integer from 0 to 100",
        ),
        (
            "policies:\n  - stage: Production\n    approvals: true\n",
            "line 3: 'approvals' must be an integer from 0 to 100",
        ),
        ("policies:\n  - stage: Prod\n", "line 2: 'stage' 'Prod' is not a stage"),
        ("policies:\n  - approvals: 1\n", "line 2: give exactly one of 'stage:' or 'alias:'"),
        ("policies:\n  - stage: Test\n    alias: x\n", "line 2: give exactly one of 'stage:' or 'alias:'"),
        ("policies:\n  - stage: Test\n    colour: red\n", "line 3: unknown key 'colour'"),
        (
            "policies:\n  - alias: champion\n    archive_existing: true\n",
            "line 3: 'archive_existing' applies to stages",
        ),
        (
            "policies:\n  - stage: Test\n    gates:\n      - metrics.a > 1\n      - metrics.a >> 1\n",
            "line 5: 'gates[1]'",
        ),
        ("policies:\n  - stage: Test\n    require: [card.colour]\n", "line 3: 'require[0]': requirement 'card.colour'"),
        ("policies:\n  - stage: Test\n    approvers: ['role:x']\n", "line 3: 'approvers' must be 'user:<name>'"),
        ("policies:\n  - stage: Test\n  - stage: test\n", "line 3: stage 'Test' has a policy already, at line 2"),
        (
            "policies:\n  - stage: Test\n    approval_ttl_days: 0\n",
            "line 3: 'approval_ttl_days' must be an integer from 1 to 3650",
        ),
        ("policies:\n  - stage: [Test\n", "line 3: not valid YAML"),
        ("rules: []\n", "line 1: the file must hold one key, 'policies:'"),
        ("policies:\n  - stage: Test\n    approvals: 1\n    approvals: 2\n", "line 4: 'approvals' appears twice"),
        ("policies:\n  - stage: Test\n    from: [Dev, Prod]\n", "line 3: 'from[1]' 'Prod' is not a stage"),
        ("policies:\n  - stage: Test\n    from:\n      - Dev\n      - 7\n", "line 5: 'from[1]' must be a string"),
        ("policies:\n  - stage: Test\n    from: Dev\n", "line 3: 'from' must be a list of stages such as [Test]"),
        ("policies:\n  - alias: champion\n    from: [Test]\n", "line 3: 'from' applies to stages only"),
        (
            "policies:\n  - stage: none\n    from: [Dev]\n",
            "line 3: 'from' cannot be set on stage 'None': it is the first",
        ),
        ("policies:\n  - stage: Test\n    model: a\n    tag: b=c\n", "line 4: give at most one of 'model' or 'tag'"),
        ("policies:\n  - stage: Test\n\n    tag: team\n", "line 4: 'tag' must be written key=value"),
        ("policies:\n  - stage: Test\n    model: 'bad name'\n", "line 3: 'model' 'bad name' is not a valid model name"),
        ("policies:\n  - stage: Test\n    model: 'net/*;'\n", "line 3: 'model' pattern 'net/*;' may hold only"),
        (
            "policies:\n  - stage: Test\n    model: churn\n  - stage: test\n    model: churn\n",
            "line 4: stage 'Test' has a policy for model 'churn' already, at line 2",
        ),
        (
            "policies:\n  - stage: Test\n    tag: team=a\n  - stage: Test\n    tag: team=a\n",
            "line 4: stage 'Test' has a policy for tag team=a already, at line 2",
        ),
    ],
)
def test_errors_name_their_line(text: str, expected: str) -> None:
    with pytest.raises(InvalidInput, match="nothing applied") as info:
        parse(text)
    assert expected in info.value.message


def test_every_problem_is_reported_at_once() -> None:
    text = "policies:\n  - stage: Test\n    approvals: x\n  - stage: Nope\n  - alias: champion\n    gates: [auc > 1]\n"
    with pytest.raises(InvalidInput) as info:
        parse(text)
    message = info.value.message
    assert ["line 3", "line 4", "line 6"] == [p for p in ("line 3", "line 4", "line 6") if p in message]


def test_empty_file_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        parse("")


@pytest.mark.parametrize(
    ("text", "left", "op", "right"),
    [
        ("metrics.auc >= 0.80", "metrics.auc", ">=", "0.8"),
        ("metrics.auc >= champion.metrics.auc - 0.005", "metrics.auc", ">=", "champion.metrics.auc - 0.005"),
        ("metrics.latency_ms<250", "metrics.latency_ms", "<", "250"),
        ("0.5 != metrics.f1 + 0.1", "0.5", "!=", "metrics.f1 + 0.1"),
        ("params.C <= 1e3", "params.C", "<=", "1000"),
        ("metrics.val.auc == champion.metrics.val.auc", "metrics.val.auc", "==", "champion.metrics.val.auc"),
    ],
)
def test_gate_grammar(text: str, left: str, op: str, right: str) -> None:
    gate = parse_gate(text)
    assert (left, op, right) == (str(gate.left), gate.op, str(gate.right))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("metrics.auc", "is not valid"),
        ("auc >= 0.8", "is not valid"),
        ("metrics.auc => 0.8", "is not valid"),
        ("metrics.auc >= 0.8 and metrics.f1 > 0", "is not valid"),
        ("metrics.auc >= __import__('os')", "is not valid"),
        ("1 > 2", "compares two numbers"),
        ("champion.metrics.auc > 0.5", "must name a metric or param of the version"),
        ("", "is not a comparison"),
    ],
)
def test_bad_gates_name_the_gate(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem) as info:
        parse_gate(text)
    assert repr(text) in info.value.message


def test_gate_evaluation() -> None:
    gate = parse_gate("metrics.auc >= champion.metrics.auc - 0.005")
    version, champion = Candidate(3, {"auc": 0.9}), Candidate(2, {"auc": 0.91})
    result = evaluate_gate(gate, version, champion)
    assert (0.9, 0.905, False) == (result.value, pytest.approx(result.threshold), result.passed)
    assert evaluate_gate(gate, Candidate(3, {"auc": 0.906}), champion).passed
    assert GateResult(gate=gate.text, value=0.9, threshold=None, passed=True, message="no champion") == evaluate_gate(
        gate, version, None
    )


def test_a_missing_metric_fails_naming_it() -> None:
    gate = parse_gate("metrics.auc >= 0.8")
    result = evaluate_gate(gate, Candidate(3, {"f1": 0.9}), None)
    assert (False, "version 3 has no metric 'auc'") == (result.passed, result.message)
    champion_gate = parse_gate("metrics.auc >= champion.metrics.auc")
    result = evaluate_gate(champion_gate, Candidate(3, {"auc": 0.9}), Candidate(2, {}))
    assert (False, "the champion, version 2, has no metric 'auc'") == (result.passed, result.message)


def test_params_must_be_numbers() -> None:
    gate = parse_gate("params.depth <= 8")
    assert evaluate_gate(gate, Candidate(1, {}, {"depth": "6"}), None).passed
    bad = evaluate_gate(gate, Candidate(1, {}, {"depth": "deep"}), None)
    assert (False, "param 'depth' of version 1 is 'deep', not a number") == (bad.passed, bad.message)


def test_requirements() -> None:
    rules = validate_rules({"require": ["description", "card.intended_use", "signature", "tags.owner"]}, kind="stage")
    bare = evaluate(rules.gates, rules.require, Candidate(4, {}), None)
    assert [False] * 4 == [r.passed for r in bare]
    assert "version 4 has no card intended_use" == bare[1].message
    full = Candidate(
        4,
        {},
        description="Churn model",
        tags={"owner": "crm"},
        card={"intended_use": "Retention offers"},
        documents=frozenset({"signature", "card"}),
    )
    assert [True] * 4 == [r.passed for r in evaluate(rules.gates, rules.require, full, None)]
    assert "require card.intended_use (version 4 has no card intended_use)" in failures(bare)


def test_api_rules_are_validated_like_the_file() -> None:
    with pytest.raises(InvalidInput, match="'approvals' must be an integer from 0 to 100"):
        validate_rules({"approvals": -2}, kind="stage")
    with pytest.raises(InvalidInput, match="unknown key 'approval'"):
        validate_rules({"approval": 2}, kind="stage")
    with pytest.raises(InvalidInput, match="stages only"):
        validate_rules({"archive_existing": True}, kind="alias")


def test_moments() -> None:
    assert 1_700_000_000_000 == to_ms(1_700_000_000_000, 0)
    assert 1_700_000_000_000 == to_ms("1700000000000", 0)
    assert 42 == to_ms(None, 42)
    moment = datetime(2026, 11, 20, 10, 0)
    assert int(moment.timestamp() * 1000) == to_ms("2026-11-20T10:00", 0)
    with pytest.raises(InvalidInput, match="'at'"):
        to_ms("yesterday", 0)


BOMB = "policies: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{k}: &{k} [{', '.join([f'*{p}'] * 10)}]\n" for p, k in zip("abcdef", "bcdefg", strict=True)
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("policies: &a [*a]\n", "line 1: YAML aliases are not allowed in policy files"),
        (BOMB, "line 1: YAML aliases are not allowed in policy files"),
        (
            "policies:\n  - stage: Test\n    gates: *g\n",
            "line 3: YAML aliases are not allowed in policy files (found *g)",
        ),
        ("policies:\n  - &p {stage: Test}\n", "line 2: YAML aliases are not allowed in policy files (found &p)"),
        ("policies: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 32 levels"),
        ("policies: [" + ", ".join(["x"] * 20_000) + "]\n", "more than 10000 values"),
        ("policies:\n  - stage: Test\n    approvals: " + "9" * 5000 + "\n", "line 3: cannot read this value"),
    ],
)
def test_hostile_yaml_is_refused_cheaply(text: str, expected: str) -> None:
    with pytest.raises(InvalidInput, match="nothing applied") as info:
        parse(text)
    assert expected in info.value.message


def test_a_policy_file_has_a_size_limit() -> None:
    with pytest.raises(InvalidInput, match="larger than 1048576 bytes"):
        parse("policies: []\n" + "#" * 1024 * 1024)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"approvals": 101}, "'approvals' must be an integer from 0 to 100"),
        ({"approvals": 10**30}, "'approvals' must be an integer from 0 to 100"),
        ({"approval_ttl_days": 3651}, "'approval_ttl_days' must be an integer from 1 to 3650"),
        ({"approval_ttl_days": 10**17}, "'approval_ttl_days' must be an integer from 1 to 3650"),
        ({"gates": ["metrics.auc >= 1e999"]}, "'gates[0]': gate 'metrics.auc >= 1e999' has a number too large"),
    ],
)
def test_numbers_out_of_range_name_the_field(body: dict[str, object], expected: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_rules(body, kind="stage")
    assert expected in info.value.message
    assert 100 == validate_rules({"approvals": 100, "approval_ttl_days": 3650}, kind="stage").approvals


@pytest.mark.parametrize(
    "at", ["0001-01-01T00:00", "9" * 30, 10**30, -(10**30), float("inf"), float("nan"), "x" * 10_000, [1]]
)
def test_moments_out_of_range_name_at(at: object) -> None:
    with pytest.raises(InvalidInput, match="'at'") as info:
        to_ms(at, 0)  # type: ignore[arg-type]
    assert len(info.value.message) < 200


SCOPED = """\
policies:
  - stage: Production
    gates: ["metrics.auc >= 0.80"]
  - stage: Production
    model: store-sales
    gates: ["metrics.rmse <= 12"]
  - stage: Production
    model: network/*
  - stage: Production
    tag: team=retail
  - stage: Test
    from: [dev]
"""


def test_scopes_and_order_parse_and_read_back() -> None:
    policies = parse(SCOPED)
    assert [("global", ""), ("model", "store-sales"), ("pattern", "network/*"), ("tag", "team=retail")] == [
        (p.scope, p.scope_text) for p in policies[:4]
    ]
    test = policies[4]
    # A policy of nothing but an order needs no approvals: editors move versions in directly, in order.
    assert (["Dev"], 0, True) == (test.from_, test.approvals, test.direct)
    assert not policies[0].direct
    assert policies == parse(dump_policies(policies))


def test_from_with_review_keys_keeps_the_default_approval() -> None:
    (policy,) = parse("policies:\n  - stage: Production\n    from: [Test]\n    gates: ['metrics.auc > 0.5']\n")
    assert (1, False) == (policy.approvals, policy.direct)
