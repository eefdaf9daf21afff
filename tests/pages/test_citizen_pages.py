"""Citizen pages through TestClient on the embedded chain: /me (identity, records, history, list
status), filing an objection and applying for repair (with every refusal), one citizen never
seeing another's, and presenting an identity credential to a verifier through the hand-off."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from api.pages.citizen import MAX_PRESENTATION
from identity.presentations import CHECKS
from tests.pages.people_env import RIC_1, Env, Holder, people_env


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with people_env(tmp_path_factory.mktemp("citizen-pages")) as e:
        yield e


def record_ids(html: str) -> list[str]:
    return re.findall(r'data-record-id="(0x[0-9a-f]{64})"', html)


def test_me_needs_a_citizen_session(env: Env) -> None:
    r = env.c.get("/me")
    assert r.status_code == 401 and "请先以数字身份钱包登录" in r.text
    assert 'href="/signin?next=/me"' in r.text
    r = env.c.get("/me", headers=env.as_("agency-market"))  # SIWE: no credit subject
    assert r.status_code == 403 and "当前会话没有关联的信用主体" in r.text
    r = env.c.get("/me", headers=env.bare.h)  # a DID without an identity credential
    assert r.status_code == 403 and "当前会话没有关联的信用主体" in r.text
    r = env.c.get("/me", headers={"Cookie": "zhixin_session=forged"})
    assert r.status_code == 401 and 'zhixin_session=""' in r.headers["set-cookie"]


def test_me_shows_identity_records_and_status(env: Env) -> None:
    r = env.c.get("/me", headers=env.citizen.h)
    assert r.status_code == 200, r.text
    html = r.text
    assert f'<code data-testid="did">{env.citizen.did}</code>' in html
    assert env.citizen.vm in html  # what the DID resolves to
    assert "您的身份凭证保存在您的钱包文件中" in html
    assert sorted(record_ids(html)) == sorted([env.records["minor"], env.records["general"]])
    assert "轻微行政处罚" in html and "一般失信行政处罚" in html
    assert "该主体目前不在任何红名单或黑名单上。" in html
    assert env.records["minor2"] not in html  # citizen-2's record
    assert RIC_1 not in html  # the identity number itself is never shown
    # the same records the JSON API gives this session
    api = env.c.get(
        "/v1/credit-records",
        params={"subject_kind": "person", "subject_id": RIC_1},
        headers=env.citizen.h,
    ).json()["records"]
    assert [x["id"] for x in api] == record_ids(html)
    # history toggle: raw ledger rows
    r = env.c.get("/me", params={"view": "history"}, headers=env.citizen.h)
    assert r.status_code == 200 and 'data-testid="history"' in r.text
    assert r.text.count('data-testid="history-row"') >= 2 and 'data-kind="record"' in r.text
    r = env.c.get("/me", params={"view": "everything"}, headers=env.citizen.h)
    assert r.status_code == 422 and "view" in r.text


def test_file_objection_and_see_it_filed(env: Env) -> None:
    c, minor = env.c, env.records["minor"]
    r = c.post(
        "/me/objections",
        data={"record_id": minor, "reason": "处罚对象有误 wrong person"},
        headers=env.citizen.h,
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    oid = re.fullmatch(r"/me/objections/(0x[0-9a-f]{32})\?filed=1", url)
    assert oid is not None, url
    r = c.get(url, headers=env.citizen.h)
    assert r.status_code == 200
    assert 'data-status="filed"' in r.text and "已提交" in r.text and "异议已提交" in r.text
    assert "处罚对象有误 wrong person" in r.text and minor in r.text
    # listed on /me as filed; the record cannot be objected to twice
    me = c.get("/me", headers=env.citizen.h).text
    row = re.search(rf'data-objection-id="{oid.group(1)}" data-status="filed"', me)
    assert row is not None
    form = me.split('data-testid="objection-form"', 1)[1].split("</form>", 1)[0]
    assert minor not in form
    # the API agrees
    api = c.get(f"/v1/objections/{oid.group(1)}", headers=env.citizen.h).json()
    assert api["status"] == "filed" and api["record_id"] == minor
    # a second objection to the same record: 409 on the page, with the message
    r = c.post(
        "/me/objections",
        data={"record_id": minor, "reason": "again"},
        headers=env.citizen.h,
    )
    assert r.status_code == 409 and "未能提交" in r.text and "already open" in r.text
    # citizen-2 cannot read it; signed out: 401; a made-up id: 404
    r = c.get(f"/me/objections/{oid.group(1)}", headers=env.citizen2.h)
    assert r.status_code == 403 and "处罚对象有误" not in r.text
    assert "only the person" in r.text
    r = c.get(f"/me/objections/{oid.group(1)}")
    assert r.status_code == 401 and "处罚对象有误" not in r.text
    r = c.get("/me/objections/0x" + "0" * 32, headers=env.citizen.h)
    assert r.status_code == 404
    r = c.get("/me/objections/not-an-id", headers=env.citizen.h)
    assert r.status_code == 404 and "没有这个异议申请" in r.text
    # the writing agency sees it (as through the API); citizen-2's /me does not list it
    assert (
        c.get(f"/me/objections/{oid.group(1)}", headers=env.as_("agency-market")).status_code == 200
    )
    assert oid.group(1) not in c.get("/me", headers=env.citizen2.h).text


@pytest.mark.parametrize(
    ("data", "status", "text"),
    [
        ({"record_id": "0x1234", "reason": "x"}, 422, "record_id must be 0x"),
        ({"record_id": "0x" + "ab" * 32, "reason": "x"}, 404, "no record"),
        ({"record_id": "GENERAL", "reason": "   "}, 422, "reason must not be empty"),
        ({"record_id": "MINOR2", "reason": "not mine"}, 403, "own records only"),
        ({"record_id": "GENERAL", "reason": "x" * 4001}, 422, "at most 4000"),
    ],
)
def test_objection_refusals(env: Env, data: dict[str, str], status: int, text: str) -> None:
    data = dict(data)
    data["record_id"] = {"GENERAL": env.records["general"], "MINOR2": env.records["minor2"]}.get(
        data["record_id"], data["record_id"]
    )
    r = env.c.post("/me/objections", data=data, headers=env.citizen.h)
    assert r.status_code == status, r.text
    assert 'data-testid="error"' in r.text and text in r.text
    assert 'data-testid="objection-form"' in r.text  # the form is shown again


def test_objection_post_needs_session_and_same_origin(env: Env) -> None:
    rid = env.records["general"]
    r = env.c.post("/me/objections", data={"record_id": rid, "reason": "x"})
    assert r.status_code == 401
    r = env.c.post(
        "/me/objections",
        data={"record_id": rid, "reason": "x"},
        headers={**env.citizen.h, "Origin": "http://evil.example"},
    )
    assert r.status_code == 403 and "cross-origin" in r.text
    r = env.c.post("/me/objections", data={"record_id": rid, "reason": "x"}, headers=env.bare.h)
    assert r.status_code == 403


def test_repair_application_with_eligibility(env: Env) -> None:
    c, general = env.c, env.records["general"]
    me = c.get("/me", headers=env.citizen.h).text
    form = me.split('data-testid="repair-form"', 1)[1].split("</form>", 1)[0]
    assert general in form and env.records["minor"] not in form  # minor: not repairable
    r = c.post(
        "/me/repairs",
        data={"record": general, "statement": "罚款已缴清 fine paid"},
        headers=env.citizen.h,
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    app_id = url.split("/")[-1].split("?")[0]
    r = c.get(url, headers=env.citizen.h)
    assert r.status_code == 200
    assert 'data-status="pending"' in r.text and "审核中" in r.text
    assert 'data-eligible="true"' in r.text and "符合修复条件" in r.text
    assert "罚款已缴清 fine paid" in r.text
    assert c.get(f"/v1/repairs/{app_id}", headers=env.citizen.h).json()["status"] == "pending"
    assert app_id in c.get("/me", headers=env.citizen.h).text
    # another citizen, signed out, unknown
    r = c.get(f"/me/repairs/{app_id}", headers=env.citizen2.h)
    assert r.status_code == 403 and "罚款已缴清" not in r.text
    assert c.get(f"/me/repairs/{app_id}").status_code == 401
    assert c.get("/me/repairs/0x" + "1" * 32, headers=env.citizen.h).status_code == 404


@pytest.mark.parametrize(
    ("data", "status", "text"),
    [
        ({"record": "MINOR", "statement": "paid"}, 409, "cannot be repaired"),
        ({"record": "MINOR2", "statement": "paid"}, 422, "does not concern this subject"),
        ({"record": "0x12", "statement": "paid"}, 422, "请选择您的一条记录"),
        ({"record": "GENERAL", "statement": " "}, 422, "请说明失信行为是如何纠正的"),
        ({"record": "0x" + "cd" * 32, "statement": "paid"}, 404, "no record"),
    ],
)
def test_repair_refusals(env: Env, data: dict[str, str], status: int, text: str) -> None:
    tags = {"MINOR": "minor", "MINOR2": "minor2", "GENERAL": "general"}
    data = dict(data)
    if data["record"] in tags:
        data["record"] = env.records[tags[data["record"]]]
    r = env.c.post("/me/repairs", data=data, headers=env.citizen.h)
    assert r.status_code == status, r.text
    assert 'data-testid="error"' in r.text and text in r.text


def _challenge(html: str) -> str:
    m = re.search(r'data-testid="challenge">([^<]+)<', html)
    assert m is not None, html
    return m.group(1)


def test_verifier_page_shows_a_qr_of_the_presentation_link(env: Env) -> None:
    r = env.c.get("/verify")
    assert r.status_code == 200, r.text
    ch = _challenge(r.text)
    assert '<svg role="img" aria-label="出示链接的二维码" viewBox=' in r.text
    assert "<title>出示链接的二维码</title>" in r.text
    assert f"/present?challenge={ch}&amp;domain=127.0.0.1%3A8000" in r.text
    assert 'data-testid="domain">127.0.0.1:8000<' in r.text
    assert env.c.get(f"/verify/{ch}/result").json()["status"] == "pending"
    r = env.c.get("/verify", params={"domain": "bad domain"})
    assert r.status_code == 422 and "domain must not contain spaces" in r.text


def test_present_verifies_once_and_the_verifier_sees_every_check(env: Env) -> None:
    c = env.c
    ch = _challenge(c.get("/verify").text)
    r = c.get("/present", params={"challenge": ch, "domain": "127.0.0.1:8000"})
    assert r.status_code == 200 and 'data-testid="wallet"' in r.text
    assert '<label for="wallet">' in r.text and 'data-challenge="' + ch in r.text
    vp = env.citizen.present(ch, "127.0.0.1:8000")
    r = c.post(f"/verify/{ch}/presentation", json={"verifiablePresentation": vp})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["verified"] is True and res["holder"] == env.citizen.did
    assert [x["name"] for x in res["checks"]] == list(CHECKS)
    assert all(x["ok"] and x["code"] == "ok" for x in res["checks"])
    assert RIC_1 not in r.text and "测试市民" not in r.text  # no claims in the result
    got = c.get(f"/verify/{ch}/result").json()
    assert got["status"] == "done" and got["verified"] is True
    assert [x["name"] for x in got["checks"]] == list(CHECKS)
    # single use: a second hand-off is refused, and the citizen's page says so
    r = c.post(f"/verify/{ch}/presentation", json={"verifiablePresentation": vp})
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    r = c.get("/present", params={"challenge": ch})
    assert r.status_code == 409 and "此质询已经使用过" in r.text


def test_present_failures_are_named(env: Env) -> None:
    c = env.c
    # signed for another domain: verified false, the failing check named
    ch = _challenge(c.get("/verify").text)
    vp = env.citizen.present(ch, "bank.example")
    res = c.post(f"/verify/{ch}/presentation", json={"verifiablePresentation": vp}).json()
    assert res["verified"] is False and res["failed"], res
    assert [x["name"] for x in res["checks"]] == list(CHECKS)
    assert c.get(f"/verify/{ch}/result").json()["verified"] is False
    # someone else's credential presented with my key: the holder binding fails
    ch = _challenge(c.get("/verify").text)
    thief = Holder(env.citizen.did, env.citizen.vm, env.citizen.key, env.citizen2.vc)
    res = c.post(
        f"/verify/{ch}/presentation",
        json={"verifiablePresentation": thief.present(ch, "127.0.0.1:8000")},
    ).json()
    assert res["verified"] is False and "holder-binding" in res["failed"], res
    assert [x["name"] for x in res["checks"]] == list(CHECKS)


def test_handoff_refusals(env: Env) -> None:
    c = env.c
    ch = _challenge(c.get("/verify").text)
    r = c.post("/verify/unknownchallenge1/presentation", json={"verifiablePresentation": {}})
    assert r.status_code == 404 and r.json()["detail"].startswith("unknown or expired")
    assert c.get("/verify/unknownchallenge1/result").status_code == 404
    r = c.post(f"/verify/{ch}/presentation", content=b"not json")
    assert r.status_code == 422 and "must be JSON" in r.json()["detail"]
    r = c.post(f"/verify/{ch}/presentation", json={"vp": 1})
    assert r.status_code == 422
    big = {"verifiablePresentation": {"x": "a" * MAX_PRESENTATION}}
    r = c.post(f"/verify/{ch}/presentation", json=big)
    assert r.status_code == 413
    r = c.post(
        f"/verify/{ch}/presentation",
        json={"verifiablePresentation": env.citizen.present(ch, "127.0.0.1:8000")},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 403
    # none of the refusals used the challenge up
    r = c.post(
        f"/verify/{ch}/presentation",
        json={"verifiablePresentation": env.citizen.present(ch, "127.0.0.1:8000")},
    )
    assert r.status_code == 200 and r.json()["verified"] is True
    # unknown challenge on the citizen's page
    r = c.get("/present", params={"challenge": "unknownchallenge1"})
    assert r.status_code == 404 and "未知或已过期的质询" in r.text


def test_present_entry_points(env: Env) -> None:
    c = env.c
    r = c.get("/me/present", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/present"
    r = c.get("/present")
    assert r.status_code == 200 and '<label for="code">' in r.text
    ch = _challenge(c.get("/verify").text)
    link = f"http://127.0.0.1:8000/present?challenge={ch}&domain=127.0.0.1%3A8000"
    r = c.get("/present", params={"code": link})
    assert r.status_code == 200 and f'data-challenge="{ch}"' in r.text
    r = c.get("/present", params={"code": ch})
    assert r.status_code == 200 and f'data-challenge="{ch}"' in r.text
