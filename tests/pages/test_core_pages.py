"""The page plumbing: language, sessions in cookies, HTML errors, same-origin posts, vendored JS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.pages.i18n import MESSAGES, register, translate
from api.settings import Settings
from tests.api.auth_helpers import bearer


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    d = tmp_path_factory.mktemp("pages")
    settings = Settings(data_dir=d, chain="embedded", dev=True, verify_workers=0)
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8000") as c:
        yield c


def _keys(c: TestClient) -> dict[str, dict[str, str]]:
    return c.app.state.runtime.dev_identities  # type: ignore[attr-defined,no-any-return]


def test_home_is_chinese_by_default_and_switches_to_english(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in r.text and "企业信用查询" in r.text
    r = client.get("/?lang=en")
    assert '<html lang="en">' in r.text and "Entity credit query" in r.text
    assert "zhixin_lang=en" in r.headers["set-cookie"]
    # the choice is remembered by the cookie
    r = client.get("/")
    assert '<html lang="en">' in r.text
    client.cookies.delete("zhixin_lang")
    assert '<html lang="zh-CN">' in client.get("/?lang=xx").text


def test_every_message_has_both_languages() -> None:
    for key, (zh, en) in MESSAGES.items():
        assert zh.strip() and en.strip(), key
    assert translate("nav.home", "en") == "Home" and translate("nav.home", "zh") == "首页"
    assert translate("no.such.key", "en") == "no.such.key"
    with pytest.raises(ValueError, match="twice"):
        register({"nav.home": ("别的", "Other")})


def test_signed_in_session_shows_and_forged_cookie_is_cleared(client: TestClient) -> None:
    keys = _keys(client)
    token = bearer(client, keys["agency-tax"]["private_key"])
    r = client.get("/", headers={"Cookie": f"zhixin_session={token}"})
    assert r.status_code == 200
    assert keys["agency-tax"]["address"] in r.text and 'data-testid="session"' in r.text
    assert 'href="/agency"' in r.text  # the agency's console is in its navigation
    r = client.get("/", headers={"Cookie": f"zhixin_session={'forged-token'}"})
    assert r.status_code == 200 and 'data-testid="session"' not in r.text
    assert 'zhixin_session=""' in r.headers["set-cookie"]  # signed out, cookie cleared


def test_cross_origin_form_post_is_refused(client: TestClient) -> None:
    r = client.post("/signout", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-origin" in r.text
    assert r.headers["content-type"].startswith("text/html")
    r = client.post("/signout", headers={"Origin": "http://127.0.0.1:8000"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_signout_revokes_the_session(client: TestClient) -> None:
    keys = _keys(client)
    r = client.post("/auth/siwe/nonce")  # wrong method: the API answers problem+json, not a page
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"
    from tests.api.auth_helpers import siwe_sign_in

    token = siwe_sign_in(client, keys["auditor"]["private_key"]).json()["token"]
    r = client.post(
        "/signout", headers={"Cookie": f"zhixin_session={token}"}, follow_redirects=False
    )
    assert r.status_code == 303
    r = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_demo_files_only_in_dev_and_only_listed_names(client: TestClient, tmp_path: Path) -> None:
    data_dir = client.app.state.settings.data_dir  # type: ignore[attr-defined]
    demo = data_dir / "demo"
    demo.mkdir(exist_ok=True)
    (demo / "index.json").write_text(
        json.dumps(
            {
                "auditor": {
                    "file": "auditor.keystore.json",
                    "kind": "keystore",
                    "role": "AUDITOR",
                    "label": "Auditor",
                }
            }
        )
    )
    (demo / "auditor.keystore.json").write_text('{"version": 3}')
    assert client.get("/signin/demo/auditor").json() == {"version": 3}
    r = client.get("/signin/demo/..%2Fdev-keys")
    assert r.status_code == 404 and "private_key" not in r.text
    r = client.get("/signin/demo/dev_keys")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert client.get("/signin/demo/governor").status_code == 404
    assert "Auditor" in client.get("/signin").text
    # outside --dev there is no demo at all
    settings = Settings(data_dir=data_dir, chain="embedded", dev=False)
    app = create_app(settings, runtime=client.app.state.runtime)  # type: ignore[attr-defined]
    with TestClient(app) as plain:
        assert plain.get("/signin/demo/auditor").status_code == 404
        assert "demo-load" not in plain.get("/signin").text


def test_vendored_ethers_and_static_files_are_served(client: TestClient) -> None:
    r = client.get("/static/vendor/ethers.umd.min.js")
    assert r.status_code == 200 and "signTypedData" in r.text
    assert client.get("/static/vendor/other.js").status_code == 404
    assert client.get("/static/did.js").status_code == 200
    assert client.get("/static/app.css").headers["content-type"].startswith("text/css")


def test_signin_page_keeps_next_local(client: TestClient) -> None:
    assert 'data-next="/me"' in client.get("/signin?next=/me").text
    assert "evil" not in client.get("/signin?next=//evil.example/x").text
    assert "evil" not in client.get("/signin?next=https://evil.example/").text
