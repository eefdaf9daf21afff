"""Aggregate statistics of the credit ledger, with small-cell suppression.

Pure functions (:func:`tabulate`, :func:`suppress`, :func:`month_windows`) do the counting and
the disclosure control; the ``*_rows`` / :func:`list_sizes` functions are thin SQL queries that
feed them. Nothing here returns a pseudonym, an identifier or a record: only counts.

Disclosure control (:func:`suppress`), for a table of rows × columns with row totals, column
totals and a grand total, where every cell knows its record count and its number of DISTINCT
subjects:

1. **Primary suppression.** A cell — or a total — with records of fewer than ``k`` distinct
   subjects (``0 < subjects < k``) is withheld: ``count: null, suppressed: true``. Cells with
   no record are shown as 0 (a zero discloses nobody).
2. **Complementary (secondary) suppression.** The table is a set of additive lines: each row
   (its cells add up to its row total), each column (to its column total), the row of column
   totals and the column of row totals (both add up to the grand total). A line with exactly
   one withheld member would give that member away by subtraction. So, until no line has
   exactly one withheld member: in such a line, also withhold the non-withheld *cell* with the
   smallest non-zero count (ties: first in row/column order); if the line has none, withhold
   the line's total. Zero cells are never chosen (withholding a cell everybody can tell is 0
   protects nothing), and every withheld member is non-zero, so no withheld value is pinned
   down by one line or by peeling lines one unknown at a time (tests/ledger/test_stats.py
   runs that attack).

The response never says *why* a cell is withheld (primary or complementary): that would tell
which ones hold fewer than ``k`` subjects.

Months are calendar months in China Standard Time (UTC+8, no daylight saving); a record counts
in the month of its ``occurredAt`` (when the conduct happened, as the agency signed it; a
record written today about conduct last spring counts last spring). Statistics count original
records (kind RECORD) only — lifecycle entries are not records of conduct — whatever happened
to them later (amended, withdrawn, disputed).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from sqlalchemy import Engine, and_, case, func, literal_column, select

from .db import credit_records, outbox

__all__ = [
    "CST",
    "DEFAULT_K",
    "Shown",
    "Suppressed",
    "Table",
    "Tally",
    "heatmap_rows",
    "list_sizes",
    "month_windows",
    "records_by_category_rows",
    "suppress",
    "tabulate",
]

CST: Final = timezone(timedelta(hours=8), "CST")
DEFAULT_K: Final = 5
_RECORD: Final = 1


@dataclass(frozen=True)
class Tally:
    """Records in a cell and how many distinct subjects they concern."""

    count: int
    subjects: int


_ZERO: Final = Tally(0, 0)


@dataclass(frozen=True)
class Table:
    """Rows × columns of tallies with their margins (totals count distinct subjects anew)."""

    rows: tuple[Hashable, ...]
    cols: tuple[Hashable, ...]
    cells: Mapping[tuple[Hashable, Hashable], Tally]
    row_totals: Mapping[Hashable, Tally]
    col_totals: Mapping[Hashable, Tally]
    total: Tally

    def cell(self, r: Hashable, c: Hashable) -> Tally:
        return self.cells.get((r, c), _ZERO)


@dataclass(frozen=True)
class Shown:
    count: int | None
    suppressed: bool

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "suppressed": self.suppressed}


@dataclass(frozen=True)
class Suppressed:
    """:func:`suppress`'s result: what may be published, cell by cell and total by total."""

    rows: tuple[Hashable, ...]
    cols: tuple[Hashable, ...]
    cells: Mapping[tuple[Hashable, Hashable], Shown]
    row_totals: Mapping[Hashable, Shown]
    col_totals: Mapping[Hashable, Shown]
    total: Shown
    k: int
    primary: int
    complementary: int


