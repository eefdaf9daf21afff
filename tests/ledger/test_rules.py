"""Rule sets: validation with positions, starter rules on edge dates, determinism, incremental."""

from __future__ import annotations

import json
import random

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.catalog import load_catalog
from ledger.errors import InvalidInput
from ledger.lifecycle import (
    DAY,
    OBJECTION,
    RECORD,
    REPAIR,
    RESOLUTION_REJECTED,
    WITHDRAW,
    LedgerEntry,
)
from ledger.rules import (
    Evaluator,
    InvalidRuleSet,
    RuleSet,
    available_engines,
    check_expression,
    evaluate,
    load_measures,
    load_rule_set,
)

CATALOG = load_catalog()
MEASURES = load_measures()
RULES = load_rule_set(CATALOG, MEASURES)
T0 = 1_735_689_600  # 2025-01-01T00:00:00Z
PERSON, ENTITY = 1, 2
_ids = iter(range(1, 10**9))


def subj(n: int) -> bytes:
    return bytes([n]) * 32


class Ledger:
    """Builds entries with increasing seq, as the chain would."""

    def __init__(self) -> None:
        self.entries: list[LedgerEntry] = []

    def add(
        self,
        subject: bytes,
        code: str,
        at: int,
        *,
        kind: int = RECORD,
        ref: bytes | None = None,
        sk: int = PERSON,
        amount: int = 0,
        effective_from: int | None = None,
        until: int = 0,
    ) -> bytes:
        n = len(self.entries) + 1
        eid = n.to_bytes(32, "big")
        self.entries.append(
            LedgerEntry(
                id=eid,
                kind=kind,
                subject=subject,
                subject_kind=sk,
                category=CATALOG.by_code(code).id,
                agency="0xA",
                occurred_at=at,
                effective_from=at if effective_from is None else effective_from,
                effective_until=until,
                ref=ref,
                seq=n,
                recorded_at=at,
                amount=amount,
            )
        )
        return eid


def lists_of(ev, subject: bytes) -> set[tuple[str, str]]:
    return {(m.list_id, m.rule_id) for m in ev.memberships if m.subject == subject}


def test_starter_rule_set_loads_and_hash_is_stable() -> None:
    text = (
        __import__("importlib")
        .resources.files("ledger")
        .joinpath("data", "rules", "district-joint-credit.yaml")
        .read_text()
    )
    as_json = json.dumps(yaml.safe_load(text), ensure_ascii=False, indent=1)
    same = RuleSet.from_text(as_json, CATALOG, MEASURES)
    assert same.canonical_hash() == RULES.canonical_hash()
    assert len(RULES.canonical_hash()) == 32
    assert {r.id for r in RULES.rules} == {
        "court-judgment-defaulter",
        "serious-administrative-penalty",
        "a-grade-taxpayer-red",
        "volunteer-red",
        "repeated-general-penalties",
    }


def test_defaulter_black_list_edges() -> None:
    led = Ledger()
    s = subj(1)
    rid = led.add(s, "court.judgment_defaulter", T0)
    end = T0 + CATALOG.by_code("court.judgment_defaulter").publicity_days * DAY
    assert lists_of(evaluate(RULES, CATALOG, led.entries, T0 - 1), s) == set()
    ev = evaluate(RULES, CATALOG, led.entries, T0)
    assert lists_of(ev, s) == {
        ("black", "court-judgment-defaulter"),
        ("serious_dishonesty", "court-judgment-defaulter"),
    }
    m = next(m for m in ev.memberships if m.subject == s)
    assert m.triggering == (rid,) and m.since == T0 and m.exit_eligible
    assert "punish.procurement_ban" in m.measures
    assert lists_of(evaluate(RULES, CATALOG, led.entries, end - 1), s)
    assert lists_of(evaluate(RULES, CATALOG, led.entries, end), s) == set()


def test_defaulter_lifecycle_stops_counting() -> None:
    s = subj(2)
    for kind in (WITHDRAW, OBJECTION, REPAIR):
        led = Ledger()
        rid = led.add(s, "court.judgment_defaulter", T0)
        led.add(s, "court.judgment_defaulter", T0 + 10 * DAY, kind=kind, ref=rid)
        assert lists_of(evaluate(RULES, CATALOG, led.entries, T0 + 9 * DAY), s), kind
        assert lists_of(evaluate(RULES, CATALOG, led.entries, T0 + 10 * DAY), s) == set(), kind
    led = Ledger()
    rid = led.add(s, "court.judgment_defaulter", T0)
    obj = led.add(s, "court.judgment_defaulter", T0 + DAY, kind=OBJECTION, ref=rid)
    led.add(s, "court.judgment_defaulter", T0 + 2 * DAY, kind=RESOLUTION_REJECTED, ref=obj)
    assert lists_of(evaluate(RULES, CATALOG, led.entries, T0 + 2 * DAY), s)


