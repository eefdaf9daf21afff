"""Agency webhooks: subscriptions and durable, signed, retried deliveries of list changes.

An agency registers a URL, its address, the measure sectors it applies (the ``agency`` slugs of
``ledger/data/measures.json``, e.g. ``market``) and a shared secret. Whenever a subject enters or
leaves a list through a rule carrying a measure of one of those sectors, the agency receives::

    POST <url>
    Content-Type: application/json
    X-Zhixin-Event: list.entered | list.left
    X-Zhixin-Delivery: <event id>            (the same on every retry: deduplicate on it)
    X-Zhixin-Timestamp: <unix seconds of this attempt>
    X-Zhixin-Signature: sha256=<hex HMAC-SHA256(secret, body)>

Invariants:
- A delivery row is inserted in the caller's transaction (:meth:`WebhookService.enqueue`), the
  one that records the list change, so a committed change always has its deliveries; rows are
  unique per (subscription, event), so re-enqueueing is a no-op.
- The body is fixed when enqueued: every attempt sends (and signs) the same bytes.
- A row is marked ``delivered`` only after a 2xx answer; anything else (refused connection,
  timeout, 5xx, 4xx) schedules a retry after ``base * 2**attempts`` seconds (capped), forever:
  nothing is dropped. Rows live in the database, so a restart resumes where it stopped.
- The worker thread is started and stopped by the owner (the Runtime); :meth:`deliver_due`
  is also callable directly (tests, CLI).
- With a ``secret_key`` (the service derives one from the district secret), shared secrets are
  stored AES-256-GCM encrypted (``enc1:`` + base64 of nonce || ciphertext, the subscription id
  as associated data), so a copy of the database alone does not let anyone forge deliveries.
  Rows written without a key (``enc1:`` absent) are read as they are.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Engine, and_, insert, select, update

from .chain import parse_address
from .errors import ConfigurationError, InvalidInput, NotFound
from .rules_db import webhook_deliveries, webhook_subscriptions

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Subscription",
    "WebhookService",
    "sign_body",
    "verify_signature",
]

log = logging.getLogger("zhixin.webhooks")

SIGNATURE_HEADER = "X-Zhixin-Signature"
TIMESTAMP_HEADER = "X-Zhixin-Timestamp"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is not an acknowledgement: never follow it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


_SEALED = "enc1:"


def sign_body(secret: bytes, body: bytes) -> str:
    """The ``X-Zhixin-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str) -> bool:
    """What a receiver runs: constant-time comparison of the signature header."""
    return hmac.compare_digest(sign_body(secret, body), header or "")


@dataclass(frozen=True)
class Subscription:
    id: str
    agency: str
    url: str
    sectors: tuple[str, ...]
    active: bool
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agency": self.agency,
            "url": self.url,
            "sectors": list(self.sectors),
            "active": self.active,
            "created_at": self.created_at,
        }


def _sub(row: Any) -> Subscription:
    return Subscription(
        row.id,
        row.agency,
        row.url,
        tuple(s for s in row.sectors.split(",") if s),
        bool(row.active),
        int(row.created_at),
    )


