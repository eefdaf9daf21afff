"""Lifecycle folding: amend, withdraw, objection, resolution, repair, anomalies, counting."""

from __future__ import annotations

import random

from ledger.catalog import load_catalog
from ledger.lifecycle import (
    AMEND,
    DAY,
    OBJECTION,
    RECORD,
    REPAIR,
    RESOLUTION_REJECTED,
    RESOLUTION_UPHELD,
    WITHDRAW,
    LedgerEntry,
    counting_until,
    counts,
    current_view,
    history_view,
    resolve,
)

SUBJECT = b"\x11" * 32
OTHER = b"\x22" * 32
T0 = 1_700_000_000
CATALOG = load_catalog()
_seq = iter(range(1, 10_000))


def eid(n: int) -> bytes:
    return n.to_bytes(32, "big")


def entry(n: int, kind: int = RECORD, ref: int | None = None, *, at: int = T0, **kw) -> LedgerEntry:
    fields = dict(
        id=eid(n),
        kind=kind,
        subject=SUBJECT,
        subject_kind=1,
        category=103,
        agency="0xA",
        occurred_at=at,
        effective_from=at,
        effective_until=0,
        ref=None if ref is None else eid(ref),
        seq=n,
        recorded_at=at,
    )
    fields.update(kw)
    return LedgerEntry(**fields)


def test_plain_record_and_history() -> None:
    entries = [entry(1), entry(2, at=T0 + 10)]
    assert [r.id for r in current_view(entries, T0)] == [eid(1)]
    assert [e.id for e in history_view(entries, T0 + 10)] == [eid(1), eid(2)]


def test_amend_supersedes_and_keeps_chain() -> None:
    entries = [entry(1), entry(2, AMEND, 1, category=104), entry(3, AMEND, 2, category=103)]
    view = resolve(entries, T0)
    (cur,) = view.current
    assert cur.id == eid(3) and cur.root == eid(1) and cur.chain == (eid(1), eid(2), eid(3))
    assert cur.superseded_by is None
    assert [v.superseded_by for v in view.versions] == [eid(2), eid(3), None]
    assert not view.anomalies


def test_stale_amend_is_anomaly() -> None:
    view = resolve([entry(1), entry(2, AMEND, 1), entry(3, AMEND, 1)], T0)
    assert view.current[0].id == eid(2)
    assert [a.code for a in view.anomalies] == ["stale-amend"]


def test_withdraw_applies_to_whole_chain() -> None:
    view = resolve([entry(1), entry(2, AMEND, 1), entry(3, WITHDRAW, 1)], T0)
    assert view.current[0].withdrawn and view.current[0].id == eid(2)
    again = resolve([entry(1), entry(3, WITHDRAW, 1), entry(4, WITHDRAW, 1)], T0)
    assert [a.code for a in again.anomalies] == ["already-withdrawn"]


def test_objection_upheld_and_rejected() -> None:
    base = [entry(1), entry(2, OBJECTION, 1)]
    assert current_view(base, T0)[0].disputed
    upheld = current_view([*base, entry(3, RESOLUTION_UPHELD, 2)], T0)[0]
    assert not upheld.disputed and upheld.objection_upheld
    rejected = current_view([*base, entry(3, RESOLUTION_REJECTED, 2)], T0)[0]
    assert not rejected.disputed and not rejected.objection_upheld
    twice = resolve([*base, entry(3, RESOLUTION_REJECTED, 2), entry(4, RESOLUTION_UPHELD, 2)], T0)
    assert [a.code for a in twice.anomalies] == ["already-resolved"]
    assert not twice.current[0].objection_upheld
    # A resolution must aim at an objection, not at the record.
    wrong = resolve([*base, entry(3, RESOLUTION_UPHELD, 1)], T0)
    assert [a.code for a in wrong.anomalies] == ["wrong-ref-kind"]


def test_only_recorded_entries_are_seen() -> None:
    entries = [entry(1), entry(2, OBJECTION, 1, at=T0 + 100)]
    assert not current_view(entries, T0 + 99)[0].disputed
    assert current_view(entries, T0 + 100)[0].disputed


def test_repair_counts_from_its_effective_date() -> None:
    cat = CATALOG.by_id(103)
    entries = [entry(1), entry(2, REPAIR, 1, at=T0 + 5 * DAY, effective_from=T0 + 100 * DAY)]
    before = current_view(entries, T0 + 99 * DAY)[0]
    assert not before.repaired and before.repaired_from == T0 + 100 * DAY
    assert counts(before, cat, T0 + 99 * DAY)
    after = current_view(entries, T0 + 100 * DAY)[0]
    assert after.repaired and not counts(after, cat, T0 + 100 * DAY)
    assert after.lifecycle == (eid(2),)  # history kept


def test_unknown_and_bad_references_never_crash() -> None:
    entries = [
        entry(1),
        entry(2, WITHDRAW, 99),  # unknown
        entry(3, WITHDRAW),  # missing ref
        entry(4, RECORD, 1),  # original with a ref
        entry(5, OBJECTION, 7),  # forward
        entry(6, WITHDRAW, 1, subject=OTHER),  # another subject
        entry(7),
        entry(7, seq=8),  # duplicate id
        entry(9, kind=42, ref=1),  # unknown kind
        entry(10, AMEND, 5),  # aims at an objection
    ]
    view = resolve(entries, T0)
    codes = [a.code for a in view.anomalies]
    assert codes == [
        "unknown-ref",
        "missing-ref",
        "unexpected-ref",
        "forward-ref",
        "subject-mismatch",
        "duplicate-id",
        "unknown-kind",
        "wrong-ref-kind",
    ]
    assert {r.id for r in view.current} == {eid(1), eid(4), eid(7)}
    assert not any(r.withdrawn for r in view.current)


def test_order_is_seq_not_input_order() -> None:
    entries = [entry(1), entry(2, AMEND, 1), entry(3, OBJECTION, 2), entry(4, RESOLUTION_UPHELD, 3)]
    expected = resolve(entries, T0)
    rng = random.Random(7)
    for _ in range(5):
        shuffled = entries[:]
        rng.shuffle(shuffled)
        assert resolve(shuffled, T0) == expected


def test_counting_windows() -> None:
    general = CATALOG.by_id(103)  # published 365 days
    rec = current_view([entry(1)], T0)[0]
    assert counting_until(rec, general) == T0 + 365 * DAY
    assert counts(rec, general, T0 + 365 * DAY - 1)
    assert not counts(rec, general, T0 + 365 * DAY)
    assert not counts(rec, general, T0 - 1)  # not yet effective
    warning = CATALOG.by_id(101)  # unpublished minor: retention period
    assert counting_until(rec, warning) == T0 + warning.retention_days * DAY
    minor = CATALOG.by_id(102)  # minor published 90 days
    assert counting_until(rec, minor) == T0 + 90 * DAY
    restricted = current_view([entry(1, effective_until=T0 + 4000 * DAY)], T0)[0]
    assert counting_until(restricted, general) == T0 + general.retention_days * DAY
    short = current_view([entry(1, effective_until=T0 + 10 * DAY)], T0)[0]
    assert counting_until(short, general) == T0 + 10 * DAY
    disputed = current_view([entry(1), entry(2, OBJECTION, 1)], T0)[0]
    assert not counts(disputed, general, T0)
