"""The durable outbox of accepted credit records and the submitter that drains it to the chain.

States: ``pending`` → ``submitted`` (in a transaction we sent) → ``onchain`` (receipt seen) →
``final`` (indexed, ``final_depth`` blocks deep and ``settle_s`` old); or ``rejected`` (the
chain refused it for a reason that resubmission cannot fix).

Invariants:
- A record is acknowledged (HTTP 202) only after its outbox row is committed; the row is never
  deleted, so an accepted write is never lost.
- (agency, nonce) is unique in the outbox and the record id (its EIP-712 digest) is the key, so an
  accepted write is never duplicated: resubmitting after a crash yields NONCE_USED for items the
  chain already has, and those are matched to their logs by id instead of being re-sent.
- After a crash of the service or the node, every non-final row is re-checked against the chain:
  a ``submitted`` row without a receipt and an ``onchain`` row whose record the chain no longer
  has (a local node loses its last seconds on SIGKILL) go back to ``pending``.
- Group commit: concurrent :meth:`Outbox.accept` calls share one transaction and one durable
  commit (:class:`GroupCommit`); each call returns only after the commit that holds its rows,
  and each call's rows are stored under its own savepoint, so one call's failure never undoes
  another's.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, and_, func, select, update

from .chain import Sender, TxResult, encode_call
from .credit import GAS_BASE, GAS_PER_RECORD, CreditLedgerClient
from .db import credit_records, outbox
from .errors import ChainError, ZhixinError
from .records import RECORDED_TOPIC, RejectReason, SignedRecord, signed_record_to_json

__all__ = ["GroupCommit", "Outbox", "OutboxItem", "Submitter", "status_of"]

log = logging.getLogger("zhixin.outbox")


def _now_ms() -> int:
    return int(time.time() * 1000)


# Gas bound of one batch: measured ~11.3k marginal per record, plus a fresh nonce word
# (SSTORE 0 -> non-zero, ~22k) per distinct (agency, nonce >> 8) and a cold Roles lookup per
# distinct (agency, category). A batch that ran out of gas is resent with the worst case.
_GAS_RECORD = 16_000
_GAS_NONCE_WORD = 25_000
_GAS_SCOPE = 10_000


def batch_gas(items: Sequence[tuple[str, SignedRecord, int, str]]) -> int:
    if any(attempts >= 1 for _, _, attempts, _ in items):
        return GAS_BASE + GAS_PER_RECORD * len(items)
    words = {(ag, s.record.nonce >> 8) for _, s, _, ag in items}
    scopes = {(ag, s.record.category) for _, s, _, ag in items}
    return (
        GAS_BASE
        + _GAS_RECORD * len(items)
        + _GAS_NONCE_WORD * len(words)
        + _GAS_SCOPE * len(scopes)
    )


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


@dataclass(frozen=True)
class OutboxItem:
    id: str
    agency: str
    nonce: int
    status: str
    attempts: int
    tx_hash: str | None
    block_number: int | None
    reject_reason: str | None
    accepted_at: int


class _Call:
    """One :meth:`GroupCommit.run` caller's work and its outcome."""

    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[Connection], Any]) -> None:
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False


