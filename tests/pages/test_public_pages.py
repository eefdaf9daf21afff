"""Public pages through TestClient on the embedded chain: the entity credit query (records, list
status with its explanation, bad codes, a person's number refused) and the list publicity with
its chart and table; the page shows what the JSON API shows the same (anonymous) caller."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from ledger.errors import NotFound
from tests.pages.people_env import (
    ENTITY_BLACK,
    ENTITY_CLEAN,
    ENTITY_RED,
    RIC_1,
    Env,
    people_env,
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with people_env(tmp_path_factory.mktemp("public-pages")) as e:
        yield e


def count_testid(html: str, name: str) -> int:
    return html.count(f'data-testid="{name}"')


def test_query_form_is_labelled(env: Env) -> None:
    r = env.c.get("/credit")
    assert r.status_code == 200
    assert '<label for="uscc">统一社会信用代码</label>' in r.text
    assert 'data-testid="result"' not in r.text and 'data-testid="error"' not in r.text


def test_black_listed_entity_shows_records_and_explained_status(env: Env) -> None:
    r = env.c.get("/credit", params={"uscc": ENTITY_BLACK})
    assert r.status_code == 200, r.text
    html = r.text
    rid = env.records["black"]
    # the record: category name, polarity, agency, dates, status
    row = re.search(rf'<tr id="rec-{rid}".*?</tr>', html, re.S)
    assert row is not None, html
    assert "严重失信行政处罚" in row.group(0) and "失信" in row.group(0)
    assert env.keys["agency-market"]["address"] in row.group(0)
    assert 'data-status="active"' in row.group(0) and "有效" in row.group(0)
    # the list status: which list, which rule, which record, legal basis, period
    assert 'data-list="serious_dishonesty" data-list-kind="black"' in html
    assert "严重失信主体名单" in html and "黑名单" in html
    assert "serious-administrative-penalty" in html and "严重失信行政处罚" in html
    assert "国办发〔2020〕49号" in html  # the rule's legal basis
    assert "因严重失信行为受到行政处罚" in html  # entry conditions
    assert f'href="#rec-{rid}"' in html  # the triggering record links to its row
    assert "公示截止" in html
    # the same records and status the JSON API gives an anonymous caller
    api = env.c.get(
        "/v1/credit-records", params={"subject_kind": "entity", "subject_id": ENTITY_BLACK}
    ).json()["records"]
    assert [x["id"] for x in api] == re.findall(r'data-record-id="(0x[0-9a-f]{64})"', html)
    st = env.c.get(
        "/v1/rules/status", params={"subject_kind": "entity", "subject_id": ENTITY_BLACK}
    ).json()
    assert st["lists"] == ["serious_dishonesty"] and count_testid(html, "membership") == 1


def test_english_and_red_list(env: Env) -> None:
    r = env.c.get("/credit", params={"uscc": ENTITY_RED, "lang": "en"})
    env.c.cookies.clear()
    assert r.status_code == 200
    assert "A-grade taxpayer" in r.text and "Positive" in r.text
    assert 'data-list="red" data-list-kind="red"' in r.text and "Red list (reward)" in r.text
    assert "Legal basis" in r.text and "Publicity ends" in r.text


def test_entity_without_records(env: Env) -> None:
    r = env.c.get("/credit", params={"uscc": ENTITY_CLEAN})
    assert r.status_code == 200
    assert "该主体没有信用记录。" in r.text and "该主体目前不在任何红名单或黑名单上。" in r.text


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (ENTITY_BLACK[:-1] + "A", "校验码不符：可能输错了一个字符。"),
        (ENTITY_BLACK[:-2], "统一社会信用代码应为 18 位。"),
        ("91440604MA4UH8K3OF", "不使用 I、O、Z、S、V"),
        ("   ", "请输入统一社会信用代码。"),
    ],
)
def test_bad_codes_are_422_with_a_readable_message(env: Env, code: str, message: str) -> None:
    r = env.c.get("/credit", params={"uscc": code})
    assert r.status_code == 422, r.text
    assert 'data-testid="error"' in r.text and "代码无效" in r.text and message in r.text
    assert 'data-testid="result"' not in r.text


def test_bad_code_in_english_is_masked(env: Env) -> None:
    r = env.c.get("/credit", params={"uscc": ENTITY_BLACK[:-1] + "A", "lang": "en"})
    env.c.cookies.clear()
    assert r.status_code == 422
    assert "Invalid code (914406****)" in r.text and "check character does not match" in r.text


def test_a_persons_number_is_refused_and_not_echoed(env: Env) -> None:
    r = env.c.get("/credit", params={"uscc": RIC_1})
    assert r.status_code == 403, r.text
    assert "自然人的信用记录不公开" in r.text and 'data-testid="result"' not in r.text
    assert RIC_1 not in r.text
    # not even a signed-in citizen sees their own records here (that is /me)
    r = env.c.get("/credit", params={"uscc": RIC_1}, headers=env.citizen.h)
    assert r.status_code == 403 and "我的信用" in r.text


def test_lists_publicity_entities_only_with_chart_and_table(env: Env) -> None:
    r = env.c.get("/lists")
    assert r.status_code == 200, r.text
    html = r.text
    black = env.pseudonym("entity", ENTITY_BLACK)
    red = env.pseudonym("entity", ENTITY_RED)
    person = env.pseudonym("person", RIC_1)
    assert 'data-list="serious_dishonesty"' in html and 'data-list="red"' in html
    ser = html.split('data-list="serious_dishonesty"', 1)[1].split('data-testid="list"', 1)[0]
    assert f'data-subject="{black}"' in ser and "严重失信行政处罚" in ser
    assert "国办发〔2020〕49号" in ser and "1095 天" in ser  # legal basis, publicity period
    red_sec = html.split('data-list="red"', 1)[1].split('data-testid="list"', 1)[0]
    assert f'data-subject="{red}"' in red_sec and "纳税信用A级纳税人守信激励" in red_sec
    assert person not in html  # persons are never published
    # the same entries as the JSON publicity route
    pub = env.c.get("/v1/rules/lists/serious_dishonesty/publicity").json()["entries"]
    assert [e["subject"] for e in pub] == [black]
    # chart: inline SVG with a title, and the numbers in a table
    assert (
        '<svg class="chart" role="img"' in html and '<title id="chart-sizes-title">名单规模' in html
    )
    sizes = html.split('data-testid="sizes"', 1)[1].split("</table>", 1)[0]
    assert "严重失信主体名单" in sizes and "<caption>" in sizes
    # records per category per month (public statistics): few subjects, so cells are withheld
    bycat = html.split('data-testid="bycat"', 1)[1].split("</table>", 1)[0]
    # by when the conduct occurred: the serious penalty of 400 days ago is outside the 12 months
    assert "纳税信用A级纳税人" in bycat and "不予公布" in bycat
    assert "严重失信行政处罚" not in bycat
    assert '<title id="chart-bycat-title">' in html


def test_lists_before_any_epoch(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_epoch(n: int | None = None) -> None:
        raise NotFound("no epoch has been anchored")

    monkeypatch.setattr(env.rt.rules, "epoch", no_epoch)
    r = env.c.get("/lists")
    assert r.status_code == 200 and 'data-testid="no-epoch"' in r.text
    assert "尚无经锚定的名单评估" in r.text
