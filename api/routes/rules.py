"""Joint reward and punishment over HTTP: publish rule sets, evaluate (epochs), list status,
measures per agency, list publicity, Merkle proofs, credit repair, agency webhooks.

Publicity: legal entities' list entries are public; natural persons' entries (and any one
subject's status) only through :data:`api.deps.ReaderDep`.

Authorization: publishing and evaluating need RULE_PUBLISHER; a person's measures are also
visible to any AGENCY session (an agency applies them); all persons' entries (``members``) to
auditors; a person applies for repair of their own records only; a repair is prepared and
approved by the agency that wrote the record; webhooks belong to the subscribing agency.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, Field

from ledger.errors import Forbidden, InvalidInput
from ledger.roles import Role
from ledger.rules_service import RulesService
from ledger.webhooks import WebhookService

from ..auth import Unauthenticated
from ..deps import (
    PERSON,
    AgencySession,
    AuditorSession,
    CreditDep,
    OptionalSessionDep,
    PublisherSession,
    Reader,
    ReaderDep,
    ServiceStarting,
    SessionDep,
    get_runtime,
    subject_kinds,
)

router = APIRouter(prefix="/v1", tags=["joint reward and punishment"])


def get_rules(request: Request) -> RulesService:
    rt = get_runtime(request)
    if getattr(rt, "rules", None) is None:
        raise ServiceStarting("the rules service is starting")
    return rt.rules  # type: ignore[no-any-return]


def get_webhooks(request: Request) -> WebhookService:
    rt = get_runtime(request)
    if getattr(rt, "webhooks", None) is None:
        raise ServiceStarting("the webhook service is starting")
    return rt.webhooks  # type: ignore[no-any-return]


RulesDep = Annotated[RulesService, Depends(get_rules)]
WebhooksDep = Annotated[WebhookService, Depends(get_webhooks)]
KindQ = Annotated[Literal["person", "entity"], Query(description="subject kind")]
IdQ = Annotated[str, Query(description="resident identity number or USCC; pseudonymized here")]


def _subject(credit: Any, kind: str, identifier: str) -> bytes:
    return bytes(credit.subject_pseudonym(kind, identifier)[1])


def _read_subject(credit: Any, reader: Reader, kind: str, identifier: str) -> bytes:
    """The pseudonym, once the caller may read this subject's status (401/403 otherwise)."""
    k, pseud = credit.subject_pseudonym(kind, identifier)
    reader.require_subject(int(k), "0x" + bytes(pseud).hex())
    return bytes(pseud)


def _require_app_reader(rules: RulesService, reader: Reader, app_id: str) -> dict[str, Any]:
    app = rules.repair(app_id)
    reader.require_subject(int(app["subject_kind"]), app["subject"], app["agency"])
    return app


def _require_writer(rules: RulesService, session: Any, app_id: str) -> None:
    if rules.repair(app_id)["agency"] != session.address:
        raise Forbidden("only the agency that wrote the record acts on its repair")


def _require_hook_owner(hooks: WebhookService, session: Any, sid: str) -> None:
    if session.has(Role.AUDITOR):
        return
    own = hooks.subscriptions(session.address) if session.address is not None else []
    if not any(s.id == sid for s in own):
        raise Forbidden("a subscription is visible to the agency that made it")


class EvaluateIn(BaseModel):
    as_of: int | None = Field(default=None, ge=0, description="unix s; default: indexed head")
    version: str | None = Field(default=None, description="rule-set version; default: newest")
    rule_set: str | None = Field(default=None, description="rule-set id")


class SubjectIn(BaseModel):
    kind: Literal["person", "entity"]
    id: str


class RepairIn(BaseModel):
    subject: SubjectIn
    record: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$", description="the record to repair")
    statement: str = Field(min_length=1, max_length=4000, description="how it was corrected")


class RepairPrepareIn(BaseModel):
    effective_from: int | None = Field(default=None, ge=0, description="unix s; default: now")


class WebhookIn(BaseModel):
    url: str
    agency: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    sectors: list[str] = Field(min_length=1, description="measure agency slugs, e.g. market")
    secret: str | None = Field(default=None, min_length=16, description="shared HMAC key")


