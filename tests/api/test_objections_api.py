"""Objection applications through the HTTP API on the embedded chain: a citizen disputes their
record, the writing agency records the OBJECTION on chain and resolves it (RESOLUTION upheld /
rejected); the current view shows the record disputed, then resolved. Every denial is an RFC
9457 problem: another citizen, another agency, wrong states, bad reasons, unknown records."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from api.main import create_app
from api.settings import Settings
from ledger.db import outbox
from ledger.records import record_from_json, sign_record, signed_record_to_json
from tests.api.auth_helpers import as_, did_sign_in
from tests.api.test_identity_api import Holder

PERSON = "11010519491231002X"
ENTITY = "91310115MA1K3BTP2B"
OTHER_ENTITY = "91440300568520498A"
PROBLEM = "application/problem+json"


def ric(body17: str) -> str:
    """A resident identity number with its GB 11643 check digit."""
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return body17 + "10X98765432"[sum(int(a) * b for a, b in zip(body17, w, strict=True)) % 11]


OTHER_PERSON = ric("44060420050101001")  # Chancheng district (since 2002)


def denied(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM, r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    if code is not None:
        assert body["type"].endswith("/" + code), body
    return body


def citizen(c: TestClient, keys: dict[str, Any], number: str | None) -> dict[str, str]:
    """A DID session; with an identity credential for ``number`` (so a pseudonym) if given."""
    me = Holder.did_key()
    vcs = None
    if number is not None:
        subject = {"id": me.did, "verifiedName": "张三", "residentIdNumber": number,
                   "residenceDistrict": "禅城区"}  # fmt: skip
        r = c.post("/credentials/issue", json={"credential": {"credentialSubject": subject}},
                   headers=as_(c, keys, "issuer"))  # fmt: skip
        assert r.status_code == 201, r.text
        vcs = [r.json()["verifiableCredential"]]
    r = did_sign_in(c, me.did, me.vm, me.key, vcs)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def domain(c: TestClient) -> Any:
    return c.app.state.runtime.credit.domain  # type: ignore[attr-defined]


def sign(c: TestClient, prep: dict[str, Any], key: str) -> dict[str, Any]:
    rec = record_from_json(prep["record"])
    item = signed_record_to_json(sign_record(rec, bytes.fromhex(key[2:]), domain(c)))
    item["reason"] = prep["reason"]
    return item


def wait(cond: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def indexed(c: TestClient, rid: str, h: dict[str, str]) -> None:
    wait(lambda: c.get(f"/v1/credit-records/{rid}", headers=h).json().get("indexed"))


def write(c: TestClient, keys: dict[str, Any], agency: str, **fields: Any) -> str:
    h = as_(c, keys, agency)
    r = c.post("/v1/credit-records/prepare", json=fields, headers=h)
    assert r.status_code == 200, r.text
    item = sign(c, r.json(), keys[agency]["private_key"])
    if not item["reason"]:
        del item["reason"]
    r = c.post("/v1/credit-records", json=item)
    assert r.status_code == 202, r.text
    rid = str(r.json()["items"][0]["id"])
    indexed(c, rid, h)
    return rid


def current(c: TestClient, h: dict[str, str], kind: str, ident: str) -> list[dict[str, Any]]:
    r = c.get("/v1/credit-records", params={"subject_kind": kind, "subject_id": ident}, headers=h)
    assert r.status_code == 200, r.text
    return r.json()["records"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d = tmp_path_factory.mktemp("objections")
    settings = Settings(data_dir=d, chain="embedded", dev=True, index_poll_s=0.05)
    with TestClient(create_app(settings)) as c:
        keys = json.loads((d / "dev-keys.json").read_text())
        rid = write(c, keys, "agency-tax", subject={"kind": "person", "id": PERSON},
                    category="tax.arrears", amount=5000, reason="欠缴个人所得税")  # fmt: skip
        eid = write(c, keys, "agency-market", subject={"kind": "entity", "id": ENTITY},
                    category="admin_penalty.general")  # fmt: skip
        yield {
            "c": c,
            "keys": keys,
            "rid": rid,
            "eid": eid,
            "citizen": citizen(c, keys, PERSON),
            "other": citizen(c, keys, OTHER_PERSON),
            "stranger": citizen(c, keys, None),
            "h": lambda name: as_(c, keys, name),
        }


def test_filing_is_refused_precisely(env: dict[str, Any]) -> None:
    c, h, rid = env["c"], env["h"], env["rid"]
    body = {"record_id": rid, "reason": "我已缴清税款 I paid the tax"}
    denied(c.post("/v1/objections", json=body), 401)
    denied(c.post("/v1/objections", json=body, headers=env["other"]), 403, "forbidden")
    denied(c.post("/v1/objections", json=body, headers=env["stranger"]), 403)
    denied(c.post("/v1/objections", json=body, headers=h("agency-tax")), 403)
    # unknown record; malformed id; accepted but not indexed yet
    unknown = {**body, "record_id": "0x" + "ee" * 32}
    denied(c.post("/v1/objections", json=unknown, headers=env["citizen"]), 404, "not-found")
    bad = {**body, "record_id": "0x1234"}
    denied(c.post("/v1/objections", json=bad, headers=env["citizen"]), 422, "validation")
    pending = "0x" + "dd" * 32
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    with rt.engine.begin() as conn:  # 'submitted': the submitter leaves it alone
        conn.execute(
            insert(outbox).values(
                id=pending, agency=env["keys"]["agency-tax"]["address"], nonce="900000000",
                payload="{}", status="submitted", attempts=1, accepted_at=1, updated_at=1,
            )
        )  # fmt: skip
    r = c.post("/v1/objections", json={**body, "record_id": pending}, headers=env["citizen"])
    denied(r, 409, "not-indexed")
    # reasons: empty, blank, too long
    for reason in ("", "   \n", "x" * 4001):
        r = c.post("/v1/objections", json={**body, "reason": reason}, headers=env["citizen"])
        assert denied(r, 422, "invalid-input")["field"] == "reason"
    # a lifecycle entry is not a record to dispute; entities: by USCC, not someone else's
    e = {"record_id": env["eid"], "reason": "处罚决定已撤销"}
    denied(c.post("/v1/objections", json=e), 403)  # no USCC given
    wrong = {**e, "subject": {"kind": "entity", "id": OTHER_ENTITY}}
    denied(c.post("/v1/objections", json=wrong), 403)
    bad_id = {**e, "subject": {"kind": "entity", "id": "91310115MA1K3BTP2C"}}
    denied(c.post("/v1/objections", json=bad_id), 422, "invalid-identifier")


def test_person_objection_full_lifecycle_upheld(env: dict[str, Any]) -> None:
    c, h, rid, keys = env["c"], env["h"], env["rid"], env["keys"]
    tax, market = keys["agency-tax"]["private_key"], keys["agency-market"]["private_key"]
    me, th, mh = env["citizen"], h("agency-tax"), h("agency-market")
    reason = "该税款已于2026年3月缴清，见完税证明 The tax was paid in March 2026"
    r = c.post("/v1/objections", json={"record_id": rid, "reason": reason}, headers=me)
    assert r.status_code == 201, r.text
    app = r.json()
    oid = app["id"]
    assert app["status"] == "filed" and app["open"] is True and app["upheld"] is None
    assert app["agency"] == keys["agency-tax"]["address"] and app["record_id"] == rid
    assert app["category_code"] == "tax.arrears" and app["reason"] == reason
    # one open objection per record
    again = c.post("/v1/objections", json={"record_id": rid, "reason": "再次"}, headers=me)
    denied(again, 409, "objection-conflict")

    # who sees it
    url = f"/v1/objections/{oid}"
    for ok in (me, th, h("auditor")):
        assert c.get(url, headers=ok).status_code == 200
    denied(c.get(url), 401)
    denied(c.get(url, headers=mh), 403)
    denied(c.get(url, headers=env["other"]), 403)
    denied(c.get("/v1/objections/0xnope", headers=th), 404)

    def listed(hdrs: dict[str, str], **params: Any) -> list[str]:
        r = c.get("/v1/objections", params=params, headers=hdrs)
        assert r.status_code == 200, r.text
        return [o["id"] for o in r.json()["objections"]]

    assert oid in listed(th, status="filed") and oid not in listed(th, status="disputed")
    assert oid in listed(me) and oid in listed(h("auditor"), record_id=rid)
    assert oid not in listed(mh) and oid not in listed(env["other"])
    denied(c.get("/v1/objections"), 401)
    denied(c.get("/v1/objections", headers=h("issuer")), 403)
    denied(c.get("/v1/objections", params={"status": "open"}, headers=th), 422, "validation")

    # the agency that wrote the record prepares the OBJECTION record; nobody else
    denied(c.post(f"/v1/objections/{oid}/prepare", headers=mh), 403)
    denied(c.post(f"/v1/objections/{oid}/prepare", headers=me), 403)
    denied(c.post(f"/v1/objections/{oid}/prepare"), 401)
    denied(c.post("/v1/objections/0xnope/prepare", headers=th), 404)
    r = c.post(f"/v1/objections/{oid}/prepare", headers=th)
    assert r.status_code == 200, r.text
    prep = r.json()
    assert prep["record"]["kind"] == 4 and prep["record"]["ref"] == rid
    assert prep["record"]["reasonHash"] == "0x" + hashlib.sha256(reason.encode()).hexdigest()
    assert prep["reason"] == reason and prep["objection"] == oid
    # resolution before the objection is on chain: wrong state
    res = {"upheld": True, "note": "核实已缴清"}
    denied(c.post(f"/v1/objections/{oid}/resolution/prepare", json=res, headers=th), 409)
    # another agency accepting: refused; the tax session posting a market signature: refused
    denied(c.post(f"/v1/objections/{oid}/accept", json=sign(c, prep, market), headers=mh), 403)
    wrong = c.post(f"/v1/objections/{oid}/accept", json=sign(c, prep, market), headers=th)
    assert denied(wrong, 403, "record-rejected")["problem"] == "unauthorized"
    tampered = sign(c, prep, tax)
    tampered["reason"] = "something else"
    denied(c.post(f"/v1/objections/{oid}/accept", json=tampered, headers=th), 422)
    ok = c.post(f"/v1/objections/{oid}/accept", json=sign(c, prep, tax), headers=th)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "disputed" and ok.json()["objection_record"] == prep["id"]
    # the same signed record again is a no-op; preparing again is a wrong transition
    again = c.post(f"/v1/objections/{oid}/accept", json=sign(c, prep, tax), headers=th)
    assert again.status_code == 200 and again.json()["status"] == "disputed"
    denied(c.post(f"/v1/objections/{oid}/prepare", headers=th), 409, "objection-conflict")

    indexed(c, prep["id"], th)
    recs = current(c, me, "person", PERSON)
    assert [x["id"] for x in recs] == [rid]
    assert recs[0]["disputed"] is True and recs[0]["objection_upheld"] is False
    assert prep["id"] in recs[0]["lifecycle"]
    assert c.get(url, headers=me).json()["chain"]["objection"]["indexed"] is True

    # resolution: the writing agency, a non-empty note
    path = f"/v1/objections/{oid}/resolution/prepare"
    denied(c.post(path, json=res, headers=mh), 403)
    r = c.post(path, json={"upheld": True, "note": ""}, headers=th)
    assert denied(r, 422)["field"] == "note"
    denied(c.post(path, json={"note": "x"}, headers=th), 422, "validation")
    r = c.post(path, json=res, headers=th)
    assert r.status_code == 200, r.text
    rprep = r.json()
    assert rprep["upheld"] is True and rprep["record"]["kind"] == 5  # RESOLUTION_UPHELD
    assert rprep["record"]["ref"] == prep["id"]  # refers to the OBJECTION record
    assert rprep["record"]["reasonHash"] == "0x" + hashlib.sha256(res["note"].encode()).hexdigest()
    no_note = sign(c, rprep, tax)
    del no_note["reason"]
    denied(c.post(f"/v1/objections/{oid}/resolution", json=no_note, headers=th), 422)
    # an OBJECTION record is not a resolution
    denied(c.post(f"/v1/objections/{oid}/resolution", json=sign(c, prep, tax), headers=th), 422)
    done = c.post(f"/v1/objections/{oid}/resolution", json=sign(c, rprep, tax), headers=th)
    assert done.status_code == 200, done.text
    out = done.json()
    assert out["status"] == "upheld" and out["upheld"] is True and out["open"] is False
    assert out["resolution_record"] == rprep["id"] and out["resolution_note"] == res["note"]
    # resolved: every further step is a wrong transition
    denied(c.post(f"/v1/objections/{oid}/accept", json=sign(c, prep, tax), headers=th), 409)
    denied(c.post(path, json=res, headers=th), 409)

    indexed(c, rprep["id"], th)
    recs = current(c, me, "person", PERSON)
    assert recs[0]["disputed"] is False and recs[0]["objection_upheld"] is True
    assert recs[0]["lifecycle"] == [prep["id"], rprep["id"]]
    assert oid in listed(th, status="upheld")
    # upheld: the record cannot be disputed again
    r = c.post("/v1/objections", json={"record_id": rid, "reason": "again"}, headers=me)
    denied(r, 409, "objection-conflict")
    hist = c.get(
        "/v1/credit-records",
        params={"subject_kind": "person", "subject_id": PERSON, "view": "history"},
        headers=me,
    ).json()["records"]
    assert [x["kind_name"] for x in hist] == ["record", "objection", "resolution_upheld"]


def test_entity_objection_rejected_then_filed_again(env: dict[str, Any]) -> None:
    c, h, eid, keys = env["c"], env["h"], env["eid"], env["keys"]
    market = keys["agency-market"]["private_key"]
    mh, th = h("agency-market"), h("agency-tax")
    body = {"record_id": eid, "reason": "处罚决定已被复议撤销",
            "subject": {"kind": "entity", "id": ENTITY}}  # fmt: skip
    r = c.post("/v1/objections", json=body)
    assert r.status_code == 201, r.text
    oid = r.json()["id"]
    assert r.json()["subject_kind"] == 2
    # the tax agency did not write it: cannot act on it
    denied(c.post(f"/v1/objections/{oid}/prepare", headers=th), 403)
    assert oid not in [o["id"] for o in c.get("/v1/objections", headers=th).json()["objections"]]
    prep = c.post(f"/v1/objections/{oid}/prepare", headers=mh).json()
    r = c.post(f"/v1/objections/{oid}/accept", json=sign(c, prep, market), headers=mh)
    assert r.status_code == 200, r.text
    indexed(c, prep["id"], mh)
    assert current(c, mh, "entity", ENTITY)[0]["disputed"] is True
    rprep = c.post(
        f"/v1/objections/{oid}/resolution/prepare",
        json={"upheld": False, "note": "复议维持原处罚决定"},
        headers=mh,
    ).json()
    assert rprep["record"]["kind"] == 7  # RESOLUTION_REJECTED
    r = c.post(f"/v1/objections/{oid}/resolution", json=sign(c, rprep, market), headers=mh)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected" and r.json()["upheld"] is False
    indexed(c, rprep["id"], mh)
    rec = current(c, mh, "entity", ENTITY)[0]
    assert rec["disputed"] is False and rec["objection_upheld"] is False
    # rejected: the subject may object again (new facts); a new application opens
    r = c.post("/v1/objections", json={**body, "reason": "新证据 new evidence"})
    assert r.status_code == 201, r.text
    assert r.json()["id"] != oid and r.json()["status"] == "filed"


def test_record_disputed_on_chain_directly_cannot_get_a_second_objection(
    env: dict[str, Any],
) -> None:
    c, keys = env["c"], env["keys"]
    rid = write(c, keys, "agency-tax", subject={"kind": "person", "id": PERSON},
                category="tax.arrears")  # fmt: skip
    write(c, keys, "agency-tax", subject={"kind": "person", "id": PERSON},
          category="tax.arrears", kind="objection", ref=rid)  # fmt: skip
    r = c.post("/v1/objections", json={"record_id": rid, "reason": "x"}, headers=env["citizen"])
    denied(r, 409, "objection-conflict")
    # a lifecycle entry itself is not disputable
    oid = c.get(
        "/v1/credit-records",
        params={"subject_kind": "person", "subject_id": PERSON, "view": "history"},
        headers=env["citizen"],
    ).json()["records"][-1]["id"]
    r = c.post("/v1/objections", json={"record_id": oid, "reason": "x"}, headers=env["citizen"])
    assert denied(r, 422)["field"] == "record_id"