def test_serious_penalty_listed_for_publicity_period() -> None:
    led = Ledger()
    s = subj(3)
    led.add(s, "admin_penalty.serious", T0, sk=ENTITY)
    end = T0 + 1095 * DAY
    assert lists_of(evaluate(RULES, CATALOG, led.entries, end - 1), s) == {
        ("serious_dishonesty", "serious-administrative-penalty")
    }
    ev = evaluate(RULES, CATALOG, led.entries, T0)
    assert not next(m for m in ev.memberships if m.subject == s).exit_eligible  # repair after 1y
    ev = evaluate(RULES, CATALOG, led.entries, T0 + 365 * DAY)
    assert next(m for m in ev.memberships if m.subject == s).exit_eligible
    assert lists_of(evaluate(RULES, CATALOG, led.entries, end), s) == set()


def test_a_grade_taxpayer_red_list() -> None:
    led = Ledger()
    s = subj(4)
    grade = led.add(s, "tax.grade_a", T0, sk=ENTITY)
    assert lists_of(evaluate(RULES, CATALOG, led.entries, T0), s) == {
        ("red", "a-grade-taxpayer-red")
    }
    assert lists_of(evaluate(RULES, CATALOG, led.entries, T0 + 365 * DAY), s) == set()
    led.add(s, "admin_penalty.warning", T0 + DAY, sk=ENTITY)  # minor: not in scope, no effect
    led.add(s, "tax.arrears", T0 + 2 * DAY, sk=ENTITY)
    ev = evaluate(RULES, CATALOG, led.entries, T0 + DAY)
    assert next(m for m in ev.memberships if m.subject == s).triggering == (grade,)
    assert lists_of(evaluate(RULES, CATALOG, led.entries, T0 + 2 * DAY), s) == set()


def test_volunteer_red_list_threshold() -> None:
    led = Ledger()
    s = subj(5)
    led.add(s, "volunteer.service_hours", T0, amount=100)
    led.add(s, "volunteer.service_hours", T0 + DAY, amount=49)
    assert lists_of(evaluate(RULES, CATALOG, led.entries, T0 + DAY), s) == set()
    led.add(s, "volunteer.service_hours", T0 + 2 * DAY, amount=1)
    led.add(s, "health.blood_donation", T0 + 2 * DAY, amount=400)  # outside scope
    ev = evaluate(RULES, CATALOG, led.entries, T0 + 2 * DAY)
    assert lists_of(ev, s) == {("red", "volunteer-red")}
    m = next(m for m in ev.memberships if m.subject == s)
    assert len(m.triggering) == 3 and "reward.trust_acceptance" in m.measures
    led.add(s, "contract.fraud", T0 + 3 * DAY)
    assert lists_of(evaluate(RULES, CATALOG, led.entries, T0 + 3 * DAY), s) == set()


def test_repeated_general_penalties_window() -> None:
    led = Ledger()
    s = subj(6)
    first = led.add(s, "admin_penalty.general", T0)
    led.add(s, "admin_penalty.general", T0 + 100 * DAY)
    third = led.add(s, "admin_penalty.general", T0 + 200 * DAY)
    ev = evaluate(RULES, CATALOG, led.entries, T0 + 200 * DAY)
    assert lists_of(ev, s) == {("key_supervision", "repeated-general-penalties")}
    m = next(m for m in ev.memberships if m.subject == s)
    assert m.triggering[0] == first and m.triggering[-1] == third and m.since == T0 + 200 * DAY
    # the first leaves the 365-day window exactly at T0 + 365 days
    assert lists_of(evaluate(RULES, CATALOG, led.entries, T0 + 365 * DAY - 1), s)
    assert lists_of(evaluate(RULES, CATALOG, led.entries, T0 + 365 * DAY), s) == set()


