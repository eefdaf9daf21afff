"""Evaluation of a rule set over ledger entries: full, and incremental per subject.

Invariants:

* Pure and deterministic: the result depends only on (rule set, catalog, entries, ``as_of``,
  engine); subjects are processed in byte order and records in chain order, so the same inputs
  in any order give byte-identical :meth:`Evaluation.canonical_bytes`.
* A subject's outcome depends only on that subject's entries: lifecycle references to another
  subject's records are anomalies (see :mod:`ledger.lifecycle`). That is what makes the
  incremental :class:`Evaluator` (re-evaluate one subject per entry) equal to :func:`evaluate`.
* A rule sees only its scope's categories. A subject with no record in a rule's scope is
  evaluated on the empty list, computed once per (rule, subject kind) and reused: an exact
  shortcut, not an approximation.
* Counting follows :func:`ledger.lifecycle.counts`; ``records`` also carries non-counting
  records (flags visible), and the published-expression lint forces rules to test ``counts``.
* Each membership names rule set id, version and hash, the rule, the list, and its
  explanation: a minimal set of counting records that alone still satisfies the condition
  (found greedily in chain order, so it is deterministic). It may be empty for conditions met
  by absence. ``since`` is the latest effective date in that set.
* An evaluation error (e.g. a missing map key) never raises: the rule is "not met" for that
  subject and the error is reported in :attr:`Evaluation.errors`.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import rfc8785

from ledger.catalog import Catalog, Category
from ledger.errors import InvalidInput
from ledger.lifecycle import DAY, Anomaly, CurrentRecord, LedgerEntry, counts, resolve
from ledger.rules.expr import INT64_MAX, Program, compile_program, default_engine
from ledger.rules.model import Rule, RuleSet

__all__ = [
    "Evaluation",
    "Evaluator",
    "ListChange",
    "Membership",
    "SubjectResult",
    "evaluate",
    "evaluate_subject",
    "record_view",
]

_KIND_NAME: Final = {1: "person", 2: "entity"}


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


@dataclass(frozen=True, slots=True)
class Membership:
    """A subject on a list because of a rule, with the records that explain it."""

    list_id: str
    subject: bytes
    subject_kind: int
    rule_id: str
    triggering: tuple[bytes, ...]
    since: int
    publicity_until: int
    exit_eligible: bool
    measures: tuple[str, ...]

    def key(self) -> tuple[str, bytes, str]:
        return (self.list_id, self.subject, self.rule_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "list": self.list_id,
            "subject": _hex(self.subject),
            "subject_kind": _KIND_NAME.get(self.subject_kind, str(self.subject_kind)),
            "rule": self.rule_id,
            "triggering": [_hex(t) for t in self.triggering],
            "since": self.since,
            "publicity_until": self.publicity_until,
            "exit_eligible": self.exit_eligible,
            "measures": list(self.measures),
        }


@dataclass(frozen=True, slots=True)
class SubjectResult:
    """Everything one subject contributes to an evaluation."""

    subject: bytes
    memberships: tuple[Membership, ...]
    anomalies: tuple[Anomaly, ...]
    errors: tuple[tuple[str, str], ...]  # (rule id, "condition" | "exit_condition")


@dataclass(frozen=True, slots=True)
class ListChange:
    """A subject entered or left a list by a rule (incremental output)."""

    change: Literal["entered", "left"]
    list_id: str
    subject: bytes
    rule_id: str
    membership: Membership


@dataclass(frozen=True)
class Evaluation:
    """Result of evaluating a rule set at ``as_of``; memberships sorted by (list, subject, rule)."""

    rule_set_id: str
    rule_set_version: str
    rule_set_hash: bytes
    catalog_hash: bytes
    as_of: int
    memberships: tuple[Membership, ...]
    anomalies: tuple[tuple[bytes, Anomaly], ...]
    errors: tuple[tuple[bytes, str, str], ...]
    _members: dict[str, list[bytes]] = field(default_factory=dict, repr=False, compare=False)

    def members(self, list_id: str) -> list[bytes]:
        """Sorted distinct subjects on ``list_id`` (the leaves of the list's Merkle root)."""
        if list_id not in self._members:
            self._members[list_id] = sorted(
                {m.subject for m in self.memberships if m.list_id == list_id}
            )
        return self._members[list_id]

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_set": {
                "id": self.rule_set_id,
                "version": self.rule_set_version,
                "hash": _hex(self.rule_set_hash),
            },
            "catalog_hash": _hex(self.catalog_hash),
            "as_of": self.as_of,
            "memberships": [m.to_json() for m in self.memberships],
            "anomalies": [{"subject": _hex(s), **a.to_json()} for s, a in self.anomalies],
            "errors": [{"subject": _hex(s), "rule": r, "field": f} for s, r, f in self.errors],
        }

    def canonical_bytes(self) -> bytes:
        """RFC 8785 JSON of :meth:`to_json`: identical inputs give identical bytes."""
        return rfc8785.dumps(self.to_json())

    def canonical_hash(self) -> bytes:
        return hashlib.sha256(self.canonical_bytes()).digest()