def tabulate(
    observations: Iterable[tuple[Hashable, Hashable, Hashable, int]],
    rows: Sequence[Hashable] | None = None,
    cols: Sequence[Hashable] | None = None,
) -> Table:
    """(row, column, subject, records) observations → tallies with distinct-subject margins.

    ``rows`` / ``cols`` fix the order and may list empty rows or columns; observations outside
    them are dropped. By default both are the sorted keys seen.
    """
    counts: dict[tuple[Hashable, Hashable], int] = {}
    subj: dict[tuple[Hashable, Hashable], set[Hashable]] = {}
    row_subj: dict[Hashable, set[Hashable]] = {}
    col_subj: dict[Hashable, set[Hashable]] = {}
    all_subj: set[Hashable] = set()
    keep_r = None if rows is None else set(rows)
    keep_c = None if cols is None else set(cols)
    for r, c, s, n in observations:
        if n <= 0 or (keep_r is not None and r not in keep_r):
            continue
        if keep_c is not None and c not in keep_c:
            continue
        counts[(r, c)] = counts.get((r, c), 0) + n
        subj.setdefault((r, c), set()).add(s)
        row_subj.setdefault(r, set()).add(s)
        col_subj.setdefault(c, set()).add(s)
        all_subj.add(s)
    rws = tuple(rows) if rows is not None else tuple(sorted({r for r, _ in counts}, key=str))
    cls = tuple(cols) if cols is not None else tuple(sorted({c for _, c in counts}, key=str))
    cells = {k: Tally(n, len(subj[k])) for k, n in counts.items()}
    row_totals = {
        r: Tally(sum(cells.get((r, c), _ZERO).count for c in cls), len(row_subj.get(r, ())))
        for r in rws
    }
    col_totals = {
        c: Tally(sum(cells.get((r, c), _ZERO).count for r in rws), len(col_subj.get(c, ())))
        for c in cls
    }
    total = Tally(sum(t.count for t in cells.values()), len(all_subj))
    return Table(rws, cls, cells, row_totals, col_totals, total)


def suppress(table: Table, k: int = DEFAULT_K) -> Suppressed:
    """Primary then complementary suppression (module docstring); deterministic."""
    if k < 1:
        raise ValueError("k must be at least 1")
    Key = tuple[Any, ...]
    value: dict[Key, Tally] = {}
    for r in table.rows:
        for c in table.cols:
            value[("cell", r, c)] = table.cell(r, c)
        value[("row", r)] = table.row_totals.get(r, _ZERO)
    for c in table.cols:
        value[("col", c)] = table.col_totals.get(c, _ZERO)
    value[("total",)] = table.total
    # additive lines: members..., then the total they add up to
    lines: list[list[Key]] = [
        *([("cell", r, c) for c in table.cols] + [("row", r)] for r in table.rows),
        *([("cell", r, c) for r in table.rows] + [("col", c)] for c in table.cols),
        [("col", c) for c in table.cols] + [("total",)],
        [("row", r) for r in table.rows] + [("total",)],
    ]
    withheld = {key for key, t in value.items() if 0 < t.subjects < k}
    primary = len(withheld)
    changed = True
    while changed:
        changed = False
        for line in lines:
            if sum(1 for m in line if m in withheld) != 1:
                continue
            parts = [
                (value[m].count, i, m)
                for i, m in enumerate(line[:-1])
                if m not in withheld and value[m].count > 0
            ]
            if parts:
                withheld.add(min(parts)[2])
            elif line[-1] not in withheld and value[line[-1]].count > 0:
                withheld.add(line[-1])
            else:  # pragma: no cover - a lone non-zero member implies a non-zero partner
                continue
            changed = True

    def shown(key: Key) -> Shown:
        if key in withheld:
            return Shown(None, True)
        return Shown(value[key].count, False)

    return Suppressed(
        rows=table.rows,
        cols=table.cols,
        cells={(r, c): shown(("cell", r, c)) for r in table.rows for c in table.cols},
        row_totals={r: shown(("row", r)) for r in table.rows},
        col_totals={c: shown(("col", c)) for c in table.cols},
        total=shown(("total",)),
        k=k,
        primary=primary,
        complementary=len(withheld) - primary,
    )


def month_windows(now: float, months: int) -> list[tuple[str, int, int]]:
    """The last ``months`` calendar months in China Standard Time, oldest first, the current
    one included: (``YYYY-MM``, start, end) in unix seconds, end exclusive."""
    if months < 1:
        raise ValueError("months must be at least 1")
    t = datetime.fromtimestamp(now, CST)
    y, m = t.year, t.month
    starts: list[tuple[int, int]] = []
    for _ in range(months):
        starts.append((y, m))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    starts.reverse()
    out = []
    for y, m in starts:
        start = datetime(y, m, 1, tzinfo=CST)
        ny, nm = (y, m + 1) if m < 12 else (y + 1, 1)
        end = datetime(ny, nm, 1, tzinfo=CST)
        out.append((f"{y:04d}-{m:02d}", int(start.timestamp()), int(end.timestamp())))
    return out


# ---- thin SQL ----


