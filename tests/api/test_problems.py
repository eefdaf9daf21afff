"""Problem bodies always serialize: bytes in an error's extras become 0x-hex, never a 500."""

from __future__ import annotations

import json

from api.problems import problem


def test_bytes_in_problem_extras_are_hex() -> None:
    r = problem(409, "contract", "Conflict", "refused", args=[b"\xff\x00", {"k": b"\x01"}])
    body = json.loads(bytes(r.body))
    assert r.status_code == 409 and r.media_type == "application/problem+json"
    assert body["args"] == ["0xff00", {"k": "0x01"}]
    assert body["type"].endswith("/contract") and body["detail"] == "refused"
