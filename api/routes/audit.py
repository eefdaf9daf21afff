"""Audit and transparency log: replay the chain (``POST /v1/audit/run``), signed checkpoints,
inclusion and consistency proofs (``/v1/log/...``).

The log is created on first use, rebuilt from the index and kept on ``app.state.tlog``; it
catches up with the index on every request.

Authorization: the replay and index comparison (``/audit/run``) need an AUDITOR session; the
transparency log (checkpoints, key, proofs) is public by design: it holds record ids and hashes
only, and anyone must be able to check that the log only grows.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from ledger.audit_replay import replay
from ledger.db import credit_records
from ledger.errors import ZhixinError
from ledger.index_diff import diff_index
from ledger.tlog_service import TransparencyLog, load_or_create_key, log_origin

from ..deps import AuditorSession, RuntimeDep

router = APIRouter(prefix="/v1", tags=["audit"])
_lock = threading.Lock()


class AuditIn(BaseModel):
    from_block: int | None = Field(default=None, ge=0)
    to_block: int | None = Field(default=None, ge=0)
    index: bool = Field(default=True, description="also compare the service's index")


class LogStarting(ZhixinError):
    code = "starting"
    status = 503


def _tlog(request: Request, rt: Any) -> TransparencyLog:
    if rt.engine is None:
        raise LogStarting("the index is starting")
    with _lock:
        log: TransparencyLog | None = rt.tlog or getattr(request.app.state, "tlog", None)
        if log is None:
            origin = log_origin(rt.deployment.chain_id, rt.deployment.address("CreditLedger"))
            key = load_or_create_key(rt.settings.data_dir)
            log = TransparencyLog.from_index(
                rt.engine, origin, key, final_depth=getattr(rt, "tlog_final_depth", 0)
            )
            request.app.state.tlog = log
    log.sync(rt.engine)
    return log


@router.post("/audit/run", summary="Replay the ledger from the chain alone and report")
def run_audit(body: AuditIn, rt: RuntimeDep, _auditor: AuditorSession) -> dict[str, Any]:
    report = replay(rt.chain, rt.deployment, from_block=body.from_block, to_block=body.to_block)
    out = report.to_json()
    if body.index and rt.engine is not None:
        diff = diff_index(rt.chain, rt.deployment, rt.engine, to_block=report.to_block)
        out["index"] = diff.to_json()
        out["ok"] = out["ok"] and diff.ok
    if rt.rules is not None:
        out["epochs"] = _reevaluate_epochs(rt.rules)
        out["ok"] = out["ok"] and all(e["matches"] for e in out["epochs"])
    return out


def _reevaluate_epochs(rules: Any) -> list[dict[str, Any]]:
    """Re-run every anchored list epoch from chain data alone and compare Merkle roots; an
    epoch that cannot be re-run (its rule set is unknown here) fails with the reason."""
    out: list[dict[str, Any]] = []
    for n in range(1, rules.registry.epoch_count() + 1):
        try:
            res = rules.recompute_epoch(n)
        except ZhixinError as exc:
            out.append({"epoch": n, "matches": False, "error": exc.detail})
            continue
        out.append(
            {
                "epoch": n,
                "matches": bool(res["matches"]),
                "lists_root": res["lists_root"],
                "anchored_root": res["anchored_root"],
                "records": res["records"],
            }
        )
    return out


@router.get("/log/checkpoint", response_class=PlainTextResponse, summary="Signed checkpoint")
def checkpoint(request: Request, rt: RuntimeDep) -> PlainTextResponse:
    log = _tlog(request, rt)
    return PlainTextResponse(log.checkpoint(), headers={"X-Verifier-Key": log.verifier_key})


@router.get("/log/key", summary="The checkpoint verifier key")
def key(request: Request, rt: RuntimeDep) -> dict[str, str]:
    log = _tlog(request, rt)
    return {"origin": log.origin, "verifier_key": log.verifier_key}


@router.get("/log/proof/inclusion", summary="Inclusion proof of a record (and its withdrawal)")
def inclusion(
    request: Request,
    rt: RuntimeDep,
    id: Annotated[str, Query(description="record id, 0x + 64 hex")],
    size: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    log = _tlog(request, rt)
    out = log.inclusion(id, size)
    assert rt.engine is not None
    with rt.engine.connect() as conn:
        row = conn.execute(
            select(credit_records.c.kind, credit_records.c.ref).where(
                credit_records.c.id == out["id"]
            )
        ).first()
        withdrawals = conn.execute(
            select(credit_records.c.id)
            .where(credit_records.c.ref == out["id"], credit_records.c.kind == 3)
            .order_by(credit_records.c.seq)
        ).all()
    if row is not None:
        out["kind"], out["ref"] = int(row[0]), row[1]
    out["withdrawn_by"] = []
    for (wid,) in withdrawals:
        try:
            w = log.inclusion(wid, out["tree_size"])
        except ZhixinError:
            continue  # withdrawn after this tree size
        w["ref"] = out["id"]
        out["withdrawn_by"].append(w)
    return out


@router.get("/log/proof/consistency", summary="Consistency proof between two tree sizes")
def consistency(
    request: Request,
    rt: RuntimeDep,
    first: Annotated[int, Query(ge=1)],
    second: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    return _tlog(request, rt).consistency(first, second)
