"""The HTTP skeleton: /healthz, OpenAPI, problem+json errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, chain="embedded", dev=True)
    with TestClient(create_app(settings)) as c:
        yield c


def test_healthz_reports_chain(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["node"] == {
        "kind": "embedded",
        "status": "up",
        "rpc_url": None,
        "pid": None,
        "running": None,
    }
    assert set(body["contracts"]) >= {"Roles"}
    assert body["contracts"]["Roles"].startswith("0x")
    assert isinstance(body["head_block"], int) and body["head_block"] >= body["deploy_block"]


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/healthz" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_unknown_route_is_problem_json(client: TestClient) -> None:
    r = client.get("/no-such-thing")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 404 and body["type"].endswith("/not-found")
    r = client.post("/healthz")
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/problem+json"


def test_dev_identities_hold_their_roles(client: TestClient, tmp_path: Path) -> None:
    import json

    from ledger.roles import Role

    keys = json.loads((tmp_path / "dev-keys.json").read_text())
    assert oct((tmp_path / "dev-keys.json").stat().st_mode & 0o777) == "0o600"
    assert set(keys) == {
        "governor",
        "agency-tax",
        "agency-market",
        "agency-community",
        "issuer",
        "auditor",
        "rule-publisher",
    }
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    roles = rt.roles
    for ident in keys.values():
        assert roles.has_role(Role(ident["role"]), ident["address"])
    tax, market = keys["agency-tax"], keys["agency-market"]
    assert tax["categories"] and market["categories"]
    assert not set(tax["categories"]) & set(market["categories"])
    assert roles.can_write(tax["address"], 301)  # tax.arrears
    assert not roles.can_write(tax["address"], 104)  # admin_penalty.serious
    assert roles.can_write(market["address"], 104)


def test_deeply_nested_json_is_refused_not_a_crash(client: TestClient) -> None:
    """py_ecc lifts the recursion limit to 100,000 at import; the app bounds it again, so a
    body nested 100,000 deep is a 4xx problem instead of a C stack overflow."""
    import sys

    assert sys.getrecursionlimit() <= 4000
    body = "[" * 100_000 + "]" * 100_000
    for path in ("/credentials/verify", "/presentations/verify", "/v1/credit-records"):
        r = client.post(path, content=body, headers={"content-type": "application/json"})
        assert r.status_code in (400, 422), (path, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
