"""Request ids, the JSON access log (no secrets in it), /metrics and logging set-up."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from api.main import create_app
from api.observability import (
    JsonFormatter,
    RequestContextMiddleware,
    RequestIdFilter,
    configure_logging,
    install_observability,
)
from api.problems import install_problem_handlers
from api.settings import Settings
from ledger.errors import ConfigurationError, TransportError
from ledger.records import record_from_json, sign_record, signed_record_to_json
from tests.api.auth_helpers import headers

HEX32 = re.compile(r"[0-9a-f]{32}")
ENTITY = "91440300568520498A"
PERSON_ID = "110101199003070000"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    d = tmp_path_factory.mktemp("observability")
    settings = Settings(data_dir=d, chain="embedded", dev=True, index_poll_s=0.05)
    with TestClient(create_app(settings)) as c:
        yield c, json.loads((d / "dev-keys.json").read_text())


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Everything logged at INFO and above, as our JSON handler on the root logger writes it."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.WARNING, logger="httpx2")  # the test client's own URL lines
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield buf
    finally:
        root.removeHandler(handler)


def json_lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def access_lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [x for x in json_lines(buf) if x["logger"] == "zhixin.access"]


def scrape(c: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(m: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> Any:
    return m.get((name, frozenset(labels.items())))


def names(m: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> set[str]:
    return {name for name, _ in m}


# ---- request ids ----


def test_request_id_is_generated_and_echoed(env: tuple[TestClient, dict[str, Any]]) -> None:
    c, _ = env
    a = c.get("/healthz").headers["x-request-id"]
    b = c.get("/healthz").headers["x-request-id"]
    assert HEX32.fullmatch(a) and HEX32.fullmatch(b) and a != b
    # an error response carries one too
    r = c.get("/no-such-thing")
    assert r.status_code == 404 and HEX32.fullmatch(r.headers["x-request-id"])


@pytest.mark.parametrize("given", ["abc-123.X_y", "a" * 64, "0"])
def test_sane_request_id_is_echoed(env: tuple[TestClient, dict[str, Any]], given: str) -> None:
    c, _ = env
    assert c.get("/healthz", headers={"X-Request-ID": given}).headers["x-request-id"] == given


@pytest.mark.parametrize("given", ["a" * 65, "bad id", "x;drop", "é".encode(), "<script>", ""])
def test_insane_request_id_is_replaced(
    env: tuple[TestClient, dict[str, Any]], given: str | bytes
) -> None:
    c, _ = env
    raw = given if isinstance(given, bytes) else given.encode()
    got = c.get("/healthz", headers=[(b"X-Request-ID", raw)]).headers["x-request-id"]
    assert got.encode() != raw and HEX32.fullmatch(got)


# ---- the access log ----


def test_access_log_is_json_with_route_template_and_no_secrets(
    env: tuple[TestClient, dict[str, Any]], logs: io.StringIO
) -> None:
    c, _ = env
    r = c.get(
        "/v1/credit-records",
        params={"subject_kind": "person", "subject_id": PERSON_ID},
        headers={
            "Authorization": "Bearer secret-token-xyz",
            "Cookie": "zhixin_session=secret-cookie-abc",
            "X-Request-ID": "req-one",
        },
    )
    assert r.status_code == 401
    rid = "0x" + "ab" * 32
    r2 = c.get(f"/v1/credit-records/{rid}", headers={"X-Request-ID": "req-two"})
    r3 = c.get("/nothing/here/7", headers={"X-Request-ID": "req-three"})
    assert r3.status_code == 404
    text = logs.getvalue()
    for secret in ("secret-token-xyz", "secret-cookie-abc", PERSON_ID, "subject_id", rid, "/7"):
        assert secret not in text
    lines = {x["request_id"]: x for x in access_lines(logs)}
    one, two, three = lines["req-one"], lines["req-two"], lines["req-three"]
    assert one["route"] == "/v1/credit-records" and one["status"] == 401
    assert one["method"] == "GET" and one["level"] == "INFO"
    assert isinstance(one["duration_ms"], float) and one["duration_ms"] >= 0
    assert one["ts"].endswith("Z") and "T" in one["ts"]
    assert one["msg"].startswith("GET /v1/credit-records 401 ")
    assert two["route"] == "/v1/credit-records/{record_id}" and two["status"] == r2.status_code
    assert three["route"] == "unmatched" and three["status"] == 404


def test_unexpected_error_is_500_with_the_id_logged_and_counted(logs: io.StringIO) -> None:
    app = FastAPI()
    install_problem_handlers(app)
    install_observability(app)

    @app.get("/boom/{n}")
    def boom(n: int) -> None:
        logging.getLogger("zhixin.test").info("inside the request")
        raise RuntimeError("kaboom")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom/3", headers={"X-Request-ID": "trace-500"})
        assert r.status_code == 500
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["x-request-id"] == "trace-500"
        m = scrape(c)
    assert value(m, "zhixin_http_requests_total", method="GET", route="/boom/{n}", status="500")
    assert value(m, "zhixin_metrics_source_up", source="runtime") == 0
    lines = json_lines(logs)
    inside = next(x for x in lines if x["msg"] == "inside the request")
    assert inside["request_id"] == "trace-500"
    err = next(x for x in lines if x["logger"] == "zhixin.api")
    assert err["level"] == "ERROR" and err["request_id"] == "trace-500"
    assert "RuntimeError: kaboom" in err["exc_info"]
    acc = next(x for x in lines if x["logger"] == "zhixin.access")
    assert (acc["route"], acc["status"], acc["request_id"]) == ("/boom/{n}", 500, "trace-500")


def test_middleware_streams_without_buffering() -> None:
    sent: list[dict[str, Any]] = []
    seen_by_app: list[int] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        seen_by_app.append(len(sent))  # the first chunk is already out
        await send({"type": "http.response.body", "body": b"two", "more_body": False})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    from prometheus_client import CollectorRegistry

    from api.observability import HttpMetrics

    mw = RequestContextMiddleware(inner, HttpMetrics(CollectorRegistry()))
    scope = {"type": "http", "method": "GET", "path": "/s", "headers": [], "query_string": b""}
    # a fresh loop in its own thread: a session-scoped Playwright (sync API) may be running a
    # loop on this worker's main thread
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        ex.submit(asyncio.run, mw(scope, receive, send)).result()  # type: ignore[arg-type]
    assert seen_by_app == [2]
    assert [m.get("body") for m in sent] == [None, b"one", b"two"]
    hdrs = dict(sent[0]["headers"])
    assert HEX32.fullmatch(hdrs[b"x-request-id"].decode())


# ---- /metrics ----


def _signed(c: TestClient, key: str, **fields: Any) -> dict[str, Any]:
    r = c.post("/v1/credit-records/prepare", json=fields, headers=headers(c, key))
    assert r.status_code == 200, r.text
    rec = record_from_json(r.json()["record"])
    domain = c.app.state.runtime.credit.domain  # type: ignore[attr-defined]
    return signed_record_to_json(sign_record(rec, bytes.fromhex(key[2:]), domain))


def test_metrics_counts_requests_and_reads_the_runtime(
    env: tuple[TestClient, dict[str, Any]],
) -> None:
    c, keys = env
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    before = scrape(c)
    for _ in range(3):
        assert c.get("/healthz").status_code == 200
    item = _signed(
        c,
        keys["agency-tax"]["private_key"],
        subject={"kind": "entity", "id": ENTITY},
        category="tax.arrears",
    )
    r = c.post("/v1/credit-records", json=[item])
    assert r.status_code == 202, r.text
    rid = r.json()["items"][0]["id"]
    deadline = time.monotonic() + 20
    st: dict[str, Any] = {}
    while time.monotonic() < deadline and not st.get("indexed"):
        st = c.get(f"/v1/credit-records/{rid}").json()
        time.sleep(0.05)
    assert st.get("indexed"), st
    m = scrape(c)
    health = {"method": "GET", "route": "/healthz", "status": "200"}
    assert (
        value(m, "zhixin_http_requests_total", **health)
        - (value(before, "zhixin_http_requests_total", **health) or 0)
        == 3
    )
    posted = value(
        m, "zhixin_http_requests_total", method="POST", route="/v1/credit-records", status="202"
    )
    assert posted == 1
    h = {"method": "GET", "route": "/healthz"}
    assert (
        value(m, "zhixin_http_request_duration_seconds_count", **h)
        - (value(before, "zhixin_http_request_duration_seconds_count", **h) or 0)
        == 3
    )
    assert value(m, "zhixin_http_request_duration_seconds_sum", **h) > 0
    # runtime gauges: the one record is in the outbox (on chain or final) and in the index
    box = {s: value(m, "zhixin_outbox_rows", status=s) for s in ("pending", "submitted")}
    assert box == {"pending": 0, "submitted": 0}
    landed = sum(value(m, "zhixin_outbox_rows", status=s) for s in ("onchain", "final"))
    assert landed == 1 and value(m, "zhixin_outbox_rows", status="rejected") == 0
    assert value(m, "zhixin_indexed_records") == 1
    cursor, head = value(m, "zhixin_indexer_cursor_block"), value(m, "zhixin_chain_head_block")
    assert st["block_number"] <= cursor <= head <= rt.chain.head()
    assert cursor >= rt.deployment.deploy_block
    for source in ("runtime", "database", "chain"):
        assert value(m, "zhixin_metrics_source_up", source=source) == 1
    # aggregates only: no record id, address or pseudonym
    body = c.get("/metrics").text.lower()
    assert rid.lower() not in body and keys["agency-tax"]["address"].lower() not in body
    assert "0x" not in body
    assert "/metrics" not in c.get("/openapi.json").json()["paths"]


def test_metrics_answer_while_the_runtime_is_none(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, chain="embedded", dev=True))
    c = TestClient(app)  # no lifespan: the runtime never starts
    assert app.state.runtime is None
    assert c.get("/healthz").status_code == 503
    m = scrape(c)
    assert value(m, "zhixin_metrics_source_up", source="runtime") == 0
    assert value(m, "zhixin_http_requests_total", method="GET", route="/healthz", status="503")
    assert not {"zhixin_outbox_rows", "zhixin_chain_head_block"} & names(m)


def test_metrics_survive_a_broken_database_and_chain(
    env: tuple[TestClient, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, _ = env
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    broken = create_engine("sqlite:////nonexistent-dir/zhixin.db")
    try:
        monkeypatch.setattr(rt, "engine", broken)
        m = scrape(c)
        assert value(m, "zhixin_metrics_source_up", source="database") == 0
        assert value(m, "zhixin_metrics_source_up", source="chain") == 1
        assert "zhixin_outbox_rows" not in names(m) and "zhixin_indexed_records" not in names(m)
        assert value(m, "zhixin_chain_head_block") >= rt.deployment.deploy_block
        monkeypatch.undo()

        def down() -> int:
            raise TransportError("node unreachable")

        monkeypatch.setattr(rt.chain, "head", down)
        m = scrape(c)
        assert value(m, "zhixin_metrics_source_up", source="chain") == 0
        assert value(m, "zhixin_metrics_source_up", source="database") == 1
        assert "zhixin_chain_head_block" not in names(m)
        assert value(m, "zhixin_outbox_rows", status="pending") is not None
        assert value(m, "zhixin_http_requests_total", method="GET", route="/metrics", status="200")
    finally:
        monkeypatch.undo()
        broken.dispose()


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    a = create_app(Settings(data_dir=tmp_path / "a", chain="embedded", dev=True))
    b = create_app(Settings(data_dir=tmp_path / "b", chain="embedded", dev=True))
    assert a.state.metrics is not b.state.metrics
    ca, cb = TestClient(a), TestClient(b)
    ca.get("/healthz")
    ma, mb = scrape(ca), scrape(cb)
    k = {"method": "GET", "route": "/healthz", "status": "503"}
    assert value(ma, "zhixin_http_requests_total", **k) == 1
    assert value(mb, "zhixin_http_requests_total", **k) is None


# ---- logging set-up ----


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {n: logging.getLogger(n).level for n in ("httpx", "httpx2", "httpcore", "urllib3")}
    try:
        yield root
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)
        for n, lvl in quiet.items():
            logging.getLogger(n).setLevel(lvl)


def test_configure_logging_is_idempotent(root_logger: logging.Logger) -> None:
    before = len(root_logger.handlers)
    h1 = configure_logging("debug")
    h2 = configure_logging("WARNING", json=False)
    assert h1 is h2 and len(root_logger.handlers) == before + 1
    assert root_logger.level == logging.WARNING
    assert not isinstance(h2.formatter, JsonFormatter)
    configure_logging("info")
    assert len(root_logger.handlers) == before + 1 and isinstance(h1.formatter, JsonFormatter)
    assert root_logger.level == logging.INFO
    assert logging.getLogger("httpx2").level == logging.WARNING  # URLs carry query strings
    with pytest.raises(ConfigurationError):
        configure_logging("loud")


def test_json_formatter_fields_extra_and_exception() -> None:
    try:
        raise ValueError("bad thing")
    except ValueError:
        rec = logging.LogRecord(
            "zhixin.x", logging.ERROR, __file__, 1, "n=%d", (5,), sys.exc_info()
        )
    rec.route = "/r/{id}"
    rec.color_message = "\x1b[1mn=%d\x1b[0m"  # uvicorn's: never exported
    RequestIdFilter().filter(rec)  # outside a request: no id
    out = json.loads(JsonFormatter().format(rec))
    assert out["msg"] == "n=5" and out["level"] == "ERROR" and out["logger"] == "zhixin.x"
    assert out["route"] == "/r/{id}" and "request_id" not in out and "color_message" not in out
    assert "ValueError: bad thing" in out["exc_info"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", out["ts"])
