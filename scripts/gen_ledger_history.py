"""Deterministic synthetic ledger history: N signed records as the CreditRecorded logs
``eth_getLogs`` returns (raw JSON-RPC form), plus the Roles logs that authorize their agencies.

Records are signed by 8 agencies (keys derived from the seed), 500 per block; every 25th record
is a WITHDRAW of an earlier record of the same agency and subject. The signed part is cached
under /tmp (``zhixin-history-<n>-<seed>-<layout>.pkl``) because signing 1M records takes
~3 min. Log data follows :func:`ledger.records.decode_recorded_log` (topics: event, id; data:
meta, times, subject, evidenceHash, reasonHash, nonce, r, vs, headAfter[, ref]); ``<layout>``
fingerprints the event signature and :data:`LAYOUT`, and every load decodes the first logs
(a RECORD and a WITHDRAW) and stops if the event layout has changed since.

    python scripts/gen_ledger_history.py --records 1000000
"""

from __future__ import annotations

import argparse
import os
import pickle
import time
from collections.abc import Iterator
from multiprocessing import get_context
from pathlib import Path
from typing import Any

os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")

from eth_abi import encode
from eth_utils import keccak

from ledger.audit import ROLE_GRANTED_TOPIC, SCOPE_GRANTED_TOPIC
from ledger.records import (
    RECORDED_TOPIC,
    CreditRecord,
    Eip712Domain,
    RecordKind,
    record_digest,
    sign_record,
)
from ledger.roles import Role

CHAIN_ID = 31337
ROLES = "0x" + "a1" * 20
LEDGER = "0x" + "b2" * 20
GOVERNOR = bytes.fromhex("c3" * 20)
AGENCIES = 8
PER_BLOCK = 500
CHUNK = 10_000
CATEGORY = 301
T0 = 1_760_000_000
# bump when the CreditRecorded data layout changes without its signature changing
LAYOUT = "id topic; meta|seq, times, subject, ev, reason, nonce, r, vs, headAfter[, ref]"

__all__ = ["CHAIN_ID", "LEDGER", "ROLES", "history_pages", "load_history"]


def _key(seed: int, i: int) -> bytes:
    return keccak(b"zhixin-bench-agency-%d-%d" % (seed, i))


def _chunk(args: tuple[int, int, int]) -> list[tuple[bytes, bytes, bytes]]:
    """Records [start, end): (id, subject, data without headAfter as 2 parts joined later)."""
    start, end, seed = args
    domain = Eip712Domain(CHAIN_ID, LEDGER)
    keys = [_key(seed, i) for i in range(AGENCIES)]
    out: list[tuple[bytes, bytes, bytes]] = []
    for i in range(start, end):
        ag = i % AGENCIES
        back = i - AGENCIES * 3
        lifecycle = i % 25 == 24 and back >= start and (back % 25 != 24)
        subject = keccak(b"subject-%d" % (back if lifecycle else i))
        ref = out[back - start][0] if lifecycle else bytes(32)
        rec = CreditRecord(
            kind=RecordKind.WITHDRAW if lifecycle else RecordKind.RECORD,
            subject_kind=1 + i % 2,
            subject=subject,
            category=CATEGORY,
            occurred_at=T0,
            effective_from=T0,
            deadline=T0 + 10**8,
            nonce=i,
            amount=i % 1000,
            evidence_hash=keccak(b"ev%d" % i),
            ref=ref,
        )
        s = sign_record(rec, keys[ag], domain)
        head_less = b"".join(
            (
                rec.meta.to_bytes(32, "big"),
                rec.times.to_bytes(32, "big"),
                rec.subject,
                rec.evidence_hash,
                rec.reason_hash,
                rec.nonce.to_bytes(32, "big"),
                s.signature,
            )
        )
        out.append((record_digest(rec, domain), subject, head_less + (ref if lifecycle else b"")))
    return out