def test_other_subject_reference_is_anomaly_not_effect() -> None:
    led = Ledger()
    a, b = subj(7), subj(8)
    rid = led.add(a, "court.judgment_defaulter", T0)
    led.add(b, "court.judgment_defaulter", T0 + 1, kind=WITHDRAW, ref=rid)
    ev = evaluate(RULES, CATALOG, led.entries, T0 + 1)
    assert lists_of(ev, a)
    assert [(s, an.code) for s, an in ev.anomalies] == [(b, "unknown-ref")]


# ---- validation ---------------------------------------------------------------------------

BAD_RULE = """\
schema_version: 1
id: test.bad
version: "1"
name_zh: 测试
name_en: Test
description_zh: 测试
description_en: Test
legal_basis: [test]
rules:
  - id: broken
    name_zh: 坏
    name_en: Broken
    legal_basis: none
    subject_kinds: [person]
    scope: [admin_penalty.general]
    condition: |
      records.exists(r, r.counts &&
        r.categroy == "admin_penalty.general") && now > 3
    exit_condition: 'records.exists(r, r.counts && r.category == "tax.arrears")'
    outcomes: [black]
    entry_conditions_zh: x
    entry_conditions_en: x
    exit_conditions_zh: x
    exit_conditions_en: x
    publicity_days: 10
    measures: [punish.more_inspections]
"""


def _problems(text: str) -> list:
    with pytest.raises(InvalidRuleSet) as info:
        RuleSet.from_text(text, CATALOG, MEASURES)
    assert isinstance(info.value, InvalidInput)
    return info.value.problems


def test_validation_reports_rule_and_positions() -> None:
    problems = _problems(BAD_RULE)
    by_msg = {p.message: p for p in problems}
    field = by_msg["unknown record field 'categroy'"]
    assert (field.rule, field.field, field.line, field.column) == ("broken", "condition", 2, 5)
    assert (field.file_line, field.file_column) == (18, 11)
    now = by_msg["unknown identifier 'now'"]
    assert (now.line, now.column, now.file_line, now.file_column) == (2, 45, 18, 51)
    scope = by_msg["category 'tax.arrears' is not in the rule's scope"]
    assert (scope.field, scope.line, scope.column) == ("exit_condition", 1, 45)
    assert (scope.file_line, scope.file_column) == (19, 66)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("outcomes: [black]", "outcomes: [grey]"), "unknown list 'grey'"),
        (("[punish.more_inspections]", "[punish.nope]"), "unknown measure 'punish.nope'"),
        (("[punish.more_inspections]", "[reward.green_channel]"), "reward measure"),
        (("scope: [admin_penalty.general]", "scope: [admin.nope]"), "unknown category code"),
        (("[punish.more_inspections]", "[punish.post_restriction]"), "targets none of"),
    ],
)
def test_validation_of_references(change: tuple[str, str], message: str) -> None:
    good = BAD_RULE.replace(
        'r.categroy == "admin_penalty.general") && now > 3',
        'r.category == "admin_penalty.general")',
    )
    good = good.replace('"tax.arrears"', '"admin_penalty.general"')
    RuleSet.from_text(good, CATALOG, MEASURES)  # the base is valid
    problems = _problems(good.replace(*change))
    assert any(message in str(p) for p in problems), problems


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("records.size() > 0", "'records' may only be the target"),
        ('records.exists(r, r.category == "tax.arrears")', "must read r.counts"),
        ('records.exists(r, r.counts && r.polarity == "evil")', "not a valid polarity"),
        ('records.exists(r, r.counts && r.category.matches("x"))', "'matches' is not allowed"),
        ("timestamp(as_of) > 0", "'timestamp' is not allowed"),
        ('records.exists(r, r.counts && r.category == "no.such")', "unknown category code"),
        ("totals.tax > 0", "has no field"),
        ("records.exists(r, r.counts &&)", "syntax error"),
        ('subject_kind == "robot"', "not a valid subject_kind"),
    ],
)
def test_expression_checks(expr: str, message: str) -> None:
    problems = check_expression(expr, known_codes=[c.code for c in CATALOG], scope=["tax.arrears"])
    assert any(message in p.message for p in problems), problems
    assert all(p.line >= 1 and p.column >= 1 for p in problems)


@pytest.mark.skipif("cpp" not in available_engines(), reason="needs cel-expr-python")
def test_cpp_type_checker_positions() -> None:
    (problem,) = check_expression("as_of + 1 == 'x'", known_codes=[], scope=[])
    assert (problem.line, problem.column) == (1, 11) and "overload" in problem.message


# ---- determinism, incremental, engines ----------------------------------------------------

