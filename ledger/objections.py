"""Objection applications: a subject disputes one of its records; the agency that wrote it records
the objection on chain (an OBJECTION record) and later resolves it (a RESOLUTION record).

States (``objections.status``)::

    filed ──accept (OBJECTION record accepted)──▶ disputed ──resolve──▶ upheld | rejected
                                                                 (RESOLUTION_UPHELD kind 5,
                                                                  RESOLUTION_REJECTED kind 7)

Invariants:
- Off chain until the agency signs: filing stores the subject's reason text only. The OBJECTION
  record refers to the disputed record (``ref``) and carries ``reasonHash = SHA-256(reason)``;
  the RESOLUTION record refers to the OBJECTION record and carries ``SHA-256(note)``. Both are
  submitted through :meth:`CreditService.submit` like any record (signature, AGENCY role, scope,
  nonce, the ref is the signer's own), so the outbox keeps the texts beside the records.
- At most one open (filed or disputed) objection per logical record (original RECORD and its
  AMENDs): ``objections.open_key`` holds the root id while open and NULL after, under a unique
  constraint, so two concurrent filings cannot both succeed. A record already disputed on
  chain, withdrawn, or whose objection was upheld cannot be disputed again (409).
- Only the writing agency prepares, accepts and resolves; the check is also on chain
  (CreditService refuses a lifecycle record whose ref another agency wrote).
- A resolution is prepared and accepted only once the OBJECTION record is indexed, so the
  RESOLUTION can never land on chain before the objection it resolves.
- If the ledger refuses a submitted OBJECTION (or RESOLUTION) record after it was accepted into
  the outbox, the application goes back to ``filed`` (or ``disputed``) with ``last_error`` set,
  so the agency can sign again; nothing is ever deleted.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from sqlalchemy import Engine, and_, select, update
from sqlalchemy.exc import IntegrityError

from .credit_service import CreditService
from .db import credit_records, objections, outbox
from .errors import Forbidden, InvalidInput, NotFound
from .lifecycle import AMEND, OBJECTION, RECORD, RESOLUTION_REJECTED, RESOLUTION_UPHELD, resolve
from .outbox import status_of
from .records import CreditRecord, record_digest, record_from_json, record_to_json, typed_data

__all__ = [
    "MAX_REASON",
    "OPEN",
    "STATUSES",
    "NotIndexed",
    "ObjectionConflict",
    "ObjectionService",
    "RecordRejected",
]

STATUSES: Final = ("filed", "disputed", "upheld", "rejected")
OPEN: Final = ("filed", "disputed")
MAX_REASON: Final = 4000
_DAY: Final = 86_400


class ObjectionConflict(InvalidInput):
    """The request does not fit the application's or the record's state."""

    code = "objection-conflict"
    status = 409


class NotIndexed(InvalidInput):
    """The record exists (accepted into the outbox) but is not on the indexed ledger yet."""

    code = "not-indexed"
    status = 409


class RecordRejected(InvalidInput):
    """The credit service refused the signed record; ``problem`` names its reason code and the
    HTTP status is the item's (403 scope/ownership, 409 nonce, 422 otherwise)."""

    code = "record-rejected"

    def __init__(self, detail: str, *, problem: str | None, status: int | None) -> None:
        super().__init__(detail, problem=problem)
        self.status = status if status in (403, 409, 422) else 422


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _unhex(s: str) -> bytes:
    return bytes.fromhex(s[2:])


def _record_id(value: Any, what: str = "record_id") -> str:
    if (
        not isinstance(value, str)
        or len(value) != 66
        or not value.startswith("0x")
        or any(c not in "0123456789abcdefABCDEF" for c in value[2:])
    ):
        raise InvalidInput(f"{what} must be 0x followed by 64 hex digits", field=what)
    return value.lower()


