"""Deterministic synthetic ledger for benchmarks: subjects, records and lifecycle entries.

``generate(seed, subjects, entries)`` is pure (seeded ``random.Random``): the same arguments
always give the same entries. The mix is modelled on the starter catalog: persons mostly have
good minor records (volunteer hours, blood donation) and minor/general penalties, entities
more tax grades, abnormal-operation marks and penalties; a few percent are court-listed
defaulters or serious penalties; ~8% of entries are lifecycle entries (amend, withdraw,
objection with resolution, repair) aimed at earlier records of the same subject.

Usage: ``python scripts/gen_synthetic.py [--subjects N] [--entries N] [--seed S] [--out F.jsonl]``
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
)

__all__ = ["AS_OF", "generate"]

AS_OF = 1_767_225_600  # 2026-01-01T00:00:00Z
SPAN = 5 * 365 * DAY

PERSON_MIX = {
    "volunteer.service_hours": 30,
    "health.blood_donation": 8,
    "charity.donation": 5,
    "honour.commendation": 3,
    "admin_penalty.warning": 12,
    "admin_penalty.minor": 12,
    "admin_penalty.general": 12,
    "admin_penalty.serious": 2,
    "court.judgment_defaulter": 3,
    "tax.arrears": 3,
    "contract.fraud": 3,
    "labor.wage_arrears": 1,
    "commitment.breach": 3,
    "food_drug.serious_violation": 1,
    "procurement.serious_violation": 1,
}
ENTITY_MIX = {
    "tax.grade_a": 18,
    "honour.commendation": 4,
    "charity.donation": 3,
    "admin_penalty.warning": 10,
    "admin_penalty.minor": 12,
    "admin_penalty.general": 16,
    "admin_penalty.serious": 3,
    "court.judgment_defaulter": 3,
    "tax.arrears": 5,
    "market.abnormal_operation": 8,
    "market.serious_dishonesty_list": 1,
    "contract.fraud": 3,
    "labor.wage_arrears": 2,
    "commitment.breach": 4,
    "food_drug.serious_violation": 2,
    "procurement.serious_violation": 2,
}


def generate(seed: int = 1, subjects: int = 100_000, entries: int = 1_000_000) -> list[LedgerEntry]:
    """``entries`` entries over ``subjects`` subjects, in chain order (seq 1..entries)."""
    rng = random.Random(seed)
    catalog = load_catalog()
    ids = {c.code: c.id for c in catalog}
    mixes = {}
    for kind, mix in ((1, PERSON_MIX), (2, ENTITY_MIX)):
        codes = list(mix)
        mixes[kind] = ([ids[c] for c in codes], list(mix.values()), codes)
    subject_ids = [rng.randbytes(32) for _ in range(subjects)]
    kinds = [1 if rng.random() < 0.7 else 2 for _ in range(subjects)]
    # Skewed activity: a few subjects have many records.
    weights = [rng.paretovariate(1.5) for _ in range(subjects)]
    n_records = int(entries * 0.92)
    picks = rng.choices(range(subjects), weights=weights, k=n_records)
    raw: list[tuple[int, int, int, int, int, int, int | None, int]] = []
    # (time, kind, subject index, category, effective_from, amount, ref index, raw index)
    person_cats = rng.choices(mixes[1][0], weights=mixes[1][1], k=n_records)
    entity_cats = rng.choices(mixes[2][0], weights=mixes[2][1], k=n_records)
    volunteer, blood = ids["volunteer.service_hours"], ids["health.blood_donation"]
    for i, s in enumerate(picks):
        cat = person_cats[i] if kinds[s] == 1 else entity_cats[i]
        t = AS_OF - rng.randrange(SPAN)
        amount = 0
        if cat == volunteer:
            amount = rng.choice((4, 8, 16, 24, 40))
        elif cat == blood:
            amount = rng.choice((200, 300, 400))
        elif rng.random() < 0.5:
            amount = rng.randrange(100, 200_000)
        raw.append((t, RECORD, s, cat, t, amount, None, i))
    # Lifecycle entries aimed at earlier records of the same subject.
    objections: list[int] = []
    while len(raw) < entries:
        target = rng.randrange(n_records)
        t0, _, s, cat, eff, amount, _, _ = raw[target]
        when = min(AS_OF - 1, t0 + rng.randrange(1, 200 * DAY))
        roll = rng.random()
        idx = len(raw)
        if roll < 0.25:
            raw.append((when, AMEND, s, cat, eff, amount, target, idx))
        elif roll < 0.42:
            raw.append((when, WITHDRAW, s, cat, eff, 0, target, idx))
        elif roll < 0.70 or not objections:
            raw.append((when, OBJECTION, s, cat, eff, 0, target, idx))
            objections.append(idx)
        elif roll < 0.85:
            obj = objections.pop(rng.randrange(len(objections)))
            ot, _, os_, ocat, oeff, _, _, _ = raw[obj]
            kind = RESOLUTION_UPHELD if rng.random() < 0.3 else RESOLUTION_REJECTED
            raw.append(
                (
                    min(AS_OF - 1, ot + rng.randrange(1, 10 * DAY)),
                    kind,
                    os_,
                    ocat,
                    oeff,
                    0,
                    obj,
                    idx,
                )
            )
        else:
            raw.append((when, REPAIR, s, cat, when + rng.randrange(0, 5 * DAY), 0, target, idx))
    order = sorted(range(len(raw)), key=lambda i: (raw[i][0], i))
    seq_of = {i: n + 1 for n, i in enumerate(order)}
    entry_id = [rng.randbytes(32) for _ in raw]
    out: list[LedgerEntry] = []
    for i in order:
        t, kind, s, cat, eff, amount, ref, _ = raw[i]
        # A ref must precede its entry in chain order; a later one stays (forward-ref anomaly).
        out.append(
            LedgerEntry(
                id=entry_id[i],
                kind=kind,
                subject=subject_ids[s],
                subject_kind=kinds[s],
                category=cat,
                agency="0x" + f"{cat:040x}",
                occurred_at=t - rng.randrange(30 * DAY),
                effective_from=eff,
                effective_until=0,
                ref=None if ref is None else entry_id[ref],
                seq=seq_of[i],
                recorded_at=t,
                amount=amount,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="JSON lines output")
    args = parser.parse_args()
    with args.out.open("w") as fh:
        for e in generate(args.seed, args.subjects, args.entries):
            fh.write(
                json.dumps(
                    {
                        "id": e.id.hex(),
                        "kind": e.kind,
                        "subject": e.subject.hex(),
                        "subject_kind": e.subject_kind,
                        "category": e.category,
                        "agency": e.agency,
                        "occurred_at": e.occurred_at,
                        "effective_from": e.effective_from,
                        "effective_until": e.effective_until,
                        "ref": e.ref.hex() if e.ref else None,
                        "seq": e.seq,
                        "recorded_at": e.recorded_at,
                        "amount": e.amount,
                    }
                )
                + "\n"
            )


if __name__ == "__main__":
    main()
