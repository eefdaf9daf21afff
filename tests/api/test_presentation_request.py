"""``POST /presentations/verify`` reads its body by hand (the service's hot path): every
request FastAPI would refuse for the body model is refused the same way, as a problem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings

PATH = "/presentations/verify"
VP = {"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiablePresentation"]}


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    d: Path = tmp_path_factory.mktemp("vp-request")
    with TestClient(create_app(Settings(data_dir=d, chain="embedded", dev=True))) as client:
        yield client


def _post(c: TestClient, body: bytes, ctype: str | None = "application/json") -> object:
    headers = {} if ctype is None else {"content-type": ctype}
    return c.post(PATH, content=body, headers=headers)


@pytest.mark.parametrize(
    "body, ctype, status, code",
    [
        (b"{not json", "application/json", 422, "validation"),
        (b'{"a": "\xff"}', "application/json", 400, "http"),  # not UTF-8
        (json.dumps({"verifiablePresentation": VP}).encode(), "text/plain", 422, "validation"),
        (json.dumps({"verifiablePresentation": VP}).encode(), None, 422, "validation"),
        (b"", "application/json", 422, "validation"),
        (b"null", "application/json", 422, "validation"),
        (
            json.dumps({"verifiablePresentation": [VP]}).encode(),
            "application/json",
            422,
            "validation",
        ),
        (
            json.dumps({"verifiablePresentation": VP, "options": None}).encode(),
            "application/json",
            422,
            "validation",
        ),
        (
            json.dumps({"verifiablePresentation": VP, "options": {"challenge": 5}}).encode(),
            "application/json",
            422,
            "validation",
        ),
    ],
)
def test_refused_as_fastapi_would(
    c: TestClient, body: bytes, ctype: str | None, status: int, code: str
) -> None:
    r = _post(c, body, ctype)
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    assert r.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    assert r.json()["type"].endswith("/" + code)  # type: ignore[attr-defined]


def test_validation_errors_name_the_body_field(c: TestClient) -> None:
    body = json.dumps({"verifiablePresentation": VP, "options": {"domain": []}}).encode()
    r = c.post(PATH, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "options", "domain"]


def test_usual_shapes_are_verified(c: TestClient) -> None:
    for body in (
        {"verifiablePresentation": VP},
        {"verifiablePresentation": VP, "options": {}},
        {"verifiablePresentation": VP, "options": {"challenge": None, "domain": "x.example"}},
        {"verifiablePresentation": VP, "extra": 1},
    ):
        r = c.post(PATH, content=json.dumps(body), headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        res = r.json()
        assert res["verified"] is False and res["failed"][0] == "structure"
    r = c.post(
        PATH, json={"verifiablePresentation": VP}, headers={"content-type": "application/ld+json"}
    )
    assert r.status_code == 200, r.text


def test_documented_request_body(c: TestClient) -> None:
    spec = c.get("/openapi.json").json()
    schema = spec["paths"][PATH]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["verifiablePresentation"]
    assert "challenge" in schema["properties"]["options"]["properties"]
