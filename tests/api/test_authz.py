"""Authorization on every route: a natural person's records and list status only to that
person, the agencies that wrote them and auditors; entities' records and list publicity to
everyone; writes only by role holders. Each denial: 401 without a session, 403 with the wrong
role or another person's records, always RFC 9457 problem+json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.api.auth_helpers import as_, did_sign_in
from tests.api.test_credit_api import ENTITY, PERSON, signed, wait_indexed
from tests.api.test_identity_api import Holder

PROBLEM = "application/problem+json"


def denied(r: Any, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["status"] == status


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d = tmp_path_factory.mktemp("authz")
    settings = Settings(data_dir=d, chain="embedded", dev=True, index_poll_s=0.05)
    with TestClient(create_app(settings)) as c:
        keys = json.loads((d / "dev-keys.json").read_text())
        tax = keys["agency-tax"]["private_key"]
        person = signed(c, tax, subject={"kind": "person", "id": PERSON}, category="tax.arrears")
        entity = signed(c, tax, subject={"kind": "entity", "id": ENTITY}, category="tax.arrears")
        # the person's record first in ledger order (the visibility-before-limit test needs it)
        r = c.post("/v1/credit-records", json=[person])
        assert r.status_code == 202, r.text
        pid = r.json()["items"][0]["id"]
        wait_indexed(c, pid, headers=as_(c, keys, "agency-tax"))
        r = c.post("/v1/credit-records", json=[entity])
        assert r.status_code == 202, r.text
        eid = r.json()["items"][0]["id"]
        wait_indexed(c, eid)
        # the person signs in with their identity credential; a stranger without one
        me = Holder.did_key()
        subject = {"id": me.did, "verifiedName": "张三", "residentIdNumber": PERSON,
                   "residenceDistrict": "禅城区"}  # fmt: skip
        r = c.post("/credentials/issue", json={"credential": {"credentialSubject": subject}},
                   headers=as_(c, keys, "issuer"))  # fmt: skip
        assert r.status_code == 201, r.text
        r = did_sign_in(c, me.did, me.vm, me.key, [r.json()["verifiableCredential"]])
        assert r.status_code == 200, r.text
        citizen = {"Authorization": f"Bearer {r.json()['token']}"}
        other = Holder.did_key()
        r = did_sign_in(c, other.did, other.vm, other.key)
        stranger = {"Authorization": f"Bearer {r.json()['token']}"}
        yield {
            "c": c,
            "keys": keys,
            "pid": pid,
            "eid": eid,
            "citizen": citizen,
            "stranger": stranger,
            "h": lambda name: as_(c, keys, name),
        }


def test_record_status_person_and_entity(env: dict[str, Any]) -> None:
    c, h = env["c"], env["h"]
    url = f"/v1/credit-records/{env['pid']}"
    denied(c.get(url), 401)
    denied(c.get(url, headers=h("agency-market")), 403)  # did not write it
    denied(c.get(url, headers=env["stranger"]), 403)
    denied(c.get(url, headers=h("rule-publisher")), 403)
    for ok in (h("agency-tax"), h("auditor"), env["citizen"]):
        assert c.get(url, headers=ok).status_code == 200
    assert c.get(f"/v1/credit-records/{env['eid']}").status_code == 200  # entities: public


def test_record_queries(env: dict[str, Any]) -> None:
    c, h = env["c"], env["h"]
    q = {"subject_kind": "person", "subject_id": PERSON}
    denied(c.get("/v1/credit-records", params=q), 401)
    denied(c.get("/v1/credit-records", params=q, headers=env["stranger"]), 403)
    tax_addr = env["keys"]["agency-tax"]["address"]
    denied(
        c.get("/v1/credit-records", params={**q, "agency": tax_addr}, headers=h("agency-market")),
        403,
    )
    # another agency sees only the records it wrote about the person: none
    assert c.get("/v1/credit-records", params=q, headers=h("agency-market")).json()["records"] == []
    for ok in (h("agency-tax"), h("auditor"), env["citizen"]):
        for view in ("current", "history"):
            recs = c.get("/v1/credit-records", params={**q, "view": view}, headers=ok).json()
            assert [r["id"] for r in recs["records"]] == [env["pid"]], recs
    # a query without a subject: anonymous callers see entities only
    everything = c.get("/v1/credit-records", params={"agency": tax_addr}).json()["records"]
    assert [r["id"] for r in everything] == [env["eid"]]
    audited = c.get("/v1/credit-records", params={"agency": tax_addr}, headers=h("auditor"))
    assert {r["id"] for r in audited.json()["records"]} == {env["pid"], env["eid"]}
    ent = c.get("/v1/credit-records", params={"subject_kind": "entity", "subject_id": ENTITY})
    assert [r["id"] for r in ent.json()["records"]] == [env["eid"]]
    # visibility is applied before limit/offset: the person's record (first in ledger order)
    # does not leave an anonymous page of one empty, nor take another agency's slot
    for who in ({}, h("agency-market"), env["stranger"]):
        for view in ("current", "history"):
            page = c.get("/v1/credit-records", params={"limit": 1, "view": view}, headers=who)
            assert [r["id"] for r in page.json()["records"]] == [env["eid"]], (who, view)
    for who in (h("agency-tax"), env["citizen"]):  # they see both: one per page, no gap
        seen = []
        for offset in (0, 1, 2):
            params = {"limit": 1, "offset": offset, "view": "history"}
            seen += [r["id"] for r in c.get("/v1/credit-records", params=params, headers=who)
                     .json()["records"]]  # fmt: skip
        assert sorted(seen) == sorted([env["pid"], env["eid"]])


def test_prepare_needs_an_agency_session_for_itself(env: dict[str, Any]) -> None:
    c, h = env["c"], env["h"]
    body = {"subject": {"kind": "entity", "id": ENTITY}, "category": "tax.arrears"}
    denied(c.post("/v1/credit-records/prepare", json=body), 401)
    denied(c.post("/v1/credit-records/prepare", json=body, headers=h("auditor")), 403)
    denied(c.post("/v1/credit-records/prepare", json=body, headers=env["citizen"]), 403)
    other = {**body, "agency": env["keys"]["agency-market"]["address"]}
    denied(c.post("/v1/credit-records/prepare", json=other, headers=h("agency-tax")), 403)
    own = {**body, "agency": env["keys"]["agency-tax"]["address"]}
    r = c.post("/v1/credit-records/prepare", json=own, headers=h("agency-tax"))
    assert r.status_code == 200, r.text


def test_rules_routes(env: dict[str, Any]) -> None:
    c, h = env["c"], env["h"]
    yaml = {"content-type": "application/yaml"}
    denied(c.post("/v1/rules/rule-sets", content="x: 1", headers=yaml), 401)
    denied(c.post("/v1/rules/rule-sets", content="x: 1", headers={**yaml, **h("agency-tax")}), 403)
    denied(c.post("/v1/rules/evaluations", json={}), 401)
    denied(c.post("/v1/rules/evaluations", json={}, headers=h("auditor")), 403)
    denied(c.get("/v1/rules/lists/black/members"), 401)
    denied(c.get("/v1/rules/lists/black/members", headers=h("agency-tax")), 403)
    q = {"subject_kind": "person", "subject_id": PERSON}
    denied(c.get("/v1/rules/status", params=q), 401)
    denied(c.get("/v1/rules/status", params=q, headers=h("agency-market")), 403)
    denied(c.get("/v1/rules/status", params=q, headers=env["stranger"]), 403)
    denied(c.get("/v1/rules/changes", params=q), 401)
    denied(c.get("/v1/rules/proof", params={**q, "list": "black"}), 401)
    m = {**q, "agency": "market"}
    denied(c.get("/v1/rules/measures", params=m), 401)
    denied(c.get("/v1/rules/measures", params=m, headers=env["stranger"]), 403)
    # allowed callers get past the gate (nothing is published here: 409 / 200, not 401/403)
    for ok in (h("agency-tax"), h("auditor"), env["citizen"]):
        assert c.get("/v1/rules/status", params=q, headers=ok).status_code not in (401, 403)
    assert c.get("/v1/rules/measures", params=m, headers=h("agency-market")).status_code not in (
        401,
        403,
    )
    # list changes without a subject: no person rows for anonymous callers
    assert c.get("/v1/rules/changes").status_code == 200


def test_repairs(env: dict[str, Any]) -> None:
    c, h = env["c"], env["h"]
    body = {"subject": {"kind": "person", "id": PERSON}, "record": env["pid"], "statement": "s"}
    denied(c.post("/v1/repairs", json=body), 401)
    denied(c.post("/v1/repairs", json=body, headers=env["stranger"]), 403)
    denied(c.post("/v1/repairs", json=body, headers=h("agency-tax")), 403)
    r = c.post("/v1/repairs", json=body, headers=env["citizen"])
    assert r.status_code not in (401, 403), r.text  # past the gate (eligibility is the rules')
    if r.status_code == 201:
        app = r.json()["id"]
        denied(c.get(f"/v1/repairs/{app}"), 401)
        denied(c.get(f"/v1/repairs/{app}", headers=h("agency-market")), 403)
        denied(c.post(f"/v1/repairs/{app}/prepare", json={}), 401)
        denied(c.post(f"/v1/repairs/{app}/prepare", json={}, headers=h("agency-market")), 403)
        denied(c.post(f"/v1/repairs/{app}/approve", json={}, headers=h("agency-market")), 403)


def test_webhooks(env: dict[str, Any]) -> None:
    c, h, keys = env["c"], env["h"], env["keys"]
    sub = {"url": "http://127.0.0.1:9/hook", "agency": keys["agency-market"]["address"],
           "sectors": ["market"], "secret": "s" * 32}  # fmt: skip
    denied(c.post("/v1/webhooks", json=sub), 401)
    denied(c.post("/v1/webhooks", json=sub, headers=h("agency-tax")), 403)  # not its address
    denied(c.post("/v1/webhooks", json=sub, headers=h("auditor")), 403)
    r = c.post("/v1/webhooks", json=sub, headers=h("agency-market"))
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    denied(c.get("/v1/webhooks"), 401)
    assert c.get("/v1/webhooks", headers=h("agency-tax")).json()["subscriptions"] == []
    mine = c.get("/v1/webhooks", headers=h("agency-market")).json()["subscriptions"]
    assert [s["id"] for s in mine] == [sid]
    denied(c.get(f"/v1/webhooks/{sid}/deliveries", headers=h("agency-tax")), 403)
    assert c.get(f"/v1/webhooks/{sid}/deliveries", headers=h("auditor")).status_code == 200
    denied(c.delete(f"/v1/webhooks/{sid}", headers=h("agency-tax")), 403)
    assert c.delete(f"/v1/webhooks/{sid}", headers=h("agency-market")).status_code == 204


def test_audit_and_identity_writes(env: dict[str, Any]) -> None:
    c, h = env["c"], env["h"]
    denied(c.post("/v1/audit/run", json={}), 401)
    denied(c.post("/v1/audit/run", json={}, headers=h("agency-tax")), 403)
    assert c.get("/v1/log/checkpoint").status_code == 200  # the transparency log is public
    cred = {"credential": {"credentialSubject": {"id": Holder.did_key().did, "verifiedName": "x",
            "residentIdNumber": PERSON, "residenceDistrict": "y"}}}  # fmt: skip
    denied(c.post("/credentials/issue", json=cred), 401)
    denied(c.post("/credentials/issue", json=cred, headers=h("agency-tax")), 403)
    denied(c.post("/credentials/issue", json=cred, headers=env["citizen"]), 403)
    st = {"credentialId": "urn:uuid:x", "credentialStatus": [{"status": "revoked"}]}
    denied(c.post("/credentials/status", json=st), 401)
    denied(c.post("/credentials/status", json=st, headers=h("auditor")), 403)


def test_a_role_revoked_on_chain_stops_authorizing(env: dict[str, Any]) -> None:
    c, h, keys = env["c"], env["h"], env["keys"]
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    auth = c.app.state.auth  # type: ignore[attr-defined]
    from ledger.roles import Role

    auditor = h("auditor")
    assert c.get("/auth/me", headers=auditor).json()["roles"] == ["AUDITOR"]
    rt.roles.revoke(rt.governor, Role.AUDITOR, keys["auditor"]["address"])
    try:
        auth.roles.invalidate()  # stands for the cache's ttl running out
        denied(c.post("/v1/audit/run", json={}, headers=auditor), 403)
    finally:
        rt.roles.grant(rt.governor, Role.AUDITOR, keys["auditor"]["address"])
        auth.roles.invalidate()