# ---- compiled rule set -------------------------------------------------------------------


@dataclass
class _CompiledRule:
    rule: Rule
    kinds: frozenset[int]
    scope_ids: frozenset[int]
    scope_codes: tuple[str, ...]
    condition: Program
    exit_condition: Program
    empty_cache: dict[tuple[int, int], tuple[bool | None, bool | None]] = field(
        default_factory=dict
    )


@dataclass
class _Compiled:
    rule_set: RuleSet
    rule_set_hash: bytes
    catalog_hash: bytes
    categories: dict[int, Category]
    rules: list[_CompiledRule]


_CACHE: dict[tuple[bytes, bytes, str], _Compiled] = {}


def _compile(rule_set: RuleSet, catalog: Catalog, engine: str | None) -> _Compiled:
    engine = engine or default_engine()
    rs_hash, cat_hash = rule_set.canonical_hash(), catalog.canonical_hash()
    key = (rs_hash, cat_hash, engine)
    if key not in _CACHE:
        rules = []
        for rule in rule_set.rules:
            kinds = frozenset(1 if k == "person" else 2 for k in rule.subject_kinds)
            rules.append(
                _CompiledRule(
                    rule=rule,
                    kinds=kinds,
                    scope_ids=frozenset(catalog.by_code(c).id for c in rule.scope),
                    scope_codes=tuple(rule.scope),
                    condition=compile_program(rule.condition, engine),
                    exit_condition=compile_program(rule.exit_condition, engine),
                )
            )
        _CACHE[key] = _Compiled(rule_set, rs_hash, cat_hash, {c.id: c for c in catalog}, rules)
    return _CACHE[key]


def record_view(record: CurrentRecord, category: Category, as_of: int) -> dict[str, Any]:
    """The CEL map of one record (``records`` element), as documented in :mod:`.expr`."""
    repairable_from = 0
    if category.repairable and category.repair_after_days is not None:
        repairable_from = record.effective_from + category.repair_after_days * DAY
    return {
        "id": _hex(record.id),
        "category": category.code,
        "polarity": category.polarity,
        "severity": category.severity,
        "occurred_at": record.occurred_at,
        "effective_from": record.effective_from,
        "effective_until": record.effective_until,
        "amount": min(record.amount, INT64_MAX),
        "disputed": record.disputed,
        "withdrawn": record.withdrawn,
        "objection_upheld": record.objection_upheld,
        "repaired": record.repaired,
        "counts": counts(record, category, as_of),
        "repairable_from": repairable_from,
    }


def _activation(
    items: Sequence[tuple[CurrentRecord, dict[str, Any]]],
    codes: tuple[str, ...],
    kind: str,
    as_of: int,
) -> dict[str, Any]:
    totals = dict.fromkeys(codes, 0)
    for _, view in items:
        if view["counts"]:
            totals[view["category"]] = min(totals[view["category"]] + view["amount"], INT64_MAX)
    return {
        "records": [view for _, view in items],
        "totals": totals,
        "subject_kind": kind,
        "as_of": as_of,
    }