class GroupCommit:
    """Runs concurrent callers' writes in shared transactions: one durable commit for all.

    The first caller to arrive while no commit is in progress leads: it takes every call queued
    so far, runs each under its own savepoint in one transaction and commits once; callers that
    arrive meanwhile wait and form the next group. :meth:`run` returns (or raises) only after
    the commit that holds the caller's rows, so durability is each caller's own. On SQLite the
    transaction is ``BEGIN IMMEDIATE`` (the write lock is taken once, up front).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cond = threading.Condition()
        self._queue: list[_Call] = []
        self._leading = False
        self.groups = 0  # commits made (statistics, tests)
        self.calls = 0

    def run(self, work: Callable[[Connection], Any]) -> Any:
        call = _Call(work)
        with self._cond:
            self._queue.append(call)
            while not call.done and self._leading:
                self._cond.wait()
            group: list[_Call] = []
            if not call.done:
                self._leading = True
                group, self._queue = self._queue, []
        if group:
            try:
                self._commit(group)
            except BaseException as exc:
                for c in group:
                    if c.error is None:
                        c.error = exc
            finally:
                with self._cond:
                    for c in group:
                        c.done = True
                    self._leading = False
                    self.groups += 1
                    self.calls += len(group)
                    self._cond.notify_all()
        if call.error is not None:
            raise call.error
        return call.result

    def _commit(self, group: list[_Call]) -> None:
        with self.engine.connect() as conn:
            try:
                if conn.dialect.name == "sqlite":
                    # pysqlite opens transactions lazily and would commit at the first RELEASE:
                    # an explicit BEGIN keeps every savepoint below inside one transaction
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    conn.begin()
                for c in group:
                    try:
                        with conn.begin_nested():
                            c.result = c.work(conn)
                    except Exception as exc:  # this caller's rows are rolled back, only
                        c.error = exc
                conn.commit()
            except BaseException:
                # a failed BEGIN or COMMIT can leave the driver's transaction open (SQLite keeps
                # it after a failed COMMIT): never give such a connection back to the pool
                conn.invalidate()
                raise


class Outbox:
    # accepted records kept in memory for the submitter (it would otherwise parse each payload
    # back from JSON); a cache only: a miss, e.g. after a restart, reads the payload
    SIGNED_CACHE = 50_000

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.group = GroupCommit(engine)
        self._signed: dict[str, SignedRecord] = {}
        self._signed_lock = threading.Lock()

    def accept(
        self,
        items: Sequence[tuple[bytes, str, SignedRecord, str | None]],
        *,
        grids: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Durably store (id, agency, signed, reason_text) items; one transaction for all, shared
        with concurrent callers (:class:`GroupCommit`).

        ``grids``: record id (0x hex) → the off-chain community grid its agency gave, stored in
        the row beside the record (never part of it). A duplicate keeps the grid it had.

        Returns id → "accepted" | "duplicate" (the same record was accepted before). Items whose
        (agency, nonce) is taken by a *different* record must have been filtered by the caller;
        a race is caught by the unique constraint and reported as "nonce-taken".
        """
        now = _now_ms()
        rows: list[dict[str, Any]] = []
        for rid, agency, signed, reason in items:
            key = _hex(rid)
            rows.append(
                {
                    "id": key,
                    "agency": agency,
                    "nonce": str(signed.record.nonce),
                    "payload": json.dumps(signed_record_to_json(signed), sort_keys=True),
                    "reason_text": reason,
                    "grid": grids.get(key) if grids else None,
                    "status": "pending",
                    "attempts": 0,
                    "accepted_at": now,
                    "updated_at": now,
                }
            )
        out = cast(dict[str, str], self.group.run(lambda conn: self._store(conn, rows)))
        with self._signed_lock:  # committed rows holding exactly these records
            for rid, _agency, signed, _reason in items:
                key = _hex(rid)
                if out.get(key) == "accepted" and len(self._signed) < self.SIGNED_CACHE:
                    self._signed[key] = signed
        return out

    @staticmethod
    def _store(conn: Connection, candidates: list[dict[str, Any]]) -> dict[str, str]:
        from sqlalchemy.exc import IntegrityError

        out: dict[str, str] = {}
        ids = [r["id"] for r in candidates]
        existing: set[str] = set()
        for i in range(0, len(ids), 500):
            q = select(outbox.c.id).where(outbox.c.id.in_(ids[i : i + 500]))
            existing.update(r[0] for r in conn.execute(q))
        rows = []
        for row in candidates:
            key = row["id"]
            if key in existing or key in out:
                out[key] = "duplicate"
                continue
            out[key] = "accepted"
            rows.append(row)
        if rows:
            try:
                with conn.begin_nested():
                    conn.execute(outbox.insert(), rows)
            except IntegrityError:
                # someone took one of these nonces concurrently: insert one by one
                for row in rows:
                    try:
                        with conn.begin_nested():
                            conn.execute(outbox.insert(), [row])
                    except IntegrityError:
                        out[row["id"]] = "nonce-taken"
        return out

    def nonces_taken(self, agency: str, nonces: Sequence[int]) -> dict[int, str]:
        """nonce → record id, for this agency's nonces already in the outbox."""
        keys = [str(n) for n in nonces]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox.c.nonce, outbox.c.id).where(
                    and_(outbox.c.agency == agency, outbox.c.nonce.in_(keys))
                )
            ).all()
        return {int(n): str(i) for n, i in rows}

    def max_nonce(self, agency: str) -> int | None:
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox.c.nonce).where(outbox.c.agency == agency)).all()
        return max((int(r[0]) for r in rows), default=None)

    def get(self, record_id: str) -> OutboxItem | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(outbox).where(outbox.c.id == record_id.lower())).first()
        if r is None:
            return None
        m = r._mapping
        return OutboxItem(
            id=m["id"],
            agency=m["agency"],
            nonce=int(m["nonce"]),
            status=m["status"],
            attempts=m["attempts"],
            tx_hash=m["tx_hash"],
            block_number=m["block_number"],
            reject_reason=m["reject_reason"],
            accepted_at=m["accepted_at"],
        )

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
            return {str(s): int(n) for s, n in rows}

    def _take(self, limit: int) -> list[tuple[str, SignedRecord, int, str]]:
        """Pending rows, oldest first: (id, signed record, attempts so far, agency). The signed
        record comes from the cache filled at acceptance, else from the stored payload."""
        from .records import signed_record_from_json

        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox.c.id, outbox.c.attempts, outbox.c.agency)
                .where(outbox.c.status == "pending")
                .order_by(outbox.c.accepted_at, outbox.c.id)
                .limit(limit)
            ).all()
            with self._signed_lock:
                signed = {str(i): self._signed.pop(str(i), None) for i, _, _ in rows}
            missing = [i for i, s in signed.items() if s is None]
            for k in range(0, len(missing), 500):
                q = select(outbox.c.id, outbox.c.payload).where(
                    outbox.c.id.in_(missing[k : k + 500])
                )
                for i, p in conn.execute(q):
                    signed[str(i)] = signed_record_from_json(json.loads(p))
        return [(str(i), cast(SignedRecord, signed[str(i)]), int(a), str(ag)) for i, a, ag in rows]

    def _set(self, ids: Sequence[str], **values: Any) -> None:
        self._set_many([(ids, values)])

    def _set_many(self, changes: Sequence[tuple[Sequence[str], Mapping[str, Any]]]) -> None:
        """Several (ids, column values) updates in one transaction (one commit)."""
        changes = [(list(ids), vals) for ids, vals in changes if ids]
        if not changes:
            return
        now = _now_ms()
        with self.engine.begin() as conn:
            for ids, vals in changes:
                for i in range(0, len(ids), 500):
                    conn.execute(
                        update(outbox)
                        .where(outbox.c.id.in_(ids[i : i + 500]))
                        .values(**{"updated_at": now, **vals})
                    )


