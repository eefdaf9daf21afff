"""Annotated dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ledger.errors import ZhixinError

from .runtime import Runtime
from .settings import Settings

__all__ = ["RuntimeDep", "SettingsDep"]


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


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
