"""Benchmark: agency-signed credit records through the HTTP API to the index, on the local node.

Starts a real `zhixin serve` (anvil child, --dev) in a temporary data dir, pre-signs N records as
the demo tax agency (client-side signing is not what we measure), POSTs them in batches from
several client threads, and watches the service's SQLite index for each record id.

Reports: accepted records/s (HTTP 202), accepted→indexed records/s sustained, p50/p95 latency
from the 202 to the row appearing in the index, and gas per record from the batch receipts.

    python scripts/bench/credit_records.py [--quick] [--records N] [--batch N] [--clients N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")

import httpx2 as httpx  # noqa: E402
from eth_utils import keccak  # noqa: E402

from ledger.chain import RpcChain  # noqa: E402
from ledger.node import free_port  # noqa: E402
from ledger.records import (  # noqa: E402
    CreditRecord,
    Eip712Domain,
    RecordKind,
    sign_record,
    signed_record_to_json,
)

SECRET = "42" * 32


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--records", type=int, default=None)
    ap.add_argument("--batch", type=int, default=250, help="records per HTTP request")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rate", type=float, default=0, help="offered records/s (0 = as fast)")
    args = ap.parse_args()
    n = args.records or (3_000 if args.quick else 30_000)

    tmp = Path(tempfile.mkdtemp(prefix="zhixin-bench-"))
    data = tmp / "data"
    port, node_port = free_port(), free_port()
    env = {
        **os.environ,
        "ZHIXIN_DISTRICT_SECRET": SECRET,
        "ZHIXIN_KEYSTORE_PASSWORD": "bench",
        "ZHIXIN_BATCH_SIZE": "500",
        "HOME": str(tmp),
    }
    zhixin = str(Path(sys.executable).parent / "zhixin")
    proc = subprocess.Popen(
        [zhixin, "serve", "--data-dir", str(data), "--port", str(port),
         "--node-port", str(node_port), "--dev"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                print(proc.stderr.read() if proc.stderr else "", file=sys.stderr)
                return 1
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("service did not start")
            time.sleep(0.2)
        keys = json.loads((data / "dev-keys.json").read_text())
        dep = json.loads((data / "deployment.json").read_text())
        domain = Eip712Domain(dep["chain_id"], dep["contracts"]["CreditLedger"])
        key = bytes.fromhex(keys["agency-tax"]["private_key"][2:])

        t0 = time.perf_counter()
        now = int(time.time())
        items = []
        for i in range(n):
            rec = CreditRecord(
                kind=RecordKind.RECORD,
                subject_kind=2,
                subject=keccak(b"bench subject %d" % (i % 5000)),
                category=301,
                occurred_at=now - 3600,
                effective_from=now - 3600,
                deadline=now + 86_400,
                amount=1000 + i,
                nonce=i + 1,
            )
            items.append(signed_record_to_json(sign_record(rec, key, domain)))
        sign_s = time.perf_counter() - t0

        accepted_at: dict[str, float] = {}
        indexed_at: dict[str, float] = {}
        lock = threading.Lock()
        chunks = [items[i : i + args.batch] for i in range(0, n, args.batch)]
        cursor = {"next": 0}
        errors = {"http": 0, "rejected": 0}
        start = time.perf_counter()

        def client() -> None:
            with httpx.Client(base_url=url, timeout=60) as c:
                while True:
                    with lock:
                        k = cursor["next"]
                        cursor["next"] += 1
                    if k >= len(chunks):
                        return
                    if args.rate:
                        due = start + k * args.batch / args.rate
                        time.sleep(max(0.0, due - time.perf_counter()))
                    r = c.post("/v1/credit-records", json=chunks[k])
                    t = time.perf_counter()
                    if r.status_code != 202:
                        errors["http"] += 1
                        continue
                    with lock:
                        for it in r.json()["items"]:
                            if it["status"] == "accepted":
                                accepted_at[it["id"]] = t
                            else:
                                errors["rejected"] += 1

        stop = threading.Event()

        def watcher() -> None:
            con = sqlite3.connect(f"file:{data / 'zhixin.db'}?mode=ro", uri=True, timeout=30)
            last = 0
            while not stop.is_set():
                rows = con.execute(
                    "select rowid, id from credit_records where rowid > ? order by rowid", (last,)
                ).fetchall()
                t = time.perf_counter()
                for rowid, rid in rows:
                    indexed_at.setdefault(rid, t)
                    last = max(last, rowid)
                time.sleep(0.02)
            con.close()

        w = threading.Thread(target=watcher, daemon=True)
        w.start()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        accept_done = time.perf_counter()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with lock:
                missing = [i for i in accepted_at if i not in indexed_at]
            if not missing:
                break
            time.sleep(0.1)
        stop.set()
        w.join()
        done = [i for i in accepted_at if i in indexed_at]
        lat = [indexed_at[i] - accepted_at[i] for i in done]
        last_indexed = max(indexed_at[i] for i in done)
        # gas from the receipts of every batch transaction the service sent
        con = sqlite3.connect(f"file:{data / 'zhixin.db'}?mode=ro", uri=True)
        txs = [r[0] for r in con.execute("select distinct tx_hash from outbox")]
        con.close()
        health = httpx.get(url + "/healthz").json()
        chain = RpcChain(health["node"]["rpc_url"])
        gas = sum(int(chain.w3.eth.get_transaction_receipt(t)["gasUsed"]) for t in txs)
        figures = {
            "records": n,
            "accepted": len(accepted_at),
            "indexed": len(done),
            "http_errors": errors["http"],
            "rejected": errors["rejected"],
            "accept_rps": round(len(accepted_at) / (accept_done - start)),
            "indexed_rps": round(len(done) / (last_indexed - start)),
            "p50_s": round(statistics.median(lat), 3),
            "p95_s": round(pct(lat, 95), 3),
            "max_s": round(max(lat), 3),
            "gas_per_record": round(gas / max(1, len(done))),
            "batches": len(txs),
            "client_sign_s": round(sign_s, 1),
        }
        print(f"records {n} in {len(chunks)} requests of {args.batch} from {args.clients} clients")
        print(f"accepted {figures['accepted']}/s={figures['accept_rps']} "
              f"indexed/s={figures['indexed_rps']} p50={figures['p50_s']}s "
              f"p95={figures['p95_s']}s gas/record={figures['gas_per_record']}")  # fmt: skip
        print(" ".join(f"{k}={v}" for k, v in figures.items()))
        return 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    raise SystemExit(main())