def check_text(text: Any, what: str) -> str:
    """A non-blank text of at most :data:`MAX_REASON` characters (422 otherwise)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"{what} must not be empty", field=what)
    if len(text) > MAX_REASON:
        raise InvalidInput(
            f"{what} must be at most {MAX_REASON} characters, got {len(text)}", field=what
        )
    return text


class ObjectionService:
    def __init__(
        self, *, engine: Engine, credit: CreditService, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.credit = credit
        self.catalog = credit.catalog
        self.clock = clock

    # ---- filing (the subject) ----

    def target(self, record_id: str) -> dict[str, Any]:
        """The indexed record an objection would dispute: 404 unknown, 409 not yet indexed."""
        rid = _record_id(record_id)
        with self.engine.connect() as conn:
            row = conn.execute(select(credit_records).where(credit_records.c.id == rid)).first()
            if row is None:
                pending = conn.execute(
                    select(outbox.c.id).where(
                        and_(outbox.c.id == rid, outbox.c.status != "rejected")
                    )
                ).first()
                if pending is not None:
                    raise NotIndexed(
                        f"record {rid} is accepted but not on the indexed ledger yet; retry shortly"
                    )
                raise NotFound(f"no record {rid} on the ledger")
        return dict(row._mapping)

    def file(
        self,
        record_id: str,
        reason: str,
        authorize: Callable[[int, str], None],
    ) -> dict[str, Any]:
        """Store a subject's objection to ``record_id`` (status ``filed``; nothing on chain).

        ``authorize(subject_kind, subject)`` raises unless the caller is the record's subject.
        Order of refusals: bad id 422, unknown 404 / not indexed 409, not the subject 401/403,
        bad reason 422, then the record's state 409.
        """
        row = self.target(record_id)
        authorize(int(row["subject_kind"]), str(row["subject"]))
        reason = check_text(reason, "reason")
        if row["kind"] not in (RECORD, AMEND):
            raise InvalidInput(
                "only a record (or its amendment) can be disputed, not a lifecycle entry",
                field="record_id",
            )
        current = self._current(row)
        root = _hex(current.root) if current is not None else row["id"]
        if current is not None:
            if current.withdrawn:
                raise ObjectionConflict("the record was withdrawn by its agency")
            if current.objection_upheld:
                raise ObjectionConflict("an objection to this record was already upheld")
            if current.disputed:
                raise ObjectionConflict(
                    "the record is already disputed on the ledger (an open objection)"
                )
        now = int(self.clock())
        oid = "0x" + secrets.token_hex(16)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    objections.insert().values(
                        id=oid,
                        record_id=row["id"],
                        root_id=root,
                        open_key=root,
                        subject=row["subject"],
                        subject_kind=int(row["subject_kind"]),
                        agency=row["agency"],
                        category=int(row["category"]),
                        reason=reason,
                        status="filed",
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            open_id = self._open_for(root)
            raise ObjectionConflict(
                "an objection to this record is already open", objection=open_id
            ) from None
        return self.get(oid)

    def _current(self, row: Mapping[str, Any]) -> Any:
        """The logical record (lifecycle applied, now) that contains version ``row``."""
        from .credit_service import _entry

        with self.engine.connect() as conn:
            rows = [
                dict(r._mapping)
                for r in conn.execute(
                    select(credit_records)
                    .where(credit_records.c.subject == row["subject"])
                    .order_by(credit_records.c.seq)
                )
            ]
        as_of = max([int(self.clock()), *(r["block_timestamp"] for r in rows)])
        target = _unhex(row["id"])
        view = resolve([_entry(r) for r in rows], as_of, with_versions=False)
        return next((c for c in view.current if target in c.chain), None)

    def _open_for(self, root: str) -> str | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(objections.c.id).where(objections.c.open_key == root)).first()
        return None if r is None else str(r[0])

    # ---- reads ----

    def get(self, oid: str) -> dict[str, Any]:
        if not isinstance(oid, str) or len(oid) > 40:
            raise NotFound(f"no objection {oid!r}")
        with self.engine.connect() as conn:
            row = conn.execute(select(objections).where(objections.c.id == oid)).first()
        if row is None:
            raise NotFound(f"no objection {oid}")
        return self._to_json(self._heal([dict(row._mapping)])[0])

    def detail(self, oid: str) -> dict[str, Any]:
        """:meth:`get` plus where its OBJECTION and RESOLUTION records are (outbox → index)."""
        out = self.get(oid)
        box, eng = self.credit.box, self.engine
        out["chain"] = {
            "objection": out["objection_record"] and status_of(box, eng, out["objection_record"]),
            "resolution": out["resolution_record"]
            and status_of(box, eng, out["resolution_record"]),
        }
        return out

    def find(
        self,
        *,
        agency: str | None = None,
        subject: str | None = None,
        status: str | None = None,
        record_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Newest first; ``agency`` / ``subject`` restrict to one party's objections."""
        t = objections
        stmt = select(t).order_by(t.c.created_at.desc(), t.c.id)
        if agency is not None:
            stmt = stmt.where(t.c.agency == agency)
        if subject is not None:
            stmt = stmt.where(t.c.subject == subject.lower())
        if record_id is not None:
            stmt = stmt.where(t.c.record_id == _record_id(record_id))
        if status is not None:
            if status not in STATUSES:
                raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
            stmt = stmt.where(t.c.status == status)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt.limit(limit).offset(offset))]
        healed = self._heal(rows)
        if status is not None:  # a healed row may have left the asked-for status
            healed = [r for r in healed if r["status"] == status]
        return [self._to_json(r) for r in healed]

    def _to_json(self, row: Mapping[str, Any]) -> dict[str, Any]:
        st = row["status"]
        try:
            code: str | None = self.catalog.by_id(int(row["category"])).code
        except Exception:  # pragma: no cover - the index only holds catalog categories
            code = None
        return {
            "id": row["id"],
            "record_id": row["record_id"],
            "root_id": row["root_id"],
            "subject": row["subject"],
            "subject_kind": int(row["subject_kind"]),
            "agency": row["agency"],
            "category": int(row["category"]),
            "category_code": code,
            "reason": row["reason"],
            "status": st,
            "open": st in OPEN,
            "upheld": True if st == "upheld" else False if st == "rejected" else None,
            "objection_record": row["objection_record"],
            "resolution_record": row["resolution_record"],
            "resolution_note": row["resolution_note"],
            "last_error": row["last_error"],
            "created_at": int(row["created_at"]),
            "updated_at": int(row["updated_at"]),
        }

    def _heal(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Roll back a step whose record the ledger refused after the outbox accepted it."""
        watch = {
            r["objection_record"] if r["status"] == "disputed" else r["resolution_record"]: r
            for r in rows
            if (r["status"] == "disputed" and r["objection_record"])
            or (r["status"] in ("upheld", "rejected") and r["resolution_record"])
        }
        if not watch:
            return rows
        with self.engine.connect() as conn:
            refused = {
                str(i): str(why or "rejected")
                for i, why in conn.execute(
                    select(outbox.c.id, outbox.c.reject_reason).where(
                        and_(outbox.c.id.in_(list(watch)), outbox.c.status == "rejected")
                    )
                )
            }
        now = int(self.clock())
        for rid, why in refused.items():
            r = watch[rid]
            if r["status"] == "disputed":
                values: dict[str, Any] = {"status": "filed", "objection_record": None}
                step = "OBJECTION"
            else:
                values = {
                    "status": "disputed",
                    "resolution_record": None,
                    "resolution_note": None,
                    "open_key": r["root_id"],
                }
                step = "RESOLUTION"
            values.update(
                last_error=f"the ledger refused the {step} record {rid} ({why}); sign it again",
                updated_at=now,
            )
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        update(objections)
                        .where(and_(objections.c.id == r["id"], objections.c.status == r["status"]))
                        .values(**values)
                    )
            except IntegrityError:  # pragma: no cover - another objection opened meanwhile
                continue
            r.update(values)
        return rows

    # ---- the agency: OBJECTION record ----

    def _own(self, oid: str, agency: str | None) -> dict[str, Any]:
        app = self.get(oid)
        if agency is None or app["agency"] != agency:
            raise Forbidden("only the agency that wrote the record acts on its objections")
        return app

    def prepare(self, oid: str, agency: str | None) -> dict[str, Any]:
        """The OBJECTION record for the writing agency to sign (status must be ``filed``)."""
        app = self._own(oid, agency)
        if app["status"] != "filed":
            raise ObjectionConflict(f"objection {oid} is {app['status']}, not filed")
        now = int(self.clock())
        rec = CreditRecord(
            kind=OBJECTION,
            subject_kind=app["subject_kind"],
            subject=_unhex(app["subject"]),
            category=app["category"],
            occurred_at=app["created_at"],  # when the subject raised it
            effective_from=now,
            deadline=now + _DAY,
            nonce=self.credit.next_nonce(app["agency"]),
            reason_hash=hashlib.sha256(app["reason"].encode()).digest(),
            ref=_unhex(app["record_id"]),
        )
        return self._prepared(app, rec, app["reason"])

    def accept(self, oid: str, agency: str | None, item: Any) -> dict[str, Any]:
        """Submit the agency-signed OBJECTION record → ``disputed`` (idempotent on retry)."""
        app = self._own(oid, agency)
        rec = self._signed_record(item)
        rid = _hex(record_digest(rec, self.credit.domain))
        if app["status"] == "disputed" and app["objection_record"] == rid:
            return app  # the same signed record again: already done
        if app["status"] != "filed":
            raise ObjectionConflict(f"objection {oid} is {app['status']}, not filed")
        if rec.kind != OBJECTION or _hex(rec.ref) != app["record_id"]:
            raise InvalidInput("the signed record must be an OBJECTION referring to the record")
        self._same_subject(app, rec)
        self._reason(item, rec, app["reason"])
        result_id = self._submit(item, app["reason"])
        now = int(self.clock())
        with self.engine.begin() as conn:
            conn.execute(
                update(objections)
                .where(and_(objections.c.id == oid, objections.c.status == "filed"))
                .values(
                    status="disputed", objection_record=result_id, last_error=None, updated_at=now
                )
            )
        return self.get(oid)

    # ---- the agency: RESOLUTION record ----

    def prepare_resolution(
        self, oid: str, agency: str | None, upheld: bool, note: str
    ) -> dict[str, Any]:
        """The RESOLUTION record (kind 5 upheld / 7 rejected) referring to the OBJECTION."""
        app = self._own(oid, agency)
        note = check_text(note, "note")
        self._resolvable(app)
        now = int(self.clock())
        rec = CreditRecord(
            kind=RESOLUTION_UPHELD if upheld else RESOLUTION_REJECTED,
            subject_kind=app["subject_kind"],
            subject=_unhex(app["subject"]),
            category=app["category"],
            occurred_at=now,
            effective_from=now,
            deadline=now + _DAY,
            nonce=self.credit.next_nonce(app["agency"]),
            reason_hash=hashlib.sha256(note.encode()).digest(),
            ref=_unhex(app["objection_record"]),
        )
        return {**self._prepared(app, rec, note), "upheld": bool(upheld)}

    def resolve(self, oid: str, agency: str | None, item: Any) -> dict[str, Any]:
        """Submit the agency-signed RESOLUTION record → ``upheld`` or ``rejected``."""
        app = self._own(oid, agency)
        rec = self._signed_record(item)
        rid = _hex(record_digest(rec, self.credit.domain))
        if app["status"] in ("upheld", "rejected") and app["resolution_record"] == rid:
            return app
        self._resolvable(app)
        if rec.kind not in (RESOLUTION_UPHELD, RESOLUTION_REJECTED) or (
            _hex(rec.ref) != app["objection_record"]
        ):
            raise InvalidInput(
                "the signed record must be a RESOLUTION (upheld or rejected) referring to the "
                "OBJECTION record"
            )
        self._same_subject(app, rec)
        note = check_text(item.get("reason"), "reason")
        self._reason(item, rec, note)
        result_id = self._submit(item, note)
        now = int(self.clock())
        with self.engine.begin() as conn:
            conn.execute(
                update(objections)
                .where(and_(objections.c.id == oid, objections.c.status == "disputed"))
                .values(
                    status="upheld" if rec.kind == RESOLUTION_UPHELD else "rejected",
                    resolution_record=result_id,
                    resolution_note=note,
                    open_key=None,
                    last_error=None,
                    updated_at=now,
                )
            )
        return self.get(oid)

    def _resolvable(self, app: Mapping[str, Any]) -> None:
        if app["status"] != "disputed":
            raise ObjectionConflict(f"objection {app['id']} is {app['status']}, not disputed")
        with self.engine.connect() as conn:
            indexed = conn.execute(
                select(credit_records.c.id).where(credit_records.c.id == app["objection_record"])
            ).first()
        if indexed is None:
            raise NotIndexed(
                f"the OBJECTION record {app['objection_record']} is not on the indexed ledger "
                "yet; resolve it once it is"
            )

    # ---- helpers ----

    def _prepared(self, app: Mapping[str, Any], rec: CreditRecord, text: str) -> dict[str, Any]:
        domain = self.credit.domain
        return {
            "objection": app["id"],
            "agency": app["agency"],
            "record": record_to_json(rec),
            "id": _hex(record_digest(rec, domain)),
            "typedData": typed_data(rec, domain),
            "reason": text,
        }

    @staticmethod
    def _signed_record(item: Any) -> CreditRecord:
        if not isinstance(item, Mapping) or "record" not in item or "signature" not in item:
            raise InvalidInput("expected a signed record {record, signature[, reason]}")
        return record_from_json(item["record"])

    @staticmethod
    def _same_subject(app: Mapping[str, Any], rec: CreditRecord) -> None:
        if _hex(rec.subject) != app["subject"] or rec.subject_kind != app["subject_kind"]:
            raise InvalidInput("the signed record must keep the subject of the disputed record")

    @staticmethod
    def _reason(item: Mapping[str, Any], rec: CreditRecord, text: str) -> None:
        given = item.get("reason")
        if given is not None and given != text:
            raise InvalidInput("reason differs from the objection's text", problem="reason")
        if hashlib.sha256(text.encode()).digest() != rec.reason_hash:
            raise InvalidInput(
                "reasonHash is not the SHA-256 of the text (sign the prepared record)",
                problem="reason-mismatch",
            )

    def _submit(self, item: Mapping[str, Any], text: str) -> str:
        sub = {k: v for k, v in item.items() if k in ("record", "signature", "subjectId")}
        sub["reason"] = text
        result = self.credit.submit([sub])[0]
        if result.status == "rejected" or result.id is None:
            p = result.problem or {}
            raise RecordRejected(
                str(p.get("detail", "record rejected")),
                problem=p.get("code"),
                status=p.get("status"),
            )
        return result.id
