"""Home, sign-in and sign-out pages (shared by every area)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ledger.errors import NotFound

from ..auth import COOKIE_NAME, get_auth
from .core import PageRoute, PageSessionDep, render

__all__ = ["DEMO_PASSWORD", "router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

DEMO_PASSWORD = "demo"  # the demo keystores' password: printed by `make serve`, demo only
_NAME = re.compile(r"[a-z0-9-]{1,40}")


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: PageSessionDep) -> HTMLResponse:
    return render(request, "home.html", session=session)


@router.get("/signin", response_class=HTMLResponse)
def signin(request: Request, session: PageSessionDep) -> HTMLResponse:
    demo = _demo_index(request)
    return render(
        request,
        "signin.html",
        {"demo": demo, "demo_password": DEMO_PASSWORD, "next": _next(request)},
        session=session,
    )


@router.post("/signout")
def signout(request: Request, session: PageSessionDep) -> Response:
    if session is not None:
        get_auth(request).sessions.revoke(session.record.token_hash, datetime.now(UTC))
    resp = RedirectResponse("/", status_code=303)
    resp.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return resp


@router.get("/signin/demo/{name}")
def demo_file(request: Request, name: str) -> JSONResponse:
    """A demo identity's encrypted keystore or wallet file (``--dev`` only), so a newcomer
    can try the in-browser signing without preparing files; real users bring their own."""
    demo = _demo_index(request)
    if not _NAME.fullmatch(name) or name not in demo:
        raise NotFound(f"no demo identity {name!r}")
    path = request.app.state.settings.data_dir / "demo" / demo[name]["file"]
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise NotFound(f"demo file for {name!r} is missing") from exc
    return JSONResponse(doc, headers={"Cache-Control": "no-store"})


def _demo_index(request: Request) -> dict[str, dict[str, str]]:
    """name -> {file, kind, role, label} of the demo identities, empty outside ``--dev``."""
    settings = request.app.state.settings
    if not settings.dev:
        return {}
    path = settings.data_dir / "demo" / "index.json"
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def _next(request: Request) -> str:
    """Where to go after sign-in: a local path only (no open redirect)."""
    nxt = request.query_params.get("next", "")
    return nxt if nxt.startswith("/") and not nxt.startswith("//") else ""