class Submitter:
    """Drains the outbox in batches; reconciles with the chain.

    Two threads: the sender (:meth:`step`: pending rows → ``recordBatch`` transactions) and the
    confirmer (:meth:`poll`: receipts → ``onchain``; :meth:`reconcile`: ``final``, lost rows back
    to ``pending``). Reading a mined batch's receipts and writing their outcomes takes a while
    under load; the sender keeps sending meanwhile, so records accepted during that time still
    make the next block.
    """

    def __init__(
        self,
        box: Outbox,
        ledger: CreditLedgerClient,
        sender: Sender,
        *,
        batch_size: int = 200,
        final_depth: int = 5,
        settle_s: float = 3.0,
        idle_s: float = 0.05,
        max_inflight: int = 16,
        receipt_timeout: float = 15.0,
    ) -> None:
        self.box = box
        self.ledger = ledger
        self.sender = sender
        self.batch_size = batch_size
        self.final_depth = final_depth
        self.settle_s = settle_s
        self.idle_s = idle_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._confirmer: threading.Thread | None = None
        self._last_reconcile = 0.0
        self._inflight: dict[str, tuple[list[str], float]] = {}
        self._inflight_lock = threading.Lock()
        self.max_inflight = max_inflight
        self.receipt_timeout = receipt_timeout
        self.gas_used = 0
        self.records_sent = 0
        self._selector = encode_call(ledger.contract, "recordBatch", [[]])[:4]
        self._encoding_checked = False
        self._fast_ok = False
        self._polled_head = -1  # head at the last receipt poll (no receipt can be older)

    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._run, name="zhixin-submitter", daemon=True)
        self._confirmer = threading.Thread(
            target=self._run_confirm, name="zhixin-confirmer", daemon=True
        )
        self._thread.start()
        self._confirmer.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, drain_s: float = 10.0) -> None:
        """Stop after draining what is pending (up to ``drain_s``), for graceful shutdown."""
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and (
            self.box.counts().get("pending", 0) or self._inflight
        ):
            self.wake()
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        for t in (self._thread, self._confirmer):
            if t is not None:
                t.join(timeout=30)

    def _run(self) -> None:
        """The sender: pending rows out as soon as a slot is free."""
        while not self._stop.is_set():
            try:
                sent = self.step()
            except ZhixinError as exc:
                log.warning("submitter: %s", exc.detail)
                sent = 0
                self._stop.wait(0.5)
            except Exception:
                log.exception("submitter failed; retrying")
                sent = 0
                self._stop.wait(0.5)
            if not sent:
                self._wake.wait(self.idle_s)
                self._wake.clear()

    def _run_confirm(self) -> None:
        """The confirmer: receipts of the batches in flight, finality, lost records."""
        while not self._stop.is_set():
            try:
                done = self.poll()
                if time.monotonic() - self._last_reconcile > 1.0:
                    self.reconcile()
                    self._last_reconcile = time.monotonic()
            except ZhixinError as exc:
                log.warning("submitter: %s", exc.detail)
                done = 0
                self._stop.wait(0.5)
            except Exception:
                log.exception("submitter (receipts) failed; retrying")
                done = 0
                self._stop.wait(0.5)
            if done:
                self._wake.set()  # slots are free: the sender may have rows waiting
            else:
                self._stop.wait(self.idle_s)

    # ---- pipelined batches ----

    def step(self) -> int:
        """Send batches of pending records without waiting for receipts (up to ``max_inflight``
        transactions in flight); returns how many records were sent.

        The pending rows for every free slot are read at once and the sent batches are marked
        ``submitted`` in one transaction after the sends (a crash before it leaves the rows
        pending, and the resend is answered NONCE_USED and matched to the chain's logs by id).
        Only then are they in flight for :meth:`poll`, so an outcome is never overwritten by
        ``submitted``.
        """
        with self._inflight_lock:
            free = self.max_inflight - len(self._inflight)
        if free <= 0:
            return 0
        items = self.box._take(self.batch_size * free)
        sent: list[tuple[list[str], str, float]] = []  # ids, tx hash, sent at
        try:
            for k in range(0, len(items), self.batch_size):
                batch = items[k : k + self.batch_size]
                ids = [i for i, *_ in batch]
                data = self._encode([s for _, s, *_ in batch])
                try:
                    tx_hash = self.sender.send(
                        self.ledger.address,
                        data,
                        gas=batch_gas(batch),
                        what=f"recordBatch({len(batch)})",
                        simulate=False,
                        wait=False,
                    )
                except ChainError as exc:
                    # unknown whether it landed: stays pending; resubmission is idempotent
                    self.box._set(ids, last_error=exc.detail[:500])
                    raise
                assert isinstance(tx_hash, str)
                sent.append((ids, tx_hash, time.monotonic()))
        finally:
            if sent:
                with self.box.engine.begin() as conn:
                    for ids, tx_hash, _ in sent:
                        conn.execute(
                            update(outbox)
                            .where(outbox.c.id.in_(ids))
                            .values(
                                status="submitted",
                                tx_hash=tx_hash,
                                attempts=outbox.c.attempts + 1,
                                updated_at=_now_ms(),
                            )
                        )
                with self._inflight_lock:
                    for ids, tx_hash, at in sent:
                        self._inflight[tx_hash] = (ids, at)
        return sum(len(ids) for ids, _, _ in sent)

    def _encode(self, signed: Sequence[SignedRecord]) -> bytes:
        """recordBatch calldata. Every SignedRecord field is static, so the ABI encoding is the
        selector, the array offset and length, then each item's words back to back; ~100x faster
        than web3's generic encoder. Checked once against web3's encoding (fallback if not)."""
        fast = (
            self._selector
            + _word(32)
            + _word(len(signed))
            + b"".join(s.packed_words() for s in signed)
        )
        if not self._encoding_checked:
            slow = encode_call(
                self.ledger.contract, "recordBatch", [[x.as_tuple() for x in signed]]
            )
            self._fast_ok = slow == fast
            self._encoding_checked = True
            if not self._fast_ok:
                log.warning("fast recordBatch encoding differs from web3's; using web3's")
            return slow
        if self._fast_ok:
            return fast
        return encode_call(self.ledger.contract, "recordBatch", [[x.as_tuple() for x in signed]])

    def poll(self) -> int:
        """Collect receipts of in-flight batches; a batch with no receipt in time is resent.

        Receipts are asked for only when the head moved since the last poll: a transaction
        without a receipt at head ``h`` can only be mined in a later block.
        """
        with self._inflight_lock:
            inflight = list(self._inflight.items())
        if not inflight:
            return 0
        now = time.monotonic()
        head = self.ledger.chain.head()
        if head == self._polled_head and not any(
            now - sent_at > self.receipt_timeout for _, (_, sent_at) in inflight
        ):
            return 0
        self._polled_head = head
        done = 0
        changes: list[tuple[Sequence[str], dict[str, Any]]] = []  # written in one transaction
        try:
            for tx_hash, (ids, sent_at) in inflight:
                receipt = self._receipt(tx_hash)
                if receipt is None:
                    if time.monotonic() - sent_at > self.receipt_timeout:
                        log.warning("batch %s has no receipt; resubmitting", tx_hash)
                        self._done(tx_hash)
                        self.sender.reset_nonce()
                        changes.append((ids, {"status": "pending", "last_error": "no receipt"}))
                    continue
                if receipt["status"] != 1:
                    self._done(tx_hash)
                    error = f"batch {tx_hash} reverted"
                    changes.append((ids, {"status": "pending", "last_error": error}))
                    continue
                res = TxResult(
                    tx_hash=tx_hash,
                    block_number=int(receipt["blockNumber"]),
                    gas_used=int(receipt["gasUsed"]),
                    receipt=receipt,
                )
                outcomes = self.ledger._outcomes(res, len(ids))
                # a failure here leaves the batch in flight: polled again at the next block
                changes += self._apply_outcomes(ids, tx_hash, res.block_number, outcomes)
                self._done(tx_hash)
                self.gas_used += res.gas_used
                self.records_sent += len(ids)
                done += len(ids)
        finally:
            self.box._set_many(changes)
        return done

    def _done(self, tx_hash: str) -> None:
        with self._inflight_lock:
            self._inflight.pop(tx_hash, None)

    def _receipt(self, tx_hash: str) -> Any:
        """The receipt (None: not mined yet). Over JSON-RPC, read raw: web3's formatters cost
        ~0.5 ms per log, and a batch's receipt has one log per record. Only the fields
        :meth:`CreditLedgerClient._outcomes` reads are kept (logs of any address)."""
        chain = self.ledger.chain
        if chain.kind == "embedded":  # eth-tester's provider only takes web3's formatting
            try:
                return chain.w3.eth.get_transaction_receipt(cast(Any, tx_hash))
            except (ConnectionError, OSError) as exc:
                raise ChainError(f"chain node unreachable: {exc}") from exc
            except Exception:  # TransactionNotFound: not mined yet
                return None
        resp = chain._rpc(
            lambda: chain.w3.provider.make_request(
                cast(Any, "eth_getTransactionReceipt"), [tx_hash]
            )
        )
        if "error" in resp:
            raise ChainError(f"eth_getTransactionReceipt failed: {resp['error']}")
        r = resp.get("result")
        if r is None:
            return None
        return {
            "transactionHash": tx_hash,
            "status": int(r["status"], 16),
            "blockNumber": int(r["blockNumber"], 16),
            "gasUsed": int(r["gasUsed"], 16),
            "logs": [
                {
                    "address": lg["address"],
                    "topics": [bytes.fromhex(t[2:]) for t in lg["topics"]],
                    "data": bytes.fromhex(lg["data"][2:]),
                }
                for lg in r["logs"]
            ],
        }

    def _apply_outcomes(
        self, ids: Sequence[str], tx_hash: str, block: int, outcomes: Sequence[Any]
    ) -> list[tuple[Sequence[str], dict[str, Any]]]:
        """The outbox updates (ids, values) that a mined batch's outcomes call for."""
        onchain: list[str] = []
        changes: list[tuple[Sequence[str], dict[str, Any]]] = []
        for rid, oc in zip(ids, outcomes, strict=True):
            if _hex(oc.id) != rid:
                raise ChainError(f"outcome id mismatch for {rid}")
            if oc.accepted:
                onchain.append(rid)
            elif oc.reason == RejectReason.NONCE_USED:
                found = self._find_on_chain(rid)
                if found is not None:
                    at = {"status": "onchain", "tx_hash": found[1], "block_number": found[0]}
                    changes.append(([rid], at))
                else:
                    changes.append(([rid], {"status": "rejected", "reject_reason": "nonce-used"}))
            else:
                name = oc.reason.name if isinstance(oc.reason, RejectReason) else str(oc.reason)
                changes.append(([rid], {"status": "rejected", "reject_reason": name.lower()}))
        changes.append((onchain, {"status": "onchain", "tx_hash": tx_hash, "block_number": block}))
        return changes

    def _find_on_chain(self, record_id: str) -> tuple[int, str] | None:
        """(block, tx) of the CreditRecorded log for ``record_id``, straight from the chain."""
        chain = self.ledger.chain
        flt = {
            "address": self.ledger.address,
            "fromBlock": 0,
            "toBlock": "latest",
            "topics": [_hex(RECORDED_TOPIC), record_id],
        }
        logs = chain._rpc(lambda: chain.w3.eth.get_logs(cast(Any, flt)))
        if not logs:
            return None
        lg = logs[-1]
        return int(lg["blockNumber"]), _hex(bytes(lg["transactionHash"]))

    # ---- crash recovery and finality ----

    def recover(self) -> None:
        """At start: whatever was in flight when we stopped is re-checked against the chain."""
        with self.box.engine.connect() as conn:
            rows = conn.execute(select(outbox.c.id).where(outbox.c.status == "submitted")).all()
        for (rid,) in rows:
            found = self._find_on_chain(rid)
            if found is not None:
                self.box._set([rid], status="onchain", block_number=found[0], tx_hash=found[1])
            else:
                self.box._set([rid], status="pending")
        self.reconcile(force=True)

    def reconcile(self, *, force: bool = False) -> None:
        """Promote settled ``onchain`` rows to ``final``; send lost ones back to ``pending``."""
        chain = self.ledger.chain
        head = chain.head()
        cutoff = _now_ms() - int(self.settle_s * 1000)
        # a row younger than the settle time is neither final nor (unless forced) re-checked
        settled = outbox.c.updated_at <= cutoff if not force else outbox.c.updated_at.is_not(None)
        with self.box.engine.connect() as conn:
            rows = conn.execute(
                select(
                    outbox.c.id,
                    outbox.c.updated_at,
                    credit_records.c.block_number,
                    credit_records.c.tx_hash,
                )
                .select_from(outbox.outerjoin(credit_records, credit_records.c.id == outbox.c.id))
                .where(outbox.c.status == "onchain", settled)
                .limit(5000)
            ).all()
        final: dict[tuple[int, str], list[str]] = {}  # (block, tx) -> ids: one UPDATE each
        for rid, updated, block, tx in rows:
            if block is not None:
                if block <= head - self.final_depth and updated <= cutoff:
                    final.setdefault((int(block), str(tx)), []).append(rid)
                continue
            if not force and updated > cutoff:
                continue  # the index may simply not have caught up yet
            if self._find_on_chain(rid) is None:
                log.warning("record %s is no longer on chain; resubmitting", rid)
                self.box._set([rid], status="pending")
        if not final:
            return
        with self.box.engine.begin() as conn:
            for (block, tx), ids in final.items():
                for i in range(0, len(ids), 500):
                    conn.execute(
                        update(outbox)
                        .where(outbox.c.id.in_(ids[i : i + 500]))
                        .values(
                            status="final", block_number=block, tx_hash=tx, updated_at=_now_ms()
                        )
                    )


def status_of(box: Outbox, engine: Engine, record_id: str) -> dict[str, Any] | None:
    """pending → submitted → onchain (block, tx) → indexed, for GET /v1/credit-records/{id}."""
    rid = record_id.lower()
    item = box.get(rid)
    with engine.connect() as conn:
        idx = conn.execute(
            select(
                credit_records.c.block_number,
                credit_records.c.tx_hash,
                credit_records.c.seq,
            ).where(credit_records.c.id == rid)
        ).first()
    if item is None and idx is None:
        return None
    out: dict[str, Any] = {"id": rid}
    if item is not None:
        out.update(
            status=item.status,
            attempts=item.attempts,
            accepted_at=item.accepted_at,
            reject_reason=item.reject_reason,
        )
    if idx is not None:
        out.update(
            indexed=True,
            block_number=int(idx[0]),
            tx_hash=str(idx[1]),
            seq=int(idx[2]),
        )
        if item is None:
            out["status"] = "final"
        elif item.status in ("pending", "submitted"):
            out["status"] = "onchain"  # indexed before the submitter polled its receipt
    else:
        out.update(
            indexed=False,
            block_number=item.block_number if item else None,
            tx_hash=item.tx_hash if item else None,
        )
    return out
