"""The service's SQL index against the chain: every missing, extra or altered row, field by field.

Invariants:
- The expected rows are built from chain logs and headers alone, with the index's own row
  builders (:func:`ledger.index.record_row`, :func:`ledger.audit.role_event_row`), so a
  difference is a difference in data, never in formatting.
- :func:`diff_rows` is pure; :func:`diff_index` does the I/O (``eth_getLogs``, headers, one
  SELECT per table).
- Only blocks the index claims to cover are compared (up to its cursor and ``to_block``); rows
  above that are ignored and said so in the notes, never reported as extra or missing.
- Keys: ``credit_records`` by record id; ``role_events`` by (tx hash, log index); the
  autoincrement ``role_events.id`` is not data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from .audit import Finding, role_event_row
from .audit_replay import ChainSource, LogSource
from .chain import Chain
from .db import credit_records, index_cursor, role_events
from .deploy import Deployment
from .index import record_row
from .records import RECORDED_TOPIC

__all__ = ["IndexDiff", "chain_rows", "diff_index", "diff_rows"]

_ROLE_IGNORE = frozenset({"id"})


@dataclass
class IndexDiff:
    """The comparison's findings and what was compared."""

    findings: list[Finding] = field(default_factory=list)
    compared_to_block: int = 0
    records: int = 0
    role_events: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "compared_to_block": self.compared_to_block,
            "records": self.records,
            "role_events": self.role_events,
            "findings": [f.to_json() for f in self.findings],
            "notes": self.notes,
        }


def _show(v: Any) -> str:
    return "NULL" if v is None else str(v)


def diff_rows(
    table: str,
    expected: Mapping[Any, Mapping[str, Any]],
    actual: Mapping[Any, Mapping[str, Any]],
    *,
    ignore: Iterable[str] = (),
) -> list[Finding]:
    """Missing, extra and altered rows (one finding per altered column), in chain order."""
    skip = set(ignore)
    out: list[Finding] = []

    def where(row: Mapping[str, Any]) -> dict[str, Any]:
        rid = row.get("id") if table == "credit_records" else None
        return {
            "record_id": rid,
            "block": row.get("block_number"),
            "tx": row.get("tx_hash"),
            "log_index": row.get("log_index"),
        }

    for key, exp in expected.items():
        act = actual.get(key)
        if act is None:
            out.append(
                Finding(
                    "index.missing",
                    f"{table}: the chain has a row for {_key(key)} that the index lacks",
                    **where(exp),
                )
            )
            continue
        for col, value in exp.items():
            if col in skip:
                continue
            got = act.get(col)
            if got != value and _show(got) != _show(value):
                out.append(
                    Finding(
                        "index.altered",
                        f"{table} row {_key(key)}: column {col} differs from the chain",
                        field=col,
                        expected=_show(value),
                        actual=_show(got),
                        **where(exp),
                    )
                )
    for key, act in actual.items():
        if key not in expected:
            out.append(
                Finding(
                    "index.extra",
                    f"{table}: the index has a row for {_key(key)} that is not on the chain",
                    **where(act),
                )
            )
    return out


def _key(key: Any) -> str:
    return "/".join(str(k) for k in key) if isinstance(key, tuple) else str(key)


def chain_rows(
    source: LogSource, deployment: Deployment, to_block: int, *, page: int = 2_000
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, int], dict[str, Any]]]:
    """The rows the index should hold up to ``to_block``, from logs and headers alone."""
    roles_addr = deployment.address("Roles").lower()
    ledger_addr = deployment.address("CreditLedger").lower()
    recs: dict[str, dict[str, Any]] = {}
    roles: dict[tuple[str, int], dict[str, Any]] = {}
    b = deployment.deploy_block
    while b <= to_block:
        e = min(b + page - 1, to_block)
        logs = source.logs([deployment.address("Roles"), deployment.address("CreditLedger")], b, e)
        headers: dict[int, Any] = {}
        for lg in logs:
            n = (
                int(lg["blockNumber"])
                if not isinstance(lg["blockNumber"], str)
                else int(lg["blockNumber"], 16)
            )
            addr = str(lg["address"]).lower()
            topic0 = bytes(_raw(lg["topics"][0])) if lg["topics"] else b""
            if addr == ledger_addr and topic0 == RECORDED_TOPIC:
                if n not in headers:
                    headers[n] = source.header(n)
                h = headers[n]
                bh = "0x" + (h.hash.hex() if h is not None else _raw(lg["blockHash"]).hex())
                try:
                    row = record_row(lg, bh, h.timestamp if h is not None else -1)
                except Exception:
                    continue  # undecodable: the audit reports it; the index cannot hold it
                recs[row["id"]] = row
            elif addr == roles_addr:
                try:
                    rrow = role_event_row(lg)
                except Exception:
                    continue
                if rrow is not None:
                    roles[(rrow["tx_hash"], rrow["log_index"])] = rrow
        b = e + 1
    return recs, roles


def diff_index(
    source: LogSource | Chain,
    deployment: Deployment,
    engine: Engine,
    *,
    to_block: int | None = None,
    cursor_name: str = "main",
) -> IndexDiff:
    """Compare the index in ``engine`` with the chain, up to the index cursor / ``to_block``."""
    src = ChainSource(source) if isinstance(source, Chain) else source
    head = src.head()
    limit = head if to_block is None else min(to_block, head)
    out = IndexDiff()
    with engine.connect() as conn:
        cur = conn.execute(
            select(index_cursor.c.block_number).where(index_cursor.c.name == cursor_name)
        ).first()
        cursor = int(cur[0]) if cur is not None else deployment.deploy_block - 1
        if cursor < limit:
            out.notes.append(
                f"the index cursor is at block {cursor}, below {limit}: compared up to {cursor}"
            )
            limit = cursor
        elif cursor > head:
            out.findings.append(
                Finding(
                    "index.cursor",
                    f"the index cursor is at block {cursor}, above the chain head {head}",
                    block=cursor,
                )
            )
        # every row, so one whose block_number was changed is found by id, not lost
        db_all = {r["id"]: dict(r) for r in conn.execute(select(credit_records)).mappings()}
        db_roles = {
            (r["tx_hash"], int(r["log_index"])): dict(r)
            for r in conn.execute(
                select(role_events).where(role_events.c.block_number <= limit)
            ).mappings()
        }
    out.compared_to_block = limit
    if limit < deployment.deploy_block:
        out.notes.append("the index has not indexed any block yet: nothing compared")
        return out
    recs, roles = chain_rows(src, deployment, limit)
    db_recs = {k: r for k, r in db_all.items() if k in recs or int(r["block_number"]) <= limit}
    out.records, out.role_events = len(recs), len(roles)
    out.findings += diff_rows("credit_records", recs, db_recs)
    out.findings += diff_rows("role_events", roles, db_roles, ignore=_ROLE_IGNORE)
    return out


def _raw(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)
