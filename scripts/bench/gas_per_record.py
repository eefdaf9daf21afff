"""Gas per credit record on a real anvil node, by batch size.

Starts an anvil child in a temp dir, deploys Roles + CreditLedger, grants one agency a category,
then sends recordBatch transactions of 1, 10, 100 and 200 records (sequential nonces, as an
agency's submitter would use) and prints tx gas / records, split into the intrinsic part (21,000
+ calldata) and execution. The last line is machine-readable ``key=value`` pairs.

Usage: .venv/bin/python scripts/bench/gas_per_record.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ledger.chain import Sender, new_account
from ledger.credit import CreditLedgerClient
from ledger.deploy import decoder, deploy_contracts
from ledger.node import AnvilNode, free_port
from ledger.records import CreditRecord, RecordKind, SignedRecord, sign_record
from ledger.roles import Role, RolesClient

CATEGORY = 101


def _calldata_gas(data: bytes) -> int:
    zeros = data.count(0)
    return 4 * zeros + 16 * (len(data) - zeros)


def _records(key: bytes, client: CreditLedgerClient, first_nonce: int, n: int, now: int):
    domain = client.domain()
    out: list[SignedRecord] = []
    for i in range(n):
        nonce = first_nonce + i
        rec = CreditRecord(
            kind=RecordKind.RECORD,
            subject_kind=1,
            subject=os.urandom(32),
            category=CATEGORY,
            occurred_at=now - 86_400,
            effective_from=now,
            effective_until=now + 365 * 86_400,
            deadline=now + 3_600,
            amount=50_000,
            evidence_hash=os.urandom(32),
            reason_hash=os.urandom(32),
            nonce=nonce,
        )
        out.append(sign_record(rec, key, domain))
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one run per size (default: 3)")
    args = ap.parse_args(argv)
    sizes = (1, 10, 100, 200)
    repeats = 1 if args.quick else 3
    with tempfile.TemporaryDirectory(prefix="zhixin-gas-") as tmp:
        node = AnvilNode(Path(tmp), port=free_port(), block_time=0.2)
        chain = node.start()
        try:
            governor = Sender(chain, new_account(), decoder())
            dep = deploy_contracts(chain, governor)
            roles = RolesClient(chain, dep.address("Roles"))
            agency = new_account()
            roles.grant(governor, Role.AGENCY, agency.address)
            roles.grant_categories(governor, agency.address, [CATEGORY])
            client = CreditLedgerClient(chain, dep.address("CreditLedger"))
            relayer = Sender(chain, new_account(), decoder())
            now = int(chain.w3.eth.get_block("latest")["timestamp"])
            key = bytes(agency.key)
            nonce = 0
            rows: list[tuple[int, float, float, float]] = []
            for size in sizes:
                per, intrinsic = [], []
                for _ in range(repeats):
                    batch = _records(key, client, nonce, size, now)
                    nonce += size
                    res = client.submit_batch(relayer, batch)
                    assert not res.rejected, res.rejected
                    tx = chain.w3.eth.get_transaction(res.tx.tx_hash)
                    cd = 21_000 + _calldata_gas(bytes(tx["input"]))
                    per.append(res.tx.gas_used / size)
                    intrinsic.append(cd / size)
                g, i = statistics.median(per), statistics.median(intrinsic)
                rows.append((size, g, i, g - i))
        finally:
            chain.close()
    print(f"{'batch':>6} {'gas/record':>11} {'intrinsic':>10} {'execution':>10}")
    for size, g, i, e in rows:
        print(f"{size:>6} {g:>11,.0f} {i:>10,.0f} {e:>10,.0f}")
    print(" ".join(f"gas_per_record_b{size}={g:.0f}" for size, g, _i, _e in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