class WebhookService:
    def __init__(
        self,
        engine: Engine,
        *,
        known_sectors: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        backoff_base: float = 1.0,
        backoff_max: float = 3600.0,
        timeout: float = 5.0,
        poll: float = 0.5,
        secret_key: bytes | None = None,
    ) -> None:
        if secret_key is not None and len(secret_key) != 32:
            raise ValueError("secret_key must be 32 bytes (AES-256-GCM)")
        self._aead = AESGCM(secret_key) if secret_key is not None else None
        self.engine = engine
        self.known_sectors = frozenset(known_sectors)
        self.clock = clock
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.poll = poll
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pass_lock = threading.Lock()

    # ---- secrets at rest ----

    def _seal(self, sid: str, secret: str) -> str:
        if self._aead is None:
            return secret
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, secret.encode(), sid.encode())
        return _SEALED + base64.b64encode(nonce + ct).decode("ascii")

    def _open(self, sid: str, stored: str) -> str:
        if not stored.startswith(_SEALED):
            return stored  # written before secrets were sealed
        if self._aead is None:
            raise ConfigurationError("webhook secrets are sealed: the service needs its key")
        raw = base64.b64decode(stored[len(_SEALED) :])
        return self._aead.decrypt(raw[:12], raw[12:], sid.encode()).decode()

    # ---- subscriptions ----

    def subscribe(
        self, agency: str, url: str, sectors: Iterable[str], secret: str | None = None
    ) -> tuple[Subscription, str]:
        """Register a webhook; returns it and the shared secret (generated when not given)."""
        agency = parse_address(agency, "agency")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput(f"webhook url must be http(s)://host/..., got {url!r}")
        secs = tuple(sorted(set(sectors)))
        if not secs:
            raise InvalidInput("name at least one measure sector (e.g. market)")
        unknown = [s for s in secs if self.known_sectors and s not in self.known_sectors]
        if unknown:
            raise InvalidInput(
                f"unknown measure sector(s) {unknown}; known: {sorted(self.known_sectors)}"
            )
        secret = secret if secret is not None else secrets.token_hex(32)
        if len(secret) < 16:
            raise InvalidInput("the shared secret must have at least 16 characters")
        sid = "0x" + secrets.token_hex(16)
        now = int(self.clock())
        with self.engine.begin() as conn:
            conn.execute(
                insert(webhook_subscriptions).values(
                    id=sid,
                    agency=agency,
                    url=url,
                    sectors=",".join(secs),
                    secret=self._seal(sid, secret),
                    active=True,
                    created_at=now,
                )
            )
        return Subscription(sid, agency, url, secs, True, now), secret

    def unsubscribe(self, sid: str) -> None:
        """Deactivate (pending deliveries are still delivered: nothing is lost)."""
        with self.engine.begin() as conn:
            res = conn.execute(
                update(webhook_subscriptions)
                .where(webhook_subscriptions.c.id == sid)
                .values(active=False)
            )
        if res.rowcount == 0:
            raise NotFound(f"no webhook subscription {sid}")

    def subscriptions(self, agency: str | None = None) -> list[Subscription]:
        stmt = select(webhook_subscriptions).order_by(webhook_subscriptions.c.created_at)
        if agency is not None:
            stmt = stmt.where(webhook_subscriptions.c.agency == parse_address(agency, "agency"))
        with self.engine.connect() as conn:
            return [_sub(r) for r in conn.execute(stmt)]

    def sectors_of(self, agency: str) -> set[str]:
        """The sectors an agency subscribed for (how an address maps to the measures it applies)."""
        return {s for sub in self.subscriptions(agency) if sub.active for s in sub.sectors}

    # ---- enqueue (inside the caller's transaction) ----

    def enqueue(self, conn: Connection, event_id: str, sectors: Iterable[str], body: Any) -> int:
        """Queue ``body`` for every active subscription with one of ``sectors``; returns count.

        ``body`` is a JSON-able mapping; subscription-specific fields (the measures of the
        subscriber's sectors) are filled in per subscriber from ``body['measures']``.
        """
        wanted = set(sectors)
        rows = conn.execute(
            select(webhook_subscriptions).where(webhook_subscriptions.c.active.is_(True))
        ).all()
        now_ms = int(self.clock() * 1000)
        n = 0
        for row in rows:
            sub = _sub(row)
            mine = wanted & set(sub.sectors)
            if not mine:
                continue
            doc = dict(body)
            if isinstance(body, Mapping) and "measures" in body:
                doc["measures"] = [m for m in body["measures"] if m.get("agency") in mine]
            doc["subscription"] = sub.id
            data = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            exists = conn.execute(
                select(webhook_deliveries.c.id).where(
                    and_(
                        webhook_deliveries.c.subscription_id == sub.id,
                        webhook_deliveries.c.event_id == event_id,
                    )
                )
            ).first()
            if exists is not None:
                continue
            conn.execute(
                insert(webhook_deliveries).values(
                    subscription_id=sub.id,
                    event_id=event_id,
                    body=data,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now_ms,
                    created_at=now_ms,
                )
            )
            n += 1
        return n

    # ---- delivery ----

    def deliveries(self, subscription_id: str | None = None) -> list[dict[str, Any]]:
        t = webhook_deliveries
        stmt = select(t).order_by(t.c.id)
        if subscription_id is not None:
            stmt = stmt.where(t.c.subscription_id == subscription_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def deliver_due(self, limit: int = 100) -> int:
        """One pass over due deliveries; returns how many were acknowledged."""
        with self._pass_lock:
            return self._deliver_due(limit)

    def _deliver_due(self, limit: int) -> int:
        t, s = webhook_deliveries, webhook_subscriptions
        now_ms = int(self.clock() * 1000)
        with self.engine.connect() as conn:
            due = conn.execute(
                select(
                    t.c.id,
                    t.c.event_id,
                    t.c.body,
                    t.c.attempts,
                    s.c.id.label("sid"),
                    s.c.url,
                    s.c.secret,
                )
                .join(s, s.c.id == t.c.subscription_id)
                .where(and_(t.c.status == "pending", t.c.next_attempt_at <= now_ms))
                .order_by(t.c.next_attempt_at, t.c.id)
                .limit(limit)
            ).all()
        ok = 0
        for row in due:
            if self._stop.is_set() and self._thread is not None:
                break
            body = row.body.encode()
            event = json.loads(row.body).get("type", "list.changed")
            headers = {
                "Content-Type": "application/json",
                "X-Zhixin-Event": event,
                "X-Zhixin-Delivery": row.event_id,
                TIMESTAMP_HEADER: str(int(self.clock())),
                SIGNATURE_HEADER: sign_body(self._open(row.sid, row.secret).encode(), body),
            }
            status, error = self._post(row.url, body, headers)
            attempts = int(row.attempts) + 1
            now = self.clock()
            values: dict[str, Any] = {
                "attempts": attempts,
                "last_status": status,
                "last_error": error,
            }
            if error is None:
                values.update(status="delivered", delivered_at=int(now * 1000))
                ok += 1
            else:
                delay = min(self.backoff_max, self.backoff_base * 2 ** (attempts - 1))
                values["next_attempt_at"] = int((now + delay) * 1000)
                log.info("webhook %s attempt %d failed: %s", row.event_id, attempts, error)
            with self.engine.begin() as conn:
                conn.execute(update(t).where(t.c.id == row.id).values(**values))
        return ok

    def _post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        """One attempt: (HTTP status or None, error or None when acknowledged with a 2xx)."""
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with _OPENER.open(req, timeout=self.timeout) as resp:
                status = int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return status, None if 200 <= status < 300 else f"HTTP {status}"

    # ---- worker ----

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="zhixin-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except Exception:  # the worker must outlive a bad row or a database hiccup
                log.exception("webhook delivery pass failed")
            self._wake.wait(self.poll)
            self._wake.clear()
