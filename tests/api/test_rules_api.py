"""Joint reward and punishment through the HTTP API on the embedded chain: publish → records →
listed with explanation → objection stops counting → resolution → repair; epochs reproduce
from chain data alone; bad rule sets are refused with positions and nothing anchored."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from ledger.catalog import load_catalog
from ledger.merkle_lists import (
    MembershipProof,
    NonMembershipProof,
    verify_membership,
    verify_non_membership,
)
from ledger.records import record_from_json, sign_record, signed_record_to_json
from ledger.rules import load_measures, load_rule_set
from ledger.rules_registry import rule_set_id, version_number
from ledger.rules_service import lists_root
from tests.api.auth_helpers import as_, headers

ENTITY = "91310115MA1K3BTP2B"
PERSON = "11010519491231002X"
DAY = 86_400
STARTER = (
    __import__("importlib.resources", fromlist=["files"])
    .files("ledger")
    .joinpath("data", "rules", "district-joint-credit.yaml")
    .read_text()
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    d = tmp_path_factory.mktemp("rules")
    settings = Settings(data_dir=d, chain="embedded", dev=True, index_poll_s=0.05)
    with TestClient(create_app(settings)) as c:
        yield c, json.loads((d / "dev-keys.json").read_text())


def rt(c: TestClient) -> Any:
    return c.app.state.runtime  # type: ignore[attr-defined]


def sign_prepared(c: TestClient, prep: dict[str, Any], key: str) -> dict[str, Any]:
    rec = record_from_json(prep["record"])
    item = signed_record_to_json(sign_record(rec, bytes.fromhex(key[2:]), rt(c).credit.domain))
    if prep.get("reason"):
        item["reason"] = prep["reason"]
    return item


def write(c: TestClient, key: str, **fields: Any) -> str:
    h = headers(c, key)  # the writing agency: prepares, and reads its records back
    r = c.post("/v1/credit-records/prepare", json=fields, headers=h)
    assert r.status_code == 200, r.text
    r = c.post("/v1/credit-records", json=sign_prepared(c, r.json(), key))
    assert r.status_code == 202, r.text
    rid = r.json()["items"][0]["id"]
    wait(lambda: c.get(f"/v1/credit-records/{rid}", headers=h).json().get("indexed"))
    return str(rid)


def wait(cond: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def status(c: TestClient, kind: str, ident: str) -> dict[str, Any]:
    r = c.get("/v1/rules/status", params={"subject_kind": kind, "subject_id": ident})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_bad_rule_sets_are_refused_with_positions_and_nothing_anchored(
    env: tuple[TestClient, dict[str, Any]],
) -> None:
    c, keys = env
    pub = as_(c, keys, "rule-publisher")
    base = STARTER.replace('version: "2025.1"', 'version: "bad.1"')
    cases = {
        "parse": base.replace(
            'records.exists(r, r.counts && r.category == "court.judgment_defaulter")',
            'records.exists(r, r.counts && r.category == "court.judgment_defaulter"',
        ),
        "category": base.replace("scope: [court.judgment_defaulter]", "scope: [court.nope]"),
        "measure": base.replace("- punish.post_restriction", "- punish.nope"),
        "list": base.replace("outcomes: [black, serious_dishonesty]", "outcomes: [black, grey]"),
    }
    for name, text in cases.items():
        r = c.post(
            "/v1/rules/rule-sets",
            content=text,
            headers={"content-type": "application/yaml", **pub},
        )
        assert r.status_code == 422, (name, r.text)
        body = r.json()
        assert body["type"].endswith("/invalid-rule-set"), body
        assert r.headers["content-type"].startswith("application/problem+json")
        assert body["problems"], body
        if name == "parse":
            assert "court-judgment-defaulter" in body["problems"][0]
            assert " at 1:" in body["problems"][0] and "(file " in body["problems"][0]
    reg = rt(c).rules.registry
    assert reg.rule_set_hash(rule_set_id("district.joint-credit"), version_number("bad.1")) is None
    # evaluating before anything is published: refused by name
    r = c.post("/v1/rules/evaluations", json={}, headers=pub)
    assert r.status_code == 409 and r.json()["type"].endswith("/rule-set-not-published")


def test_publish_list_object_resolve_repair_and_epochs(
    env: tuple[TestClient, dict[str, Any]],
) -> None:
    c, keys = env
    market = keys["agency-market"]["private_key"]
    mh, ph = as_(c, keys, "agency-market"), as_(c, keys, "rule-publisher")
    r = c.post(
        "/v1/rules/rule-sets", content=STARTER, headers={"content-type": "application/yaml", **ph}
    )
    assert r.status_code == 200, r.text
    pub = r.json()
    expected = load_rule_set(load_catalog(), load_measures()).canonical_hash()
    assert pub["hash"] == "0x" + expected.hex() and pub["already_published"] is False
    # publishing the same document again anchors nothing new
    again = c.post("/v1/rules/rule-sets", content=STARTER, headers=ph).json()
    assert again["already_published"] is True and again["hash"] == pub["hash"]
    r = c.post("/v1/rules/evaluations", json={"version": "9999.9"}, headers=ph)
    assert r.status_code == 409 and r.json()["type"].endswith("/rule-set-not-published")

    # an agency of the market sector subscribes (delivery itself: tests/ledger/test_webhooks.py)
    r = c.post(
        "/v1/webhooks",
        json={
            "url": "http://127.0.0.1:9/hook",
            "agency": keys["agency-market"]["address"],
            "sectors": ["market"],
            "secret": "s" * 32,
        },
        headers=mh,
    )
    assert r.status_code == 201, r.text
    sub_id = r.json()["id"]

    now = int(time.time())
    past = now - 400 * DAY  # serious penalty: repairable one year after it took effect
    ent = {"kind": "entity", "id": ENTITY}
    rid = write(
        c,
        market,
        subject=ent,
        category="admin_penalty.serious",
        occurredAt=past,
        effectiveFrom=past,
        reason="严重违法 serious violation",
    )
    write(
        c,
        market,
        subject={"kind": "person", "id": PERSON},
        category="admin_penalty.serious",
        occurredAt=past,
        effectiveFrom=past,
    )

    st = status(c, "entity", ENTITY)
    assert st["lists"] == ["serious_dishonesty"]
    m = st["memberships"][0]
    assert m["rule"] == "serious-administrative-penalty" and m["triggering"] == [rid]
    assert m["exit_eligible"] is True and m["rule_name"]["en"]
    assert st["rule_set"]["hash"] == pub["hash"]
    # incremental: the change was recorded and a delivery queued for the market subscriber
    subj = st["subject"]
    changes = wait(
        lambda: [x for x in c.get("/v1/rules/changes").json()["changes"] if x["subject"] == subj]
    )
    assert [(x["change"], x["list"]) for x in changes] == [("entered", "serious_dishonesty")]
    dl = c.get(f"/v1/webhooks/{sub_id}/deliveries", headers=mh).json()["deliveries"]
    assert any(d["event_id"] == f"lc-{changes[0]['id']}" for d in dl)
    meas = c.get(
        "/v1/rules/measures",
        params={"subject_kind": "entity", "subject_id": ENTITY, "agency": "market"},
    ).json()
    assert [x["id"] for x in meas["measures"]] == ["punish.more_inspections"]

    # full evaluation, anchored; re-run from chain logs alone reproduces the root
    ep = c.post("/v1/rules/evaluations", json={}, headers=ph).json()
    assert ep["epoch"] >= 1 and ep["rule_set"]["hash"] == pub["hash"], ep
    assert ep["lists"]["serious_dishonesty"]["size"] == 2
    re = c.get(f"/v1/rules/epochs/{ep['epoch']}/recompute").json()
    assert re["matches"] is True and re["lists_root"] == ep["lists_root"]
    assert c.get(f"/v1/rules/epochs/{ep['epoch']}").json()["anchored"] is True
    # proofs against the anchored root
    pr = c.get(
        "/v1/rules/proof",
        params={
            "list": "serious_dishonesty",
            "epoch": ep["epoch"],
            "subject_kind": "entity",
            "subject_id": ENTITY,
        },
    ).json()
    assert pr["member"] is True
    p = pr["proof"]
    proof = MembershipProof(
        p["list"],
        bytes.fromhex(p["subject"][2:]),
        p["index"],
        p["size"],
        tuple(bytes.fromhex(x[2:]) for x in p["path"]),
    )
    assert verify_membership(bytes.fromhex(pr["list_root"][2:]), proof, "serious_dishonesty")
    roots = {k: bytes.fromhex(v[2:]) for k, v in pr["list_roots"].items()}
    anchor = rt(c).rules.registry.epoch(ep["epoch"])
    assert lists_root(roots) == anchor.lists_root
    pr = c.get(
        "/v1/rules/proof", params={"list": "red", "epoch": ep["epoch"], "subject": subj}
    ).json()
    assert pr["member"] is False
    q = pr["proof"]
    nm = NonMembershipProof(q["list"], bytes.fromhex(q["subject"][2:]), q["size"], None, None)
    assert verify_non_membership(bytes.fromhex(pr["list_root"][2:]), nm, "red")
    # publicity: entities public, persons only through the reader gate
    pubs = c.get("/v1/rules/lists/serious_dishonesty/publicity").json()["entries"]
    assert [e["subject_kind"] for e in pubs] == ["entity"]
    allm = c.get(
        "/v1/rules/lists/serious_dishonesty/members", headers=as_(c, keys, "auditor")
    ).json()["entries"]
    assert sorted(e["subject_kind"] for e in allm) == ["entity", "person"]

    # objection: the record stops counting and the subject leaves the list
    oid = write(
        c,
        market,
        subject=ent,
        category="admin_penalty.serious",
        kind="objection",
        ref=rid,
        occurredAt=past,
        effectiveFrom=past,
    )
    assert status(c, "entity", ENTITY)["lists"] == []
    # resolution (rejected): the record stands and counts again
    write(
        c,
        market,
        subject=ent,
        category="admin_penalty.serious",
        kind="resolution_rejected",
        ref=oid,
        occurredAt=past,
        effectiveFrom=past,
    )
    assert status(c, "entity", ENTITY)["lists"] == ["serious_dishonesty"]
    wait(
        lambda: (
            [
                x["change"]
                for x in c.get("/v1/rules/changes").json()["changes"]
                if x["subject"] == subj
            ]
            == ["entered", "left", "entered"]
        )
    )

    # repair: the subject applies, the writing agency signs the REPAIR record
    r = c.post(
        "/v1/repairs",
        json={"subject": ent, "record": rid, "statement": "罚款已缴清 fine paid, harm removed"},
    )
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["status"] == "pending" and app["agency"] == keys["agency-market"]["address"]
    got = c.get(f"/v1/repairs/{app['id']}").json()
    assert got["eligibility"]["eligible"] is True, got
    prep = c.post(f"/v1/repairs/{app['id']}/prepare", json={}, headers=mh).json()
    assert prep["record"]["kind"] == 6 and prep["record"]["ref"] == rid
    # the tax agency did not write the record: refused
    wrong = c.post(
        f"/v1/repairs/{app['id']}/approve",
        json=sign_prepared(c, prep, keys["agency-tax"]["private_key"]),
        headers=mh,
    )
    assert wrong.status_code in (403, 422), wrong.text
    ok = c.post(f"/v1/repairs/{app['id']}/approve", json=sign_prepared(c, prep, market), headers=mh)
    assert ok.status_code == 200, ok.text
    done = ok.json()
    assert done["status"] == "approved" and done["repair_id"] == prep["id"]
    wait(lambda: c.get(f"/v1/credit-records/{prep['id']}", headers=mh).json().get("indexed"))
    assert status(c, "entity", ENTITY)["lists"] == []
    hist = c.get(
        "/v1/credit-records",
        params={"subject_kind": "entity", "subject_id": ENTITY, "view": "history"},
    ).json()["records"]
    assert [h["kind_name"] for h in hist] == [
        "record",
        "objection",
        "resolution_rejected",
        "repair",
    ]
    # a second epoch no longer lists the entity, and still reproduces from the chain
    ep2 = c.post("/v1/rules/evaluations", json={}, headers=ph).json()
    assert ep2["epoch"] == ep["epoch"] + 1 and ep2["lists"]["serious_dishonesty"]["size"] == 1
    assert c.get(f"/v1/rules/epochs/{ep2['epoch']}/recompute").json()["matches"] is True
    # the auditor's run re-evaluates every anchored epoch from chain data and compares roots
    audit = c.post("/v1/audit/run", json={}, headers=as_(c, keys, "auditor"))
    assert audit.status_code == 200, audit.text
    epochs = audit.json()["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, ep2["epoch"] + 1))
    assert all(e["matches"] for e in epochs), epochs
    assert audit.json()["ok"] is True
