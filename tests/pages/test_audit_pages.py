"""Audit dashboard and credit office through TestClient on an embedded chain: who may see them,
the audit run kept on the dashboard, the checkpoint as served, the office's charts, tables and
heat map with withheld cells; the chart geometry (pure); and audit.js's in-browser inclusion
verification run under node on real proofs from this app (valid, tampered, wrong leaf)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.pages.audit import heat_bins, heat_class, parse_note, stacked_bars
from api.settings import Settings
from ledger.records import record_from_json, sign_record, signed_record_to_json
from tests.api.auth_helpers import as_

AUDIT_JS = Path(__file__).resolve().parents[2] / "api" / "pages" / "static" / "audit.js"
# distinct valid USCCs (GB 32100 check characters): one subject each
ENTITIES = [
    "91440300568520498A",
    "91310115MA1K3BTP2B",
    "91110000802100433B",
    "91440101MA59AYJ44Q",
    "91440604MA4UXX123C",
    "91440604MA4UXX124F",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    d = tmp_path_factory.mktemp("audit-pages")
    settings = Settings(
        data_dir=d,
        chain="embedded",
        dev=True,
        verify_workers=0,
        index_poll_s=0.05,
        stats_min_cell=2,  # small, so one test table has both shown and withheld cells
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8000") as c:
        yield c, c.app.state.runtime.dev_identities  # type: ignore[attr-defined]


def _write(c: TestClient, keys: dict[str, Any], uscc: str, category: str, grid: str | None) -> str:
    h = as_(c, keys, "agency-tax")
    fields: dict[str, Any] = {"subject": {"kind": "entity", "id": uscc}, "category": category}
    if grid:
        fields["grid"] = grid
    prep = c.post("/v1/credit-records/prepare", json=fields, headers=h)
    assert prep.status_code == 200, prep.text
    p = prep.json()
    domain = c.app.state.runtime.credit.domain  # type: ignore[attr-defined]
    key = keys["agency-tax"]["private_key"]
    item = signed_record_to_json(
        sign_record(record_from_json(p["record"]), bytes.fromhex(key[2:]), domain)
    )
    if grid:
        item["grid"] = grid
    r = c.post("/v1/credit-records", json=[item])
    assert r.status_code == 202, r.text
    rid = str(r.json()["items"][0]["id"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if c.get(f"/v1/credit-records/{rid}", headers=h).json().get("indexed"):
            return rid
        time.sleep(0.05)
    raise AssertionError(f"{rid} not indexed")


@pytest.fixture(scope="module")
def records(env: tuple[TestClient, dict[str, Any]]) -> list[str]:
    """Records for the log and the office (k=2): tax.arrears in CC-ZM-01 about 3 entities
    (shown), in CC-ZM-02 about 2 (withheld with its row total so that CC-SW-02's cannot be
    derived), in CC-SW-02 about 1 (withheld); tax.grade_a with no grid (not in the heat map)."""
    c, keys = env
    ids = [_write(c, keys, u, "tax.arrears", "CC-ZM-01") for u in ENTITIES[:3]]
    ids += [_write(c, keys, u, "tax.arrears", "CC-ZM-02") for u in ENTITIES[3:5]]
    ids.append(_write(c, keys, ENTITIES[5], "tax.arrears", "CC-SW-02"))
    ids.append(_write(c, keys, ENTITIES[0], "tax.grade_a", None))
    return ids


# ---- who may see what ----


@pytest.mark.parametrize("path", ["/audit", "/office"])
def test_signed_out_gets_401_page(env: tuple[TestClient, dict[str, Any]], path: str) -> None:
    c, _ = env
    r = c.get(path)
    assert r.status_code == 401 and f'href="/signin?next={path}"' in r.text
    assert 'data-testid="error"' in r.text


def test_roles(env: tuple[TestClient, dict[str, Any]]) -> None:
    c, keys = env
    assert c.get("/audit", headers=as_(c, keys, "agency-tax")).status_code == 403
    assert c.get("/audit", headers=as_(c, keys, "governor")).status_code == 403
    assert c.get("/office", headers=as_(c, keys, "agency-tax")).status_code == 403
    assert c.get("/office", headers=as_(c, keys, "governor")).status_code == 200
    assert c.get("/office", headers=as_(c, keys, "auditor")).status_code == 200
    r = c.get("/audit", headers=as_(c, keys, "governor"))
    assert "AUDITOR" in r.text and 'data-testid="error"' in r.text
    r = c.post("/audit/run", headers=as_(c, keys, "agency-tax"))
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    r = c.post("/audit/run")
    assert r.status_code == 401


# ---- the dashboard ----


def test_dashboard_shows_the_served_checkpoint(
    env: tuple[TestClient, dict[str, Any]], records: list[str]
) -> None:
    c, keys = env
    r = c.get("/audit?lang=en", headers=as_(c, keys, "auditor"))
    assert r.status_code == 200, r.text
    assert 'data-testid="audit-none"' in r.text  # nothing run yet
    served = c.get("/v1/log/checkpoint").text
    cp = parse_note(served)
    assert int(cp["size"]) >= len(records)
    assert f'data-testid="checkpoint-size">{cp["size"]}<' in r.text
    assert cp["root"] in r.text and cp["origin"] in r.text
    assert cp["signatures"][0].replace("+", "&#43;") in r.text or cp["signatures"][0] in r.text
    assert c.get("/v1/log/key").json()["verifier_key"] in r.text
    assert 'id="proof-form"' in r.text and "/static/audit.js" in r.text


def test_run_audit_keeps_the_result(
    env: tuple[TestClient, dict[str, Any]], records: list[str]
) -> None:
    c, keys = env
    h = as_(c, keys, "auditor")
    r = c.post("/audit/run", headers={**h, "Origin": "http://evil.example"})
    assert r.status_code == 403  # cross-origin form posts are refused
    r = c.post("/audit/run", headers=h, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/audit#last"
    page = c.get("/audit?lang=en", headers=h).text
    assert 'data-testid="audit-verdict" data-ok="1"' in page and "passed" in page
    assert re.search(r'data-testid="audit-ran-at">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d<', page)
    assert keys["auditor"]["address"] in page
    assert 'data-testid="findings-none"' in page
    last = c.app.state.page_audit  # type: ignore[attr-defined]
    assert last.result["ok"] is True and last.result["counts"]


def test_findings_table_lists_every_source(env: tuple[TestClient, dict[str, Any]]) -> None:
    """A failed run (findings from the replay, the index and the epochs) renders as a table."""
    from api.pages.audit import AuditRun, _findings

    c, keys = env
    result = {
        "ok": False, "partial": False, "from_block": 0, "to_block": 9, "head_block": 9,
        "running_hash": "0x00", "log": {"size": 1, "root": "AA=="}, "counts": {"records": 1},
        "notes": [], "findings": [{"check": "signature", "detail": "bad sig", "block": 7,
                                   "tx": "0xabc", "record_id": "0x" + "11" * 32}],
        "index": {"ok": False, "records": 1, "findings": [
            {"check": "index-missing", "detail": "row missing", "record_id": "0x" + "22" * 32}]},
        "epochs": [{"epoch": 1, "matches": False, "error": "rule set unknown"}],
    }  # fmt: skip
    state: Any = c.app.state  # type: ignore[attr-defined]
    saved = getattr(state, "page_audit", None)
    state.page_audit = AuditRun(time.time(), "0xme", 0.5, result=result, findings=_findings(result))
    try:
        page = c.get("/audit?lang=en", headers=as_(c, keys, "auditor")).text
    finally:
        state.page_audit = saved
    assert 'data-ok="0"' in page and "failed" in page
    table = page.split('data-testid="findings"', 1)[1].split("</table>", 1)[0]
    for text in (
        "bad sig",
        "block 7",
        "0xabc",
        "row missing",
        "index",
        "epochs",
        "rule set unknown",
    ):
        assert text in table, text


# ---- the credit office ----


def test_office_charts_tables_and_heat_map(
    env: tuple[TestClient, dict[str, Any]], records: list[str]
) -> None:
    c, keys = env
    h = as_(c, keys, "governor")
    r = c.get("/office?lang=en", headers=h)
    assert r.status_code == 200, r.text
    page = r.text
    # records per category: an SVG with title/desc and the same numbers in a table
    svg = page.split('data-testid="bycat-chart"', 1)[1].split("</svg>", 1)[0]
    assert "<title" in svg and "<desc" in svg and "<rect" in svg
    api = c.get("/v1/stats/records-by-category", params={"months": 12}).json()
    table = page.split('data-testid="bycat-table"', 1)[1].split("</table>", 1)[0]
    for cat in api["categories"]:
        assert cat["code"] in table
        if not cat["total"]["suppressed"]:
            assert f"<strong>{cat['total']['count']}</strong>" in table
    # the heat map: the numbers the API gives, withheld cells hatched and labelled, no number
    heat = c.get("/v1/stats/heatmap", headers=h).json()
    grid_table = page.split('data-testid="heatmap"', 1)[1].split("</table>", 1)[0]
    row_zm = grid_table.split("CC-ZM-01", 1)[1].split("</tr>", 1)[0]
    zm = next(r for r in heat["rows"] if r["grid"]["code"] == "CC-ZM-01")
    arrears = [x["code"] for x in heat["categories"]].index("tax.arrears")
    assert zm["cells"][arrears] == {"count": 3, "suppressed": False}
    assert re.search(r'<td style="background:#[0-9a-f]{6};(color:#fff;)?">3</td>', row_zm)
    row_sw = grid_table.split("CC-SW-02", 1)[1].split("</tr>", 1)[0]
    sw = next(r for r in heat["rows"] if r["grid"]["code"] == "CC-SW-02")
    assert sw["cells"][arrears]["suppressed"] is True
    assert '<td class="sup" data-withheld="1"><span class="small">withheld</span></td>' in row_sw
    assert not re.search(r">\s*1\s*<", row_sw)  # the withheld count appears nowhere in the row
    assert "fewer than k=2 distinct subjects" in page  # the legend
    # the governor may read the heat map page; the legend shows the colour scale bins
    assert 'data-testid="heat-legend"' in page


def test_office_list_sizes_after_an_epoch(
    env: tuple[TestClient, dict[str, Any]], records: list[str]
) -> None:
    c, keys = env
    starter = (
        __import__("importlib.resources", fromlist=["files"])
        .files("ledger")
        .joinpath("data", "rules", "district-joint-credit.yaml")
        .read_text()
    )
    ph = as_(c, keys, "rule-publisher")
    r = c.post("/v1/rules/rule-sets", content=starter,
               headers={"content-type": "application/yaml", **ph})  # fmt: skip
    assert r.status_code == 200, r.text
    assert c.post("/v1/rules/evaluations", json={}, headers=ph).status_code == 200
    page = c.get("/office?lang=en", headers=as_(c, keys, "auditor")).text
    sizes = c.get("/v1/stats/list-sizes").json()["rule_sets"]
    assert sizes and 'data-testid="lists-chart"' in page
    table = page.split('data-testid="lists-table"', 1)[1].split("</table>", 1)[0]
    for lst in sizes[0]["lists"]:
        assert lst["id"] in table
        assert f'<td class="num">{lst["size"]}</td>' in table


def test_office_bad_months_is_a_readable_422(env: tuple[TestClient, dict[str, Any]]) -> None:
    c, keys = env
    r = c.get("/office?months=0", headers=as_(c, keys, "auditor"))
    assert r.status_code == 422 and "months must be a whole number from 1 to 60" in r.text
    r = c.get("/office?months=abc", headers=as_(c, keys, "auditor"))
    assert r.status_code == 422


# ---- chart geometry (pure) ----


def test_stacked_bars_skip_withheld_values_and_flag_their_bar() -> None:
    series: list[dict[str, Any]] = [
        {"name": "a", "colour": "#000", "values": [3, None, 0]},
        {"name": "b", "colour": "#111", "values": [2, 4, 0]},
    ]
    g = stacked_bars(["2025-01", "2025-02", "2025-03"], series)
    b0, b1, b2 = g["bars"]
    assert b0["sum"] == 5 and not b0["withheld"] and len(b0["segments"]) == 2
    assert b1["sum"] == 4 and b1["withheld"] and [s["name"] for s in b1["segments"]] == ["b"]
    assert b2["segments"] == [] and g["ymax"] >= 5
    # segments stack upwards from the base without overlapping
    s0, s1 = b0["segments"]
    assert abs(s0["y"] - (g["base"] - s0["h"])) < 0.2 and abs(s1["y"] + s1["h"] - s0["y"]) < 0.2


def test_heat_bins_cover_every_value() -> None:
    bins = heat_bins(17)
    assert bins[0] == {"lo": 0, "hi": 0, "colour": "#ffffff", "dark": False}
    covered = [v for b in bins for v in range(b["lo"], b["hi"] + 1)]
    assert covered == list(range(18))
    assert heat_class(17, bins)["dark"] and not heat_class(1, bins)["dark"]
    assert heat_class(None, bins)["colour"] is None
    assert heat_bins(0) == [bins[0]] and len(heat_bins(2)) == 3


# ---- audit.js: the browser's verification, run under node on real proofs ----


def _node_check(proofs: list[dict[str, Any]], vkey: str) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = (
        "const fs = require('fs');"
        f"eval(fs.readFileSync({json.dumps(str(AUDIT_JS))}, 'utf8'));"
        "const A = globalThis.zhixinAudit;"
        "(async () => { const input = JSON.parse(fs.readFileSync(0, 'utf8')); const out = [];"
        "  for (const p of input.proofs) {"
        "    let r; try { r = await A.checkProof(p); r = {ok: r.ok, problems: r.problems}; }"
        "    catch (e) { r = {ok: false, problems: [String(e.message)]}; }"
        "    r.sig = (await A.verifyNote(p.checkpoint, input.vkey)).ok; out.push(r); }"
        "  process.stdout.write(JSON.stringify(out)); })();"
    )
    res = subprocess.run(
        [node, "-e", script],
        input=json.dumps({"proofs": proofs, "vkey": vkey}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def test_audit_js_verifies_real_proofs_and_catches_tampering(
    env: tuple[TestClient, dict[str, Any]], records: list[str]
) -> None:
    c, _ = env
    vkey = c.get("/v1/log/key").json()["verifier_key"]
    proofs = [c.get("/v1/log/proof/inclusion", params={"id": rid}).json() for rid in records]
    assert all(p["inclusion_path"] for p in proofs[:1]) and proofs[0]["tree_size"] >= 5
    good = _node_check(proofs, vkey)
    assert all(r["ok"] and r["sig"] is True for r in good), good
    # tampering: one hash of the path, the leaf (another record's id at the same index), the
    # index, the checkpoint's root, a truncated path, the checkpoint's signature
    p = proofs[0]
    path0 = list(p["inclusion_path"])
    flipped = bytearray(__import__("base64").b64decode(path0[0]))
    flipped[0] ^= 1
    bad_path = {
        **p,
        "inclusion_path": [__import__("base64").b64encode(bytes(flipped)).decode(), *path0[1:]],
    }
    bad_leaf = {**p, "id": proofs[1]["id"]}
    bad_index = {**p, "leaf_index": (p["leaf_index"] + 1) % p["tree_size"]}
    short = {**p, "inclusion_path": path0[:-1]}
    lines = p["checkpoint"].split("\n")
    other_root = proofs[1]["checkpoint"]  # same size here: same root, so fake one
    fake = bytearray(__import__("base64").b64decode(lines[2]))
    fake[-1] ^= 1
    lines[2] = __import__("base64").b64encode(bytes(fake)).decode()
    bad_cp = {**p, "checkpoint": "\n".join(lines), "root_hash": lines[2]}
    assert other_root
    out = _node_check([bad_path, bad_leaf, bad_index, short, bad_cp], vkey)
    assert [r["ok"] for r in out] == [False] * 5, out
    assert "the proof gives root" in out[0]["problems"][0]
    assert "the proof gives root" in out[1]["problems"][0]
    assert "needs" in out[3]["problems"][0]  # wrong length, named
    assert out[4]["sig"] is False  # a changed root breaks the checkpoint's signature
    assert out[0]["sig"] is True  # the path is not signed: the checkpoint still is valid


def test_audit_js_checks_checkpoint_signatures_of_any_key() -> None:
    """Verifier keys whose base64 holds '+' (most do) parse; a changed body or key fails."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ledger.tlog import Checkpoint, ed25519_verifier_key, sign_checkpoint

    origin = "zhixin.example/credit-log/1/0xabc"
    while True:
        key = Ed25519PrivateKey.generate()
        vkey = ed25519_verifier_key(origin, key.public_key())
        if "+" in vkey.split("+", 2)[2]:
            break
    note = sign_checkpoint(Checkpoint(origin, 7, bytes(range(32))), origin, key)
    other = ed25519_verifier_key(origin, Ed25519PrivateKey.generate().public_key())
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = (
        "const fs = require('fs');"
        f"eval(fs.readFileSync({json.dumps(str(AUDIT_JS))}, 'utf8'));"
        "const A = globalThis.zhixinAudit;"
        "(async () => { const i = JSON.parse(fs.readFileSync(0, 'utf8'));"
        "  const changed = i.note.replace('\\n7\\n', '\\n8\\n');"
        "  const r = [await A.verifyNote(i.note, i.vkey), await A.verifyNote(changed, i.vkey),"
        "             await A.verifyNote(i.note, i.other)];"
        "  process.stdout.write(JSON.stringify(r)); })();"
    )
    res = subprocess.run(
        [node, "-e", script],
        input=json.dumps({"note": note, "vkey": vkey, "other": other}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    good, changed, wrong_key = json.loads(res.stdout)
    assert good == {"ok": True, "error": None}
    assert changed["ok"] is False and "does not verify" in changed["error"]
    assert wrong_key["ok"] is False and "no signature by" in wrong_key["error"]


def test_every_message_key_of_these_pages_is_registered_in_both_languages() -> None:
    """Literal t('...') keys in the agency/audit templates and m("...") keys in their JS."""
    import api.pages.agency
    import api.pages.audit  # noqa: F401 - registers the keys
    from api.pages.i18n import MESSAGES

    root = Path(__file__).resolve().parents[2] / "api" / "pages"
    keys: set[str] = set()
    for area in ("agency", "audit"):
        for tpl in (root / "templates" / area).glob("*.html"):
            keys |= set(re.findall(r"t\('([a-z0-9_.]+)'\)", tpl.read_text()))
            keys |= set(re.findall(r"'((?:agency|audit|office)\.[a-z0-9_.]+)'", tpl.read_text()))
        js = (root / "static" / f"{area}.js").read_text()
        used = {k for k in re.findall(r'\bm\("([a-z0-9_.]+)"', js) if not k.endswith(".")}
        # what the JS shows must be in the page's message block, else it shows the key
        listed = set(
            re.findall(r"'([a-z0-9_.]+)'", (root / "templates" / area / "_i18n.html").read_text())
        )
        assert used <= listed, sorted(used - listed)
        keys |= used
    keys = {k for k in keys if not k.endswith(".")}
    missing = sorted(k for k in keys if k not in MESSAGES)
    assert not missing, missing
    for k in keys:
        zh, en = MESSAGES[k]
        assert zh.strip() and en.strip(), k