def records_by_category_rows(
    engine: Engine, windows: Sequence[tuple[str, int, int]]
) -> list[tuple[str, int, str, int]]:
    """(month label, category id, subject, records) for RECORD entries in the windows."""
    if not windows:
        return []
    t = credit_records
    ts = t.c.occurred_at
    # integer literals (ours) inline: the bucket expression is then one and the same in the
    # inner SELECT on every dialect; the outer query groups by the derived column
    bucket = case(
        *((ts < literal_column(str(int(end))), literal_column(str(i))) for i, (_, _, end) in
          enumerate(windows)),
        else_=literal_column("-1"),
    )  # fmt: skip
    inner = (
        select(bucket.label("bucket"), t.c.category, t.c.subject)
        .where(and_(t.c.kind == _RECORD, ts >= windows[0][1], ts < windows[-1][2]))
        .subquery()
    )
    stmt = select(inner.c.bucket, inner.c.category, inner.c.subject, func.count()).group_by(
        inner.c.bucket, inner.c.category, inner.c.subject
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    labels = [w[0] for w in windows]
    return [
        (labels[int(b)], int(cat), str(s), int(n))
        for b, cat, s, n in rows
        if 0 <= int(b) < len(labels)
    ]


def heatmap_rows(engine: Engine, since: int, until: int) -> list[tuple[str, int, str, int]]:
    """(grid, category id, subject, records): indexed RECORD entries in [since, until) whose
    outbox row carries a grid (records without a grid are left out)."""
    t, o = credit_records, outbox
    stmt = (
        select(o.c.grid, t.c.category, t.c.subject, func.count())
        .select_from(t.join(o, o.c.id == t.c.id))
        .where(
            and_(
                t.c.kind == _RECORD,
                o.c.grid.is_not(None),
                t.c.occurred_at >= since,
                t.c.occurred_at < until,
            )
        )
        .group_by(o.c.grid, t.c.category, t.c.subject)
    )
    with engine.connect() as conn:
        return [(str(g), int(c), str(s), int(n)) for g, c, s, n in conn.execute(stmt)]


def list_sizes(engine: Engine) -> list[dict[str, Any]]:
    """The newest anchored epoch of every rule set, with the size of each of its red and black
    lists (distinct subjects; ``entities`` / ``persons`` split them by subject kind)."""
    from .rules.model import BUILTIN_LISTS
    from .rules_db import rule_epochs, rule_memberships, rule_sets

    e, rs = rule_epochs, rule_sets
    with engine.connect() as conn:
        latest = conn.execute(
            select(rs.c.rule_set_id, func.max(e.c.epoch))
            .select_from(e.join(rs, rs.c.content_hash == e.c.rule_set_hash))
            .group_by(rs.c.rule_set_id)
            .order_by(rs.c.rule_set_id)
        ).all()
        out = []
        for set_id, epoch in latest:
            row = conn.execute(
                select(e, rs.c.version, rs.c.document)
                .select_from(e.join(rs, rs.c.content_hash == e.c.rule_set_hash))
                .where(e.c.epoch == epoch)
            ).first()
            if row is None:  # pragma: no cover - just selected
                continue
            kinds = conn.execute(
                select(
                    rule_memberships.c.list_id,
                    rule_memberships.c.subject_kind,
                    func.count(func.distinct(rule_memberships.c.subject)),
                )
                .where(rule_memberships.c.epoch == epoch)
                .group_by(rule_memberships.c.list_id, rule_memberships.c.subject_kind)
            ).all()
            by_kind: dict[tuple[str, int], int] = {(str(a), int(b)): int(n) for a, b, n in kinds}
            doc = json.loads(row.document)
            decls = {d.id: (d.kind, d.name_zh, d.name_en) for d in BUILTIN_LISTS}
            for d in doc.get("lists", []):
                decls[d["id"]] = (d["kind"], d["name_zh"], d["name_en"])
            sizes = json.loads(row.list_roots)
            lists = []
            for lid in sorted(sizes):
                kind, zh, en = decls.get(lid, ("black", lid, lid))
                lists.append(
                    {
                        "id": lid,
                        "kind": kind,
                        "name": {"zh": zh, "en": en},
                        "size": int(sizes[lid]["size"]),
                        "entities": by_kind.get((lid, 2), 0),
                        "persons": by_kind.get((lid, 1), 0),
                    }
                )
            out.append(
                {
                    "rule_set": {"id": set_id, "version": row.version, "hash": row.rule_set_hash},
                    "epoch": int(row.epoch),
                    "as_of": int(row.as_of),
                    "lists_root": row.lists_root,
                    "tx_hash": row.tx_hash or None,
                    "lists": lists,
                }
            )
    return out
