"""Audit and transparency-log routes on the dev service (embedded chain, dev agencies)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from ledger.tlog import leaf_hash, open_checkpoint, verify_inclusion
from tests.api.auth_helpers import as_
from tests.api.test_credit_api import ENTITY, signed, wait_indexed


def test_audit_and_log_routes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, chain="embedded", dev=True, index_poll_s=0.05)
    with TestClient(create_app(settings)) as c:
        keys = json.loads((tmp_path / "dev-keys.json").read_text())
        tax = keys["agency-tax"]["private_key"]
        item = signed(c, tax, subject={"kind": "entity", "id": ENTITY}, category="tax.arrears")
        rid = c.post("/v1/credit-records", json=[item]).json()["items"][0]["id"]
        wait_indexed(c, rid)
        w = signed(c, tax, subject={"kind": "entity", "id": ENTITY}, category="tax.arrears",
                   kind="withdraw", ref=rid, reason="entered in error")  # fmt: skip
        wid = c.post("/v1/credit-records", json=[w]).json()["items"][0]["id"]
        wait_indexed(c, wid)

        assert c.post("/v1/audit/run", json={}).status_code == 401
        r = c.post("/v1/audit/run", json={}, headers=as_(c, keys, "auditor"))
        assert r.status_code == 200, r.text
        rep = r.json()
        assert rep["ok"] and rep["counts"]["records"] == 2 and rep["index"]["ok"], rep

        vkey = c.get("/v1/log/key").json()["verifier_key"]
        note = c.get("/v1/log/checkpoint").text
        cp = open_checkpoint(note, [vkey])
        assert cp.size == 2
        p = c.get("/v1/log/proof/inclusion", params={"id": rid}).json()
        path = [base64.b64decode(x) for x in p["inclusion_path"]]
        verify_inclusion(leaf_hash(bytes.fromhex(rid[2:])), p["leaf_index"], 2, path, cp.root_hash)
        assert [x["id"] for x in p["withdrawn_by"]] == [wid] and p["withdrawn_by"][0]["ref"] == rid
        cons = c.get("/v1/log/proof/consistency", params={"first": 1, "second": 2})
        assert cons.status_code == 200 and cons.json()["second"] == 2
        missing = c.get("/v1/log/proof/inclusion", params={"id": "0x" + "00" * 32})
        assert missing.status_code == 404
        assert c.get("/v1/log/proof/inclusion", params={"id": "nope"}).status_code in (400, 422)
