"""RFC 9457 problem details for every error the service returns.

Invariant: no response body ever carries a stack trace; anything unexpected becomes a generic
500 problem and is logged server-side with the request id.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.errors import ZhixinError

__all__ = ["PROBLEM_BASE", "install_problem_handlers", "problem"]

PROBLEM_BASE = "https://zhixin.example/problems/"
MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("zhixin.api")


def problem(
    status: int, code: str, title: str, detail: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_BASE + code, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(
        jsonable_encoder(body, custom_encoder={bytes: _hex}),
        status_code=status,
        media_type=MEDIA_TYPE,
    )


def _hex(b: bytes) -> str:
    """Bytes in a problem (e.g. a contract error's arguments) as 0x-hex, never a decode error."""
    return "0x" + b.hex()


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    502: "Bad gateway",
    503: "Service unavailable",
}


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ZhixinError)
    async def _zhixin(request: Request, exc: ZhixinError) -> JSONResponse:
        status = exc.status if 400 <= exc.status < 600 else 500
        if status >= 500 and status not in (502, 503):
            log.error("internal error on %s: %s", request.url.path, exc.detail)
            return problem(500, "internal", "Internal error")
        extra = {k: v for k, v in exc.extra.items() if v not in (None, ())}
        resp = problem(status, exc.code, _TITLES.get(status, "Error"), exc.detail, **extra)
        if status == 401:  # RFC 9110 §11.6.1: a 401 names the scheme it wants
            resp.headers["WWW-Authenticate"] = 'Bearer realm="zhixin"'
        return resp

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        detail = f"{where}: {first['msg']}" if where else str(first["msg"])
        return problem(422, "validation", "Unprocessable content", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http")
        title = _TITLES.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem(exc.status_code, code, title, detail)

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        # only a caller's deeply nested JSON gets here (see api.main._bound_recursion)
        log.warning("refused a too deeply nested request on %s", request.url.path)
        return problem(422, "too-deep", "Unprocessable content", "JSON nested too deeply")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return problem(500, "internal", "Internal error")
