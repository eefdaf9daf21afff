"""The demo scenario of ``zhixin serve --dev`` (api/demo.py): files, records, lists, idempotence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import func, select

from api.demo import DEMO_PASSWORD, KEYSTORE_SCRYPT_N, DemoSeedError, seed_demo, sign_in_lines
from api.identity_services import IdentityServices
from api.pages.home import DEMO_PASSWORD as PAGES_DEMO_PASSWORD
from api.runtime import Runtime
from api.settings import Settings
from identity.ids import validate_ric, validate_uscc
from ledger.db import credit_records, outbox
from ledger.node import free_port

pytestmark = pytest.mark.xdist_group("demo")

NAMES = (
    "governor",
    "agency-tax",
    "agency-market",
    "agency-community",
    "issuer",
    "auditor",
    "rule-publisher",
    "citizen",
    "citizen-2",
)


def _start(data_dir: Path) -> Runtime:
    return Runtime.start(
        Settings(data_dir=data_dir, chain="embedded", dev=True, verify_workers=0, index_poll_s=0.05)
    )


def _outbox_ids(rt: Runtime) -> list[str]:
    assert rt.engine is not None
    with rt.engine.connect() as conn:
        return [r[0] for r in conn.execute(select(outbox.c.id))]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runtime, dict[str, Any]]]:
    rt = _start(tmp_path_factory.mktemp("demo") / "data")
    try:
        t = time.monotonic()
        scenario = seed_demo(rt)
        elapsed = time.monotonic() - t
        assert elapsed < 30, f"seeding the demo took {elapsed:.1f} s"
        yield rt, scenario
    finally:
        rt.close()


def _pseudonym(rt: Runtime, kind: str, identifier: str) -> bytes:
    assert rt.credit is not None
    return rt.credit.subject_pseudonym(kind, identifier)[1]


def test_second_seed_writes_nothing(seeded: tuple[Runtime, dict[str, Any]]) -> None:
    rt, scenario = seeded
    demo = rt.settings.data_dir / "demo"
    before = _outbox_ids(rt)
    assert len(before) == len(set(before)) == scenario["counts"]["records"] >= 150
    files = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in demo.iterdir()}
    assert rt.engine is not None
    with rt.engine.connect() as conn:
        indexed = conn.execute(select(func.count()).select_from(credit_records)).scalar()
    assert indexed == len(before)

    again = seed_demo(rt)
    assert again == scenario
    assert _outbox_ids(rt) == before
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in demo.iterdir()} == files

    # without the marker, every record is found by its nonce and the epoch is reused
    (demo / "scenario.json").unlink()
    rebuilt = seed_demo(rt)
    assert _outbox_ids(rt) == before
    assert rebuilt["records"] == scenario["records"]
    assert rebuilt["epoch"] == scenario["epoch"]
    assert json.loads((demo / "scenario.json").read_text())["records"] == scenario["records"]


def test_an_interrupted_seed_resumes_without_writing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = _start(tmp_path / "data")
    try:
        assert rt.credit is not None
        real = rt.credit.submit

        def crash_halfway(items: list[Any]) -> Any:
            real(items[: len(items) // 2])
            raise RuntimeError("power cut")

        monkeypatch.setattr(rt.credit, "submit", crash_halfway)
        with pytest.raises(DemoSeedError, match="demo seeding failed: RuntimeError: power cut"):
            seed_demo(rt)
        half = _outbox_ids(rt)
        assert half and not (rt.settings.data_dir / "demo" / "scenario.json").exists()
        monkeypatch.undo()

        scenario = seed_demo(rt)
        ids = _outbox_ids(rt)
        assert len(ids) == len(set(ids)) == scenario["counts"]["records"]
        assert set(half) <= set(ids)
        assert [e["lists"] for e in scenario["entities"]] == [
            e["expect_lists"] for e in scenario["entities"]
        ]
    finally:
        rt.close()


def test_the_lists_it_promises(seeded: tuple[Runtime, dict[str, Any]]) -> None:
    rt, scenario = seeded
    rules = rt.rules
    assert scenario["rule_set"]["id"] == "district.joint-credit"
    ep = rules.epoch(scenario["epoch"]["epoch"])
    assert ep["anchored"] and ep["member_count"] == scenario["epoch"]["member_count"]

    kinds = {e["expect"] for e in scenario["entities"]}
    assert {"black", "red", "none"} <= kinds
    for subject in scenario["entities"] + scenario["citizens"]:
        kind, ident = (
            ("entity", subject["uscc"]) if "uscc" in subject else ("person", subject["ric"])
        )
        status = rules.status(_pseudonym(rt, kind, ident))
        assert sorted(status["lists"]) == sorted(subject["expect_lists"]), subject
        assert status["latest_epoch"]["lists"] == sorted(subject["expect_lists"]), subject
        rule_ids = {m["rule"] for m in status["memberships"]}
        assert rule_ids == ({subject["rule"]} if subject["rule"] else set())

    def members(list_id: str, persons: bool) -> set[str]:
        doc = rules.publicity(list_id, include_persons=persons)
        return {e["subject"] for e in doc["entries"]}

    by_rule = {e["rule"]: e for e in scenario["entities"]}
    black = by_rule["serious-administrative-penalty"]
    assert "0x" + _pseudonym(rt, "entity", black["uscc"]).hex() in members(
        "serious_dishonesty", False
    )
    red = by_rule["a-grade-taxpayer-red"]
    assert "0x" + _pseudonym(rt, "entity", red["uscc"]).hex() in members("red", False)
    repeated = by_rule["repeated-general-penalties"]
    assert "0x" + _pseudonym(rt, "entity", repeated["uscc"]).hex() in members(
        "key_supervision", False
    )
    citizen = next(c for c in scenario["citizens"] if c["name"] == "citizen")
    pseud = "0x" + _pseudonym(rt, "person", citizen["ric"]).hex()
    assert pseud in members("red", True) and pseud not in members("red", False)


def test_records_of_interest(seeded: tuple[Runtime, dict[str, Any]]) -> None:
    rt, scenario = seeded
    assert rt.credit is not None
    keys = json.loads((rt.settings.data_dir / "dev-keys.json").read_text())
    citizen = next(c for c in scenario["citizens"] if c["name"] == "citizen")
    pseud = "0x" + _pseudonym(rt, "person", citizen["ric"]).hex()
    rows = {r["id"]: r for r in rt.credit.history(_query(subject=pseud))}
    minor = rows[scenario["records"]["citizen_minor_penalty"]]
    assert minor["category_code"] == "admin_penalty.minor"
    assert minor["agency"] == keys["agency-market"]["address"]
    hours = sum(
        int(rows[i]["amount"]) for i in scenario["records"]["citizen_volunteer"] if i in rows
    )
    assert hours == 160
    assert {rows[i]["agency"] for i in scenario["records"]["citizen_volunteer"]} == {
        keys["agency-community"]["address"]
    }
    # spread over the last year: charts have more than one month
    assert rt.engine is not None
    with rt.engine.connect() as conn:
        stamps = [r[0] for r in conn.execute(select(credit_records.c.occurred_at))]
    now = time.time()
    assert min(stamps) < now - 300 * 86400 and max(stamps) <= now
    months = {datetime.fromtimestamp(t, UTC).strftime("%Y-%m") for t in stamps}
    assert len(months) >= 10
    for s in scenario["synthetic"]:
        (validate_uscc if s["kind"] == "entity" else validate_ric)(s["id"])
    assert 50 <= scenario["counts"]["synthetic_subjects"] <= 70


def _query(**kw: Any) -> Any:
    from ledger.credit_service import RecordQuery

    return RecordQuery(limit=1000, **kw)


def test_grids_feed_a_heat_map(seeded: tuple[Runtime, dict[str, Any]]) -> None:
    rt, scenario = seeded
    assert rt.engine is not None
    if "grid" not in outbox.c:
        pytest.skip("the outbox has no grid column yet")
    t, o = credit_records, outbox
    stmt = (
        select(o.c.grid, t.c.category, func.count(func.distinct(t.c.subject)))
        .select_from(t.join(o, o.c.id == t.c.id))
        .group_by(o.c.grid, t.c.category)
    )
    with rt.engine.connect() as conn:
        cells = {(g, c): n for g, c, n in conn.execute(stmt)}
    assert None not in {g for g, _ in cells}, "every demo record has a grid"
    assert sum(1 for n in cells.values() if n >= 5) >= 6  # shown on a heat map
    assert sum(1 for n in cells.values() if n < 5) >= 6  # suppressed cells too
    assert sum(c["subjects"] >= 5 for c in scenario["grid_cells"]) >= 6


def test_sign_in_files(seeded: tuple[Runtime, dict[str, Any]]) -> None:
    rt, scenario = seeded
    demo = rt.settings.data_dir / "demo"
    index = json.loads((demo / "index.json").read_text())
    assert list(index) == list(NAMES)
    for name, entry in index.items():
        path = demo / entry["file"]
        assert path.stat().st_mode & 0o777 == 0o600, name
        if entry["kind"] == "keystore":
            doc = json.loads(path.read_text())
            assert doc["crypto"]["kdf"] == "scrypt"
            assert doc["crypto"]["kdfparams"]["n"] == KEYSTORE_SCRYPT_N
            key = Account.decrypt(doc, DEMO_PASSWORD)
            ident = rt.dev_identities[name]
            assert Account.from_key(key).address == ident["address"]
            assert entry["role"] == ident["role"] and f"({name})" in entry["label"]
        else:
            assert entry["role"] == "citizen" and entry["file"] == f"{name}.wallet.json"
    assert index["agency-tax"]["label"] == "税务局 Tax bureau (agency-tax)"
    assert PAGES_DEMO_PASSWORD == DEMO_PASSWORD == scenario["password"]  # what /signin shows

    ids = IdentityServices(rt)
    now = datetime.now(UTC)
    for c in scenario["citizens"]:
        wallet = json.loads((demo / c["wallet"]).read_text())
        assert set(wallet) == {
            "version",
            "did",
            "verificationMethod",
            "secretKeyMultibase",
            "credentials",
        }
        assert wallet["did"] == c["did"] and wallet["did"].startswith("did:key:z6Mk")
        (vc,) = wallet["credentials"]
        assert vc["id"] == c["credential_id"]
        subject = vc["credentialSubject"]
        assert subject["residentIdNumber"] == c["ric"] and subject["id"] == c["did"]
        assert c["ric"].startswith("440604") and subject["verifiedName"].endswith("(demo)")
        result = ids.verify_credential(vc, now)
        assert result.verified, result.to_json()


def test_sign_in_lines(seeded: tuple[Runtime, dict[str, Any]]) -> None:
    _rt, scenario = seeded
    lines = sign_in_lines("http://127.0.0.1:8000", Path("data"), scenario)
    text = "\n".join(lines)
    assert "http://127.0.0.1:8000/signin" in text and '"demo"' in text
    for name in NAMES:
        assert f"  {name} " in text
    assert "data/demo/agency-tax.keystore.json" in text
    black = next(e for e in scenario["entities"] if e["expect"] == "black")
    red = next(e for e in scenario["entities"] if e["expect"] == "red")
    assert black["uscc"] in text and red["uscc"] in text
    assert len(lines) <= 16


def test_serve_reports_a_failed_seed_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "demo").write_text("not a directory")
    env = {**os.environ, "ZHIXIN_VERIFY_WORKERS": "0", "HOME": str(tmp_path)}
    zhixin = str(Path(sys.executable).parent / "zhixin")
    args = ["serve", "--chain", "embedded", "--dev", "--data-dir", str(data)]
    r = subprocess.run(
        [zhixin, *args, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("zhixin: error:")]
    assert len(errors) == 1 and "demo seeding failed" in errors[0], r.stderr
