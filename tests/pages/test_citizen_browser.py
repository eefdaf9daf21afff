"""The citizen journeys in a real browser against the seeded demo: sign in with the wallet, see
my records, file an objection against my minor penalty and see it listed as filed; and present
my identity credential to a verifier (its page shows the QR link and, once I have signed in my
browser with WebCrypto, every named check)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from playwright.sync_api import expect

from identity.presentations import CHECKS
from tests.pages.conftest import DemoServer, sign_in


def _citizen(server: DemoServer, name: str = "citizen") -> dict[str, Any]:
    return next(c for c in server.scenario["citizens"] if c["name"] == name)


def test_citizen_sign_in_and_objection(page: Any, demo_server: DemoServer) -> None:
    me = _citizen(demo_server)
    minor = demo_server.scenario["records"]["citizen_minor_penalty"]
    sign_in(page, demo_server, "citizen")
    assert urlparse(page.url).path == "/me"
    page.goto(demo_server.url + "/me?lang=zh")
    # my records, nobody else's
    for rec in me["records"]:
        expect(page.locator(f'[data-testid=record][data-record-id="{rec["id"]}"]')).to_be_visible()
    other = _citizen(demo_server, "citizen-2")
    for rec in other["records"]:
        expect(page.locator(f'[data-record-id="{rec["id"]}"]')).to_have_count(0)
    expect(page.locator("[data-testid=did]")).to_have_text(me["did"])
    # my list status, with its explanation
    for list_id in me["lists"]:
        expect(page.locator(f'[data-testid=membership][data-list="{list_id}"]')).to_be_visible()
    # the history toggle shows raw ledger entries
    page.locator("[data-testid=view-history]").click()
    expect(page.locator("[data-testid=history-row]").first).to_be_visible()
    page.locator("[data-testid=view-current]").click()

    # file an objection against the minor penalty (another test of this run may already have
    # objected to it: then against the first record still open to an objection)
    choice = page.locator(f'[data-testid=objection-record] option[value="{minor}"]')
    target = minor if choice.count() == 1 else None
    if target is None:
        options = page.locator("[data-testid=objection-record] option:not([value=''])")
        target = options.first.get_attribute("value")
    assert target
    page.get_by_label("异议的记录").select_option(target)
    page.get_by_label("异议理由").fill("处罚对象有误，当日本人不在现场 (demo)")
    page.locator("[data-testid=objection-submit]").click()
    page.wait_for_url(re.compile(r"/me/objections/0x[0-9a-f]{32}"))
    oid = urlparse(page.url).path.rsplit("/", 1)[1]
    status = page.locator("[data-testid=objection-status]")
    expect(status).to_have_attribute("data-status", "filed")
    expect(status).to_contain_text("已提交")
    expect(page.locator("[data-testid=objection-reason]")).to_contain_text("处罚对象有误")
    # listed on my page as filed, and the record is no longer offered for another objection
    page.goto(demo_server.url + "/me")
    row = page.locator(f'[data-testid=objection][data-objection-id="{oid}"]')
    expect(row).to_have_attribute("data-status", "filed")
    expect(row.locator("[data-testid=objection-status]")).to_have_text("已提交")
    expect(page.locator(f'[data-testid=objection-record] option[value="{target}"]')).to_have_count(
        0
    )
    # citizen-2 is refused the objection, with a readable message
    other_ctx = page.context.browser.new_context()
    try:
        other_page = other_ctx.new_page()
        sign_in(other_page, demo_server, "citizen-2")
        resp = other_page.goto(f"{demo_server.url}/me/objections/{oid}?lang=en")
        assert resp is not None and resp.status == 403
        expect(other_page.locator("[data-testid=error]")).to_contain_text("only the person")
        assert "处罚对象有误" not in other_page.content()
    finally:
        other_ctx.close()


def test_another_citizen_cannot_see_my_objection(browser: Any, demo_server: DemoServer) -> None:
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        sign_in(page, demo_server, "citizen-2")
        # citizen-2's own page never lists the first citizen's objections or records
        page.goto(demo_server.url + "/me?lang=en")
        minor = demo_server.scenario["records"]["citizen_minor_penalty"]
        expect(page.locator(f'[data-record-id="{minor}"]')).to_have_count(0)
        expect(page.locator(f'option[value="{minor}"]')).to_have_count(0)
    finally:
        ctx.close()


def test_present_identity_credential_to_a_verifier(browser: Any, demo_server: DemoServer) -> None:
    me = _citizen(demo_server)
    verifier_ctx, citizen_ctx = browser.new_context(), browser.new_context()
    try:
        verifier = verifier_ctx.new_page()
        verifier.goto(demo_server.url + "/verify?lang=en")
        expect(verifier.locator("[data-testid=qr] svg title")).to_have_text(
            "QR code of the presentation link"
        )
        expect(verifier.locator("[data-testid=verify-status]")).to_contain_text("Waiting")
        link = verifier.locator("[data-testid=present-url]").get_attribute("href")
        assert link and "/present?challenge=" in link
        # the citizen follows the link and loads the wallet file in the browser
        citizen = citizen_ctx.new_page()
        citizen.goto(link + "&lang=en")
        expect(citizen.locator("[data-testid=present-domain]")).to_have_text(
            urlparse(demo_server.url).netloc
        )
        citizen.get_by_label("Wallet file").set_input_files(str(demo_server.file("citizen")))
        citizen.locator("[data-testid=present-submit]").click()
        expect(citizen.locator("[data-testid=present-outcome]")).to_have_attribute(
            "data-verified", "true"
        )
        # the verifier's page shows the result by itself: verified, every check named
        outcome = verifier.locator("[data-testid=verify-outcome]")
        expect(outcome).to_have_attribute("data-verified", "true")
        expect(outcome).to_contain_text("Verified")
        expect(verifier.locator("[data-testid=verify-holder]")).to_have_text(me["did"])
        checks = verifier.locator("[data-testid=check]")
        expect(checks).to_have_count(len(CHECKS))
        assert [checks.nth(i).get_attribute("data-check") for i in range(len(CHECKS))] == list(
            CHECKS
        )
        for i in range(len(CHECKS)):
            expect(checks.nth(i)).to_have_attribute("data-ok", "true")
        assert me["ric"] not in verifier.content()
        # the link works once: opening it again says so
        again = citizen_ctx.new_page()
        resp = again.goto(link)
        assert resp is not None and resp.status == 409
        expect(again.locator("[data-testid=error]")).to_contain_text(
            "This challenge was already used"
        )
    finally:
        verifier_ctx.close()
        citizen_ctx.close()
