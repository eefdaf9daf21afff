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
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Engine, and_, func, select, update

from .chain import Sender, TxResult, encode_call
from .credit import GAS_BASE, GAS_PER_RECORD, CreditLedgerClient
from .db import credit_records, outbox
from .errors import ChainError, ZhixinError
from .records import RECORDED_TOPIC, RejectReason, SignedRecord, signed_record_to_json

__all__ = ["Outbox", "OutboxItem", "Submitter", "status_of"]

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


class Outbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def accept(
        self, items: Sequence[tuple[bytes, str, SignedRecord, str | None]]
    ) -> dict[str, str]:
        """Durably store (id, agency, signed, reason_text) items; one transaction for all.

        Returns id → "accepted" | "duplicate" (the same record was accepted before). Items whose
        (agency, nonce) is taken by a *different* record must have been filtered by the caller;
        a race is caught by the unique constraint and reported as "nonce-taken".
        """
        from sqlalchemy.exc import IntegrityError

        now = _now_ms()
        out: dict[str, str] = {}
        ids = [_hex(i) for i, *_ in items]
        with self.engine.begin() as conn:
            existing = {r[0] for r in conn.execute(select(outbox.c.id).where(outbox.c.id.in_(ids)))}
            rows = []
            for rid, agency, signed, reason in items:
                key = _hex(rid)
                if key in existing or key in out:
                    out[key] = "duplicate"
                    continue
                out[key] = "accepted"
                rows.append(
                    {
                        "id": key,
                        "agency": agency,
                        "nonce": str(signed.record.nonce),
                        "payload": json.dumps(signed_record_to_json(signed), sort_keys=True),
                        "reason_text": reason,
                        "status": "pending",
                        "attempts": 0,
                        "accepted_at": now,
                        "updated_at": now,
                    }
                )
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
        """Pending rows, oldest first: (id, signed record, attempts so far, agency)."""
        from .records import signed_record_from_json

        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox.c.id, outbox.c.payload, outbox.c.attempts, outbox.c.agency)
                .where(outbox.c.status == "pending")
                .order_by(outbox.c.accepted_at, outbox.c.id)
                .limit(limit)
            ).all()
        return [
            (str(i), signed_record_from_json(json.loads(p)), int(a), str(ag))
            for i, p, a, ag in rows
        ]

    def _set(self, ids: Sequence[str], **values: Any) -> None:
        if not ids:
            return
        values["updated_at"] = _now_ms()
        with self.engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id.in_(list(ids))).values(**values))


