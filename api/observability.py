"""Operations: request ids, structured (JSON) logs, one access line per request, and /metrics.

Invariants:

* Every HTTP request has a request id: the caller's ``X-Request-ID`` if it is a sane token
  (1-64 characters of ``[A-Za-z0-9._-]``), else a fresh uuid4 hex. It is echoed in the
  response's ``X-Request-ID`` header (error responses too) and attached to every log record
  emitted while the request is handled (:class:`RequestIdFilter`).
* The access line (logger ``zhixin.access``, INFO) carries method, route *template*, status,
  duration and request id, nothing else: never the Authorization header, cookies, the query
  string, path parameters or a body. Identifiers travel in those, and a log is not a place
  that may hold them.
* The middleware is pure ASGI and the outermost layer of the app: it forwards every message
  as it comes (streaming bodies are never buffered) and sees the final status, including the
  500 that Starlette's error middleware writes for an unexpected exception.
* Metrics live in a :class:`~prometheus_client.CollectorRegistry` of the app's own
  (``app.state.metrics``), never in the process-wide default one, so many apps can live in
  one process. Label values are bounded: known methods, route templates (``unmatched`` when no
  route matched), status codes.
* ``GET /metrics`` is unauthenticated, by decision: a scraper holds no session, and it lists
  only aggregate numbers (counts, durations, block heights): no ids, addresses, pseudonyms.
  It never answers 500 because of the runtime: a part that cannot be read (service starting,
  database or chain down) is left out and ``zhixin_metrics_source_up{source}`` says 0.
"""

from __future__ import annotations

import json as _json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.db import credit_records, index_cursor, outbox
from ledger.errors import ConfigurationError, TransportError

__all__ = [
    "ACCESS_LOGGER",
    "OUTBOX_STATUSES",
    "REQUEST_ID_HEADER",
    "HttpMetrics",
    "JsonFormatter",
    "RequestContextMiddleware",
    "RequestIdFilter",
    "RuntimeCollector",
    "configure_logging",
    "current_request_id",
    "install_observability",
    "sane_request_id",
]

REQUEST_ID_HEADER: Final = "X-Request-ID"
ACCESS_LOGGER: Final = "zhixin.access"
UNMATCHED: Final = "unmatched"
# the outbox row life cycle (ledger/db.py): every status is exported, 0 included
OUTBOX_STATUSES: Final = ("pending", "submitted", "onchain", "final", "rejected")
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SANE_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HANDLER_MARK: Final = "_zhixin_observability"
_URL_LOGGERS: Final = ("httpx", "httpx2", "httpcore", "urllib3")
_CHATTY_LOGGERS: Final = ("alembic",)

log = logging.getLogger("zhixin.observability")
access_log = logging.getLogger(ACCESS_LOGGER)

_request_id: ContextVar[str | None] = ContextVar("zhixin_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled in this context (None outside a request)."""
    return _request_id.get()


def sane_request_id(value: str | None) -> str | None:
    """``value`` if it is safe to echo and log as an id (no injection into headers or logs)."""
    if value is not None and _SANE_ID.fullmatch(value):
        return value
    return None


# ---- logging ----


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (None outside a request).

    Installed on handlers, not loggers: a logger's filter does not see records propagated
    from its children, a handler's sees them all. It never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = _request_id.get()
        return True


# not extras: LogRecord's own attributes, ours, and uvicorn's ANSI-coloured copy of the message
_STANDARD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "request_id", "rid", "color_message"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO-8601 UTC), level, logger, msg, request_id when set,
    the record's ``extra`` fields, and the formatted exception/stack when present.

    Machine-readable so a collector can index fields (route, status) without regexes."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        out: dict[str, Any] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid is not None:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return _json.dumps(out, ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, still with the request id."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(rid)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.rid = getattr(record, "request_id", None) or "-"
        return super().format(record)


def configure_logging(level: str = "info", json: bool = True) -> logging.Handler:
    """Route all logging (ours, uvicorn's with ``log_config=None``) to one stderr handler on
    the root logger, JSON by default. Idempotent: a second call reconfigures the same handler
    instead of adding another (a duplicated handler duplicates every line)."""
    lvl = logging.getLevelNamesMapping().get(level.strip().upper())
    if lvl is None:
        raise ConfigurationError(f"unknown log level {level!r} (debug, info, warning, error)")
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, _HANDLER_MARK, False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        setattr(handler, _HANDLER_MARK, True)
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if json else _TextFormatter())
    root.setLevel(lvl)
    for name in _URL_LOGGERS:  # their INFO lines carry full URLs, query strings included
        logging.getLogger(name).setLevel(max(lvl, logging.WARNING))
    for name in _CHATTY_LOGGERS:  # one line per migration plugin at every start: noise
        logging.getLogger(name).setLevel(max(lvl, logging.WARNING))
    return handler


# ---- metrics ----


