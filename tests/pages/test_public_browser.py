"""The public journeys in a real browser against the seeded demo: query the black-listed demo
entity by its USCC (its records and black-list status with the explanation), a mistyped code
(a readable message, 422), a person's number (refused), and the list publicity page."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.pages.conftest import DemoServer

ERROR = "[data-testid=error]"


def _entity(server: DemoServer, expect_: str) -> dict[str, Any]:
    return next(e for e in server.scenario["entities"] if e["expect"] == expect_)


def _query(page: Any, server: DemoServer, code: str) -> int:
    """Type ``code`` into the query form, submit it; the HTTP status of the result page."""
    page.goto(server.url + "/credit?lang=zh")
    page.get_by_label("统一社会信用代码").fill(code)
    with page.expect_response(lambda r: "/credit?" in r.url) as info:
        page.locator("[data-testid=search]").click()
    page.wait_for_load_state()
    return int(info.value.status)


def test_public_query_of_the_black_listed_entity(page: Any, demo_server: DemoServer) -> None:
    ent = _entity(demo_server, "black")
    assert _query(page, demo_server, ent["uscc"]) == 200
    expect(page.locator("[data-testid=result]")).to_be_visible()
    # every seeded record of the entity is a row of the records table
    rows = page.locator("[data-testid=records] [data-testid=record]")
    expect(rows).to_have_count(len(ent["records"]))
    for rec in ent["records"]:
        row = page.locator(f'[data-testid=record][data-record-id="{rec["id"]}"]')
        expect(row).to_have_attribute("data-category", rec["category"])
        expect(row.locator("[data-testid=record-status]")).not_to_be_empty()
    # its black-list status, explained: list, rule, legal basis, triggering records
    member = page.locator("[data-testid=membership]")
    expect(member).to_have_count(len(ent["lists"]))
    first = member.first
    expect(first).to_have_attribute("data-list-kind", "black")
    expect(first).to_have_attribute("data-list", ent["lists"][0])
    expect(first).to_contain_text("黑名单")
    expect(first).to_contain_text(ent["rule"])
    expect(first).to_contain_text("法律依据")
    expect(first.locator("[data-testid=triggering]").first).to_be_visible()
    # following a triggering record jumps to its row
    first.locator("[data-testid=triggering] a").first.click()
    assert "#rec-0x" in page.url


def test_public_query_with_a_mistyped_code(page: Any, demo_server: DemoServer) -> None:
    code = _entity(demo_server, "black")["uscc"]
    bad = code[:-1] + ("A" if code[-1] != "A" else "B")
    assert _query(page, demo_server, bad) == 422
    expect(page.locator(ERROR)).to_contain_text("代码无效")
    expect(page.locator(ERROR)).to_contain_text("校验码不符")
    expect(page.locator("[data-testid=result]")).to_have_count(0)
    # the form keeps the code so it can be corrected
    expect(page.get_by_label("统一社会信用代码")).to_have_value(bad)


def test_public_query_of_a_persons_number_is_refused(page: Any, demo_server: DemoServer) -> None:
    ric = demo_server.scenario["citizens"][0]["ric"]
    assert _query(page, demo_server, ric) == 403
    expect(page.locator(ERROR)).to_contain_text("自然人的信用记录不公开")
    expect(page.locator("[data-testid=result]")).to_have_count(0)
    assert ric not in page.content()


def test_list_publicity_page(page: Any, demo_server: DemoServer) -> None:
    page.goto(demo_server.url + "/lists?lang=en")
    black = _entity(demo_server, "black")
    section = page.locator(f'[data-testid=list][data-list="{black["lists"][0]}"]')
    expect(section).to_have_attribute("data-list-kind", "black")
    expect(section.locator("[data-testid=entry]").first).to_be_visible()
    expect(section).to_contain_text("Legal basis")
    expect(section).to_contain_text("End of publicity")
    # the sizes chart has a text alternative and a table with the same numbers
    expect(page.locator("svg[data-testid=chart-sizes] title")).to_have_text("List sizes")
    expect(page.locator("[data-testid=sizes] caption")).to_be_visible()
    citizen = demo_server.scenario["citizens"][0]
    assert citizen["ric"] not in page.content()
