"""Page plumbing: templates, language, the optional page session, HTML error pages, static files.

A page route is a :class:`PageRoute`: any :class:`~ledger.errors.ZhixinError` or request
validation error it raises becomes the error page (with the 4xx status and a readable message)
instead of problem+json. Page form posts must come from this origin (``Origin`` checked) and the
session cookie is ``SameSite=Strict``, so a foreign site cannot post as the user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from ledger.errors import Forbidden, NotFound, ZhixinError
from ledger.node import REPO_ROOT
from ledger.roles import Role

from ..auth import COOKIE_NAME, Unauthenticated
from ..deps import Reader, Session, get_optional_session
from .i18n import LANGS, translate

__all__ = [
    "LANG_COOKIE",
    "PageRoute",
    "PageSessionDep",
    "install_pages",
    "lang_of",
    "page_reader",
    "render",
    "require_page_role",
    "require_page_session",
    "templates",
]

log = logging.getLogger("zhixin.pages")

HERE = Path(__file__).parent
LANG_COOKIE = "zhixin_lang"
templates = Jinja2Templates(directory=HERE / "templates")

# npm packages served as static files (pinned in package.json; no build step)
VENDOR: dict[str, Path] = {
    "ethers.umd.min.js": REPO_ROOT / "node_modules" / "ethers" / "dist" / "ethers.umd.min.js",
}


def lang_of(request: Request) -> str:
    q = request.query_params.get("lang")
    if q in LANGS:
        return q
    c = request.cookies.get(LANG_COOKIE)
    return c if c in LANGS else "zh"


def page_session(request: Request) -> Session | None:
    """The caller's session, or None; a dead or forged cookie is signed out, not an error."""
    try:
        return get_optional_session(request)
    except Unauthenticated:
        request.state.clear_session = True
        return None
    except ZhixinError:  # the service is still starting: pages render signed out
        return None


PageSessionDep = Annotated[Session | None, Depends(page_session)]


def require_page_session(session: Session | None) -> Session:
    if session is None:
        raise Unauthenticated("sign in first")
    return session


def require_page_role(session: Session | None, *roles: Role) -> Session:
    s = require_page_session(session)
    if not s.has(*roles):
        names = " / ".join(r.value for r in roles)
        raise Forbidden(f"this page needs a session of a {names} role holder")
    return s


def page_reader(request: Request, session: Session | None) -> Reader:
    rt = getattr(request.app.state, "runtime", None)
    return Reader(session, rt.engine if rt is not None else None)


def _nav(session: Session | None) -> list[tuple[str, str]]:
    items = [("/", "nav.home"), ("/credit", "nav.credit"), ("/lists", "nav.lists")]
    if session is not None and session.pseudonym is not None:
        items.append(("/me", "nav.me"))
    if session is not None and session.has(Role.AGENCY):
        items.append(("/agency", "nav.agency"))
    if session is not None and session.has(Role.AUDITOR):
        items.append(("/audit", "nav.audit"))
    if session is not None and session.has(Role.AUDITOR, Role.GOVERNOR):
        items.append(("/office", "nav.office"))
    return items


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    session: Session | None = None,
    status: int = 200,
) -> HTMLResponse:
    """Render ``template`` with the language, session and navigation every page needs."""
    lang = lang_of(request)
    settings = request.app.state.settings

    def t(key: str) -> str:
        return translate(key, lang)

    ctx: dict[str, Any] = {
        "lang": lang,
        "other_lang": "en" if lang == "zh" else "zh",
        "t": t,
        "session": session,
        "nav": _nav(session),
        "path": request.url.path,
        "dev": bool(settings.dev),
    }
    ctx.update(context or {})
    resp = templates.TemplateResponse(request, template, ctx, status_code=status)
    _finish(request, resp)
    return resp


def _finish(request: Request, resp: Response) -> None:
    if request.query_params.get("lang") in LANGS:
        resp.set_cookie(LANG_COOKIE, lang_of(request), max_age=365 * 86400, samesite="lax")
    if getattr(request.state, "clear_session", False):
        resp.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    resp.headers.setdefault("Cache-Control", "no-store")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")


def error_page(request: Request, status: int, detail: str, code: str = "error") -> HTMLResponse:
    session = None
    try:
        session = page_session(request)
    except Exception:  # an error page must render even with a broken session store
        session = None
    return render(
        request,
        "error.html",
        {"status": status, "detail": detail, "code": code},
        session=session,
        status=status,
    )


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin.rstrip("/") == str(request.base_url).rstrip("/")


class PageRoute(APIRoute):
    """An HTML route: errors render as pages; cross-origin form posts are refused."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            if request.method not in ("GET", "HEAD") and not _same_origin(request):
                return error_page(request, 403, "cross-origin form posts are refused", "origin")
            try:
                return await inner(request)
            except ZhixinError as exc:
                status = exc.status if 400 <= exc.status < 500 else 503
                if status == 503 and exc.status >= 500 and exc.status not in (502, 503):
                    log.error("page %s failed: %s", request.url.path, exc.detail)
                    status, detail = 500, "internal error"
                    return error_page(request, status, detail, "internal")
                return error_page(request, status, exc.detail, exc.code)
            except RequestValidationError as exc:
                errs = exc.errors()
                first = errs[0] if errs else {}
                where = ".".join(str(p) for p in first.get("loc", ())[1:])
                msg = str(first.get("msg", "invalid input"))
                return error_page(request, 422, f"{where}: {msg}" if where else msg, "validation")

        return handler


def _vendor(name: str) -> FileResponse:
    path = VENDOR.get(name)
    if path is None or not path.is_file():
        raise NotFound(f"no vendored file {name!r} (run `make bootstrap`)")
    return FileResponse(
        path, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
    )


def install_pages(app: FastAPI) -> None:
    """Add the page routers, the vendored npm files and the static folder to ``app``."""
    from . import agency, audit, citizen, home, public

    app.add_api_route("/static/vendor/{name}", _vendor, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for area in (home, public, citizen, agency, audit):
        app.include_router(area.router)
