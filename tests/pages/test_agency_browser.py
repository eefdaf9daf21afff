"""The agency console in a real browser: a CSV batch with one bad row (precise per-row error,
never submitted), the keystore unlocked in the page and kept for the next signature, the good
rows signed with ethers and followed to the index; an objection accepted in the browser."""

from __future__ import annotations

import re
from typing import Any

import httpx2 as httpx
from playwright.sync_api import expect

from tests.pages.conftest import DemoServer, sign_in

GOOD_ENTITY = "91440604MA4UXX125J"  # valid GB 32100 check character
BAD_ENTITY = "91440604MA4UXX125K"  # the same code with the check character mistyped
GOOD_PERSON = "11010519491231002X"
SLOW = 60_000  # ms: scrypt in the page, blocks and the index


def _csv() -> bytes:
    return (
        "subject_kind,subject_id,category,occurred_at,effective_from,effective_until,amount,"
        "evidence_sha256,reason,grid\n"
        f"entity,{GOOD_ENTITY},tax.arrears,2025-03-01,2025-03-15,,125000,,"
        '"逾期未缴增值税, overdue VAT",CC-ZM-01\n'
        f"person,{GOOD_PERSON},tax.arrears,2025-04-02,,,3800,,unpaid income tax,\n"
        f"entity,{BAD_ENTITY},tax.arrears,2025-05-10,,,990,,check character typo,CC-SW-02\n"
    ).encode()


def _unlock(page: Any, server: DemoServer) -> None:
    page.locator("#unlock-keystore").set_input_files(str(server.file("agency-tax")))
    page.locator("#unlock-password").fill(server.scenario.get("password", "demo"))
    page.locator("[data-testid=unlock]").click()


def test_batch_upload_with_a_bad_row(page: Any, demo_server: DemoServer) -> None:
    address = demo_server.keys["agency-tax"]["address"]
    sign_in(page, demo_server, "agency-tax")
    page.goto(demo_server.url + "/agency/write?lang=en")
    expect(page.locator("[data-testid=csv-header]")).to_contain_text("subject_kind,subject_id")
    page.locator("[data-testid=batch-file]").set_input_files(
        {"name": "batch.csv", "mimeType": "text/csv", "buffer": _csv()}
    )
    page.locator("[data-testid=batch-check]").click()
    table = page.locator("[data-testid=batch-table]")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(page.locator("[data-testid=batch-status]")).to_have_text("2 rows passed, 1 failed.")
    ok_rows = table.locator("tr[data-ok='1']")
    expect(ok_rows).to_have_count(2)
    bad = table.locator("tr[data-row='4']")
    expect(bad).to_have_attribute("data-ok", "0")
    expect(bad.locator("[data-testid=row-error]")).to_contain_text("check character")
    expect(bad.locator("[data-testid=row-error]")).to_contain_text("column subject")
    # sign: the page asks for the keystore (nothing unlocked yet), then signs and submits
    submit = page.locator("[data-testid=batch-submit]")
    expect(submit).to_have_text(re.compile(r"\(2\)$"))
    submit.click()
    expect(page.locator("#unlock-needed")).to_be_visible()
    _unlock(page, demo_server)
    expect(page.locator("[data-testid=unlock-state]")).to_contain_text(address, timeout=SLOW)
    expect(page.locator("[data-testid=batch-status]")).to_have_text(
        "Submitted: 2 accepted, 0 rejected.", timeout=SLOW
    )
    expect(bad.locator("[data-testid=row-outcome]")).to_have_text("not submitted")
    ids = []
    for row in ("2", "3"):
        outcome = table.locator(f"tr[data-row='{row}'] [data-testid=row-outcome]")
        expect(outcome.locator("[data-testid=stage]")).to_have_attribute(
            "data-stage", "indexed", timeout=SLOW
        )
        expect(outcome).to_contain_text(re.compile(r"Block \d+"))
        ids.append(outcome.locator("[data-testid=record-link]").get_attribute("href"))
    # the records are on the ledger, and only the two good ones went in
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    for href in ids:
        st = httpx.get(demo_server.url + href, cookies=cookies, timeout=10).json()
        assert st["indexed"] is True and st["block_number"] > 0, st
    q = httpx.get(
        demo_server.url + "/v1/credit-records",
        params={"subject_kind": "entity", "subject_id": GOOD_ENTITY},
        timeout=10,
    ).json()
    assert ids[0].rsplit("/", 1)[1] in [r["id"] for r in q["records"]]
    # the key stays unlocked in this page: one more record signs without asking again
    page.locator("#one-kind").select_option("entity")
    page.locator("#one-id").fill(GOOD_ENTITY)
    page.locator("#one-category").select_option("tax.grade_a")
    page.locator("#one-reason").fill("A-grade taxpayer 2024")
    page.locator("#one-evidence").set_input_files(
        {"name": "evidence.txt", "mimeType": "text/plain", "buffer": b"test"}
    )
    expect(page.locator("[data-testid=evidence-hash]")).to_contain_text(
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    )
    page.locator("[data-testid=one-submit]").click()
    outcome = page.locator("[data-testid=one-outcome]")
    expect(outcome).to_contain_text("accepted", timeout=SLOW)
    expect(page.locator("#unlock-needed")).to_be_hidden()
    expect(outcome.locator("[data-testid=stage]")).to_have_attribute(
        "data-stage", "indexed", timeout=SLOW
    )
    # the console's recent submissions list them
    page.goto(demo_server.url + "/agency?lang=en")
    for href in ids:
        rid = href.rsplit("/", 1)[1]
        expect(page.locator(f"tr[data-id='{rid}'] [data-testid=stage]")).to_have_text("indexed")


