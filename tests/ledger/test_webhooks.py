"""Webhook deliveries to a real local HTTP receiver: signed, retried with backoff until a 2xx,
durable across a restart of the delivery worker, never lost."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import ledger.rules_db  # noqa: F401 - declares the tables
from ledger.db import make_engine, migrate
from ledger.errors import InvalidInput
from ledger.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookService, verify_signature

AGENCY = "0x" + "ab" * 20
SECRET = "k" * 32


class Receiver:
    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.seen: list[tuple[int, bytes, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                code = 503 if len(receiver.seen) < receiver.fail_first else 204
                receiver.seen.append((code, body, dict(self.headers)))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=3)
    yield r
    r.close()


def service(db: Path) -> WebhookService:
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    return WebhookService(engine, known_sectors={"market", "finance"}, backoff_base=0.05, poll=0.02)


def wait(cond: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_retry_restart_and_signature(tmp_path: Path, receiver: Receiver) -> None:
    db = tmp_path / "hooks.db"
    svc = service(db)
    sub, secret = svc.subscribe(AGENCY, receiver.url, ["market"], SECRET)
    other, _ = svc.subscribe(AGENCY, receiver.url, ["finance"], SECRET)
    assert secret == SECRET and svc.sectors_of(AGENCY) == {"market", "finance"}
    body = {
        "id": "lc-1",
        "type": "list.entered",
        "measures": [
            {"id": "punish.more_inspections", "agency": "market"},
            {"id": "punish.key_review", "agency": "government_service"},
        ],
    }
    with svc.engine.begin() as conn:
        assert svc.enqueue(conn, "lc-1", {"market", "government_service"}, body) == 1
        assert svc.enqueue(conn, "lc-1", {"market"}, body) == 0  # idempotent
    svc.start()
    wait(lambda: len(receiver.seen) >= 2)
    svc.stop()  # restart in the middle: the row is still pending in the database
    rows = svc.deliveries(sub.id)
    assert rows[0]["status"] == "pending" and rows[0]["attempts"] >= 2
    assert svc.deliveries(other.id) == []
    svc2 = service(db)
    svc2.start()
    try:
        wait(lambda: svc2.deliveries(sub.id)[0]["status"] == "delivered")
    finally:
        svc2.stop()
    codes = [code for code, _, _ in receiver.seen]
    assert codes == [503, 503, 503, 204]
    bodies = {b for _, b, _ in receiver.seen}
    assert len(bodies) == 1  # the same bytes on every attempt
    sent = bodies.pop()
    for _, b, headers in receiver.seen:
        assert verify_signature(SECRET.encode(), b, headers[SIGNATURE_HEADER])
        assert headers["X-Zhixin-Delivery"] == "lc-1" and int(headers[TIMESTAMP_HEADER]) > 0
    assert not verify_signature(b"wrong" * 8, sent, receiver.seen[-1][2][SIGNATURE_HEADER])
    doc = json.loads(sent)
    assert [m["id"] for m in doc["measures"]] == ["punish.more_inspections"]
    assert doc["subscription"] == sub.id
    row = svc2.deliveries(sub.id)[0]
    assert row["attempts"] == 4 and row["last_status"] == 204


def test_unreachable_receiver_is_retried_not_dropped(tmp_path: Path) -> None:
    svc = service(tmp_path / "hooks.db")
    sub, _ = svc.subscribe(AGENCY, "http://127.0.0.1:9/nothing", ["market"], SECRET)
    with svc.engine.begin() as conn:
        svc.enqueue(conn, "lc-9", {"market"}, {"id": "lc-9", "type": "list.left"})
    assert svc.deliver_due() == 0
    row = svc.deliveries(sub.id)[0]
    assert row["status"] == "pending" and row["attempts"] == 1 and row["last_error"]
    assert row["next_attempt_at"] > row["created_at"]


def test_subscription_validation(tmp_path: Path) -> None:
    svc = service(tmp_path / "hooks.db")
    for args in (
        (AGENCY, "ftp://x/", ["market"]),
        (AGENCY, "http://x/", []),
        (AGENCY, "http://x/", ["nope"]),
        ("0x12", "http://x/", ["market"]),
    ):
        with pytest.raises(InvalidInput):
            svc.subscribe(*args)
    _, secret = svc.subscribe(AGENCY, "http://x/", ["market"])
    assert len(secret) == 64


def test_secrets_are_sealed_at_rest(tmp_path: Path, receiver: Receiver) -> None:
    """With a key, the database holds only AES-GCM ciphertext bound to the subscription id;
    deliveries are still signed with the real secret; plaintext rows of before still work."""
    from sqlalchemy import select, update

    from ledger.errors import ConfigurationError
    from ledger.rules_db import webhook_subscriptions as subs

    receiver.fail_first = 0
    engine = make_engine(f"sqlite:///{tmp_path / 'hooks.db'}")
    migrate(engine)
    key = bytes(range(32))
    svc = WebhookService(engine, known_sectors={"market"}, secret_key=key, poll=0.02)
    sub, _ = svc.subscribe(AGENCY, receiver.url, ["market"], SECRET)
    legacy, _ = WebhookService(engine, known_sectors={"market"}).subscribe(
        AGENCY, receiver.url, ["market"], "p" * 32
    )
    with engine.connect() as conn:
        stored = dict(conn.execute(select(subs.c.id, subs.c.secret)).all())
    assert stored[sub.id].startswith("enc1:") and SECRET not in stored[sub.id]
    assert stored[legacy.id] == "p" * 32
    with engine.begin() as conn:
        svc.enqueue(conn, "lc-9", {"market"}, {"id": "lc-9", "type": "list.entered"})
    assert svc.deliver_due() == 2
    by_sub = {json.loads(b)["subscription"]: h[SIGNATURE_HEADER] for _, b, h in receiver.seen}
    bodies = {json.loads(b)["subscription"]: b for _, b, _ in receiver.seen}
    assert verify_signature(SECRET.encode(), bodies[sub.id], by_sub[sub.id])
    assert verify_signature(b"p" * 32, bodies[legacy.id], by_sub[legacy.id])
    # a sealed secret copied onto another subscription does not open (id is bound in)
    with engine.begin() as conn:
        conn.execute(update(subs).where(subs.c.id == legacy.id).values(secret=stored[sub.id]))
    from cryptography.exceptions import InvalidTag

    with pytest.raises(InvalidTag):
        svc._open(legacy.id, stored[sub.id])
    with pytest.raises(ConfigurationError):  # no key: sealed secrets cannot be used
        WebhookService(engine)._open(sub.id, stored[sub.id])
    with pytest.raises(ValueError):
        WebhookService(engine, secret_key=b"short")
