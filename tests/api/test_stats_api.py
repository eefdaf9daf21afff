"""Batch prepare, community grids and statistics through the HTTP API on the embedded chain:
prepare-batch answers per item (typed data with distinct nonces, or a precise problem); the grid
rides beside a record off chain (never in its id or signature); records-by-category, list sizes
and the credit office's heat map are aggregates with small-cell and complementary suppression
(k = 5 distinct subjects), the heat map for AUDITOR / GOVERNOR sessions only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.main import create_app
from api.settings import Settings
from ledger.db import outbox
from ledger.records import record_from_json, sign_record, signed_record_to_json
from tests.api.auth_helpers import as_
from tests.api.test_objections_api import citizen, denied, indexed, ric

ENTITY = "91440300568520498A"
P = [ric(f"44060420050101{i:03d}") for i in range(11)]  # persons P0..P5 and Q0..Q4 below
STARTER = (
    __import__("importlib.resources", fromlist=["files"])
    .files("ledger")
    .joinpath("data", "rules", "district-joint-credit.yaml")
    .read_text()
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d = tmp_path_factory.mktemp("stats")
    settings = Settings(data_dir=d, chain="embedded", dev=True, index_poll_s=0.05)
    assert settings.stats_min_cell == 5
    with TestClient(create_app(settings)) as c:
        keys = json.loads((d / "dev-keys.json").read_text())
        yield {"c": c, "keys": keys, "h": lambda name: as_(c, keys, name)}


def person(i: int, category: str, grid: str | None = None, **more: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"subject": {"kind": "person", "id": P[i]}, "category": category}
    if grid is not None:
        item["grid"] = grid
    return {**item, **more}


def sign_items(c: TestClient, items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    domain = c.app.state.runtime.credit.domain  # type: ignore[attr-defined]
    out = []
    for it in items:
        rec = record_from_json(it["record"])
        s = signed_record_to_json(sign_record(rec, bytes.fromhex(key[2:]), domain))
        if it.get("reason"):
            s["reason"] = it["reason"]
        if it.get("grid"):
            s["grid"] = it["grid"]
        out.append(s)
    return out


def nonces(items: list[dict[str, Any]]) -> list[int]:
    return [int(x["record"]["nonce"]) for x in items if x["status"] == "ready"]


def test_prepare_batch_per_item_results_and_distinct_nonces(env: dict[str, Any]) -> None:
    c, h = env["c"], env["h"]
    mh = h("agency-market")
    url = "/v1/credit-records/prepare-batch"
    items = [
        person(0, "admin_penalty.warning", "CC-ZM-01", reason="占道经营"),
        {"subject": {"kind": "person", "id": "110105194912310021"},
         "category": "admin_penalty.warning"},
        person(1, "no.such"),
        person(1, "tax.arrears"),  # the market agency has no tax scope
        person(1, "admin_penalty.minor", effectiveFrom=2_000_000_000, effectiveUntil=1_900_000_000),
        person(1, "admin_penalty.minor", deadline=1_000),
        person(1, "admin_penalty.minor", "CC-XX-99"),
        {**person(1, "admin_penalty.minor"), "effective_from": 5},  # a CSV header typo
        {"subject": {"kind": "robot", "id": P[1]}, "category": "admin_penalty.minor"},
        person(1, "admin_penalty.minor", agency=env["keys"]["agency-tax"]["address"]),
        {"subject": {"kind": "entity", "id": ENTITY}, "category": "volunteer.service_hours"},
        "not an object",
        person(2, "admin_penalty.general", "CC-NZ-03"),
        {"subject": {"kind": "entity", "id": ENTITY}, "category": "market.abnormal_operation"},
    ]  # fmt: skip
    r = c.post(url, json={"items": items}, headers=mh)
    assert r.status_code == 200, r.text
    body = r.json()
    res = body["items"]
    assert [x["index"] for x in res] == list(range(len(items)))
    assert body["agency"] == env["keys"]["agency-market"]["address"]
    codes = {
        x["index"]: (x["problem"]["type"].rsplit("/", 1)[1], x["problem"]["status"])
        for x in res
        if x["status"] == "error"
    }
    assert codes == {
        1: ("invalid-identifier", 422),
        2: ("unknown-category", 422),
        3: ("unauthorized", 403),
        4: ("invalid-dates", 422),
        5: ("expired", 422),
        6: ("unknown-grid", 422),
        7: ("validation", 422),
        8: ("validation", 422),
        9: ("forbidden", 403),
        10: ("invalid-input", 422),
        11: ("validation", 422),
    }, codes
    assert res[6]["problem"]["field"] == "grid" and res[4]["problem"]["field"] == "effectiveUntil"
    assert res[1]["problem"]["field"] == "subject" and "110105194912310021" not in r.text
    ready = [x for x in res if x["status"] == "ready"]
    assert [x["index"] for x in ready] == [0, 12, 13] and body["ready"] == 3
    assert ready[0]["grid"] == "CC-ZM-01" and ready[0]["reason"] == "占道经营"
    assert "grid" not in ready[0]["record"] and "grid" not in json.dumps(ready[0]["typedData"])
    first = nonces(res)
    assert len(set(first)) == 3 and first == sorted(first)
    # a second batch, a single prepare and a third batch before anything is submitted
    second = nonces(c.post(url, json={"items": items}, headers=mh).json()["items"])
    one = c.post(
        "/v1/credit-records/prepare",
        json={**person(3, "admin_penalty.warning"), "agency": body["agency"]},
        headers=mh,
    ).json()
    third = nonces(c.post(url, json={"items": items[:1] * 4}, headers=mh).json()["items"])
    every = [*first, *second, int(one["record"]["nonce"]), *third]
    assert len(every) == len(set(every)) == 11, every
    assert min(second) > max(first) and min(third) > int(one["record"]["nonce"])
    # request-level problems
    denied(c.post(url, json={"items": []}, headers=mh), 422, "validation")
    denied(c.post(url, json={"items": items[:1] * 501}, headers=mh), 413, "batch-too-large")
    denied(c.post(url, json={"items": items[:1]}), 401)
    denied(c.post(url, json={"items": items[:1]}, headers=h("auditor")), 403)


def test_grid_rides_off_chain_beside_the_record(env: dict[str, Any]) -> None:
    c, h, keys = env["c"], env["h"], env["keys"]
    mh = h("agency-market")
    market = keys["agency-market"]["private_key"]
    items = [person(4, "admin_penalty.warning", "CC-SW-02"), person(5, "admin_penalty.warning")]
    prep = c.post("/v1/credit-records/prepare-batch", json={"items": items}, headers=mh).json()
    signed = sign_items(c, prep["items"], market)
    bad = dict(signed[1], grid="CC-ZZ-01")
    r = c.post("/v1/credit-records", json=[signed[0], bad])
    assert r.status_code == 202, r.text
    out = r.json()["items"]
    assert out[0]["status"] == "accepted" and out[0]["id"] == prep["items"][0]["id"]
    assert out[1]["status"] == "rejected"
    assert out[1]["problem"]["type"].endswith("/unknown-grid")
    assert out[1]["problem"]["field"] == "grid" and out[1]["problem"]["status"] == 422
    # the grid is not part of the record: the same signed record with another grid (or none)
    # is the same record, a duplicate; the grid first given stays
    again = c.post("/v1/credit-records", json=dict(signed[0], grid="CC-NZ-01")).json()
    assert again["items"][0]["status"] == "duplicate"
    ok = c.post("/v1/credit-records", json=signed[1]).json()["items"][0]
    assert ok["status"] == "accepted" and ok["id"] == prep["items"][1]["id"]
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    with rt.engine.connect() as conn:
        grids = dict(
            conn.execute(
                select(outbox.c.id, outbox.c.grid).where(outbox.c.id.in_([out[0]["id"], ok["id"]]))
            ).all()
        )
    assert grids == {out[0]["id"]: "CC-SW-02", ok["id"]: None}
    assert c.get("/v1/stats/grids").json()["grids"][0]["code"] == "CC-ZM-01"
    assert len(c.get("/v1/stats/grids").json()["grids"]) == 12
    indexed(c, ok["id"], mh)


def test_heatmap_suppression_and_access(env: dict[str, Any]) -> None:
    c, h, keys = env["c"], env["h"], env["keys"]
    mh = h("agency-market")
    market = keys["agency-market"]["private_key"]
    w, m, g = "admin_penalty.warning", "admin_penalty.minor", "admin_penalty.general"
    items = (
        [person(i, w, "CC-ZM-01") for i in range(6)]  # 6 subjects: shown... but see below
        + [person(0, m, "CC-ZM-01")]  # 1 subject: primary suppression
        + [person(i, g, "CC-ZM-01") for i in range(6)]
        + [person(i, cat, "CC-SW-01") for cat in (w, m, g) for i in range(6, 11)]  # 5 each
        + [person(0, w), person(1, w)]  # no grid: not on the map
    )
    prep = c.post("/v1/credit-records/prepare-batch", json={"items": items}, headers=mh).json()
    assert prep["ready"] == len(items), prep
    r = c.post("/v1/credit-records", json=sign_items(c, prep["items"], market))
    assert r.status_code == 202 and r.json()["accepted"] == len(items), r.text
    indexed(c, r.json()["items"][-1]["id"], mh)

    url = "/v1/stats/heatmap"
    denied(c.get(url), 401)
    denied(c.get(url, headers=citizen(c, keys, P[0])), 403, "forbidden")
    denied(c.get(url, headers=mh), 403)
    denied(c.get(url, headers=h("rule-publisher")), 403)
    denied(c.get(url, params={"months": 0}, headers=h("auditor")), 422, "validation")
    denied(c.get(url, params={"months": "x"}, headers=h("auditor")), 422, "validation")
    assert c.get(url, headers=h("governor")).status_code == 200
    r = c.get(url, params={"months": 1}, headers=h("auditor"))
    assert r.status_code == 200, r.text
    hm = r.json()
    cats = [x["code"] for x in hm["categories"]]
    assert cats == [w, m, g]
    rows = {x["grid"]["code"]: x for x in hm["rows"]}
    assert list(rows)[:3] == ["CC-ZM-01", "CC-ZM-02", "CC-ZM-03"] and len(rows) == 12
    assert rows["CC-ZM-01"]["grid"]["street"]["zh"] == "祖庙街道"

    def cells(code: str) -> list[int | None]:
        return [x["count"] for x in rows[code]["cells"]]

    # primary: minor in ZM-01 (1 subject); row ZM-01 then also withholds its next-smallest
    # (warning, first of the two 6s), columns minor and warning their SW-01 cells (5 each)
    assert cells("CC-ZM-01") == [None, None, 6]
    assert cells("CC-SW-01") == [None, None, 5]
    # the earlier grid record (CC-SW-02, one subject) is withheld with its row total, and
    # complemented in its column and in the column of row totals
    assert rows["CC-SW-02"]["cells"][0] == {"count": None, "suppressed": True}
    assert rows["CC-SW-02"]["total"]["suppressed"] is True
    assert cells("CC-NZ-01") == [0, 0, 0] and rows["CC-NZ-01"]["total"]["count"] == 0
    for code in rows:  # no line (row, column, line of totals) has exactly one withheld value
        line = [*rows[code]["cells"], rows[code]["total"]]
        assert sum(x["suppressed"] for x in line) != 1, code
    for j in range(3):
        col = [rows[code]["cells"][j] for code in rows] + [hm["category_totals"][j]]
        assert sum(x["suppressed"] for x in col) != 1, cats[j]
    margin = [rows[code]["total"] for code in rows] + [hm["total"]]
    assert sum(x["suppressed"] for x in margin) != 1
    assert hm["suppression"]["k"] == 5 and hm["suppression"]["withheld"] >= 4
    assert "primary" not in json.dumps(hm["rows"])  # never says which cells are small
    assert P[0] not in r.text and "0x" not in json.dumps(hm["rows"])


def test_records_by_category_and_list_sizes(env: dict[str, Any]) -> None:
    c, h = env["c"], env["h"]
    r = c.get("/v1/stats/records-by-category")  # public
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["months"]) == 12 and body["timezone"] == "Asia/Shanghai"
    by = {x["code"]: x for x in body["categories"]}
    # warning: 6 + 5 + 2 ungridded + the grid test's 2 records, about 11 subjects
    warning = by["admin_penalty.warning"]
    assert warning["counts"][-1] == {"count": 15, "suppressed": False}
    assert warning["counts"][0] == {"count": 0, "suppressed": False}
    assert warning["total"]["count"] == 15
    # 6 minor records, 6 subjects; 11 general; all of them this month
    assert by["admin_penalty.minor"]["counts"][-1]["count"] == 6
    assert body["month_totals"][-1]["count"] == 15 + 6 + 11 == body["total"]["count"]
    for q in ({"months": 0}, {"months": 61}, {"months": "twelve"}):
        denied(c.get("/v1/stats/records-by-category", params=q), 422, "validation")
    assert len(c.get("/v1/stats/records-by-category", params={"months": 1}).json()["months"]) == 1

    assert c.get("/v1/stats/list-sizes").json() == {"rule_sets": []}
    ph = h("rule-publisher")
    r = c.post(
        "/v1/rules/rule-sets", content=STARTER, headers={"content-type": "application/yaml", **ph}
    )
    assert r.status_code == 200, r.text
    ep = c.post("/v1/rules/evaluations", json={}, headers=ph)
    assert ep.status_code == 200, ep.text
    sizes = c.get("/v1/stats/list-sizes").json()["rule_sets"]
    assert len(sizes) == 1 and sizes[0]["epoch"] == ep.json()["epoch"]
    lists = {x["id"]: x for x in sizes[0]["lists"]}
    assert {"red", "black", "serious_dishonesty"} <= set(lists)
    assert lists["red"]["kind"] == "red" and lists["black"]["name"]["zh"] == "黑名单"
    for lid, x in lists.items():
        assert x["size"] == ep.json()["lists"][lid]["size"] == x["entities"] + x["persons"]
