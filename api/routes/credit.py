"""Credit records: prepare (typed data to sign), submit signed records, status, queries.

Authorization: submitting is open (each record's EIP-712 signature authorizes its agency);
preparing needs an AGENCY session (it reveals pseudonyms and nonces) and only for the caller's
own address; every read goes through :data:`api.deps.ReaderDep`.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from ledger.credit_service import BatchTooLarge, ItemResult, RecordQuery
from ledger.db import credit_records, outbox
from ledger.errors import Forbidden, InvalidInput
from ledger.records import MAX_BATCH, record_from_json

from ..deps import AgencySession, CreditDep, Reader, ReaderDep
from ..problems import PROBLEM_BASE, problem

router = APIRouter(prefix="/v1", tags=["credit records"])


class SubjectIn(BaseModel):
    kind: Literal["person", "entity"] = Field(description="natural person or legal entity")
    id: str = Field(description="resident identity number (GB 11643) or USCC (GB 32100)")


class PrepareIn(BaseModel):
    """Fields of a record to sign; the service fills in the pseudonym and a fresh nonce."""

    subject: SubjectIn
    category: str = Field(description="catalog code, e.g. tax.arrears")
    agency: str | None = Field(
        default=None,
        pattern=r"^0x[0-9a-fA-F]{40}$",
        description="the signing agency: gets its next sequential nonce",
    )
    kind: str = "record"
    occurredAt: int | None = None
    effectiveFrom: int | None = None
    effectiveUntil: int = 0
    deadline: int | None = None
    amount: int = 0
    evidenceHash: str | None = None
    reason: str = ""
    ref: str | None = None
    grid: str | None = Field(
        default=None, description="community grid code (off chain; GET /v1/stats/grids)"
    )


class PrepareBatchIn(BaseModel):
    items: list[Any] = Field(
        min_length=1, description=f"up to {MAX_BATCH} objects with the fields prepare takes"
    )


class ItemOut(BaseModel):
    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    id: str | None = None
    problem: dict[str, Any] | None = None


class SubmitOut(BaseModel):
    accepted: int
    rejected: int
    items: list[ItemOut]


def _problem_item(r: ItemResult) -> dict[str, Any]:
    d: dict[str, Any] = {"index": r.index, "status": r.status, "id": r.id}
    if r.problem is not None:
        p = dict(r.problem)
        d["problem"] = {"type": PROBLEM_BASE + p.pop("code"), **p}
    return d


@router.post("/credit-records/prepare", summary="Typed data for an agency to sign")
def prepare(body: PrepareIn, credit: CreditDep, session: AgencySession) -> dict[str, Any]:
    fields = body.model_dump(exclude_none=True)
    fields["subject"] = body.subject.model_dump()
    agency = fields.pop("agency", None)
    if agency is not None:
        from ledger.chain import parse_address

        agency = parse_address(agency, "agency")
        if agency != session.address:
            raise Forbidden("an agency prepares records for its own address only")
    return credit.prepare(agency or "", fields)


_BATCH_FIELDS = frozenset(PrepareIn.model_fields)


def _item_problem(index: int, p: dict[str, Any]) -> dict[str, Any]:
    p = dict(p)
    code = p.pop("code")
    return {"index": index, "status": "error", "problem": {"type": PROBLEM_BASE + code, **p}}


@router.post(
    "/credit-records/prepare-batch",
    summary="Typed data for many records (a CSV), each with its own nonce, or its problem",
    responses={413: {"description": f"more than {MAX_BATCH} items"}},
)
def prepare_batch(
    body: PrepareBatchIn, credit: CreditDep, session: AgencySession
) -> dict[str, Any]:
    """Every item is checked like ``prepare`` (identifier, category and its subject kinds,
    kind, dates, hashes, grid) plus the agency's category scope, effectiveUntil not before
    effectiveFrom and a deadline still ahead. Always 200 with one result per item, in order:
    ``ready`` (record, id, typedData, reason, grid) or ``error`` (an RFC 9457 problem). The
    nonces are the session agency's next ones, distinct within the batch and across calls."""
    from pydantic import ValidationError

    from ledger.chain import parse_address

    if len(body.items) > MAX_BATCH:
        raise BatchTooLarge(f"at most {MAX_BATCH} records per request, got {len(body.items)}")
    assert session.address is not None
    results: list[dict[str, Any] | None] = [None] * len(body.items)
    good: list[tuple[int, dict[str, Any]]] = []
    for i, raw in enumerate(body.items):
        if not isinstance(raw, dict):
            results[i] = _item_problem(
                i, {"code": "validation", "status": 422, "detail": "an item must be an object"}
            )
            continue
        extra = sorted(set(raw) - _BATCH_FIELDS)
        if extra:
            detail = f"unknown fields: {', '.join(extra)}"
            results[i] = _item_problem(
                i, {"code": "validation", "status": 422, "detail": detail, "field": extra[0]}
            )
            continue
        try:
            item = PrepareIn.model_validate(raw)
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(x) for x in e.get("loc", ()))
            results[i] = _item_problem(
                i,
                {"code": "validation", "status": 422, "detail": f"{where}: {e.get('msg')}",
                 "field": where},
            )  # fmt: skip
            continue
        fields = item.model_dump(exclude_none=True)
        fields["subject"] = item.subject.model_dump()
        agency = fields.pop("agency", None)
        if agency is not None and parse_address(agency, "agency") != session.address:
            results[i] = _item_problem(
                i,
                {"code": "forbidden", "status": 403, "field": "agency",
                 "detail": "an agency prepares records for its own address only"},
            )  # fmt: skip
            continue
        good.append((i, fields))
    if good:
        prepared = credit.prepare_batch(session.address, [f for _, f in good])
        for (i, _), r in zip(good, prepared, strict=True):
            if r["status"] == "error":
                results[i] = _item_problem(i, r["problem"])
            else:
                results[i] = {**r, "index": i}
    items = [r for r in results if r is not None]
    ready = sum(1 for r in items if r["status"] == "ready")
    return {
        "agency": session.address,
        "ready": ready,
        "errors": len(items) - ready,
        "items": items,
    }