@router.post(
    "/rules/rule-sets",
    summary="Publish a rule-set version (validated, then its hash anchored on chain)",
    responses={422: {"description": "invalid rule set: problems with positions"}},
)
def publish(
    rules: RulesDep,
    _publisher: PublisherSession,
    body: Annotated[str, Body(media_type="application/yaml", description="YAML or JSON")],
) -> dict[str, Any]:
    return rules.publish(body)


@router.get("/rules/rule-sets", summary="Published rule-set versions")
def rule_sets(rules: RulesDep) -> dict[str, Any]:
    return {"rule_sets": rules.rule_sets()}


@router.post("/rules/evaluations", summary="Full evaluation at as_of, anchored as an epoch")
def evaluate(rules: RulesDep, body: EvaluateIn, _publisher: PublisherSession) -> dict[str, Any]:
    return rules.evaluate_full(body.as_of, body.version, body.rule_set)


@router.get("/rules/epochs/{epoch}", summary="An anchored epoch")
def epoch(rules: RulesDep, epoch: int) -> dict[str, Any]:
    return rules.epoch(epoch)


@router.get("/rules/epochs/{epoch}/recompute", summary="Re-run an epoch from chain data alone")
def recompute(rules: RulesDep, epoch: int) -> dict[str, Any]:
    return rules.recompute_epoch(epoch)