def evaluate_subject(
    compiled: _Compiled, subject: bytes, entries: Sequence[LedgerEntry], as_of: int
) -> SubjectResult:
    """Evaluate every rule for one subject from that subject's entries alone."""
    view = resolve(entries, as_of, with_versions=False)
    anomalies = list(view.anomalies)
    visible = [e for e in entries if e.recorded_at <= as_of]
    if not view.current and not visible:
        return SubjectResult(subject, (), tuple(anomalies), ())
    kind = min(visible, key=lambda e: e.seq).subject_kind if visible else 0
    kind_name = _KIND_NAME.get(kind, "unknown")
    items: list[tuple[CurrentRecord, dict[str, Any]]] = []
    for record in view.current:
        category = compiled.categories.get(record.category)
        if category is None:
            anomalies.append(
                Anomaly(record.id, "unknown-category", f"category id {record.category}")
            )
            continue
        if record.subject_kind != kind:
            anomalies.append(Anomaly(record.id, "subject-kind-mismatch", "ignored"))
            continue
        items.append((record, record_view(record, category, as_of)))
    memberships: list[Membership] = []
    errors: list[tuple[str, str]] = []
    for cr in compiled.rules:
        if kind not in cr.kinds:
            continue
        scoped = [it for it in items if it[0].category in cr.scope_ids]
        if scoped:
            act = _activation(scoped, cr.scope_codes, kind_name, as_of)
            met = cr.condition(act)
            exit_ok = cr.exit_condition(act) if met else None
        else:
            cache_key = (kind, as_of)
            if cache_key not in cr.empty_cache:
                act = _activation([], cr.scope_codes, kind_name, as_of)
                c = cr.condition(act)
                cr.empty_cache[cache_key] = (c, cr.exit_condition(act) if c else None)
            met, exit_ok = cr.empty_cache[cache_key]
        if met is None:
            errors.append((cr.rule.id, "condition"))
            continue
        if not met:
            continue
        if exit_ok is None:
            errors.append((cr.rule.id, "exit_condition"))
        keep = _explain(cr, scoped, kind_name, as_of)
        since = max((r.effective_from for r, _ in keep), default=0)
        until = since + cr.rule.publicity_days * DAY if since else 0
        triggering = tuple(r.id for r, _ in sorted(keep, key=lambda it: it[0].seq))
        for list_id in cr.rule.outcomes:
            memberships.append(
                Membership(
                    list_id,
                    subject,
                    kind,
                    cr.rule.id,
                    triggering,
                    since,
                    until,
                    bool(exit_ok),
                    cr.rule.measures,
                )
            )
    memberships.sort(key=Membership.key)
    return SubjectResult(subject, tuple(memberships), tuple(anomalies), tuple(errors))


