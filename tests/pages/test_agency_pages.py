"""The agency console through TestClient on an embedded chain: every page for an agency, the
401/403 pages for others, the CSV batch parser (pure) and its JSON route, the sample CSV checked
by prepare-batch (the deliberately bad row is refused with its precise reason), the status of
recent submissions, objections to answer and the measures query."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.pages.agency import (
    CSV_COLUMNS,
    SAMPLE_CSV,
    CsvError,
    parse_batch_csv,
)
from api.settings import Settings
from ledger.records import MAX_BATCH, record_from_json, sign_record, signed_record_to_json
from tests.api.auth_helpers import as_

ENTITY = "91440300568520498A"
PERSON = "11010519491231002X"
HEADER = ",".join(CSV_COLUMNS)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    d = tmp_path_factory.mktemp("agency-pages")
    settings = Settings(data_dir=d, chain="embedded", dev=True, verify_workers=0, index_poll_s=0.05)
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8000") as c:
        yield c, c.app.state.runtime.dev_identities  # type: ignore[attr-defined]


def _submit(c: TestClient, key: str, prepared: dict[str, Any]) -> str:
    domain = c.app.state.runtime.credit.domain  # type: ignore[attr-defined]
    rec = record_from_json(prepared["record"])
    item = signed_record_to_json(sign_record(rec, bytes.fromhex(key[2:]), domain))
    if prepared.get("reason"):
        item["reason"] = prepared["reason"]
    if prepared.get("grid"):
        item["grid"] = prepared["grid"]
    r = c.post("/v1/credit-records", json=[item])
    assert r.status_code == 202, r.text
    return str(r.json()["items"][0]["id"])


def _wait_indexed(c: TestClient, rid: str, h: dict[str, str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if c.get(f"/v1/credit-records/{rid}", headers=h).json().get("indexed"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{rid} not indexed")


# ---- the CSV parser (pure) ----


def test_parse_sample_csv_gives_row_numbers_and_api_fields() -> None:
    p = parse_batch_csv(SAMPLE_CSV.encode())
    assert [r.row for r in p.rows] == [2, 3, 4] and all(r.error is None for r in p.rows)
    first = p.rows[0].fields
    assert first is not None
    assert first["subject"] == {"kind": "entity", "id": ENTITY}
    assert first["category"] == "tax.arrears" and first["amount"] == 125000
    assert first["occurredAt"] == 1740758400  # 2025-03-01 00:00 China time
    assert first["evidenceHash"].startswith("0x9f86d0") and len(first["evidenceHash"]) == 66
    assert first["reason"] == "逾期未缴增值税, overdue VAT"  # a quoted comma stays in the text
    assert first["grid"] == "CC-ZM-01"
    assert "effectiveUntil" not in first  # empty cells are left to the service's defaults
    assert p.rows[1].fields is not None and p.rows[1].fields["subject"]["kind"] == "person"


def test_parse_header_errors_name_the_columns() -> None:
    with pytest.raises(
        CsvError, match=r"unknown columns: 'subjct_id'.*missing columns: subject_id"
    ):
        parse_batch_csv("subject_kind,subjct_id,category\nentity,x,tax.arrears\n")
    with pytest.raises(CsvError, match="repeated columns: category"):
        parse_batch_csv("subject_kind,subject_id,category,category\n")
    with pytest.raises(CsvError, match="empty"):
        parse_batch_csv(b"\n\n")
    with pytest.raises(CsvError, match="no data rows"):
        parse_batch_csv(HEADER + "\n")
    with pytest.raises(CsvError, match=f"at most {MAX_BATCH} rows"):
        parse_batch_csv(HEADER + "\n" + "entity,x,tax.arrears,,,,,,,\n" * (MAX_BATCH + 1))
    with pytest.raises(CsvError, match="NUL"):
        parse_batch_csv("subject_kind,subject_id,category\x00\n")


def test_parse_row_errors_are_per_row_and_precise() -> None:
    text = (
        "\ufeffSubject_Kind, subject_id ,category,occurred_at,amount,evidence_sha256\n"
        "company,91440300568520498A,tax.arrears,,,\n"
        "entity,91440300568520498A,tax.arrears,2025-13-01,,\n"
        "entity,91440300568520498A,tax.arrears,,12.5,\n"
        "entity,91440300568520498A,tax.arrears,,,abc\n"
        "entity,91440300568520498A,tax.arrears\n"
        "\n"
        '企业,91440300568520498A,tax.arrears,2025-03-01T08:30,"1,000",\n'
        "entity,,tax.arrears,,,\n"
    )
    p = parse_batch_csv(text.encode("utf-8"))
    got = {r.row: (r.column, r.error) for r in p.rows}
    assert got[2][0] == "subject_kind" and "person or entity" in str(got[2][1])
    assert got[3][0] == "occurred_at" and "'2025-13-01'" in str(got[3][1])
    assert got[4][0] == "amount" and "whole number" in str(got[4][1])
    assert got[5][0] == "evidence_sha256"
    assert got[6][0] is None and "3 cells, the header has 6" in str(got[6][1])
    assert 7 not in got  # the blank line is skipped, numbering stays the spreadsheet's
    ok = next(r for r in p.rows if r.row == 8)
    assert ok.error is None and ok.fields is not None
    assert ok.fields["subject"]["kind"] == "entity" and ok.fields["amount"] == 1000
    assert ok.fields["occurredAt"] == 1740789000  # 08:30 China time
    assert got[9][0] == "subject_id"


def test_parse_accepts_gb18030_from_chinese_excel() -> None:
    text = HEADER + "\nperson,11010519491231002X,tax.arrears,,,,5,,个人所得税欠缴,\n"
    p = parse_batch_csv(text.encode("gb18030"))
    assert p.rows[0].fields is not None and p.rows[0].fields["reason"] == "个人所得税欠缴"


# ---- pages: who may see them ----


@pytest.mark.parametrize(
    "path", ["/agency", "/agency/write", "/agency/objections", "/agency/measures"]
)
def test_signed_out_gets_a_401_page_with_a_sign_in_link(
    env: tuple[TestClient, dict[str, Any]], path: str
) -> None:
    c, _ = env
    r = c.get(path)
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
    assert 'data-testid="error"' in r.text and f'href="/signin?next={path}"' in r.text


@pytest.mark.parametrize("who", ["auditor", "governor", "issuer"])
def test_other_roles_get_a_403_page(env: tuple[TestClient, dict[str, Any]], who: str) -> None:
    c, keys = env
    r = c.get("/agency", headers=as_(c, keys, who))
    assert r.status_code == 403 and "AGENCY" in r.text and 'data-testid="error"' in r.text
    r = c.post("/agency/batch/parse", content=SAMPLE_CSV, headers=as_(c, keys, who))
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"


def test_console_shows_scope_and_addresses(env: tuple[TestClient, dict[str, Any]]) -> None:
    c, keys = env
    r = c.get("/agency", headers=as_(c, keys, "agency-tax"))
    assert r.status_code == 200, r.text
    assert keys["agency-tax"]["address"] in r.text
    assert "tax.arrears" in r.text and "欠缴税款" in r.text
    assert "market.abnormal_operation" not in r.text  # not in the tax agency's scope
    r = c.get("/agency?lang=en", headers=as_(c, keys, "agency-market"))
    assert (
        "Categories in this agency&#39;s scope" in r.text or "Categories in this agency's" in r.text
    )
    assert "market.abnormal_operation" in r.text and "tax.arrears" not in r.text


def test_write_page_has_labelled_form_grid_and_documented_header(
    env: tuple[TestClient, dict[str, Any]],
) -> None:
    c, keys = env
    r = c.get("/agency/write?lang=en", headers=as_(c, keys, "agency-tax"))
    assert r.status_code == 200
    assert HEADER in r.text and 'href="/agency/sample.csv"' in r.text
    assert 'value="tax.arrears"' in r.text and 'value="admin_penalty.general"' not in r.text
    assert 'value="CC-ZM-01"' in r.text  # community grids are offered
    assert "/static/vendor/ethers.umd.min.js" in r.text and "/static/agency.js" in r.text
    # every input has a label
    import re

    ids = re.findall(r'<(?:input|select|textarea)[^>]* id="([^"]+)"', r.text)
    labels = set(re.findall(r'<label for="([^"]+)"', r.text))
    assert ids and set(ids) <= labels, set(ids) - labels


def test_sample_csv_download(env: tuple[TestClient, dict[str, Any]]) -> None:
    c, _ = env
    r = c.get("/agency/sample.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0] == HEADER and len(r.text.splitlines()) == 4


# ---- the batch: parse here, check by prepare-batch ----


def test_batch_parse_route_and_readable_errors(env: tuple[TestClient, dict[str, Any]]) -> None:
    c, keys = env
    h = as_(c, keys, "agency-tax")
    r = c.post("/agency/batch/parse", content=SAMPLE_CSV.encode(), headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["row"] for x in body["rows"]] == [2, 3, 4] and all(x["ok"] for x in body["rows"])
    r = c.post("/agency/batch/parse", content=b"name,id\nfoo,bar\n", headers=h)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert "bad CSV header" in r.json()["detail"] and HEADER in r.json()["detail"]
    r = c.post("/agency/batch/parse", content=b"", headers=h)
    assert r.status_code == 422 and "no CSV" in r.json()["detail"]
    r = c.post("/agency/batch/parse", content=SAMPLE_CSV.encode())
    assert r.status_code == 401 and r.json()["status"] == 401
    r = c.post(
        "/agency/batch/parse",
        content=SAMPLE_CSV.encode(),
        headers={**h, "Origin": "http://evil.example"},
    )
    assert r.status_code == 403  # cross-origin posts are refused


def test_sample_batch_through_prepare_batch_flags_the_bad_row(
    env: tuple[TestClient, dict[str, Any]],
) -> None:
    """What the page JS does: parse here, prepare-batch, sign the ready rows, submit once."""
    c, keys = env
    h = as_(c, keys, "agency-tax")
    rows = c.post("/agency/batch/parse", content=SAMPLE_CSV.encode(), headers=h).json()["rows"]
    r = c.post(
        "/v1/credit-records/prepare-batch", json={"items": [x["fields"] for x in rows]}, headers=h
    )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["status"] for i in items] == ["ready", "ready", "error"]
    bad = items[2]["problem"]
    assert bad["field"] == "subject" and "check character" in bad["detail"]
    assert items[0]["grid"] == "CC-ZM-01"
    assert items[0]["record"]["nonce"] != items[1]["record"]["nonce"]
    ids = [_submit(c, keys["agency-tax"]["private_key"], it) for it in items[:2]]
    for rid in ids:
        _wait_indexed(c, rid, h)
    # the console lists them, indexed, with block and transaction
    page = c.get("/agency?lang=zh", headers=h).text
    for rid in ids:
        assert f'data-id="{rid}"' in page
    assert "已索引" in page


# ---- objections ----


def _file_objection(c: TestClient, rid: str, reason: str, uscc: str) -> str:
    """The subject (an entity, by its USCC) files through the JSON API."""
    r = c.post(
        "/v1/objections",
        json={"record_id": rid, "reason": reason, "subject": {"kind": "entity", "id": uscc}},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_objections_page_lists_this_agencys_objections(
    env: tuple[TestClient, dict[str, Any]],
) -> None:
    c, keys = env
    h = as_(c, keys, "agency-market")
    uscc = "91310115MA1K3BTP2B"
    prep = c.post(
        "/v1/credit-records/prepare",
        json={"subject": {"kind": "entity", "id": uscc}, "category": "admin_penalty.general"},
        headers=h,
    ).json()
    rid = _submit(c, keys["agency-market"]["private_key"], prep)
    _wait_indexed(c, rid, h)
    oid = _file_objection(c, rid, "罚款已撤销 the fine was annulled", uscc)
    page = c.get("/agency/objections", headers=h)
    assert page.status_code == 200
    assert f'data-objection="{oid}"' in page.text and "罚款已撤销" in page.text
    assert 'class="obj-accept"' in page.text
    # filtered by status; another agency sees none of them
    assert f'data-objection="{oid}"' in c.get("/agency/objections?status=filed", headers=h).text
    assert oid not in c.get("/agency/objections?status=upheld", headers=h).text
    other = c.get("/agency/objections", headers=as_(c, keys, "agency-tax"))
    assert other.status_code == 200 and oid not in other.text
    bad = c.get("/agency/objections?status=nope", headers=h)
    assert bad.status_code == 422 and "status must be one of" in bad.text


# ---- measures ----


def test_measures_query_and_bad_identifier(env: tuple[TestClient, dict[str, Any]]) -> None:
    c, keys = env
    h = as_(c, keys, "agency-market")
    r = c.get("/agency/measures", headers=h)
    assert r.status_code == 200 and 'name="subject_id"' in r.text and "market" in r.text
    r = c.get(
        "/agency/measures",
        params={"subject_kind": "entity", "subject_id": ENTITY, "sector": "market"},
        headers=h,
    )
    # nothing published yet: a readable refusal on the page, not a 500
    assert r.status_code == 409 and "has not been published" in r.text, r.text
    r = c.get(
        "/agency/measures",
        params={"subject_kind": "entity", "subject_id": "91440300568520498B"},
        headers=h,
    )
    assert r.status_code == 422 and "check character" in r.text
    assert 'value="91440300568520498B"' in r.text  # the form keeps what was typed
    r = c.get(
        "/agency/measures",
        params={"subject_kind": "entity", "subject_id": ENTITY, "sector": "nope"},
        headers=h,
    )
    assert r.status_code == 422 and "unknown sector" in r.text


def test_measures_show_legal_basis_and_triggering_list(
    env: tuple[TestClient, dict[str, Any]],
) -> None:
    """A subject on a list: the measures page shows the measure, its legal basis and the list."""
    c, keys = env
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    rules = rt.rules
    starter = (
        __import__("importlib.resources", fromlist=["files"])
        .files("ledger")
        .joinpath("data", "rules", "district-joint-credit.yaml")
        .read_text()
    )
    r = c.post(
        "/v1/rules/rule-sets",
        content=starter,
        headers={"content-type": "application/yaml", **as_(c, keys, "rule-publisher")},
    )
    assert r.status_code == 200, r.text
    # find a measure of a list reachable with a category in agency-market's scope
    h = as_(c, keys, "agency-market")
    uscc = "91110000802100433B"
    prep = c.post(
        "/v1/credit-records/prepare",
        json={
            "subject": {"kind": "entity", "id": uscc},
            "category": "market.serious_dishonesty_list",
        },
        headers=h,
    ).json()
    rid = _submit(c, keys["agency-market"]["private_key"], prep)
    _wait_indexed(c, rid, h)
    _kind, pseud = rt.credit.subject_pseudonym("entity", uscc)
    found = None
    for sector in sorted({m.agency for m in rules.measures.measures}):
        res = rules.measures_for(bytes(pseud), sector)
        if res["measures"]:
            found = (sector, res["measures"][0])
            break
    if found is None:
        pytest.skip("the packaged rules put no measure on this record")
    sector, measure = found
    r = c.get(
        "/agency/measures",
        params={"subject_kind": "entity", "subject_id": uscc, "sector": sector},
        headers=h,
    )
    assert r.status_code == 200 and 'data-testid="measures"' in r.text
    assert measure["name"]["zh"] in r.text
    assert measure["because"][0]["list"] in r.text
    assert json.dumps(measure["legal_basis"], ensure_ascii=False)[1:20] in r.text