def test_bad_csv_header_is_a_readable_error(page: Any, demo_server: DemoServer) -> None:
    sign_in(page, demo_server, "agency-tax")
    page.goto(demo_server.url + "/agency/write?lang=en")
    page.locator("[data-testid=batch-file]").set_input_files(
        {"name": "bad.csv", "mimeType": "text/csv", "buffer": b"name,uscc\nACME,1\n"}
    )
    page.locator("[data-testid=batch-check]").click()
    err = page.locator("[data-testid=batch-error]")
    expect(err).to_be_visible()
    expect(err).to_contain_text("bad CSV header")
    expect(err).to_contain_text("missing columns: subject_kind, subject_id, category")
    expect(page.locator("[data-testid=batch-table]")).to_be_hidden()


def test_other_roles_see_a_403_page(page: Any, demo_server: DemoServer) -> None:
    sign_in(page, demo_server, "auditor")
    resp = page.goto(demo_server.url + "/agency?lang=en")
    assert resp is not None and resp.status == 403
    expect(page.locator("[data-testid=error]")).to_contain_text("AGENCY")


def test_agency_accepts_and_resolves_an_objection(page: Any, demo_server: DemoServer) -> None:
    """One record written in the browser; its subject (an entity) objects through the API; the
    agency accepts (OBJECTION signed in the page) and rejects it (RESOLUTION signed)."""
    uscc = "91440604MA4UXX124F"
    sign_in(page, demo_server, "agency-tax")
    page.goto(demo_server.url + "/agency/write?lang=en")
    _unlock(page, demo_server)
    expect(page.locator("[data-testid=unlock-state]")).to_contain_text("Unlocked", timeout=SLOW)
    page.locator("#one-id").fill(uscc)
    page.locator("#one-category").select_option("tax.arrears")
    page.locator("#one-amount").fill("5000")
    page.locator("#one-occurred").fill("2025-06-01")
    page.locator("[data-testid=one-submit]").click()
    outcome = page.locator("[data-testid=one-outcome]")
    expect(outcome.locator("[data-testid=stage]")).to_have_attribute(
        "data-stage", "indexed", timeout=SLOW
    )
    rid = outcome.locator("[data-testid=record-link]").get_attribute("href").rsplit("/", 1)[1]
    r = httpx.post(
        demo_server.url + "/v1/objections",
        json={"record_id": rid, "reason": "税款已缴清 paid in full",
              "subject": {"kind": "entity", "id": uscc}},
        timeout=10,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    oid = r.json()["id"]
    page.goto(demo_server.url + "/agency/objections?lang=en")
    row = page.locator(f"tr[data-objection='{oid}']")
    expect(row).to_contain_text("paid in full")
    expect(row.locator("[data-testid=objection-status]")).to_have_text("filed")
    row.locator("button.obj-accept").click()
    _unlock(page, demo_server)
    expect(row.locator("[data-testid=objection-status]")).to_have_text("disputed", timeout=SLOW)
    # the RESOLUTION waits for the OBJECTION record to be indexed: retry until it is
    row.locator("textarea").fill("缴款凭证不符 the receipt does not match")
    deadline = 40
    for _ in range(deadline):
        row.locator("button.obj-resolve[data-upheld='false']").click()
        status = row.locator("[data-testid=objection-status]")
        try:
            expect(status).to_have_text("rejected", timeout=2_000)
            break
        except AssertionError:
            expect(page.locator("[data-testid=obj-error]")).to_contain_text("not on the indexed")
    expect(row.locator("[data-testid=objection-status]")).to_have_text("rejected")
    detail = httpx.get(demo_server.url + f"/v1/objections/{oid}", timeout=10).json()
    assert detail["status"] == "rejected" and detail["resolution_record"], detail