class HttpMetrics:
    """The request counter and latency histogram of one app, in that app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "zhixin_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "zhixin_http_request_duration_seconds",
            "Time from request to the last byte of the response, by method and route template.",
            ["method", "route"],
            registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)


class RuntimeCollector(Collector):
    """Gauges read from the app's runtime at scrape time: outbox rows by status, the indexer
    cursor, the chain head and the indexed record count.

    Read at scrape time rather than pushed, so they are exact whenever looked at and cost
    nothing between scrapes. Each source is read on its own: one that fails (runtime None
    while starting, a broken database, a chain that is down) is logged at WARNING and
    reported as ``zhixin_metrics_source_up{source} 0``; the others are still exported."""

    SOURCES: Final = ("runtime", "database", "chain")

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterable[Metric]:
        up = dict.fromkeys(self.SOURCES, 0)
        families: list[Metric] = []
        rt = getattr(self.app.state, "runtime", None)
        if rt is not None:
            up["runtime"] = 1
            if rt.engine is not None:
                try:
                    families.extend(self._database(rt))
                    up["database"] = 1
                except Exception as exc:
                    log.warning("metrics: database unreadable: %s", type(exc).__name__)
            try:
                head = int(rt.chain.head())
            except TransportError as exc:
                log.warning("metrics: chain unreadable: %s", exc.detail)
            except Exception as exc:
                log.warning("metrics: chain unreadable: %s", type(exc).__name__)
            else:
                g = GaugeMetricFamily("zhixin_chain_head_block", "The chain's latest block number.")
                g.add_metric([], head)
                families.append(g)
                up["chain"] = 1
        src = GaugeMetricFamily(
            "zhixin_metrics_source_up",
            "1 if the source could be read for this scrape, else 0.",
            labels=["source"],
        )
        for name in self.SOURCES:
            src.add_metric([name], up[name])
        families.append(src)
        return families

    @staticmethod
    def _database(rt: Any) -> Iterator[Metric]:
        """All database gauges, read before any is yielded: a failure exports none of them."""
        name = rt.indexer.name if rt.indexer is not None else "main"
        with rt.engine.connect() as conn:
            counts = dict.fromkeys(OUTBOX_STATUSES, 0)
            rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
            counts.update({str(s): int(n) for s, n in rows})
            cursor = conn.execute(
                select(index_cursor.c.block_number).where(index_cursor.c.name == name)
            ).scalar()
            records = conn.execute(select(func.count()).select_from(credit_records)).scalar_one()
        box = GaugeMetricFamily("zhixin_outbox_rows", "Outbox rows by status.", labels=["status"])
        for status, n in sorted(counts.items()):
            box.add_metric([status], n)
        yield box
        if cursor is not None:  # nothing indexed yet: no cursor to report
            g = GaugeMetricFamily(
                "zhixin_indexer_cursor_block", "The last block the indexer has indexed."
            )
            g.add_metric([], int(cursor))
            yield g
        g = GaugeMetricFamily("zhixin_indexed_records", "Credit records in the index.")
        g.add_metric([], int(records))
        yield g


# ---- the middleware ----


def _incoming_id(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"x-request-id":
            return sane_request_id(value.decode("latin-1"))
    return None


def _route_template(scope: Scope) -> str:
    """The matched route's path template (bounded cardinality), else ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class RequestContextMiddleware:
    """Pure ASGI: request id in, request id out, one access line and the HTTP metrics.

    Not ``BaseHTTPMiddleware``: that one runs the app in another task and re-streams the
    body; this one only wraps ``send`` to read the status and add one header."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or uuid.uuid4().hex
        token = _request_id.set(rid)
        started = time.perf_counter()
        status = 500  # if the app fails before it starts a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = str(scope.get("method", "")).upper()
            method = method if method in _METHODS else "OTHER"
            route = _route_template(scope)
            self.metrics.observe(method, route, status, elapsed)
            access_log.info(
                "%s %s %d %.1fms",
                method,
                route,
                status,
                elapsed * 1000,
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "request_id": rid,
                },
            )
            _request_id.reset(token)


# ---- wiring ----


def install_observability(app: FastAPI) -> None:
    """Request ids, the access log, the metrics registry (``app.state.metrics``) and
    ``GET /metrics`` for ``app``; call once, before the app serves (as ``add_middleware``)."""
    if app.middleware_stack is not None:
        raise RuntimeError("install_observability must run before the app starts")
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry)
    registry.register(RuntimeCollector(app))
    app.state.metrics = registry

    # Outermost, around Starlette's ServerErrorMiddleware (add_middleware would put it inside):
    # so an unexpected exception's 500 also carries the id, is counted with its real status,
    # and the error handler's log line still sees the request id.
    build_inner = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        return RequestContextMiddleware(build_inner(), metrics)

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics(request: Request) -> Response:
        # sync: the scrape reads the database and the chain, so it runs in the thread pool
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), headers={"Content-Type": content_type})
