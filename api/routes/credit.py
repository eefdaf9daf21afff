"""Credit records: prepare (typed data to sign), submit signed records, status, queries."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ledger.credit_service import ItemResult, RecordQuery
from ledger.errors import InvalidInput

from ..deps import CreditDep, ReaderDep
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
def prepare(body: PrepareIn, credit: CreditDep) -> dict[str, Any]:
    fields = body.model_dump(exclude_none=True)
    fields["subject"] = body.subject.model_dump()
    agency = fields.pop("agency", None)
    if agency is not None:
        from ledger.chain import parse_address

        agency = parse_address(agency, "agency")
    return credit.prepare(agency or "", fields)


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
def record_status(record_id: str, credit: CreditDep, _reader: ReaderDep) -> dict[str, Any]:
    return credit.status(record_id)


@router.get("/credit-records", summary="Query records (current view or raw history)")
def query(
    credit: CreditDep,
    _reader: ReaderDep,
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
    if subject_id is not None:
        _k, pseud = credit.subject_pseudonym(subject_kind or "person", subject_id)
        q.subject = "0x" + pseud.hex()
    if agency is not None:
        from ledger.chain import parse_address

        q.agency = parse_address(agency, "agency")
    if category is not None:
        q.category = credit._category(category).id
    if view == "history":
        return {"view": "history", "records": credit.history(q)}
    return {"view": "current", "as_of": int(time.time()), "records": credit.current(q)}


@router.get("/catalog/categories", summary="The credit category catalog")
def categories(credit: CreditDep) -> dict[str, Any]:
    cat = credit.catalog
    return {
        "version": cat.version,
        "hash": "0x" + cat.canonical_hash().hex(),
        "categories": [c.model_dump() for c in cat],
    }
