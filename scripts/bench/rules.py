"""Benchmark: full rule evaluation and incremental update per new entry.

Targets: full evaluation of 100k subjects / 1M entries <= 60 s on 2 cores; incremental
update <= 1 ms median. Prints figures; the last line is ``key=value`` pairs.

Usage: ``python scripts/bench/rules.py [--quick] [--workers N] [--engine cpp|celpy]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from gen_synthetic import AS_OF, generate  # noqa: E402

from ledger.catalog import load_catalog  # noqa: E402
from ledger.merkle_lists import ListTree  # noqa: E402
from ledger.rules import Evaluator, available_engines, evaluate, load_measures, load_rule_set  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10k subjects / 100k entries")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--engine", default=None, choices=available_engines())
    parser.add_argument("--updates", type=int, default=2000)
    args = parser.parse_args()
    subjects, n = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    catalog, measures = load_catalog(), load_measures()
    rules = load_rule_set(catalog, measures)
    engine = args.engine or available_engines()[0]

    t = time.perf_counter()
    entries = generate(1, subjects, n)
    gen_s = time.perf_counter() - t
    print(f"generated {len(entries):,} entries / {subjects:,} subjects in {gen_s:.1f} s")

    # Hold back the last entries to replay them incrementally.
    base, tail = entries[: -args.updates], entries[-args.updates :]
    t = time.perf_counter()
    ev = evaluate(rules, catalog, entries, AS_OF, engine=engine, workers=args.workers)
    full_s = time.perf_counter() - t
    t = time.perf_counter()
    ev1 = evaluate(rules, catalog, entries, AS_OF, engine=engine, workers=1)
    full1_s = time.perf_counter() - t
    assert ev1.canonical_bytes() == ev.canonical_bytes(), "workers changed the result"
    t = time.perf_counter()
    blob = ev.canonical_bytes()
    canon_s = time.perf_counter() - t
    per_list = {lid: len(ev.members(lid)) for lid in rules.list_ids}
    t = time.perf_counter()
    roots = {lid: ListTree(lid, ev.members(lid)).root for lid in rules.list_ids}
    merkle_s = time.perf_counter() - t
    print(
        f"full evaluation ({engine}, {args.workers} workers): {full_s:.1f} s; "
        f"1 worker: {full1_s:.1f} s; canonical bytes {len(blob):,} in {canon_s:.1f} s"
    )
    print(
        f"memberships {len(ev.memberships):,}; per list {per_list}; "
        f"anomalies {len(ev.anomalies):,}; errors {len(ev.errors)}"
    )
    print(f"merkle roots for {len(roots)} lists in {merkle_s * 1000:.0f} ms")

    evaluator = Evaluator(rules, catalog, AS_OF, base, engine=engine)
    times = []
    changes = 0
    for e in tail:
        t = time.perf_counter()
        changes += len(evaluator.apply(e))
        times.append(time.perf_counter() - t)
    inc = evaluator.evaluation()
    assert inc.canonical_bytes() == blob, "incremental differs from full"
    times.sort()
    med = statistics.median(times) * 1000
    p99 = times[int(len(times) * 0.99) - 1] * 1000
    # Worst case: the most active subject gets one more record.
    busiest = max(evaluator._entries, key=lambda s: len(evaluator._entries[s]))
    probe = replace(
        tail[-1],
        id=b"\xff" * 32,
        subject=busiest,
        seq=tail[-1].seq + 1,
        ref=None,
        kind=1,
        subject_kind=evaluator._entries[busiest][0].subject_kind,
    )
    t = time.perf_counter()
    evaluator.apply(probe)
    worst = (time.perf_counter() - t) * 1000
    print(
        f"incremental: {len(tail)} updates, median {med:.3f} ms, p99 {p99:.3f} ms, "
        f"{changes} list changes; busiest subject ({len(evaluator._entries[busiest])} "
        f"entries) {worst:.2f} ms"
    )
    print(
        f"subjects={subjects} entries={len(entries)} engine={engine} workers={args.workers} "
        f"full_s={full_s:.2f} full_1worker_s={full1_s:.2f} incremental_median_ms={med:.3f} "
        f"incremental_p99_ms={p99:.3f} memberships={len(ev.memberships)} "
        f"identical=true"
    )


if __name__ == "__main__":
    main()
