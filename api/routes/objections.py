"""Objection applications over HTTP: a subject disputes a record; the agency that wrote it
records the objection on chain (OBJECTION) and resolves it (RESOLUTION upheld / rejected).

Authorization:

* Filing: a natural person's record only by that person (a DID session whose pseudonym is the
  record's subject: 401 without a session, 403 with another one). A legal entity files with its
  USCC in ``subject`` (pseudonymized here; it must be the record's subject), as for repairs:
  there is no entity sign-in yet.
* Listing: an AGENCY session sees the objections to its own records, an AUDITOR all of them, a
  citizen session its own; any other session 403.
* One objection: through :data:`api.deps.ReaderDep`, as the record itself (a person's: that
  person, the writing agency, auditors; an entity's: public, like its records).
* Preparing, accepting and resolving: an AGENCY session of the agency that wrote the record
  (another agency: 403), and the record it signs must be its own (checked again on submit).
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, Field

from ledger.errors import Forbidden
from ledger.objections import MAX_REASON, ObjectionService
from ledger.roles import Role

from ..auth import Unauthenticated
from ..deps import (
    PERSON,
    AgencySession,
    CreditDep,
    OptionalSessionDep,
    Reader,
    ReaderDep,
    SessionDep,
    get_credit,
)

router = APIRouter(prefix="/v1", tags=["objections"])

_LOCK = threading.Lock()


def get_objections(request: Request) -> ObjectionService:
    """The app's :class:`ObjectionService`, built on first use for the current runtime."""
    credit = get_credit(request)
    svc: ObjectionService | None = getattr(request.app.state, "objections", None)
    if svc is not None and svc.credit is credit:
        return svc
    with _LOCK:
        svc = getattr(request.app.state, "objections", None)
        if svc is None or svc.credit is not credit:
            svc = ObjectionService(engine=credit.engine, credit=credit)
            request.app.state.objections = svc
        return svc


ObjectionsDep = Annotated[ObjectionService, Depends(get_objections)]
StatusQ = Literal["filed", "disputed", "upheld", "rejected"]


class SubjectIn(BaseModel):
    kind: Literal["person", "entity"]
    id: str = Field(description="USCC (entities); a person is identified by their session")


class ObjectionIn(BaseModel):
    record_id: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$", description="the disputed record")
    reason: str = Field(description=f"why the record is wrong: 1..{MAX_REASON} characters")
    subject: SubjectIn | None = Field(
        default=None, description="legal entities: {kind: entity, id: USCC}; persons: omit"
    )


class ResolutionIn(BaseModel):
    upheld: bool = Field(description="true: the objection is upheld; false: rejected")
    note: str = Field(description=f"the decision's reasons: 1..{MAX_REASON} characters")


SignedBody = Annotated[dict[str, Any], Body(description="{record, signature[, reason]}")]


@router.post("/objections", status_code=201, summary="A subject files an objection to a record")
def file_objection(
    svc: ObjectionsDep, credit: CreditDep, body: ObjectionIn, session: OptionalSessionDep
) -> dict[str, Any]:
    def authorize(kind: int, subject: str) -> None:
        if session is not None and Reader(session).is_subject(subject):
            return
        if kind == PERSON:
            if session is None:
                raise Unauthenticated(
                    "a person files an objection after signing in (POST /auth/did)"
                )
            raise Forbidden("a person files objections to their own records only")
        if body.subject is None or body.subject.kind != "entity":
            raise Forbidden("a legal entity files with its USCC: subject {kind: entity, id}")
        _k, pseud = credit.subject_pseudonym("entity", body.subject.id)
        if "0x" + bytes(pseud).hex() != subject:
            raise Forbidden("the record does not concern this legal entity")

    return svc.file(body.record_id, body.reason, authorize)


@router.get("/objections", summary="Objections: an agency's, a citizen's own, or all (auditors)")
def list_objections(
    svc: ObjectionsDep,
    session: SessionDep,
    status: Annotated[StatusQ | None, Query(description="only this status")] = None,
    record_id: Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    agency = subject = None
    if session.has(Role.AUDITOR):
        pass
    elif session.has(Role.AGENCY):
        agency = session.address
    elif session.pseudonym is not None:
        subject = session.pseudonym
    else:
        raise Forbidden("objections are visible to their subject, the writing agency and auditors")
    rows = svc.find(
        agency=agency,
        subject=subject,
        status=status,
        record_id=record_id,
        limit=limit,
        offset=offset,
    )
    return {"objections": rows, "limit": limit, "offset": offset}


@router.get("/objections/{oid}", summary="One objection, with its records' chain status")
def get_objection(svc: ObjectionsDep, reader: ReaderDep, oid: str) -> dict[str, Any]:
    app = svc.detail(oid)
    reader.require_subject(app["subject_kind"], app["subject"], app["agency"])
    return app


@router.post("/objections/{oid}/prepare", summary="The OBJECTION record for the agency to sign")
def prepare_objection(svc: ObjectionsDep, oid: str, session: AgencySession) -> dict[str, Any]:
    return svc.prepare(oid, session.address)


@router.post("/objections/{oid}/accept", summary="Submit the agency-signed OBJECTION record")
def accept_objection(
    svc: ObjectionsDep, oid: str, body: SignedBody, session: AgencySession
) -> dict[str, Any]:
    return svc.accept(oid, session.address, body)


@router.post(
    "/objections/{oid}/resolution/prepare",
    summary="The RESOLUTION record (upheld / rejected) for the agency to sign",
)
def prepare_resolution(
    svc: ObjectionsDep, oid: str, body: ResolutionIn, session: AgencySession
) -> dict[str, Any]:
    return svc.prepare_resolution(oid, session.address, body.upheld, body.note)


@router.post("/objections/{oid}/resolution", summary="Submit the agency-signed RESOLUTION record")
def resolve_objection(
    svc: ObjectionsDep, oid: str, body: SignedBody, session: AgencySession
) -> dict[str, Any]:
    return svc.resolve(oid, session.address, body)
