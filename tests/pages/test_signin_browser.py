"""Signing in in a real browser: keystores unlocked by ethers (SIWE), wallets signing a
presentation with WebCrypto, a wrong password, signing out. Asserts on the session indicator
(``[data-testid=session]``) only, not on the content of the pages signed in to."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from playwright.sync_api import expect

from tests.api.test_demo import NAMES as DEMO_NAMES
from tests.pages.conftest import DemoServer, sign_in

SESSION = "[data-testid=session]"
ERROR = "[data-testid=error]"


def test_the_signin_page_offers_every_demo_identity(page: Any, demo_server: DemoServer) -> None:
    page.goto(demo_server.url + "/signin?lang=en")
    for name in DEMO_NAMES:
        button = page.locator(f'.demo-load[data-name="{name}"]')
        expect(button).to_be_visible()
        expect(button).to_have_attribute("data-kind", demo_server.demo[name]["kind"])
    expect(page.locator(SESSION)).to_have_count(0)


def test_agency_signs_in_with_its_keystore(page: Any, demo_server: DemoServer) -> None:
    address = demo_server.keys["agency-tax"]["address"]
    sign_in(page, demo_server, "agency-tax")
    assert urlparse(page.url).path == "/agency"
    session = page.locator(SESSION)
    expect(session).to_contain_text(re.compile(re.escape(address), re.IGNORECASE))
    expect(session).to_contain_text("AGENCY")
    # the session is a cookie: it holds on the next page
    page.goto(demo_server.url + "/")
    expect(page.locator(SESSION)).to_contain_text(re.compile(address, re.IGNORECASE))


def test_citizen_signs_in_with_the_wallet(page: Any, demo_server: DemoServer) -> None:
    citizen = next(c for c in demo_server.scenario["citizens"] if c["name"] == "citizen")
    sign_in(page, demo_server, "citizen")
    assert urlparse(page.url).path == "/me"  # a session with a subject (the credential's RIC)
    session = page.locator(SESSION)
    expect(session).to_contain_text(citizen["did"])
    # a citizen holds no chain role
    assert "AGENCY" not in session.inner_text()


def test_wrong_keystore_password_is_a_readable_error(page: Any, demo_server: DemoServer) -> None:
    page.goto(demo_server.url + "/signin?lang=en")
    page.locator("#keystore").set_input_files(str(demo_server.file("agency-tax")))
    page.locator("#password").fill("not-the-password")
    page.locator("#siwe-submit").click()
    error = page.locator(ERROR)
    expect(error).to_be_visible()
    expect(error).to_have_text("wrong keystore password")
    assert urlparse(page.url).path == "/signin"
    expect(page.locator(SESSION)).to_have_count(0)
    page.reload()
    expect(page.locator(SESSION)).to_have_count(0)


def test_sign_out_clears_the_session(page: Any, demo_server: DemoServer) -> None:
    sign_in(page, demo_server, "auditor")
    page.goto(demo_server.url + "/")  # not the auditor's own pages: they belong to others
    expect(page.locator(SESSION)).to_contain_text("AUDITOR")
    page.locator("form[action='/signout'] button").click()
    page.wait_for_url(lambda url: urlparse(url).path == "/")
    expect(page.locator(SESSION)).to_have_count(0)
    assert not [c for c in page.context.cookies() if c["name"] == "zhixin_session"]
    page.goto(demo_server.url + "/signin")
    expect(page.locator(SESSION)).to_have_count(0)
