"""Audit throughput: records verified per second by the pure verifier on a synthetic history
fed as eth_getLogs pages (signature recovery in worker processes), and an end-to-end replay
through the adapter against a real anvil.

The CPU line (parent + workers, µs per record) does not depend on what else the machine runs;
the wall time does, so it prints the load average too. ~75 µs/record is 1M records in ~38 s
on two free cores.

    ETH_HASH_BACKEND=pysha3 python scripts/bench/audit.py [--quick] [--records N] [--workers W]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from pathlib import Path

os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gen_ledger_history import (
    CHAIN_ID,
    LEDGER,
    ROLES,
    history_pages,
    load_history,
    role_logs,
)

from ledger.audit import Auditor, AuditState, record_items
from ledger.audit_replay import FactsPool


def pure(n: int, workers: int) -> None:
    t = time.perf_counter()
    hist = load_history(n)
    print(f"history: {n} records ready in {time.perf_counter() - t:.1f} s")
    contracts = {"Roles": ROLES, "CreditLedger": LEDGER}
    auditor = Auditor(CHAIN_ID, contracts, AuditState(next_block=1))
    t0 = time.perf_counter()
    c0 = os.times()
    auditor.feed(role_logs())
    with FactsPool(CHAIN_ID, LEDGER, workers) as pool:
        pending: deque = deque()
        # pages of raw JSON-RPC logs as eth_getLogs returns them: synthesising them (hex
        # strings) is inside the timed region, like a node's responses would be
        for logs in history_pages(hist):
            pending.append((logs, pool.submit(record_items(logs, LEDGER))))
            if len(pending) > 2:
                lg, wait = pending.popleft()
                auditor.feed(lg, wait())
        while pending:
            lg, wait = pending.popleft()
            auditor.feed(lg, wait())
    last = 2 + (n - 1) // 500
    rep = auditor.finish(from_block=1, to_block=last, head_block=last, now=0)
    dt = time.perf_counter() - t0
    c1 = os.times()
    parent = (c1.user + c1.system) - (c0.user + c0.system)
    children = (c1.children_user + c1.children_system) - (c0.children_user + c0.children_system)
    assert rep.ok, rep.findings[:5]
    print(f"pure verifier, {workers} worker(s): {n} records in {dt:.1f} s = {n / dt:,.0f} "
          f"records/s (lifecycle {rep.counts.get('lifecycle', 0)}, ok={rep.ok})")  # fmt: skip
    per = (parent + children) / n * 1e6
    print(f"  CPU: parent {parent:.1f} s, workers {children:.1f} s ({per:.0f} µs/record), "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    if n < 1_000_000:
        print(f"  extrapolated to 1,000,000 records: {1_000_000 / (n / dt):.0f} s")


def anvil(n: int) -> None:
    import tempfile

    from eth_account import Account

    from ledger.audit_replay import replay
    from ledger.chain import Sender, new_account
    from ledger.credit import CreditLedgerClient
    from ledger.deploy import decoder, deploy_contracts
    from ledger.node import AnvilNode, free_port
    from ledger.records import CreditRecord, sign_record
    from ledger.roles import Role, RolesClient

    with tempfile.TemporaryDirectory() as d:
        node = AnvilNode(Path(d), port=free_port(), block_time=0.2)
        chain = node.start()
        try:
            gov = Sender(chain, new_account(), decoder())
            dep = deploy_contracts(chain, gov)
            roles = RolesClient(chain, dep.address("Roles"))
            ledger = CreditLedgerClient(chain, dep.address("CreditLedger"))
            agency = Account.create()
            roles.grant(gov, Role.AGENCY, agency.address)
            roles.grant_categories(gov, agency.address, [301])
            relayer = Sender(chain, new_account(), decoder())
            now = int(time.time())
            for b in range(0, n, 200):
                batch = [
                    sign_record(
                        CreditRecord(
                            kind=1,
                            subject_kind=1,
                            subject=i.to_bytes(32, "big"),
                            category=301,
                            occurred_at=now,
                            effective_from=now,
                            deadline=now + 3600,
                            nonce=i,
                        ),
                        bytes(agency.key),
                        ledger.domain(),
                    )
                    for i in range(b + 1, min(b + 200, n) + 1)
                ]
                ledger.submit_batch(relayer, batch)
            for w in (1, 2):
                t = time.perf_counter()
                rep = replay(chain, dep, workers=w)
                dt = time.perf_counter() - t
                print(f"anvil end-to-end replay, {w} worker(s): {rep.counts['records']} records "
                      f"in {dt:.2f} s = {rep.counts['records'] / dt:,.0f} records/s "
                      f"(ok={rep.ok})")  # fmt: skip
        finally:
            chain.close()
            node.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="20k records, 1k on anvil")
    ap.add_argument("--records", type=int, default=None)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-anvil", action="store_true")
    a = ap.parse_args()
    n = a.records or (20_000 if a.quick else 1_000_000)
    pure(n, a.workers)
    if not a.no_anvil:
        anvil(1_000 if a.quick else 5_000)


if __name__ == "__main__":
    main()
