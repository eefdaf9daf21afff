"""The index follower: chain logs → SQL, one transaction per page of blocks, with its cursor.

Invariants:
- A page's rows and the cursor that covers them commit together; a crash between pages loses
  nothing and duplicates nothing (rows are unique on (block_hash, tx_hash, log_index)).
- The follower keeps block hashes and parent hashes. If the chain no longer matches — the head
  went back, or the hash at the cursor changed (a re-org, or a local node that lost its last
  seconds after a crash) — it deletes every row above the newest block whose hash still matches
  (the common ancestor) and follows the chain again from there.
- Logs are accepted only when their ``blockHash`` equals the hash of the block fetched for that
  number in the same pass, so a page never mixes two forks.
- Only standard ``eth_getLogs`` / ``eth_getBlockByNumber`` are used.
- A record's agency is the signer recovered from its id topic and logged signature. For a record
  this service accepted, the outbox row with that id holds the agency the service recovered from
  the same digest at acceptance; when the row's signature is byte-for-byte the logged one, that
  agency is used as is (recovery depends on nothing else), otherwise — records relayed by
  others, or the same id signed by another key — the signer is recovered. The index trusts its
  own outbox no more than it trusts its own tables; ``zhixin audit --index``
  (:mod:`ledger.index_diff`) recovers every signer from chain data alone.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address
from sqlalchemy import Connection, Engine, delete, insert, select, update

from .chain import Chain
from .db import blocks, credit_records, index_cursor, outbox, role_events
from .deploy import Deployment
from .errors import ChainError
from .records import RECORDED_TOPIC, decode_recorded_log
from .roles import role_from_id

__all__ = [
    "IndexedRecord",
    "Indexer",
    "RecordFanout",
    "SyncResult",
    "insert_ignore",
    "record_row",
]

log = logging.getLogger("zhixin.index")

_ROLE_GRANTED = keccak(text="RoleGranted(bytes32,address,address)")
_ROLE_REVOKED = keccak(text="RoleRevoked(bytes32,address,address)")
_SCOPE_GRANTED = keccak(text="AgencyScopeGranted(address,uint16[],address)")
_SCOPE_REVOKED = keccak(text="AgencyScopeRevoked(address,uint16[],address)")

# tables whose rows belong to a block and are rolled back with it
_BLOCK_TABLES = (credit_records, role_events)


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def _plain_log(lg: dict[str, Any]) -> dict[str, Any]:
    """A JSON-RPC log (hex strings) as bytes and ints, the shape record_row and roles read."""

    def b(v: Any) -> bytes:
        return bytes.fromhex(v[2:]) if isinstance(v, str) else bytes(v)

    def n(v: Any) -> int:
        return int(v, 16) if isinstance(v, str) else int(v)

    return {
        "address": lg["address"],
        "topics": [b(t) for t in lg["topics"]],
        "data": b(lg["data"]),
        "blockNumber": n(lg["blockNumber"]),
        "blockHash": b(lg["blockHash"]),
        "transactionHash": b(lg["transactionHash"]),
        "logIndex": n(lg["logIndex"]),
    }


def insert_ignore(conn: Connection, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT rows, skipping any that collide with a unique constraint (SQLite / PostgreSQL)."""
    if not rows:
        return
    dialect = conn.dialect.name
    cols = list(rows[0])
    if dialect == "sqlite" and all(list(r) == cols for r in rows):
        # the driver's executemany with one statement: SQLAlchemy's per-row parameter
        # processing costs as much as SQLite's own work for a page of records
        names = ", ".join(table.c[c].name for c in cols)
        sql = (
            f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(cols))}) "
            "ON CONFLICT DO NOTHING"
        )
        conn.exec_driver_sql(sql, [tuple(r[c] for c in cols) for r in rows])
        return
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dinsert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dinsert  # type: ignore[assignment]
    else:  # pragma: no cover - only the two supported dialects
        raise ChainError(f"unsupported database dialect {dialect}")
    conn.execute(dinsert(table).on_conflict_do_nothing(), list(rows))


@dataclass(frozen=True)
class IndexedRecord:
    id: str
    seq: int
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class SyncResult:
    from_block: int
    to_block: int
    records: int
    role_events: int
    rolled_back_to: int | None


