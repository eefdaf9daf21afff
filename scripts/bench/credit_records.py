"""Benchmark: agency-signed credit records through the HTTP API to the index, on the local node.

Starts a real `zhixin serve` (anvil child, --dev) in a temporary data dir, pre-signs N records as
the demo tax agency (client-side signing is not what we measure), POSTs them in batches from
several client threads, and watches the service's SQLite index for each record id.

Reports: accepted records/s (HTTP 202), accepted→indexed records/s sustained, p50/p95 latency
from the 202 to the row appearing in the index, and gas per record from the batch receipts.

    python scripts/bench/credit_records.py [--quick] [--records N] [--batch N] [--clients N]
        [--rate R] [--database-url URL] [--py-spy OUT.svg]

With ``--database-url`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/zhixin_bench``, an
empty database the script does not create) the service and the watcher use that database instead
of the data dir's SQLite file. CPU figures: ``client_cpu_s`` is this process's CPU time while
records were being posted and indexed (signing excluded), ``server_cpu_s`` the service's and its
children's (node, worker processes), both over the same window.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

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
# above any nonce a demo seed of the tax agency could have used: the bench's records never
# collide with records already in the data dir (same gas: one bitmap word per 256 nonces)
NONCE_BASE = 1 << 32
WARMUP = 200  # records of the untimed warm-up request (nonces just below NONCE_BASE)


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
    ap.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: SQLite)")
    ap.add_argument("--py-spy", default=None, help="record a py-spy flame graph of the service")
    ap.add_argument("--timeline", action="store_true", help="print outbox states every second")
    ap.add_argument("--no-warmup", action="store_true", help="time the cold service too")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    ap.add_argument(
        "--server-root",
        default=None,
        help="run the service from this source tree (e.g. an export of an older commit)",
    )
    ap.add_argument(
        "--demo-seed",
        action="store_true",
        help="let the service seed its demo scenario (a published rule set: incremental "
        "rules evaluation runs on every indexed record)",
    )
    args = ap.parse_args()
    n = args.records or (3_000 if args.quick else 30_000)

    tmp = Path(tempfile.mkdtemp(prefix="zhixin-bench-cr-"))
    data = tmp / "data"
    port, node_port = free_port(), free_port()
    env = {
        **os.environ,
        "ZHIXIN_DISTRICT_SECRET": SECRET,
        "ZHIXIN_LOG_LEVEL": "warning",  # no access log: stderr is a pipe read only at exit
        "ZHIXIN_KEYSTORE_PASSWORD": "bench",
        "ZHIXIN_BATCH_SIZE": "500",
        "ZHIXIN_DEMO_SEED": "1" if args.demo_seed else "0",  # default: the bench's records only
        "HOME": str(tmp),
    }
    if args.database_url:
        env["ZHIXIN_DATABASE_URL"] = args.database_url
    if args.server_root:
        env["PYTHONPATH"] = str(Path(args.server_root).resolve())
    zhixin = str(Path(sys.executable).parent / "zhixin")
    proc = subprocess.Popen(
        [zhixin, "serve", "--data-dir", str(data), "--port", str(port),
         "--node-port", str(node_port), "--dev"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # --demo-seed: the seed runs before HTTP is up
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
        warm = 0 if args.no_warmup else WARMUP
        for i in range(-warm, n):
            rec = CreditRecord(
                kind=RecordKind.RECORD,
                subject_kind=2,
                subject=keccak(b"bench subject %d" % (i % 5000)),
                category=301,
                occurred_at=now - 3600,
                effective_from=now - 3600,
                deadline=now + 86_400,
                amount=1000 + i,
                nonce=NONCE_BASE + i,
            )
            items.append(signed_record_to_json(sign_record(rec, key, domain)))
        sign_s = time.perf_counter() - t0
        warmup_s = None
        if warm:
            # a cold service spawns its verification processes at the first large request and
            # warms its caches: one request of WARMUP records, indexed before the clock starts
            t1 = time.perf_counter()
            r = httpx.post(url + "/v1/credit-records", json=items[:warm], timeout=120)
            assert r.status_code == 202, r.text
            ids = {it["id"] for it in r.json()["items"]}
            query = _reader(args.database_url, data)
            while len(ids) > 0 and time.perf_counter() - t1 < 120:
                got = query("select id from credit_records order by seq desc limit ?", (warm,))
                ids -= {g[0] for g in got}
                time.sleep(0.05)
            warmup_s = round(time.perf_counter() - t1, 2)
            items = items[warm:]

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

        timeline: list[str] = []
        node = RpcChain(json.loads((data / "node.json").read_text())["rpc_url"])

        def watcher() -> None:
            query = _reader(args.database_url, data)
            last = -1
            next_tick = time.perf_counter()
            while not stop.is_set():
                rows = query(
                    "select seq, id from credit_records where seq > ? order by seq", (last,)
                )
                t = time.perf_counter()
                for seq, rid in rows:
                    indexed_at.setdefault(rid, t)
                    last = max(last, seq)
                if args.timeline and t >= next_tick:
                    counts = dict(query("select status, count(*) from outbox group by status"))
                    cursor = query("select block_number from index_cursor")
                    timeline.append(
                        f"t={t - start:6.1f}s head={node.head()} "
                        f"cursor={cursor[0][0] if cursor else '-'} "
                        f"accepted={len(accepted_at):6d} "
                        + " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
                        + f" indexed={len(indexed_at)}"
                    )
                    next_tick = t + 1.0
                time.sleep(0.02)

        w = threading.Thread(target=watcher, daemon=True)
        w.start()
        spy = None
        if args.py_spy:
            spy_bin = str(Path(sys.executable).parent / "py-spy")
            fmt = "flamegraph" if args.py_spy.endswith(".svg") else "raw"  # raw: collapsed
            spy = subprocess.Popen(
                [spy_bin, "record", "-p", str(proc.pid), "--subprocesses", "--threads",
                 "-r", "50", "-f", fmt, "-o", args.py_spy, "--nonblocking",
                 *(["--idle"] if os.environ.get("BENCH_SPY_IDLE") else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        cpu0 = time.process_time(), _tree_cpu(proc.pid)
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
        cpu1 = time.process_time(), _tree_cpu(proc.pid)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        stop.set()
        w.join()
        done = [i for i in accepted_at if i in indexed_at]
        lat = [indexed_at[i] - accepted_at[i] for i in done]
        last_indexed = max(indexed_at[i] for i in done)
        # gas from the receipts of every batch transaction the service sent
        txs = [
            r[0] for r in _reader(args.database_url, data)("select distinct tx_hash from outbox")
        ]
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
            "warmup_s": warmup_s,
            "client_cpu_s": round(cpu1[0] - cpu0[0], 1),
            "server_cpu_s": round(
                sum(v for k, v in cpu1[1].items() if k != "db")
                - sum(v for k, v in cpu0[1].items() if k != "db"),
                1,
            ),
            **{f"cpu_{k}_s": round(cpu1[1][k] - cpu0[1][k], 1) + 0.0 for k in cpu0[1]},
            "wall_s": round(time.perf_counter() - start, 1),
            "db": "postgresql" if args.database_url else "sqlite",
            "demo_seed": int(args.demo_seed),
        }
        print(f"records {n} in {len(chunks)} requests of {args.batch} from {args.clients} clients")
        print(f"accepted {figures['accepted']}/s={figures['accept_rps']} "
              f"indexed/s={figures['indexed_rps']} p50={figures['p50_s']}s "
              f"p95={figures['p95_s']}s gas/record={figures['gas_per_record']}")  # fmt: skip
        for line in timeline:
            print(line, file=sys.stderr)
        print(" ".join(f"{k}={v}" for k, v in figures.items()))
        return 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if args.keep:
            print(f"data dir kept: {data}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _reader(database_url: str | None, data: Path) -> Any:
    """query(sql, params) -> rows, read-only, against the service's database."""
    if not database_url:
        con = sqlite3.connect(f"file:{data / 'zhixin.db'}?mode=ro", uri=True, timeout=30)
        return lambda sql, params=(): con.execute(sql, params).fetchall()
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)

    def query(sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        names = {f"p{i}": v for i, v in enumerate(params)}
        for i in range(len(params)):
            sql = sql.replace("?", f":p{i}", 1)
        with engine.connect() as conn:
            return list(conn.execute(text(sql), names).all())

    return query


def _tree_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of a process ("main") and its live descendants, by kind
    ("node": anvil, "workers": everything else), and of any PostgreSQL server ("db"), from
    /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[str, float]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(d))
        stats[int(d)] = (comm, (int(fields[11]) + int(fields[12])) / tick)
    out = {"main": 0.0, "node": 0.0, "workers": 0.0, "db": 0.0}
    # a PostgreSQL server is not the service's child: every "postgres" process counts (the
    # whole server's CPU, other databases' included)
    out["db"] = sum(cpu for comm, cpu in stats.values() if comm.startswith("postgres"))
    todo = [pid]
    while todo:
        p = todo.pop()
        comm, cpu = stats.get(p, ("", 0.0))
        kind = "main" if p == pid else "node" if comm.startswith("anvil") else "workers"
        out[kind] += cpu
        todo.extend(children.get(p, []))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