@router.get("/rules/status", summary="A subject's lists, with rule and triggering records")
def status(
    rules: RulesDep,
    credit: CreditDep,
    reader: ReaderDep,
    subject_kind: KindQ,
    subject_id: IdQ,
    as_of: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    return rules.status(_read_subject(credit, reader, subject_kind, subject_id), as_of)


@router.get("/rules/measures", summary="The measures an agency must apply to a subject")
def measures(
    rules: RulesDep,
    credit: CreditDep,
    reader: ReaderDep,
    subject_kind: KindQ,
    subject_id: IdQ,
    agency: Annotated[str, Query(description="measure sector (e.g. market) or agency address")],
    as_of: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    if reader.agency is not None:  # any agency: it must apply the measures
        pseud = _subject(credit, subject_kind, subject_id)
    else:
        pseud = _read_subject(credit, reader, subject_kind, subject_id)
    return rules.measures_for(pseud, agency, as_of)


@router.get("/rules/lists/{list_id}/publicity", summary="Public entries (legal entities)")
def publicity(
    rules: RulesDep, list_id: str, epoch: Annotated[int | None, Query(ge=1)] = None
) -> dict[str, Any]:
    return rules.publicity(list_id, include_persons=False, epoch=epoch)


@router.get("/rules/lists/{list_id}/members", summary="All entries, persons included (readers)")
def members(
    rules: RulesDep,
    _auditor: AuditorSession,
    list_id: str,
    epoch: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    return rules.publicity(list_id, include_persons=True, epoch=epoch)


@router.get("/rules/proof", summary="Merkle proof of (non-)membership at an epoch")
def proof(
    rules: RulesDep,
    credit: CreditDep,
    reader: ReaderDep,
    list_id: Annotated[str, Query(alias="list")],
    epoch: Annotated[int | None, Query(ge=1)] = None,
    subject: Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{64}$")] = None,
    subject_kind: Literal["person", "entity"] | None = None,
    subject_id: str | None = None,
) -> dict[str, Any]:
    if subject is not None:
        pseud = bytes.fromhex(subject[2:])
        kind = subject_kinds(credit.engine, [subject]).get(subject.lower(), 0)
        reader.require_subject(kind, subject)  # a person's membership is their list status
    elif subject_kind is not None and subject_id is not None:
        pseud = _read_subject(credit, reader, subject_kind, subject_id)
    else:
        raise InvalidInput("give subject (pseudonym) or subject_kind and subject_id")
    return rules.proof(epoch, list_id, pseud)


@router.get("/rules/changes", summary="Incremental list changes (entered / left)")
def changes(
    rules: RulesDep,
    credit: CreditDep,
    reader: ReaderDep,
    subject_kind: Literal["person", "entity"] | None = None,
    subject_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    pseud = None
    if subject_kind is not None and subject_id is not None:
        pseud = _read_subject(credit, reader, subject_kind, subject_id)
    rows = rules.changes(pseud, limit)
    kinds = subject_kinds(credit.engine, [r["subject"] for r in rows])
    for r in rows:
        r["subject_kind"] = kinds.get(r["subject"], PERSON)  # unknown: treated as a person
    return {"changes": reader.filter(rows)}


@router.post("/repairs", status_code=201, summary="A subject applies for credit repair")
def apply_repair(
    rules: RulesDep, credit: CreditDep, body: RepairIn, session: OptionalSessionDep
) -> dict[str, Any]:
    kind, pseud = credit.subject_pseudonym(body.subject.kind, body.subject.id)
    if int(kind) == PERSON:  # a person applies for themself, signed in with their credential
        if session is None:
            raise Unauthenticated("a person applies for repair after signing in (POST /auth/did)")
        if not Reader(session).is_subject("0x" + bytes(pseud).hex()):
            raise Forbidden("a person applies for repair of their own records only")
    return rules.apply_repair(bytes(pseud), body.record, body.statement)


@router.get("/repairs/{app_id}", summary="A repair application and its eligibility")
def repair(rules: RulesDep, reader: ReaderDep, app_id: str) -> dict[str, Any]:
    app = _require_app_reader(rules, reader, app_id)
    if app["status"] == "pending":
        app["eligibility"] = rules.repair_eligibility(app_id)
    return app


@router.post("/repairs/{app_id}/prepare", summary="The REPAIR record for the agency to sign")
def prepare_repair(
    rules: RulesDep, app_id: str, body: RepairPrepareIn, session: AgencySession
) -> dict[str, Any]:
    _require_writer(rules, session, app_id)
    return rules.prepare_repair(app_id, body.effective_from)


@router.post("/repairs/{app_id}/approve", summary="Submit the agency-signed REPAIR record")
def approve_repair(
    rules: RulesDep,
    app_id: str,
    body: Annotated[dict[str, Any], Body(description="{record, signature[, reason]}")],
    session: AgencySession,
) -> dict[str, Any]:
    _require_writer(rules, session, app_id)  # and the signature inside must be its too
    return rules.approve_repair(app_id, body)


@router.post("/webhooks", status_code=201, summary="An agency subscribes to list changes")
def subscribe(hooks: WebhooksDep, body: WebhookIn, session: AgencySession) -> dict[str, Any]:
    from ledger.chain import parse_address

    if parse_address(body.agency, "agency") != session.address:
        raise Forbidden("an agency subscribes for its own address only")
    sub, secret = hooks.subscribe(body.agency, body.url, body.sectors, body.secret)
    return {**sub.to_json(), "secret": secret}


@router.get("/webhooks", summary="Subscriptions")
def subscriptions(
    hooks: WebhooksDep, session: SessionDep, agency: Annotated[str | None, Query()] = None
) -> dict[str, Any]:
    if not session.has(Role.AUDITOR):
        if not session.has(Role.AGENCY):
            raise Forbidden("subscriptions are visible to their agency and to auditors")
        agency = session.address  # an agency sees its own subscriptions only
    return {"subscriptions": [s.to_json() for s in hooks.subscriptions(agency)]}


@router.delete("/webhooks/{sid}", status_code=204, summary="Stop a subscription")
def unsubscribe(hooks: WebhooksDep, sid: str, session: AgencySession) -> None:
    if not any(s.id == sid for s in hooks.subscriptions(session.address)):
        raise Forbidden("only the agency that subscribed stops a subscription")
    hooks.unsubscribe(sid)


@router.get("/webhooks/{sid}/deliveries", summary="Deliveries of a subscription")
def deliveries(hooks: WebhooksDep, sid: str, session: SessionDep) -> dict[str, Any]:
    _require_hook_owner(hooks, session, sid)
    rows = hooks.deliveries(sid)
    return {"deliveries": [{k: v for k, v in r.items() if k != "body"} for r in rows]}