@router.post(
    "/credit-records",
    status_code=202,
    response_model=SubmitOut,
    responses={422: {"description": "every item was rejected (problem+json, per item)"}},
    summary="Submit one or many agency-signed records",
)
def submit(
    credit: CreditDep,
    body: Annotated[Any, Body(description="a signed record, a list of them, or {records: [...]}")],
) -> Any:
    if isinstance(body, dict) and "records" in body:
        items = body["records"]
    elif isinstance(body, dict):
        items = [body]
    else:
        items = body
    if not isinstance(items, list):
        raise InvalidInput("expected a signed record, a list of them, or {records: [...]}")
    results = credit.submit(items)
    ok = [r for r in results if r.status != "rejected"]
    out = {
        "accepted": len(ok),
        "rejected": len(results) - len(ok),
        "items": [_problem_item(r) for r in results],
    }
    if not ok:
        first = next(r for r in results if r.problem)
        assert first.problem is not None
        status = 409 if all((r.problem or {}).get("status") == 409 for r in results) else 422
        if all((r.problem or {}).get("status") == 403 for r in results):
            status = 403
        return problem(
            status,
            "records-rejected",
            "No record accepted",
            f"item {first.index}: {first.problem['detail']}",
            items=out["items"],
        )
    return JSONResponse(out, status_code=202)


@router.get("/credit-records/{record_id}", summary="Status: pending → on chain → indexed")
def record_status(record_id: str, credit: CreditDep, reader: ReaderDep) -> dict[str, Any]:
    st = credit.status(record_id)  # 422 / 404 first: the id says nothing about its subject
    _require_record_reader(credit, reader, st["id"])
    return st


def _require_record_reader(credit: Any, reader: Reader, rid: str) -> None:
    """The record's subject and agency, from the index or (not yet indexed) the outbox."""
    t = credit_records
    with credit.engine.connect() as conn:
        row = conn.execute(
            select(t.c.subject_kind, t.c.subject, t.c.agency).where(t.c.id == rid)
        ).first()
        if row is None:
            box = conn.execute(
                select(outbox.c.agency, outbox.c.payload).where(outbox.c.id == rid)
            ).first()
    if row is not None:
        reader.require_subject(int(row[0]), str(row[1]), str(row[2]))
        return
    rec = record_from_json(json.loads(box[1])["record"]) if box is not None else None
    if rec is None:
        reader.require_subject(1, "", None)  # unknown: visible to auditors only
        return
    reader.require_subject(rec.subject_kind, "0x" + rec.subject.hex(), str(box[0]))


@router.get("/credit-records", summary="Query records (current view or raw history)")
def query(
    credit: CreditDep,
    reader: ReaderDep,
    subject_kind: Annotated[Literal["person", "entity"] | None, Query()] = None,
    subject_id: Annotated[str | None, Query(description="identifier; pseudonymized here")] = None,
    agency: Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{40}$")] = None,
    category: Annotated[str | None, Query(description="catalog code or id")] = None,
    since: Annotated[int | None, Query(ge=0, description="unix seconds")] = None,
    until: Annotated[int | None, Query(ge=0)] = None,
    view: Literal["current", "history"] = "current",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    q = RecordQuery(limit=limit, offset=offset, since=since, until=until)
    scope: str | None = None
    if subject_id is not None:
        kind, pseud = credit.subject_pseudonym(subject_kind or "person", subject_id)
        q.subject = "0x" + pseud.hex()
        scope = reader.record_scope(int(kind), q.subject)  # an agency sees its own records
    if agency is not None:
        from ledger.chain import parse_address

        q.agency = parse_address(agency, "agency")
    if scope is not None:
        if q.agency is not None and q.agency != scope:
            raise Forbidden("an agency reads a person's records it wrote, not another's")
        q.agency = scope
    if category is not None:
        q.category = credit._category(category).id
    if subject_id is None and not reader.auditor:  # visibility in SQL: pages are never short
        me = reader.session.pseudonym if reader.session is not None else None
        q.persons_visible_to = (me, reader.agency)
    if view == "history":
        return {"view": "history", "records": reader.filter(credit.history(q))}
    return {
        "view": "current",
        "as_of": int(time.time()),
        "records": reader.filter(credit.current(q)),
    }


@router.get("/catalog/categories", summary="The credit category catalog")
def categories(credit: CreditDep) -> dict[str, Any]:
    cat = credit.catalog
    return {
        "version": cat.version,
        "hash": "0x" + cat.canonical_hash().hex(),
        "categories": [c.model_dump() for c in cat],
    }
