"""Credit records through the HTTP API on a real (embedded) chain: prepare, sign, submit,
status through to the index, queries, lifecycle, and every bad-input path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from ledger.records import record_from_json, sign_record, signed_record_to_json
from tests.api.auth_helpers import as_, headers

PERSON = "11010519491231002X"
ENTITY = "91440300568520498A"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    d = tmp_path_factory.mktemp("credit")
    settings = Settings(data_dir=d, chain="embedded", dev=True, index_poll_s=0.05)
    with TestClient(create_app(settings)) as c:
        keys = json.loads((d / "dev-keys.json").read_text())
        yield c, keys


def domain_of(c: TestClient) -> Any:
    return c.app.state.runtime.credit.domain  # type: ignore[attr-defined]


def signed(c: TestClient, key: str, **fields: Any) -> dict[str, Any]:
    r = c.post("/v1/credit-records/prepare", json=fields, headers=headers(c, key))
    assert r.status_code == 200, r.text
    prep = r.json()
    rec = record_from_json(prep["record"])
    item = signed_record_to_json(sign_record(rec, bytes.fromhex(key[2:]), domain_of(c)))
    if fields.get("reason"):
        item["reason"] = fields["reason"]
    assert prep["id"].startswith("0x")
    return item


def wait_indexed(
    c: TestClient, rid: str, timeout: float = 20, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = c.get(f"/v1/credit-records/{rid}", headers=headers).json()
        if st.get("indexed"):
            return st
        time.sleep(0.05)
    raise AssertionError(f"{rid} not indexed: {st}")


def test_write_and_read_one_record(env: tuple[TestClient, dict[str, Any]]) -> None:
    c, keys = env
    tax = keys["agency-tax"]["private_key"]
    item = signed(
        c,
        tax,
        subject={"kind": "entity", "id": ENTITY},
        category="tax.arrears",
        amount=125000,
        reason="欠缴增值税 overdue VAT",
    )
    r = c.post("/v1/credit-records", json=[item])
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 1 and body["items"][0]["status"] == "accepted"
    rid = body["items"][0]["id"]
    st = wait_indexed(c, rid)
    assert st["block_number"] > 0 and st["tx_hash"].startswith("0x")
    assert st["status"] in ("onchain", "final")
    q = c.get("/v1/credit-records", params={"subject_kind": "entity", "subject_id": ENTITY})
    recs = q.json()["records"]
    assert [x["id"] for x in recs] == [rid]
    assert recs[0]["category_code"] == "tax.arrears" and recs[0]["amount"] == "125000"
    assert recs[0]["agency"] == keys["agency-tax"]["address"]
    # the same record again is a duplicate, not a second write
    r = c.post("/v1/credit-records", json=item)
    assert r.status_code == 202 and r.json()["items"][0]["status"] == "duplicate"
    hist = c.get(
        "/v1/credit-records",
        params={"subject_kind": "entity", "subject_id": ENTITY, "view": "history"},
    ).json()["records"]
    assert len(hist) == 1


def test_eth_account_typed_data_signature_is_accepted(
    env: tuple[TestClient, dict[str, Any]],
) -> None:
    c, keys = env
    r = c.post(
        "/v1/credit-records/prepare",
        json={"subject": {"kind": "entity", "id": ENTITY}, "category": "tax.grade_a"},
        headers=as_(c, keys, "agency-tax"),
    )
    assert r.status_code == 200, r.text
    prep = r.json()
    msg = encode_typed_data(full_message=prep["typedData"])
    sig = Account.sign_message(msg, keys["agency-tax"]["private_key"]).signature
    r = c.post("/v1/credit-records", json={"record": prep["record"], "signature": "0x" + sig.hex()})
    assert r.status_code == 202, r.text
    assert r.json()["items"][0]["id"] == prep["id"]


def test_lifecycle_objection_and_withdraw(env: tuple[TestClient, dict[str, Any]]) -> None:
    c, keys = env
    m = keys["agency-market"]["private_key"]
    subj = {"kind": "entity", "id": "91310115MA1K3BTP2B"}
    orig = signed(c, m, subject=subj, category="admin_penalty.general")
    rid = c.post("/v1/credit-records", json=orig).json()["items"][0]["id"]
    wait_indexed(c, rid)
    obj = signed(c, m, subject=subj, category="admin_penalty.general", kind="objection", ref=rid)
    oid = c.post("/v1/credit-records", json=obj).json()["items"][0]["id"]
    wait_indexed(c, oid)
    cur = c.get("/v1/credit-records", params={"subject_kind": "entity", "subject_id": subj["id"]})
    recs = cur.json()["records"]
    assert len(recs) == 1 and recs[0]["root"] == rid and recs[0]["disputed"] is True
    wd = signed(c, m, subject=subj, category="admin_penalty.general", kind="withdraw", ref=rid)
    wid = c.post("/v1/credit-records", json=wd).json()["items"][0]["id"]
    wait_indexed(c, wid)
    recs = c.get(
        "/v1/credit-records", params={"subject_kind": "entity", "subject_id": subj["id"]}
    ).json()["records"]
    assert recs[0]["withdrawn"] is True
    hist = c.get(
        "/v1/credit-records",
        params={"subject_kind": "entity", "subject_id": subj["id"], "view": "history"},
    ).json()["records"]
    assert [h["kind_name"] for h in hist] == ["record", "objection", "withdraw"]


def test_bad_items_are_rejected_precisely_and_good_ones_kept(
    env: tuple[TestClient, dict[str, Any]],
) -> None:
    c, keys = env
    tax, market = keys["agency-tax"]["private_key"], keys["agency-market"]["private_key"]
    subj = {"kind": "entity", "id": ENTITY}
    good = signed(c, tax, subject=subj, category="tax.arrears")
    out_of_scope = signed(c, tax, subject=subj, category="tax.arrears")
    # re-sign the tax record with the market agency: market has no tax scope
    rec = record_from_json(out_of_scope["record"])
    out_of_scope = signed_record_to_json(sign_record(rec, bytes.fromhex(market[2:]), domain_of(c)))
    tampered = signed(c, tax, subject=subj, category="tax.arrears")
    tampered["record"]["amount"] = "999"
    expired = signed(c, tax, subject=subj, category="tax.arrears", deadline=1_000)
    unknown_cat = json.loads(json.dumps(good))
    unknown_cat["record"]["category"] = 9999
    foreign = signed(c, tax, subject=subj, category="tax.arrears")
    from ledger.records import Eip712Domain

    d = domain_of(c)
    other = Eip712Domain(d.chain_id + 1, d.verifying_contract)
    foreign = signed_record_to_json(
        sign_record(record_from_json(foreign["record"]), bytes.fromhex(tax[2:]), other)
    )
    replay = signed(c, tax, subject=subj, category="tax.arrears")
    replay_rec = record_from_json(replay["record"])
    import dataclasses

    replay_rec = dataclasses.replace(
        replay_rec, nonce=record_from_json(good["record"]).nonce, amount=7
    )
    replay = signed_record_to_json(sign_record(replay_rec, bytes.fromhex(tax[2:]), domain_of(c)))
    wrong_subject = signed(c, tax, subject=subj, category="tax.arrears")
    wrong_subject["subjectId"] = "91110000600037341L"
    bad_id = signed(c, tax, subject=subj, category="tax.arrears")
    bad_id["subjectId"] = "91440300568520498B"
    items = [
        good,
        out_of_scope,
        tampered,
        expired,
        unknown_cat,
        foreign,
        replay,
        wrong_subject,
        bad_id,
        {"record": {}, "signature": "0x00"},
        "nope",
    ]
    r = c.post("/v1/credit-records", json=items)
    assert r.status_code == 202, r.text
    res = r.json()["items"]
    assert res[0]["status"] == "accepted"
    codes = [x["problem"]["type"].rsplit("/", 1)[1] for x in res[1:]]
    assert codes == [
        "unauthorized",
        "unauthorized",
        "expired",
        "unknown-category",
        "unauthorized",
        "nonce-used",
        "subject-mismatch",
        "invalid-identifier",
        "invalid-record",
        "malformed",
    ], codes
    assert all(x["status"] == "rejected" and x["id"] is None for x in res[1:])
    # a tampered record recovers some other address: that is what "unauthorized" means here
    assert "holds no AGENCY role" in res[2]["problem"]["detail"]
    assert "does not have category tax.arrears in scope" in res[1]["problem"]["detail"]


def test_nothing_written_when_all_bad(env: tuple[TestClient, dict[str, Any]]) -> None:
    c, _keys = env
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    before = sum(rt.credit.box.counts().values())
    r = c.post("/v1/credit-records", json=[{"record": {}, "signature": "0x"}])
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["items"][0]["problem"]["type"].endswith("/invalid-record")
    assert sum(rt.credit.box.counts().values()) == before
    for body in (b"{not json", b"[]", b"42"):
        r = c.post("/v1/credit-records", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, body
        assert r.headers["content-type"] == "application/problem+json"
    r = c.post("/v1/credit-records", json=[{"record": {}, "signature": "0x"}] * 501)
    assert r.status_code == 413 and r.json()["type"].endswith("/batch-too-large")
    assert sum(rt.credit.box.counts().values()) == before


def test_prepare_rejects_bad_identifiers_and_categories(
    env: tuple[TestClient, dict[str, Any]],
) -> None:
    c, keys = env
    cases = [
        (
            {"subject": {"kind": "person", "id": "110105194912310021"}, "category": "tax.arrears"},
            "invalid-identifier",
        ),
        (
            {"subject": {"kind": "entity", "id": "91440300568520498B"}, "category": "tax.arrears"},
            "invalid-identifier",
        ),
        ({"subject": {"kind": "entity", "id": ENTITY}, "category": "no.such"}, "unknown-category"),
        ({"subject": {"kind": "robot", "id": ENTITY}, "category": "tax.arrears"}, "validation"),
        (
            {"subject": {"kind": "entity", "id": ENTITY}, "category": "volunteer.service_hours"},
            "invalid-input",
        ),
    ]
    for body, code in cases:
        r = c.post("/v1/credit-records/prepare", json=body, headers=as_(c, keys, "agency-tax"))
        assert 400 <= r.status_code < 500, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/" + code), (body, r.json())
        assert ENTITY not in r.text and "11010519491231002" not in r.text


def test_status_and_query_bad_input(env: tuple[TestClient, dict[str, Any]]) -> None:
    c, _ = env
    assert c.get("/v1/credit-records/0x1234").status_code == 422
    r = c.get("/v1/credit-records/0x" + "ab" * 32)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = c.get("/v1/credit-records", params={"agency": "0x12"})
    assert r.status_code == 422
    r = c.get("/v1/credit-records", params={"subject_kind": "person", "subject_id": "123"})
    assert r.status_code == 422 and r.json()["type"].endswith("/invalid-identifier")
    cats = c.get("/v1/catalog/categories").json()
    assert any(x["code"] == "court.judgment_defaulter" for x in cats["categories"])


def test_large_request_checks_in_worker_processes(env: tuple[TestClient, dict[str, Any]]) -> None:
    """>= 64 items go through the verification process pool; results match item by item."""
    c, keys = env
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    assert rt.credit.pool is not None
    tax = keys["agency-tax"]["private_key"]
    first = signed(c, tax, subject={"kind": "entity", "id": ENTITY}, category="tax.arrears")
    rec0 = record_from_json(first["record"])
    import dataclasses

    items: list[Any] = []
    for i in range(70):
        rec = dataclasses.replace(rec0, nonce=rec0.nonce + 1000 + i, amount=i)
        items.append(signed_record_to_json(sign_record(rec, bytes.fromhex(tax[2:]), domain_of(c))))
    items[5]["record"]["amount"] = "123456"  # tampered: recovers another address
    items[9]["signature"] = "0x" + "00" * 64  # no key recovers
    items[11] = {"record": items[11]["record"]}  # no signature at all
    r = c.post("/v1/credit-records", json=items)
    assert r.status_code == 202, r.text
    res = r.json()["items"]
    bad = {i: x["problem"]["type"].rsplit("/", 1)[1] for i, x in enumerate(res) if x.get("problem")}
    assert bad == {5: "unauthorized", 9: "invalid-signature", 11: "invalid-signature"}, bad
    assert r.json()["accepted"] == 67
    wait_indexed(c, res[69]["id"])


def test_submitter_fast_encoding_matches_web3(env: tuple[TestClient, dict[str, Any]]) -> None:
    """The submitter's hand-rolled recordBatch calldata is byte-identical to web3's."""
    from ledger.chain import encode_call

    c, keys = env
    sub = c.app.state.runtime.submitter  # type: ignore[attr-defined]
    tax = keys["agency-tax"]["private_key"]
    item = signed(c, tax, subject={"kind": "entity", "id": ENTITY}, category="tax.arrears")
    rec = record_from_json(item["record"])
    batch = [sign_record(rec, bytes.fromhex(tax[2:]), domain_of(c)) for _ in range(3)]
    sub._encode(batch)  # the first call checks itself against web3
    assert sub._fast_ok
    web3_data = encode_call(sub.ledger.contract, "recordBatch", [[s.as_tuple() for s in batch]])
    assert sub._encode(batch) == web3_data