def record_row(
    raw: Any, block_hash: str, block_ts: int, signer: str | None = None
) -> dict[str, Any]:
    """One credit_records row from a raw CreditRecorded log.

    ``signer``: the agency already recovered from this log's id topic and signature (see
    :func:`~ledger.records.decode_recorded_log`); recovered here when None.
    """
    dec = decode_recorded_log(raw, signer=signer)
    rec = dec.signed.record
    return {
        "id": _hex(raw["topics"][1]),
        "seq": dec.seq,
        "kind": rec.kind,
        "agency": dec.signer,
        "subject_kind": rec.subject_kind,
        "subject": _hex(rec.subject),
        "category": rec.category,
        "occurred_at": rec.occurred_at,
        "effective_from": rec.effective_from,
        "effective_until": rec.effective_until,
        "deadline": rec.deadline,
        "amount": str(rec.amount),
        "evidence_hash": _hex(rec.evidence_hash),
        "reason_hash": _hex(rec.reason_hash),
        "ref": _hex(rec.ref),
        "nonce": str(rec.nonce),
        "signature": dec.signed.signature.hex(),
        "head_after": _hex(dec.head_after),
        "block_number": int(raw["blockNumber"]),
        "block_hash": block_hash,
        "block_timestamp": block_ts,
        "tx_hash": _hex(raw["transactionHash"]),
        "log_index": int(raw["logIndex"]),
    }


def _record_rows(items: list[tuple[Any, str, int, str | None]]) -> list[dict[str, Any]]:
    return [record_row(lg, bh, ts, sg) for lg, bh, ts, sg in items]


_SIG_KEY = '"signature": "0x'


def _payload_signature(payload: str) -> bytes | None:
    """The compact signature in an outbox payload (``signed_record_to_json``, sorted keys)."""
    i = payload.rfind(_SIG_KEY)
    if i >= 0:
        j = i + len(_SIG_KEY)
        if payload[j + 128 : j + 129] == '"':
            try:
                return bytes.fromhex(payload[j : j + 128])
            except ValueError:
                pass
    try:
        sig = json.loads(payload)["signature"]
        return bytes.fromhex(sig[2:]) if len(sig) == 130 else None
    except (ValueError, KeyError, TypeError):
        return None