CODES = [c.code for c in CATALOG]


def _random_ledger(seed: int, subjects: int = 25, n: int = 220) -> Ledger:
    rng = random.Random(seed)
    led = Ledger()
    kinds = {subj(i + 1): rng.choice([PERSON, ENTITY]) for i in range(subjects)}
    records: dict[bytes, list[bytes]] = {s: [] for s in kinds}
    objections: dict[bytes, list[bytes]] = {s: [] for s in kinds}
    t = T0 - 400 * DAY
    for _ in range(n):
        s = rng.choice(list(kinds))
        t += rng.randint(0, 4 * DAY)
        sk = kinds[s]
        code = rng.choice(
            [c.code for c in CATALOG if ("person" if sk == 1 else "entity") in c.subject_kinds]
        )
        roll = rng.random()
        if records[s] and roll < 0.25:
            kind = rng.choice([2, 3, 4, 6])
            ref = rng.choice(records[s])
            eid = led.add(s, code, t, kind=kind, ref=ref, sk=sk)
            if kind == 2:
                records[s].append(eid)
            if kind == 4:
                objections[s].append(eid)
        elif objections[s] and roll < 0.32:
            led.add(s, code, t, kind=rng.choice([5, 7]), ref=rng.choice(objections[s]), sk=sk)
        elif roll < 0.34:
            led.add(s, code, t, kind=3, ref=rng.randbytes(32), sk=sk)  # unknown ref
        else:
            records[s].append(led.add(s, code, t, sk=sk, amount=rng.choice([0, 10, 60, 200])))
    return led


def test_deterministic_bytes_and_order_independence() -> None:
    led = _random_ledger(1)
    as_of = T0
    first = evaluate(RULES, CATALOG, led.entries, as_of).canonical_bytes()
    assert evaluate(RULES, CATALOG, led.entries, as_of).canonical_bytes() == first
    shuffled = led.entries[:]
    random.Random(2).shuffle(shuffled)
    assert evaluate(RULES, CATALOG, shuffled, as_of).canonical_bytes() == first
    by_subject: dict[bytes, list[LedgerEntry]] = {}
    for e in reversed(shuffled):
        by_subject.setdefault(e.subject, []).append(e)
    assert evaluate(RULES, CATALOG, by_subject, as_of).canonical_bytes() == first
    assert b'"memberships":[{' in first


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(-30, 400))
def test_incremental_equals_full(seed: int, day: int) -> None:
    led = _random_ledger(seed, subjects=12, n=120)
    as_of = T0 + day * DAY
    evaluator = Evaluator(RULES, CATALOG, as_of)
    members: set[tuple[str, bytes, str]] = set()
    for e in led.entries:
        for change in evaluator.apply(e):
            key = (change.list_id, change.subject, change.rule_id)
            if change.change == "entered":
                assert key not in members
                members.add(key)
            else:
                members.remove(key)
    full = evaluate(RULES, CATALOG, led.entries, as_of)
    assert evaluator.evaluation().canonical_bytes() == full.canonical_bytes()
    assert members == {m.key() for m in full.memberships}
    later = evaluate(RULES, CATALOG, led.entries, as_of + 200 * DAY)
    evaluator.advance(as_of + 200 * DAY)
    assert evaluator.evaluation().canonical_bytes() == later.canonical_bytes()


def test_incremental_requires_chain_order() -> None:
    led = _random_ledger(3, n=5)
    evaluator = Evaluator(RULES, CATALOG, T0, led.entries)
    with pytest.raises(InvalidInput):
        evaluator.apply(led.entries[0])


@pytest.mark.skipif("cpp" not in available_engines(), reason="needs cel-expr-python")
def test_engines_agree() -> None:
    led = _random_ledger(11, subjects=30, n=300)
    for as_of in (T0 - 100 * DAY, T0, T0 + 300 * DAY):
        cpp = evaluate(RULES, CATALOG, led.entries, as_of, engine="cpp")
        py = evaluate(RULES, CATALOG, led.entries, as_of, engine="celpy")
        assert cpp.canonical_bytes() == py.canonical_bytes()
        assert cpp.memberships


def test_workers_give_same_bytes() -> None:
    led = _random_ledger(5, subjects=60, n=400)
    one = evaluate(RULES, CATALOG, led.entries, T0)
    two = evaluate(RULES, CATALOG, led.entries, T0, workers=2)
    assert two.canonical_bytes() == one.canonical_bytes()
