"""Annotated dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ledger.credit_service import CreditService
from ledger.errors import ZhixinError

from .runtime import Runtime
from .settings import Settings

__all__ = ["CreditDep", "ReaderDep", "RuntimeDep", "SettingsDep"]


class ServiceStarting(ZhixinError):
    code = "starting"
    status = 503


def get_runtime(request: Request) -> Runtime:
    rt: Runtime | None = getattr(request.app.state, "runtime", None)
    if rt is None:
        raise ServiceStarting("the service is starting")
    return rt


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_credit(request: Request) -> CreditService:
    rt = get_runtime(request)
    if rt.credit is None:
        raise ServiceStarting("the credit service is starting")
    return rt.credit


def allow_reader(request: Request) -> None:
    """The one gate in front of every read of records; the service issue tightens it."""
    return None


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
CreditDep = Annotated[CreditService, Depends(get_credit)]
ReaderDep = Annotated[None, Depends(allow_reader)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