def _explain(
    cr: _CompiledRule,
    scoped: list[tuple[CurrentRecord, dict[str, Any]]],
    kind_name: str,
    as_of: int,
) -> list[tuple[CurrentRecord, dict[str, Any]]]:
    """Greedy minimal sufficient set of counting records (non-counting ones stay as context)."""
    fixed = [it for it in scoped if not it[1]["counts"]]
    keep = sorted(
        (it for it in scoped if it[1]["counts"]),
        key=lambda it: (it[0].effective_from, it[0].seq),
    )
    # Try dropping halves, then quarters... down to single records (ddmin-style): a 1-minimal
    # set in O(m log k) evaluations instead of O(k) for subjects with many records.
    chunk = max(1, len(keep) // 2)
    while True:
        i = 0
        while i < len(keep):
            trial = keep[:i] + keep[i + chunk :]
            candidate = sorted(trial + fixed, key=lambda it: it[0].seq)
            if cr.condition(_activation(candidate, cr.scope_codes, kind_name, as_of)) is True:
                keep = trial
            else:
                i += chunk
        if chunk == 1:
            break
        chunk = max(1, chunk // 2)
    return keep


# ---- full evaluation ---------------------------------------------------------------------


def _group(
    subjects_records: Mapping[bytes, Iterable[LedgerEntry]] | Iterable[LedgerEntry],
) -> dict[bytes, list[LedgerEntry]]:
    groups: dict[bytes, list[LedgerEntry]] = defaultdict(list)
    source: Iterable[LedgerEntry]
    if isinstance(subjects_records, Mapping):
        source = (e for entries in subjects_records.values() for e in entries)
    else:
        source = subjects_records
    for entry in source:
        groups[entry.subject].append(entry)
    return groups


_WORK: dict[str, Any] = {}


def _work_chunk(subjects: list[bytes]) -> list[SubjectResult]:
    compiled, groups, as_of = _WORK["compiled"], _WORK["groups"], _WORK["as_of"]
    return [evaluate_subject(compiled, s, groups[s], as_of) for s in subjects]


def _assemble(compiled: _Compiled, as_of: int, results: Iterable[SubjectResult]) -> Evaluation:
    memberships: list[Membership] = []
    anomalies: list[tuple[bytes, Anomaly]] = []
    errors: list[tuple[bytes, str, str]] = []
    for res in results:
        memberships.extend(res.memberships)
        anomalies.extend((res.subject, a) for a in res.anomalies)
        errors.extend((res.subject, r, f) for r, f in res.errors)
    memberships.sort(key=Membership.key)
    anomalies.sort(key=lambda sa: (sa[0], sa[1].entry_id, sa[1].code))
    errors.sort()
    rs = compiled.rule_set
    return Evaluation(
        rs.id,
        rs.version,
        compiled.rule_set_hash,
        compiled.catalog_hash,
        as_of,
        tuple(memberships),
        tuple(anomalies),
        tuple(errors),
    )


def evaluate(
    rule_set: RuleSet,
    catalog: Catalog,
    subjects_records: Mapping[bytes, Iterable[LedgerEntry]] | Iterable[LedgerEntry],
    as_of: int,
    *,
    engine: str | None = None,
    workers: int = 1,
) -> Evaluation:
    """Evaluate every subject; ``workers > 1`` splits subjects over forked processes.

    ``subjects_records`` is either a flat iterable of entries or a mapping subject -> entries
    (entries are regrouped by their own ``subject`` field either way).
    """
    compiled = _compile(rule_set, catalog, engine)
    groups = _group(subjects_records)
    subjects = sorted(groups)
    if workers <= 1 or len(subjects) < 2 * workers:
        results: Iterable[SubjectResult] = [
            evaluate_subject(compiled, s, groups[s], as_of) for s in subjects
        ]
    else:
        _WORK.update(compiled=compiled, groups=groups, as_of=as_of)
        chunk = max(1, len(subjects) // (workers * 8))
        parts = [subjects[i : i + chunk] for i in range(0, len(subjects), chunk)]
        try:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                results = [r for part in pool.map(_work_chunk, parts) for r in part]
        finally:
            _WORK.clear()
    return _assemble(compiled, as_of, results)


# ---- incremental -------------------------------------------------------------------------


class Evaluator:
    """Holds per-subject state; :meth:`apply` re-evaluates only the entry's subject.

    Entries must arrive in chain order (strictly increasing ``seq``), as a log follower
    delivers them. ``as_of`` is fixed; :meth:`advance` moves it and re-evaluates everyone.
    """

    def __init__(
        self,
        rule_set: RuleSet,
        catalog: Catalog,
        as_of: int,
        entries: Iterable[LedgerEntry] = (),
        *,
        engine: str | None = None,
    ) -> None:
        self._compiled = _compile(rule_set, catalog, engine)
        self.as_of = as_of
        self._entries: dict[bytes, list[LedgerEntry]] = _group(entries)
        self._last_seq = max((e.seq for es in self._entries.values() for e in es), default=-1)
        self._results: dict[bytes, SubjectResult] = {
            s: evaluate_subject(self._compiled, s, es, as_of) for s, es in self._entries.items()
        }

    def apply(self, entry: LedgerEntry) -> list[ListChange]:
        """Add one entry; return the list changes of its subject, sorted."""
        if entry.seq <= self._last_seq:
            raise InvalidInput(
                f"entries must arrive in chain order: seq {entry.seq} after {self._last_seq}"
            )
        self._last_seq = entry.seq
        entries = self._entries.setdefault(entry.subject, [])
        entries.append(entry)
        return self._reevaluate(entry.subject)

    def advance(self, as_of: int) -> list[ListChange]:
        """Move ``as_of`` (time passing changes what counts) and return every change."""
        self.as_of = as_of
        changes: list[ListChange] = []
        for subject in sorted(self._entries):
            changes.extend(self._reevaluate(subject))
        return changes

    def _reevaluate(self, subject: bytes) -> list[ListChange]:
        old = self._results.get(subject)
        new = evaluate_subject(self._compiled, subject, self._entries[subject], self.as_of)
        self._results[subject] = new
        before = {m.key(): m for m in old.memberships} if old else {}
        after = {m.key(): m for m in new.memberships}
        changes = [
            ListChange("left", k[0], k[1], k[2], before[k]) for k in before.keys() - after.keys()
        ] + [
            ListChange("entered", k[0], k[1], k[2], after[k]) for k in after.keys() - before.keys()
        ]
        changes.sort(key=lambda c: (c.list_id, c.subject, c.rule_id, c.change))
        return changes

    def result(self, subject: bytes) -> SubjectResult | None:
        return self._results.get(subject)

    def evaluation(self) -> Evaluation:
        """The same :class:`Evaluation` :func:`evaluate` gives for the entries seen so far."""
        return _assemble(
            self._compiled, self.as_of, (self._results[s] for s in sorted(self._results))
        )