def load_history(n: int, seed: int = 1, workers: int = 2) -> list[tuple[bytes, bytes, bytes]]:
    """(id, subject, data) per record, with headAfter and seq filled in; cached under /tmp."""
    path = cache_path(n, seed)
    if path.exists():
        with path.open("rb") as f:
            cached: list[tuple[bytes, bytes, bytes]] = pickle.load(f)
        _check_layout(cached)
        return cached
    jobs = [(s, min(s + CHUNK, n), seed) for s in range(0, n, CHUNK)]
    with get_context("fork").Pool(workers) as pool:
        parts = pool.map(_chunk, jobs)
    out: list[tuple[bytes, bytes, bytes]] = []
    head = bytes(32)
    seq = 0
    for part in parts:
        for rid, subject, d in part:
            head = keccak(head + rid)
            meta = int.from_bytes(d[:32], "big") | seq << 160
            data = meta.to_bytes(32, "big") + d[32:256] + head + d[256:]
            out.append((rid, subject, data))
            seq += 1
    _check_layout(out)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        pickle.dump(out, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return out


def cache_path(n: int, seed: int = 1) -> Path:
    return Path(f"/tmp/zhixin-history-{n}-{seed}-{layout_tag()}.pkl")


def layout_tag() -> str:
    """Part of the cache key: a history written for another event layout is never reused."""
    return keccak(RECORDED_TOPIC + LAYOUT.encode()).hex()[:8]


def _check_layout(hist: list[tuple[bytes, bytes, bytes]]) -> None:
    """Decode the first 25 logs (one is a WITHDRAW, with its ref word) with the project's
    decoder: the digest must be the id, the subject and seq as generated."""
    from ledger.records import decode_recorded_log

    domain = Eip712Domain(CHAIN_ID, LEDGER)
    for seq, (rid, subject, data) in enumerate(hist[:25]):
        try:
            dec = decode_recorded_log({"topics": [RECORDED_TOPIC, rid], "data": data})
        except Exception as exc:
            raise SystemExit(f"CreditRecorded layout changed ({exc}): update LAYOUT") from None
        rec = dec.signed.record
        if record_digest(rec, domain) != rid or rec.subject != subject or dec.seq != seq:
            raise SystemExit("CreditRecorded layout changed: update gen_ledger_history.py")


def _h(b: bytes) -> str:
    return "0x" + b.hex()


def _word(addr: bytes) -> str:
    return _h(bytes(12) + addr)


def role_logs(seed: int = 1) -> list[dict[str, Any]]:
    """The Roles logs (block 1): governor bootstrap, AGENCY + scope for every agency."""
    from coincurve import PrivateKey

    logs: list[dict[str, Any]] = []

    def add(topics: list[str], data: str) -> None:
        logs.append({"address": ROLES, "topics": topics, "data": data, "blockNumber": "0x1",
                     "blockHash": _h(keccak(b"block1")), "transactionHash": _h(keccak(b"tx1")),
                     "logIndex": hex(len(logs)), "removed": False})  # fmt: skip

    add([_h(ROLE_GRANTED_TOPIC), _h(Role.GOVERNOR.id), _word(GOVERNOR), _word(GOVERNOR)], "0x")
    for i in range(AGENCIES):
        pub = PrivateKey(_key(seed, i)).public_key.format(compressed=False)[1:]
        addr = keccak(pub)[-20:]
        add([_h(ROLE_GRANTED_TOPIC), _h(Role.AGENCY.id), _word(addr), _word(GOVERNOR)], "0x")
        add([_h(SCOPE_GRANTED_TOPIC), _word(addr), _word(GOVERNOR)],
            _h(encode(["uint16[]"], [[CATEGORY]])))  # fmt: skip
    return logs


def history_pages(
    history: list[tuple[bytes, bytes, bytes]], page: int = 10_000
) -> Iterator[list[dict[str, Any]]]:
    """Pages of raw JSON-RPC logs, blocks 2.., ``PER_BLOCK`` records per block and tx.

    Every log gets its own dict and hex strings, as a JSON-RPC response would; only the
    per-block values (number, block and tx hash) are hashed once per block, not per log.
    """
    topic0 = _h(RECORDED_TOPIC)
    per_block: dict[int, tuple[str, str, str]] = {}
    for start in range(0, len(history), page):
        logs = []
        for i in range(start, min(start + page, len(history))):
            rid, _subject, data = history[i]
            block = 2 + i // PER_BLOCK
            b = per_block.get(block)
            if b is None:
                per_block.clear()
                b = per_block[block] = (
                    hex(block),
                    _h(keccak(b"block%d" % block)),
                    _h(keccak(b"tx%d" % block)),
                )
            logs.append(
                {
                    "address": LEDGER,
                    "topics": [topic0, _h(rid)],
                    "data": _h(data),
                    "blockNumber": b[0],
                    "blockHash": b[1],
                    "transactionHash": b[2],
                    "logIndex": hex(i % PER_BLOCK),
                    "removed": False,
                }
            )
        yield logs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t = time.perf_counter()
    h = load_history(args.records, args.seed)
    print(f"{len(h)} records ready in {time.perf_counter() - t:.1f} s "
          f"({cache_path(args.records, args.seed)})")  # fmt: skip


if __name__ == "__main__":
    main()