class RecordFanout:
    """Hands indexed records to a callback on its own thread, off the follower's path.

    :meth:`put` (the indexer's ``on_records``) only queues; the thread calls ``deliver`` with
    everything queued since its last call, in index order (batches that piled up while it was
    busy are joined into one call). A failing call is logged and the records are not offered
    again, as when the follower called listeners itself; listeners that matter read the index
    from their own cursor (the rules service: by seq), so a later call, or their rebuild at
    start after a crash, covers what a lost call carried. :meth:`stop` delivers what is queued
    before it returns.
    """

    def __init__(
        self, deliver: Callable[[list[IndexedRecord]], None], name: str = "zhixin-listeners"
    ) -> None:
        self.deliver = deliver
        self.name = name
        self._queue: list[IndexedRecord] = []
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def put(self, records: list[IndexedRecord]) -> None:
        with self._cond:
            self._queue.extend(records)
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was delivered (False on timeout)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping)
                if not self._queue:
                    return  # stopping, nothing left
                batch, self._queue = self._queue, []
                self._busy = True
            try:
                self.deliver(batch)
            except Exception:  # a listener's failure must not stop delivery
                log.exception("record listener failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


class Indexer:
    """Follows one deployment's contracts into the database."""

    def __init__(
        self,
        chain: Chain,
        engine: Engine,
        deployment: Deployment,
        *,
        page: int = 500,
        name: str = "main",
        on_records: Callable[[list[IndexedRecord]], None] | None = None,
    ) -> None:
        self.chain = chain
        self.engine = engine
        self.deployment = deployment
        self.page = page
        self.name = name
        self.on_records = on_records
        self.pool: Any = None  # a ProcessPoolExecutor shared with the credit service, if any
        self.pool_workers = 1
        # the agencies of records this service accepted come from the outbox (module docstring)
        self.outbox_signers = True
        self.addresses = [deployment.address("Roles"), deployment.address("CreditLedger")]
        self._lock = threading.Lock()

    # ---- cursor ----

    def cursor(self) -> tuple[int, str | None]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(index_cursor.c.block_number, index_cursor.c.block_hash).where(
                    index_cursor.c.name == self.name
                )
            ).first()
        if row is None:
            return self.deployment.deploy_block - 1, None
        return int(row[0]), str(row[1])

    def _set_cursor(self, conn: Connection, number: int, block_hash: str) -> None:
        res = conn.execute(
            update(index_cursor)
            .where(index_cursor.c.name == self.name)
            .values(block_number=number, block_hash=block_hash)
        )
        if res.rowcount == 0:
            conn.execute(
                insert(index_cursor).values(
                    name=self.name, block_number=number, block_hash=block_hash
                )
            )

    # ---- chain reads ----

    def _block(self, number: int) -> dict[str, Any] | None:
        try:
            b = self.chain._rpc(lambda: self.chain.w3.eth.get_block(number))
        except ChainError:
            raise
        except Exception:  # web3 BlockNotFound: above the head
            return None
        return {
            "number": int(b["number"]),
            "hash": _hex(b["hash"]),
            "parent_hash": _hex(b["parentHash"]),
            "timestamp": int(b["timestamp"]),
        }

    def _logs(self, start: int, end: int) -> list[Any]:
        """eth_getLogs as plain bytes and ints: web3's result formatters cost ~0.4 ms a log."""
        if self.chain.kind == "embedded":  # eth-tester's provider only takes web3's formatting
            f2 = {"address": self.addresses, "fromBlock": start, "toBlock": end}
            got = self.chain._rpc(lambda: self.chain.w3.eth.get_logs(cast(Any, f2)))
            return [_plain_log(dict(lg)) for lg in got]
        flt = {"address": self.addresses, "fromBlock": hex(start), "toBlock": hex(end)}
        resp = self.chain._rpc(
            lambda: self.chain.w3.provider.make_request(cast(Any, "eth_getLogs"), [flt])
        )
        if "error" in resp:
            raise ChainError(f"eth_getLogs failed: {resp['error']}")
        return [_plain_log(lg) for lg in resp["result"]]

    # ---- re-org handling ----

    def _common_ancestor(self, below: int) -> tuple[int, str | None]:
        """Newest stored block at or below ``below`` whose hash the chain still has."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(blocks.c.number, blocks.c.hash)
                .where(blocks.c.number <= below)
                .order_by(blocks.c.number.desc())
            ).all()
        for number, h in rows:
            b = self._block(int(number))
            if b is not None and b["hash"] == h:
                return int(number), str(h)
        return self.deployment.deploy_block - 1, None

    def _rollback(self, to_block: int, to_hash: str | None) -> None:
        with self.engine.begin() as conn:
            for t in _BLOCK_TABLES:
                conn.execute(delete(t).where(t.c.block_number > to_block))
            conn.execute(delete(blocks).where(blocks.c.number > to_block))
            if to_hash is None:
                conn.execute(delete(index_cursor).where(index_cursor.c.name == self.name))
            else:
                self._set_cursor(conn, to_block, to_hash)
        log.warning("index rolled back to block %d (chain no longer matched)", to_block)

    # ---- one pass ----

    def sync(self, max_pages: int | None = None) -> SyncResult:
        """Follow the chain up to its head (or ``max_pages`` pages). Thread-safe."""
        with self._lock:
            return self._sync(max_pages)

    def _sync(self, max_pages: int | None) -> SyncResult:
        rolled: int | None = None
        number, bhash = self.cursor()
        head = self.chain.head()
        if bhash is not None:
            at = self._block(number) if number <= head else None
            if at is None or at["hash"] != bhash:
                number, bhash = self._common_ancestor(min(number, head))
                self._rollback(number, bhash)
                rolled = number
        first = number + 1
        total_records = total_roles = 0
        pages = 0
        while number < head and (max_pages is None or pages < max_pages):
            end = min(head, number + self.page)
            new = self._index_range(number, bhash, end)
            if new is None:  # the chain moved under us: re-check on the next pass
                break
            number, bhash, n_rec, n_roles = new
            total_records += n_rec
            total_roles += n_roles
            pages += 1
        return SyncResult(first, number, total_records, total_roles, rolled)

    def _index_range(
        self, prev: int, prev_hash: str | None, end: int
    ) -> tuple[int, str, int, int] | None:
        start = prev + 1
        logs = self._logs(start, end)
        wanted = {start, end} | {int(lg["blockNumber"]) for lg in logs}
        fetched: dict[int, dict[str, Any]] = {}
        for n in sorted(wanted):
            b = self._block(n)
            if b is None:
                return None
            fetched[n] = b
        if prev_hash is not None and fetched[start]["parent_hash"] != prev_hash:
            return None
        rec_in: list[tuple[Any, str, int]] = []
        role_rows: list[dict[str, Any]] = []
        for lg in logs:
            n = int(lg["blockNumber"])
            bh = fetched[n]["hash"]
            if _hex(lg["blockHash"]) != bh:
                return None
            topic0 = bytes(lg["topics"][0])
            if topic0 == RECORDED_TOPIC:
                rec_in.append((lg, bh, fetched[n]["timestamp"]))
            elif topic0 in (_ROLE_GRANTED, _ROLE_REVOKED, _SCOPE_GRANTED, _SCOPE_REVOKED):
                role_rows.append(self._role_row(lg, topic0, bh))
        rec_rows = self._record_rows(rec_in)
        with self.engine.begin() as conn:
            for n, b in fetched.items():
                conn.execute(delete(blocks).where(blocks.c.number == n))
                conn.execute(insert(blocks).values(**b))
            insert_ignore(conn, credit_records, rec_rows)
            insert_ignore(conn, role_events, role_rows)
            self._set_cursor(conn, end, fetched[end]["hash"])
        if rec_rows and self.on_records is not None:
            try:
                self.on_records(
                    [
                        IndexedRecord(r["id"], r["seq"], r["block_number"], r["tx_hash"])
                        for r in rec_rows
                    ]
                )
            except Exception:  # a subscriber's failure must not stop indexing
                log.exception("on_records callback failed")
        return end, fetched[end]["hash"], len(rec_rows), len(role_rows)

    def _record_rows(self, rec_in: list[tuple[Any, str, int]]) -> list[dict[str, Any]]:
        """Rows of CreditRecorded logs. Signers of records accepted here come from the outbox;
        the others are recovered, a large number of them in the worker processes (one ecrecover
        per record is the follower's main cost)."""
        known = self.known_signers([lg for lg, _, _ in rec_in]) if self.outbox_signers else {}
        items = [(lg, bh, ts, known.get(_hex(lg["topics"][1]))) for lg, bh, ts in rec_in]
        todo = [k for k, it in enumerate(items) if it[3] is None]
        pool, workers = self.pool, max(1, self.pool_workers)
        if pool is None or len(todo) < 64:
            return _record_rows(items)
        n = -(-len(todo) // workers)
        futures = [
            pool.submit(_record_rows, [items[k] for k in todo[i : i + n]])
            for i in range(0, len(todo), n)
        ]
        rows: list[dict[str, Any] | None] = [None] * len(items)
        recovered = iter(row for f in futures for row in f.result())
        for k in todo:
            rows[k] = next(recovered)
        for k, it in enumerate(items):
            if it[3] is not None:
                rows[k] = record_row(*it)
        return cast(list[dict[str, Any]], rows)

    def known_signers(self, logs: Sequence[Any]) -> dict[str, str]:
        """Record id → agency, from the outbox rows whose signature is the logged one."""
        want = {_hex(lg["topics"][1]): bytes(lg["data"][192:256]) for lg in logs}
        ids = list(want)
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                q = select(outbox.c.id, outbox.c.agency, outbox.c.payload).where(
                    outbox.c.id.in_(ids[i : i + 500])
                )
                for rid, agency, payload in conn.execute(q):
                    if _payload_signature(payload) == want[rid]:
                        out[rid] = agency
        return out

    def _role_row(self, lg: Any, topic0: bytes, block_hash: str) -> dict[str, Any]:
        ev_name = {
            _ROLE_GRANTED: "RoleGranted",
            _ROLE_REVOKED: "RoleRevoked",
            _SCOPE_GRANTED: "AgencyScopeGranted",
            _SCOPE_REVOKED: "AgencyScopeRevoked",
        }[topic0]
        topics = lg["topics"]
        if ev_name in ("RoleGranted", "RoleRevoked"):  # (role, account, sender) all indexed
            role = role_from_id(topics[1])
            kind, role_name, account, cats = (
                "granted" if ev_name == "RoleGranted" else "revoked",
                role.value if role else _hex(topics[1]),
                topics[2][12:],
                "",
            )
        else:  # (agency indexed, uint16[] categories, sender indexed)
            kind = "scope+" if ev_name == "AgencyScopeGranted" else "scope-"
            role_name, account = "AGENCY", topics[1][12:]
            (categories,) = abi_decode(["uint16[]"], lg["data"])
            cats = ",".join(str(c) for c in categories)
        return {
            "event": kind,
            "role": role_name,
            "account": to_checksum_address(account),
            "categories": cats,
            "sender": to_checksum_address(topics[-1][12:]),
            "block_number": int(lg["blockNumber"]),
            "block_hash": block_hash,
            "tx_hash": _hex(lg["transactionHash"]),
            "log_index": int(lg["logIndex"]),
        }