class Submitter:
    """Drains the outbox in batches on a background thread; reconciles with the chain."""

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
        max_inflight: int = 8,
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
        self._last_reconcile = 0.0
        self._inflight: dict[str, tuple[list[str], float]] = {}
        self.max_inflight = max_inflight
        self.receipt_timeout = receipt_timeout
        self.gas_used = 0
        self.records_sent = 0
        self._selector = encode_call(ledger.contract, "recordBatch", [[]])[:4]
        self._encoding_checked = False
        self._fast_ok = False

    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._run, name="zhixin-submitter", daemon=True)
        self._thread.start()

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
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.step()
                done = self.poll()
                if time.monotonic() - self._last_reconcile > 1.0:
                    self.reconcile()
                    self._last_reconcile = time.monotonic()
            except ZhixinError as exc:
                log.warning("submitter: %s", exc.detail)
                sent = done = 0
                self._stop.wait(0.5)
            except Exception:
                log.exception("submitter failed; retrying")
                sent = done = 0
                self._stop.wait(0.5)
            if not sent and not done:
                self._wake.wait(self.idle_s)
                self._wake.clear()

    # ---- pipelined batches ----

    def step(self) -> int:
        """Send batches of pending records without waiting for receipts (up to ``max_inflight``
        transactions in flight); returns how many records were sent."""
        sent = 0
        while len(self._inflight) < self.max_inflight:
            items = self.box._take(self.batch_size)
            if not items:
                break
            ids = [i for i, *_ in items]
            data = self._encode([s for _, s, *_ in items])
            try:
                tx_hash = self.sender.send(
                    self.ledger.address,
                    data,
                    gas=batch_gas(items),
                    what=f"recordBatch({len(items)})",
                    simulate=False,
                    wait=False,
                )
            except ChainError as exc:
                # unknown whether it landed: stays pending; resubmission is idempotent
                self.box._set(ids, last_error=exc.detail[:500])
                raise
            assert isinstance(tx_hash, str)
            # one statement after the send (a crash before it leaves the rows pending, and the
            # resend is answered NONCE_USED and matched to the chain's logs by id)
            with self.box.engine.begin() as conn:
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
            self._inflight[tx_hash] = (ids, time.monotonic())
            sent += len(items)
        return sent

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
        """Collect receipts of in-flight batches; a batch with no receipt in time is resent."""
        done = 0
        w3 = self.ledger.chain.w3
        for tx_hash, (ids, sent_at) in list(self._inflight.items()):
            try:
                receipt = w3.eth.get_transaction_receipt(cast(Any, tx_hash))
            except (ConnectionError, OSError) as exc:
                raise ChainError(f"chain node unreachable: {exc}") from exc
            except Exception:  # TransactionNotFound: not mined yet
                receipt = None
            if receipt is None:
                if time.monotonic() - sent_at > self.receipt_timeout:
                    log.warning("batch %s has no receipt; resubmitting", tx_hash)
                    del self._inflight[tx_hash]
                    self.sender.reset_nonce()
                    self.box._set(ids, status="pending", last_error="no receipt")
                continue
            del self._inflight[tx_hash]
            if receipt["status"] != 1:
                self.box._set(ids, status="pending", last_error=f"batch {tx_hash} reverted")
                continue
            res = TxResult(
                tx_hash=tx_hash,
                block_number=int(receipt["blockNumber"]),
                gas_used=int(receipt["gasUsed"]),
                receipt=receipt,
            )
            self.gas_used += res.gas_used
            self.records_sent += len(ids)
            outcomes = self.ledger._outcomes(res, len(ids))
            self._apply_outcomes(ids, tx_hash, res.block_number, outcomes)
            done += len(ids)
        return done

    def _apply_outcomes(
        self, ids: Sequence[str], tx_hash: str, block: int, outcomes: Sequence[Any]
    ) -> None:
        onchain: list[str] = []
        for rid, oc in zip(ids, outcomes, strict=True):
            if _hex(oc.id) != rid:
                raise ChainError(f"outcome id mismatch for {rid}")
            if oc.accepted:
                onchain.append(rid)
            elif oc.reason == RejectReason.NONCE_USED:
                found = self._find_on_chain(rid)
                if found is not None:
                    self.box._set([rid], status="onchain", tx_hash=found[1], block_number=found[0])
                else:
                    self.box._set([rid], status="rejected", reject_reason="nonce-used")
            else:
                name = oc.reason.name if isinstance(oc.reason, RejectReason) else str(oc.reason)
                self.box._set([rid], status="rejected", reject_reason=name.lower())
        self.box._set(onchain, status="onchain", tx_hash=tx_hash, block_number=block)

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
        with self.box.engine.connect() as conn:
            rows = conn.execute(
                select(
                    outbox.c.id,
                    outbox.c.updated_at,
                    credit_records.c.block_number,
                    credit_records.c.tx_hash,
                )
                .select_from(outbox.outerjoin(credit_records, credit_records.c.id == outbox.c.id))
                .where(outbox.c.status == "onchain")
                .limit(5000)
            ).all()
        final: list[tuple[str, int, str]] = []
        for rid, updated, block, tx in rows:
            if block is not None:
                if block <= head - self.final_depth and updated <= cutoff:
                    final.append((rid, int(block), str(tx)))
                continue
            if not force and updated > cutoff:
                continue  # the index may simply not have caught up yet
            if self._find_on_chain(rid) is None:
                log.warning("record %s is no longer on chain; resubmitting", rid)
                self.box._set([rid], status="pending")
        with self.box.engine.begin() as conn:
            for rid, block, tx in final:
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id == rid)
                    .values(status="final", block_number=block, tx_hash=tx, updated_at=_now_ms())
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
