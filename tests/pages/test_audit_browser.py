"""The audit dashboard in a real browser: an inclusion proof of a demo record verified by the
page's own WebCrypto code against the signed checkpoint, tampered proofs refused, wrong ids
answered with a message, the audit run from its button; the credit office's heat map."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import expect

from tests.pages.conftest import DemoServer, sign_in

SLOW = 60_000


def _record_ids(server: DemoServer) -> list[str]:
    out: list[str] = []
    for v in server.scenario["records"].values():
        out += v if isinstance(v, list) else [v]
    return out


def test_auditor_proof_check(page: Any, demo_server: DemoServer) -> None:
    rid = _record_ids(demo_server)[0]
    sign_in(page, demo_server, "auditor")
    page.goto(demo_server.url + "/audit?lang=en")
    # the checkpoint on the page, its signature checked in the browser
    expect(page.locator("[data-testid=checkpoint-size]")).to_have_text(re.compile(r"^\d+$"))
    expect(page.locator("[data-testid=checkpoint-sig-state]")).to_have_text(
        "checkpoint signature valid"
    )
    page.locator("[data-testid=proof-id]").fill(rid)
    page.locator("[data-testid=proof-submit]").click()
    verdict = page.locator("[data-testid=verdict]").first
    expect(verdict).to_have_attribute("data-ok", "1")
    expect(verdict).to_contain_text("Verified in your browser")
    expect(page.locator("[data-testid=proof]").first).to_contain_text(rid)
    expect(page.locator("[data-testid=proof-sig]")).to_contain_text("checkpoint signature valid")
    # the same verification code refuses tampered proofs (a path hash, the leaf, the root)
    verdicts = page.evaluate(
        """async (id) => {
            const p = await zhixin.api("GET", "/v1/log/proof/inclusion?id=" + id);
            const A = zhixinAudit, out = {};
            out.good = (await A.checkProof(p)).ok;
            const path = A.b64ToBytes(p.inclusion_path[0]); path[5] ^= 0x80;
            const rest = p.inclusion_path.slice(1);
            out.path = await A.checkProof({...p, inclusion_path: [A.bytesToB64(path), ...rest]});
            const leaf = A.hexToBytes(p.id); leaf[31] ^= 1;
            out.leaf = await A.checkProof({...p, id: "0x" + A.bytesToHex(leaf)});
            const lines = p.checkpoint.split("\\n");
            const root = A.b64ToBytes(lines[2]); root[0] ^= 1;
            lines[2] = A.bytesToB64(root);
            const note = lines.join("\\n");
            out.root = await A.checkProof({...p, checkpoint: note, root_hash: lines[2]});
            const vkey = document.getElementById("proof-form").dataset.vkey;
            out.rootSig = (await A.verifyNote(note, vkey)).ok;
            return JSON.parse(JSON.stringify(out, (k, v) => typeof v === "bigint" ? String(v) : v));
        }""",
        rid,
    )
    assert verdicts["good"] is True, verdicts
    for k in ("path", "leaf", "root"):
        assert verdicts[k]["ok"] is False, (k, json.dumps(verdicts[k])[:400])
        assert any("the proof gives root" in p for p in verdicts[k]["problems"]), verdicts[k]
    assert verdicts["rootSig"] is False  # a changed root is caught by the signature too
    # a wrong id: well-formed but not in the log, and malformed
    page.locator("[data-testid=proof-id]").fill("0x" + "ab" * 32)
    page.locator("[data-testid=proof-submit]").click()
    err = page.locator("[data-testid=proof-error]")
    expect(err).to_be_visible()
    expect(err).to_contain_text("Not in the log")
    expect(page.locator("[data-testid=verdict]")).to_have_count(0)
    page.locator("[data-testid=proof-id]").fill("0x1234")
    page.locator("[data-testid=proof-submit]").click()
    expect(err).to_have_text("A record id is 0x followed by 64 hex digits.")


def test_auditor_runs_the_audit(page: Any, demo_server: DemoServer) -> None:
    sign_in(page, demo_server, "auditor")
    page.goto(demo_server.url + "/audit?lang=en")
    page.locator("[data-testid=run-audit]").click()
    verdict = page.locator("[data-testid=audit-verdict]")
    expect(verdict).to_be_visible(timeout=SLOW)
    expect(verdict).to_have_attribute("data-ok", "1")
    expect(page.locator("[data-testid=audit-ran-at]")).to_have_text(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
    )
    expect(page.locator("[data-testid=findings-none]")).to_be_visible()


def test_governor_sees_the_office_heat_map(page: Any, demo_server: DemoServer) -> None:
    sign_in(page, demo_server, "governor")
    page.goto(demo_server.url + "/office?lang=en")
    heat = page.locator("[data-testid=heatmap]")
    expect(heat).to_be_visible()
    codes = heat.locator("thead th code").all_inner_texts()
    k = 5
    for cell in demo_server.scenario["grid_cells"]:
        if cell["category"] not in codes:
            continue
        col = codes.index(cell["category"]) + 2  # the row header is column 1
        td = heat.locator(f"tbody tr:has(th code:text-is('{cell['grid']}')) td:nth-child({col})")
        if cell["subjects"] < k:  # never a number for fewer than k subjects
            expect(td).to_have_attribute("data-withheld", "1")
            expect(td).to_have_text("withheld")
    assert page.locator("[data-testid=heatmap] td[data-withheld='1']").count() > 0
    expect(page.locator("[data-testid=bycat-chart] title").first).to_have_text(
        "Records per category per month"
    )
