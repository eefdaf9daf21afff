"""Liveness and chain status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from ..deps import RuntimeDep

router = APIRouter(tags=["health"])


class NodeStatus(BaseModel):
    kind: str
    status: str
    rpc_url: str | None = None
    pid: int | None = None
    running: bool | None = None


class Health(BaseModel):
    status: str
    chain_id: int
    head_block: int | None
    deploy_block: int
    contracts: dict[str, str]
    node: NodeStatus
    uptime_s: float


@router.get("/healthz", response_model=Health, summary="Service and chain status")
def healthz(rt: RuntimeDep) -> dict[str, Any]:
    return rt.health()
