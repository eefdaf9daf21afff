"""Builds the FastAPI app. With no runtime given, the app's lifespan starts one from the
settings and closes it on shutdown."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .observability import install_observability
from .pages import install_pages
from .problems import install_problem_handlers
from .routes import audit as audit_routes
from .routes import auth as auth_routes
from .routes import credit, health
from .routes import identity as identity_routes
from .routes import objections as objection_routes
from .routes import rules as rules_routes
from .routes import stats as stats_routes
from .runtime import Runtime
from .settings import Settings

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    runtime: Runtime | None = None,
    *,
    close_runtime: bool = False,
) -> FastAPI:
    """``close_runtime``: the app's shutdown closes a given runtime (drains, stops the node);
    uvicorn re-raises SIGTERM after shutdown, so cleanup must happen here, not after run()."""
    settings = settings or (runtime.settings if runtime else Settings())
    _bound_recursion()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = app.state.runtime if close_runtime else None
        if app.state.runtime is None:
            owned = app.state.runtime = Runtime.start(settings)
        try:
            yield
        finally:
            if owned is not None:
                owned.close()
                app.state.runtime = None

    app = FastAPI(
        title="zhixin 智信",
        version="0.1.0",
        description="Identity and credit ledger on a permissioned chain.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.runtime = runtime
    install_problem_handlers(app)
    install_observability(app)
    # the VC-API routes first: /presentations/verify is the hottest path (route matching
    # walks the routers in order); no paths overlap
    app.include_router(identity_routes.router)
    app.include_router(health.router)
    app.include_router(auth_routes.router)
    app.include_router(credit.router)
    app.include_router(audit_routes.router)
    app.include_router(rules_routes.router)
    app.include_router(objection_routes.router)
    app.include_router(stats_routes.router)
    install_pages(app)
    return app


RECURSION_LIMIT = 4000


def _bound_recursion() -> None:
    """py_ecc (imported through the chain stack) raises the interpreter's recursion limit to
    100,000 at import; a JSON body nested that deep would then overflow the C stack and kill
    the process. Bounded, the parser raises RecursionError, answered as a 422."""
    if sys.getrecursionlimit() > RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)
