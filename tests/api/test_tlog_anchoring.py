"""The running service anchors its transparency-log root on chain as records arrive."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from ledger.records import record_from_json, sign_record, signed_record_to_json
from ledger.rules_registry import RuleRegistryClient
from ledger.tlog import leaf_hash, root_from_leaf_hashes
from tests.api.auth_helpers import headers


def test_checkpoint_roots_are_anchored(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, chain="embedded", dev=True, index_poll_s=0.05,
        checkpoint_every_records=2,
    )  # fmt: skip
    with TestClient(create_app(settings)) as c:
        rt = c.app.state.runtime  # type: ignore[attr-defined]
        key = json.loads((tmp_path / "dev-keys.json").read_text())["agency-tax"]["private_key"]
        ids = []
        for _ in range(3):
            prep = c.post(
                "/v1/credit-records/prepare",
                json={"subject": {"kind": "entity", "id": "91440300568520498A"},
                      "category": "tax.arrears"},
                headers=headers(c, key),
            ).json()  # fmt: skip
            signed = sign_record(
                record_from_json(prep["record"]), bytes.fromhex(key[2:]), rt.credit.domain
            )
            r = c.post("/v1/credit-records", json=signed_record_to_json(signed))
            ids.append(r.json()["items"][0]["id"])
        registry = RuleRegistryClient(rt.chain, rt.deployment.address("RuleRegistry"))
        deadline = time.monotonic() + 30
        while registry.latest_checkpoint().tree_size < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        cp = registry.latest_checkpoint()
        assert cp.tree_size >= 2, rt.anchorer.last_error
        with rt.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "select id from credit_records order by seq limit ?", (cp.tree_size,)
            ).all()
        leaves = [leaf_hash(bytes.fromhex(r[0][2:])) for r in rows]
        assert cp.root_hash == root_from_leaf_hashes(leaves)
        served = c.get("/v1/log/checkpoint")
        assert served.status_code == 200 and "zhixin.example/credit-log/" in served.text
