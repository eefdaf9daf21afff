"""Accepting, preparing and querying credit records: the logic behind the HTTP API and the CLI.

Invariants:
- Every item is checked off chain before anything is stored: shape, catalog category and its
  subject kinds, kind/ref/dates, EIP-712 signature under this chain's domain, deadline, the
  signer's AGENCY role and category scope, nonce (outbox and chain), the subject identifier when
  given, and for lifecycle kinds that the referenced record exists and is the signer's own.
- Only items that pass every check reach the outbox, in one transaction; a bad item never
  blocks the good ones of its batch and never writes anything.
- ``now`` comes from an injected clock, so tests can pin it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from sqlalchemy import Engine, and_, or_, select

from identity.ids import IdentifierPolicy, InvalidIdentifier, pseudonym, validate_ric, validate_uscc

from .catalog import Catalog, UnknownCategory
from .credit import CreditLedgerClient
from .db import credit_records, outbox
from .errors import InvalidInput, NotFound, ZhixinError
from .grids import GridCatalog, UnknownGrid, load_grids
from .outbox import Outbox, status_of
from .records import (
    MAX_BATCH,
    ZERO_HASH,
    CreditRecord,
    Eip712Domain,
    InvalidRecord,
    InvalidSignature,
    Problem,
    RecordKind,
    RejectReason,
    SignedRecord,
    SubjectKind,
    check_record,
    compact_signature,
    record_digest,
    record_from_json,
    record_to_json,
    recover_from_digest,
    typed_data,
)
from .roles import Role, RolesClient

__all__ = ["BatchTooLarge", "CreditService", "ItemResult", "RecordQuery"]

_SIG = re.compile(r"0x[0-9a-fA-F]{128}([0-9a-fA-F]{2})?")


class BatchTooLarge(InvalidInput):
    code = "batch-too-large"
    status = 413


@dataclass
class ItemResult:
    index: int
    status: str  # accepted | duplicate | rejected
    id: str | None = None
    problem: dict[str, Any] | None = None


@dataclass
class RecordQuery:
    subject: str | None = None  # 0x pseudonym
    agency: str | None = None
    category: int | None = None
    since: int | None = None  # block timestamp, unix seconds
    until: int | None = None
    limit: int = 100
    offset: int = 0
    # a natural person's records only where the reader is that person (pseudonym) or the
    # writing agency (address); None: no restriction (an auditor, or one subject's query whose
    # access was decided before). Applied in SQL so limit/offset count visible rows only.
    persons_visible_to: tuple[str | None, str | None] | None = None


@dataclass
class _ScopeCache:
    ttl: float = 5.0
    entries: dict[tuple[str, int], tuple[float, bool]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class CreditService:
    def __init__(
        self,
        *,
        engine: Engine,
        box: Outbox,
        ledger: CreditLedgerClient,
        roles: RolesClient,
        catalog: Catalog,
        secret: bytes,
        policy: IdentifierPolicy | None = None,
        clock: Callable[[], float] = time.time,
        on_accept: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.box = box
        self.ledger = ledger
        self.roles = roles
        self.catalog = catalog
        self._secret = secret
        self.policy = policy or IdentifierPolicy()
        self.clock = clock
        self.on_accept = on_accept
        self.domain: Eip712Domain = ledger.domain()
        self._scope = _ScopeCache()
        self._nonce_lock = threading.Lock()
        self.pool: Any = None  # a ProcessPoolExecutor for large requests (set by the runtime)
        self.pool_workers = 1
        self._reserved: dict[str, int] = {}
        self.grids: GridCatalog = load_grids()

    # ---- subjects ----

    def subject_pseudonym(self, kind: str | int, identifier: str) -> tuple[SubjectKind, bytes]:
        """Validate an identifier (GB 11643 / GB 32100) and return its keyed pseudonym."""
        from identity.ids import SubjectKind as IdKind

        k = IdKind.parse(kind)
        if k is IdKind.PERSON:
            validate_ric(identifier)
        else:
            validate_uscc(identifier, self.policy)
        return SubjectKind(int(k)), pseudonym(self._secret, k, identifier)

    # ---- prepare ----

    def prepare(self, agency: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Build the EIP-712 typed data an agency signs, with the pseudonym and a free nonce.

        ``fields`` may carry ``grid`` (a community grid code, :mod:`ledger.grids`): it is
        checked and echoed back for the submission, never part of the record.
        """
        now = int(self.clock())
        rec, reason, grid = self._draft(fields, now)
        rec = replace(rec, nonce=self.next_nonce(agency or None))
        return self._prepared(rec, reason, grid)

    def prepare_batch(self, agency: str, items: Sequence[Any]) -> list[dict[str, Any]]:
        """:meth:`prepare` for many records of one agency (a CSV signed in the browser).

        Each item gets the checks of :meth:`prepare` plus what would refuse it at submission
        anyway: the agency's category scope, effectiveUntil before effectiveFrom, a deadline
        already past. Returns, in order, ``{"index", "status": "ready", ...prepared}`` or
        ``{"index", "status": "error", "problem": {code, detail, status[, field]}}``.

        Nonces: one contiguous range is reserved for the ready items under the nonce lock
        (:meth:`reserve_nonces`), above everything the agency used or was handed before, so
        the items of a batch and of consecutive batches never share a nonce.
        """
        if not isinstance(items, Sequence) or isinstance(items, str | bytes):
            raise InvalidInput("expected a list of record fields")
        if len(items) == 0:
            raise InvalidInput("no records given")
        if len(items) > MAX_BATCH:
            raise BatchTooLarge(f"at most {MAX_BATCH} records per request, got {len(items)}")
        now = int(self.clock())
        drafts: list[tuple[int, CreditRecord, str, str | None]] = []
        out: list[dict[str, Any]] = []
        for i, fields in enumerate(items):
            try:
                if not isinstance(fields, Mapping):
                    raise InvalidInput("each item must be an object of record fields")
                rec, reason, grid = self._draft(fields, now)
                self._check_draft(agency, rec, now)
            except _Problem as p:
                out.append({"index": i, "status": "error", "problem": p.as_dict()})
                continue
            except ZhixinError as exc:
                problem = {"code": exc.code, "detail": exc.detail, "status": exc.status}
                if "field" in exc.extra:
                    problem["field"] = exc.extra["field"]
                out.append({"index": i, "status": "error", "problem": problem})
                continue
            drafts.append((i, rec, reason, grid))
            out.append({"index": i, "status": "ready"})
        if drafts:
            first = self.reserve_nonces(agency, len(drafts))
            for n, (i, rec, reason, grid) in enumerate(drafts):
                out[i].update(self._prepared(replace(rec, nonce=first + n), reason, grid))
        return out

    def _check_draft(self, agency: str, rec: CreditRecord, now: int) -> None:
        """The batch's extra checks: scope, dates, deadline (the chain would refuse these)."""
        cat = self.catalog.by_id(rec.category)
        if not self._can_write(agency, rec.category):
            raise _Problem(
                "unauthorized",
                f"agency {agency} does not have category {cat.code} in scope",
                status=403,
                field="category",
            )
        if rec.effective_until != 0 and rec.effective_until < rec.effective_from:
            raise _Problem(
                "invalid-dates",
                f"effectiveUntil {rec.effective_until} is before effectiveFrom "
                f"{rec.effective_from}",
                field="effectiveUntil",
            )
        if rec.deadline <= now:
            raise _Problem(
                "expired", f"deadline {rec.deadline} is not after now ({now})", field="deadline"
            )

    def _draft(self, fields: Mapping[str, Any], now: int) -> tuple[CreditRecord, str, str | None]:
        """The record of ``fields`` with nonce 0, its reason text and grid; raises on bad input
        (``extra['field']`` names the field when it is known)."""

        def at(name: str, fn: Callable[[], Any]) -> Any:
            try:
                return fn()
            except ZhixinError as exc:
                exc.extra.setdefault("field", name)
                raise

        subj = fields.get("subject")
        if not isinstance(subj, Mapping) or set(subj) - {"kind", "id"} or "id" not in subj:
            raise InvalidInput("subject must be an object {kind, id}", field="subject")
        kind, pseud = at(
            "subject", lambda: self.subject_pseudonym(subj.get("kind", "person"), str(subj["id"]))
        )
        cat = at("category", lambda: self._category(fields.get("category")))
        if not cat.applies_to(int(kind)):
            raise InvalidInput(
                f"category {cat.code} does not apply to {kind.name.lower()}s", field="category"
            )
        rk = fields.get("kind", "record")
        try:
            rkind = RecordKind[str(rk).upper().replace("-", "_")] if isinstance(rk, str) else rk
            rkind = RecordKind(int(rkind))
        except (KeyError, ValueError, TypeError):
            raise InvalidInput(f"unknown record kind {rk!r}", field="kind") from None

        def ts(name: str, default: int) -> int:
            v = fields.get(name, default)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidInput(
                    f"{name} must be unix seconds (a non-negative integer)", field=name
                )
            return v

        reason = fields.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 4000:
            raise InvalidInput("reason must be a text of at most 4000 characters", field="reason")
        grid = fields.get("grid")
        if grid is not None:
            at("grid", lambda: self.grids.get(grid))
        ref = fields.get("ref")
        evidence = at("evidenceHash", lambda: _hash_field(fields.get("evidenceHash")))
        ref_hash = at("ref", lambda: _hash_field(ref) if ref else ZERO_HASH)
        rec = CreditRecord(
            kind=int(rkind),
            subject_kind=int(kind),
            subject=pseud,
            category=cat.id,
            occurred_at=ts("occurredAt", now),
            effective_from=ts("effectiveFrom", now),
            effective_until=ts("effectiveUntil", 0),
            deadline=ts("deadline", now + 24 * 3600),
            amount=ts("amount", 0),
            evidence_hash=evidence,
            reason_hash=hashlib.sha256(reason.encode()).digest() if reason else ZERO_HASH,
            ref=ref_hash,
            nonce=0,
        )
        return rec, reason, grid

    def _prepared(self, rec: CreditRecord, reason: str, grid: str | None) -> dict[str, Any]:
        out = {
            "record": record_to_json(rec),
            "id": "0x" + record_digest(rec, self.domain).hex(),
            "typedData": typed_data(rec, self.domain),
            "reason": reason or None,
        }
        if grid is not None:
            out["grid"] = grid
        return out

    # ---- submit ----

    def submit(self, items: Sequence[Any]) -> list[ItemResult]:
        if not isinstance(items, Sequence) or isinstance(items, str | bytes):
            raise InvalidInput("expected a list of signed records")
        if len(items) == 0:
            raise InvalidInput("no records given")
        if len(items) > MAX_BATCH:
            raise BatchTooLarge(f"at most {MAX_BATCH} records per request, got {len(items)}")
        now = int(self.clock())
        results: list[ItemResult] = []
        good: list[tuple[int, bytes, str, SignedRecord, str | None]] = []
        seen_nonces: dict[tuple[str, int], int] = {}
        grids: dict[str, str] = {}  # record id -> community grid (off chain)
        pre = self._pure_parallel(items, now)
        for i, item in enumerate(items):
            try:
                p = pre[i] if pre is not None else None
                if isinstance(p, _Problem):
                    raise p
                rid, agency, signed, reason = self._check_item(item, now, p)
                grid = self._grid_of(item)
                key = (agency, signed.record.nonce)
                if key in seen_nonces and good[seen_nonces[key]][1] != rid:
                    raise _Problem("nonce-used", f"nonce also used by item {seen_nonces[key]}")
                seen_nonces.setdefault(key, len(good))
                good.append((i, rid, agency, signed, reason))
                if grid is not None:
                    grids["0x" + rid.hex()] = grid
                results.append(ItemResult(i, "accepted", "0x" + rid.hex()))
            except _Problem as p:
                results.append(ItemResult(i, "rejected", problem=p.as_dict()))
            except ZhixinError as exc:
                results.append(
                    ItemResult(
                        i,
                        "rejected",
                        problem={"code": exc.code, "detail": exc.detail, "status": 422},
                    )
                )
        self._check_nonces(good, results)
        keep = [g for g in good if results[g[0]].status == "accepted"]
        if keep:
            stored = self.box.accept([(rid, ag, s, r) for _, rid, ag, s, r in keep], grids=grids)
            for i, rid, *_ in keep:
                st = stored["0x" + rid.hex()]
                if st == "duplicate":
                    results[i].status = "duplicate"
                elif st == "nonce-taken":
                    results[i] = ItemResult(
                        i,
                        "rejected",
                        problem=_Problem("nonce-used", "nonce taken concurrently").as_dict(),
                    )
            if self.on_accept is not None:
                self.on_accept()
        return results

    def _pure_parallel(
        self, items: Sequence[Any], now: int
    ) -> list[tuple[bytes, str, SignedRecord] | _Problem] | None:
        """Run the pure checks of a large request in the worker processes (None: do it inline)."""
        pool = self.pool
        if pool is None or len(items) < 64:
            return None
        n = max(1, -(-len(items) // self.pool_workers))
        chunks = [list(items[i : i + n]) for i in range(0, len(items), n)]
        args = (self.domain.chain_id, self.domain.verifying_contract, now)
        futures = [pool.submit(_pure_chunk, c, *args) for c in chunks]
        out: list[tuple[bytes, str, SignedRecord] | _Problem] = []
        for f in futures:
            out.extend(f.result())
        return out

    def _check_item(
        self, item: Any, now: int, pre: tuple[bytes, str, SignedRecord] | None = None
    ) -> tuple[bytes, str, SignedRecord, str | None]:
        rid, agency, signed = pre if pre is not None else pure_check(item, self.domain, now)
        rec = signed.record
        cat = self.catalog.by_id(rec.category)
        if not self._can_write(agency, rec.category):
            if not self.roles.has_role(Role.AGENCY, agency):
                detail = (
                    f"signature recovers {agency}, which holds no AGENCY role (wrong key, a "
                    "tampered record, or a signature for another chain or ledger)"
                )
            else:
                detail = f"agency {agency} does not have category {cat.code} in scope"
            raise _Problem("unauthorized", detail, status=403)
        reason = item.get("reason")
        if reason is not None:
            if not isinstance(reason, str):
                raise _Problem("malformed", "reason must be a string")
            if hashlib.sha256(reason.encode()).digest() != rec.reason_hash:
                raise _Problem("reason-mismatch", "SHA-256 of reason does not match reasonHash")
        sid = item.get("subjectId")
        if sid is not None:
            if not isinstance(sid, str):
                raise _Problem("malformed", "subjectId must be a string")
            try:
                _k, pseud = self.subject_pseudonym(rec.subject_kind, sid)
            except InvalidIdentifier as exc:
                raise _Problem("invalid-identifier", exc.detail) from None
            if pseud != rec.subject:
                raise _Problem("subject-mismatch", "subject is not the pseudonym of subjectId")
        if rec.kind != RecordKind.RECORD:
            self._check_ref(rec, agency)
        return rid, agency, signed, reason

    def _grid_of(self, item: Mapping[str, Any]) -> str | None:
        """The item's off-chain community grid, checked against the grid list."""
        grid = item.get("grid")
        if grid is None:
            return None
        try:
            return self.grids.get(grid).code
        except UnknownGrid as exc:
            raise _Problem(exc.code, exc.detail, field="grid") from None

    def _check_ref(self, rec: CreditRecord, agency: str) -> None:
        ref = "0x" + rec.ref.hex()
        with self.engine.connect() as conn:
            row = conn.execute(
                select(credit_records.c.agency, credit_records.c.subject).where(
                    credit_records.c.id == ref
                )
            ).first()
            if row is None:
                pend = conn.execute(
                    select(outbox.c.agency, outbox.c.payload).where(
                        and_(outbox.c.id == ref, outbox.c.status != "rejected")
                    )
                ).first()
                if pend is not None:
                    import json

                    subj = json.loads(pend[1])["record"]["subject"]
                    row = cast(Any, (pend[0], subj))
        if row is None:
            raise _Problem("unknown-ref", f"referenced record {ref} is not on the ledger")
        if row[0] != agency:
            raise _Problem(
                "foreign-ref",
                f"referenced record {ref} was written by {row[0]}, not the signer",
                status=403,
            )
        if row[1] != "0x" + rec.subject.hex():
            raise _Problem(
                "subject-mismatch", "a lifecycle record must keep the subject of its ref"
            )

    def _check_nonces(
        self,
        good: list[tuple[int, bytes, str, SignedRecord, str | None]],
        results: list[ItemResult],
    ) -> None:
        """Nonce already taken in the outbox by another record, or spent on chain."""
        by_agency: dict[str, list[tuple[int, bytes, int]]] = {}
        for i, rid, agency, signed, _ in good:
            by_agency.setdefault(agency, []).append((i, rid, signed.record.nonce))
        for agency, lst in by_agency.items():
            taken = self.box.nonces_taken(agency, [n for _, _, n in lst])
            words: dict[int, int] = {}
            for i, rid, n in lst:
                other = taken.get(n)
                if other is not None:
                    if other != "0x" + rid.hex():
                        results[i] = _rejected(
                            i, "nonce-used", f"nonce {n} already used by {other}"
                        )
                    continue
                if (n >> 8) not in words:  # one eth_call per bitmap word, not per record
                    words[n >> 8] = self.ledger.nonce_bitmap(agency, n >> 8)
                if words[n >> 8] >> (n & 0xFF) & 1:
                    results[i] = _rejected(i, "nonce-used", f"nonce {n} already used on chain")

    def next_nonce(self, agency: str | None) -> int:
        """The next nonce for ``agency``: above every nonce it used here or on the ledger.

        Sequential nonces share bitmap words on chain (cheaper) and are what agencies' own
        systems will usually pick; a reservation keeps concurrent prepares apart.
        """
        if agency is None:
            return secrets.randbits(64) << 8
        return self.reserve_nonces(agency, 1)

    def reserve_nonces(self, agency: str, count: int) -> int:
        """The first of ``count`` consecutive nonces reserved for ``agency``.

        Above the highest nonce in the outbox, the newest indexed one and every nonce handed
        out before by this process (prepared but not yet submitted), under one lock: two
        prepares or batches never get the same nonce. (The reservation lives in memory: after a
        restart, a prepared record that was never submitted may see its nonce handed out
        again; submission then refuses the second one with nonce-used, nothing is lost.)
        """
        if count < 1:
            raise InvalidInput("reserve at least one nonce")
        with self._nonce_lock:
            used = [self.box.max_nonce(agency), self._reserved.get(agency)]
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(credit_records.c.nonce)
                    .where(credit_records.c.agency == agency)
                    .order_by(credit_records.c.seq.desc())
                    .limit(1)
                ).first()
            if row is not None:
                used.append(int(row[0]))
            first = max((u for u in used if u is not None), default=0) + 1
            self._reserved[agency] = first + count - 1
            return first

    def _can_write(self, agency: str, category: int) -> bool:
        key = (agency, category)
        now = time.monotonic()
        with self._scope.lock:
            hit = self._scope.entries.get(key)
            if hit is not None and now - hit[0] < self._scope.ttl:
                return hit[1]
        ok = self.roles.can_write(agency, category)
        with self._scope.lock:
            self._scope.entries[key] = (now, ok)
        return ok

    def _category(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return self.catalog.by_id(value)
        if isinstance(value, str):
            return (
                self.catalog.by_id(int(value)) if value.isdigit() else self.catalog.by_code(value)
            )
        raise InvalidInput("category must be a catalog code or id")

    # ---- reads ----

    def status(self, record_id: str) -> dict[str, Any]:
        if not _is_hash(record_id):
            raise InvalidInput("record id must be 0x followed by 64 hex digits")
        st = status_of(self.box, self.engine, record_id)
        if st is None:
            raise NotFound(f"no record {record_id}")
        return st

    @staticmethod
    def _filtered(stmt: Any, q: RecordQuery) -> Any:
        """``stmt`` restricted by the query's subject, agency, category and time range."""
        t = credit_records
        if q.subject is not None:
            stmt = stmt.where(t.c.subject == q.subject.lower())
        if q.agency is not None:
            stmt = stmt.where(t.c.agency == q.agency)
        if q.category is not None:
            stmt = stmt.where(t.c.category == q.category)
        if q.since is not None:
            stmt = stmt.where(t.c.block_timestamp >= q.since)
        if q.until is not None:
            stmt = stmt.where(t.c.block_timestamp <= q.until)
        if q.persons_visible_to is not None:
            me, agency = q.persons_visible_to
            allowed = [t.c.subject_kind != int(SubjectKind.PERSON)]
            if me is not None:
                allowed.append(t.c.subject == me.lower())
            if agency is not None:
                allowed.append(t.c.agency == agency)
            stmt = stmt.where(or_(*allowed))
        return stmt

    def history(self, q: RecordQuery) -> list[dict[str, Any]]:
        """Raw rows in ledger order: every record and lifecycle record, nothing folded."""
        t = credit_records
        stmt = self._filtered(select(t), q).order_by(t.c.seq).limit(q.limit).offset(q.offset)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
        for r in rows:
            r["category_code"] = self.catalog.by_id(r["category"]).code
            r["kind_name"] = RecordKind(r["kind"]).name.lower()
        return rows

    def current(self, q: RecordQuery, as_of: int | None = None) -> list[dict[str, Any]]:
        """Lifecycle applied: amendments fold in, withdrawn/disputed/repaired flagged."""
        from .lifecycle import current_view

        t = credit_records
        rows: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            # the subjects the filters match; each is then folded over its whole history
            subjects = sorted(
                r[0] for r in conn.execute(self._filtered(select(t.c.subject).distinct(), q))
            )
            for i in range(0, len(subjects), 500):
                chunk = subjects[i : i + 500]
                rows += [
                    dict(r._mapping)
                    for r in conn.execute(select(t).where(t.c.subject.in_(chunk)).order_by(t.c.seq))
                ]
        if as_of is None:  # everything on the ledger now (node clocks may run ahead of ours)
            as_of = max([int(self.clock()), *(r["block_timestamp"] for r in rows)])
        view = current_view([_entry(r) for r in rows], as_of)
        out = []
        for c in view:
            if c.superseded_by is not None:
                continue
            if q.agency is not None and c.agency != q.agency:
                continue
            if q.category is not None and c.category != q.category:
                continue
            cat = self.catalog.by_id(c.category)
            out.append(
                {
                    "id": "0x" + c.id.hex(),
                    "root": "0x" + c.root.hex(),
                    "versions": ["0x" + v.hex() for v in c.chain],
                    "subject": "0x" + c.subject.hex(),
                    "subject_kind": c.subject_kind,
                    "category": c.category,
                    "category_code": cat.code,
                    "polarity": cat.polarity,
                    "severity": cat.severity,
                    "agency": c.agency,
                    "occurred_at": c.occurred_at,
                    "effective_from": c.effective_from,
                    "effective_until": c.effective_until,
                    "amount": str(c.amount),
                    "seq": c.seq,
                    "recorded_at": c.recorded_at,
                    "disputed": c.disputed,
                    "withdrawn": c.withdrawn,
                    "objection_upheld": c.objection_upheld,
                    "repaired": c.repaired,
                    "repaired_from": c.repaired_from,
                    "lifecycle": ["0x" + v.hex() for v in c.lifecycle],
                }
            )
        out.sort(key=lambda r: cast(int, r["seq"]))
        return out[q.offset : q.offset + q.limit]


def _entry(r: Mapping[str, Any]) -> Any:
    from .lifecycle import LedgerEntry

    ref = bytes.fromhex(r["ref"][2:])
    return LedgerEntry(
        id=bytes.fromhex(r["id"][2:]),
        kind=r["kind"],
        subject=bytes.fromhex(r["subject"][2:]),
        subject_kind=r["subject_kind"],
        category=r["category"],
        agency=r["agency"],
        occurred_at=r["occurred_at"],
        effective_from=r["effective_from"],
        effective_until=r["effective_until"],
        ref=None if ref == ZERO_HASH else ref,
        seq=r["seq"],
        recorded_at=r["block_timestamp"],
        amount=int(r["amount"]),
    )


def pure_check(item: Any, domain: Eip712Domain, now: int) -> tuple[bytes, str, SignedRecord]:
    """The chain-free checks of one submitted item: (record id, signer, signed record).

    Pure and picklable, so large requests can run it in worker processes (the ecrecover is the
    costliest step of accepting a record). Raises _Problem for a bad item.
    """
    if not isinstance(item, Mapping):
        raise _Problem("malformed", "each item must be an object {record, signature}")
    extra = set(item) - {"record", "signature", "reason", "subjectId", "grid"}
    if extra:
        raise _Problem("malformed", f"unknown item fields: {', '.join(sorted(extra))}")
    try:
        rec = record_from_json(cast(Any, item.get("record")))  # record problems first: likelier
        sig = item.get("signature")
        if not isinstance(sig, str) or not _SIG.fullmatch(sig):
            raise InvalidSignature("signature must be 0x followed by 128 or 130 hex digits")
        signed = SignedRecord(rec, compact_signature(bytes.fromhex(sig[2:])))
    except InvalidRecord as exc:
        raise _Problem(exc.code, exc.detail) from None
    try:
        cat = _catalog().by_id(rec.category)
    except UnknownCategory:
        raise _Problem("unknown-category", f"unknown category id {rec.category}") from None
    rid = record_digest(rec, domain)
    sig_problem = ""
    try:
        agency: str | None = recover_from_digest(signed, rid)
    except InvalidSignature as exc:
        agency = None
        sig_problem = exc.detail
    problems = check_record(signed, domain, now, signature_checked=True)
    if agency is None:
        problems.insert(0, Problem(RejectReason.INVALID_SIGNATURE, "signature", sig_problem))
    if problems:
        p = problems[0]
        raise _Problem(
            p.reason.name.lower().replace("_", "-"),
            p.detail,
            field=p.field,
            more=[q.detail for q in problems[1:]],
        )
    assert agency is not None
    if rec.subject_kind in (1, 2) and not cat.applies_to(rec.subject_kind):
        raise _Problem(
            "category-subject-mismatch",
            f"category {cat.code} does not apply to subject kind {rec.subject_kind}",
        )
    return rid, agency, signed


_CATALOG: Catalog | None = None


def _catalog() -> Catalog:
    global _CATALOG
    if _CATALOG is None:
        from .catalog import load_catalog

        _CATALOG = load_catalog()
    return _CATALOG


def _pure_chunk(
    items: list[Any], chain_id: int, contract: str, now: int
) -> list[tuple[bytes, str, SignedRecord] | _Problem]:
    """Worker-process entry: pure_check over a chunk, problems returned (not raised)."""
    domain = Eip712Domain(chain_id, contract)
    out: list[tuple[bytes, str, SignedRecord] | _Problem] = []
    for item in items:
        try:
            out.append(pure_check(item, domain, now))
        except _Problem as p:
            out.append(p)
        except ZhixinError as exc:
            out.append(_Problem(exc.code, exc.detail))
    return out


def _rejected(i: int, code: str, detail: str) -> ItemResult:
    return ItemResult(i, "rejected", problem=_Problem(code, detail, status=409).as_dict())


def _is_hash(v: str) -> bool:
    return isinstance(v, str) and len(v) == 66 and v[:2] == "0x" and _hexok(v[2:])


def _hexok(s: str) -> bool:
    try:
        int(s, 16)
    except ValueError:
        return False
    return True


def _hash_field(v: Any) -> bytes:
    if v is None:
        return ZERO_HASH
    if not isinstance(v, str) or not _is_hash(v):
        raise InvalidInput("hashes must be 0x followed by 64 hex digits")
    return bytes.fromhex(v[2:])


class _Problem(Exception):
    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status: int = 422,
        field: str | None = None,
        more: list[str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.code, self.detail, self.status, self.field, self.more = (
            code,
            detail,
            status,
            field,
            more,
        )

    def __reduce__(self) -> Any:  # picklable across the verification worker processes
        return (_make_problem, (self.code, self.detail, self.status, self.field, self.more))

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "detail": self.detail, "status": self.status}
        if self.field:
            d["field"] = self.field
        if self.more:
            d["also"] = self.more
        return d


def _make_problem(
    code: str, detail: str, status: int, field: str | None, more: list[str] | None
) -> _Problem:
    return _Problem(code, detail, status=status, field=field, more=more)
