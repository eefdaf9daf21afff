"""Small-cell suppression of the statistics (ledger.stats): primary suppression by distinct
subjects, complementary suppression so no withheld value follows from the published totals,
and month windows in China Standard Time. Each case would fail if suppression were wrong; the
"peeling" attack below recovers any value a line leaves as its only unknown."""

from __future__ import annotations

import itertools
import random
from collections.abc import Hashable

import pytest

from ledger.stats import Suppressed, Table, Tally, month_windows, suppress, tabulate


def obs(spec: dict[tuple[str, str], list[str]]) -> list[tuple[str, str, str, int]]:
    """{(row, col): [subject per record]} → observations (one per subject, counting records)."""
    out = []
    for (r, c), subjects in spec.items():
        for s in sorted(set(subjects)):
            out.append((r, c, s, subjects.count(s)))
    return out


def people(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def lines(s: Suppressed) -> list[list[tuple[str, Hashable]]]:
    """Every additive line of the published table as (kind, key) members, total last."""
    out: list[list[tuple[str, Hashable]]] = []
    for r in s.rows:
        out.append([("cell", (r, c)) for c in s.cols] + [("row", r)])
    for c in s.cols:
        out.append([("cell", (r, c)) for r in s.rows] + [("col", c)])
    out.append([("col", c) for c in s.cols] + [("total", None)])
    out.append([("row", r) for r in s.rows] + [("total", None)])
    return out


def published(s: Suppressed, member: tuple[str, Hashable]) -> int | None:
    kind, key = member
    shown = {
        "cell": lambda: s.cells[key],  # type: ignore[index]
        "row": lambda: s.row_totals[key],
        "col": lambda: s.col_totals[key],
        "total": lambda: s.total,
    }[kind]()
    return shown.count


def peel(s: Suppressed, table: Table) -> dict[tuple[str, Hashable], int]:
    """The attack: while some line has exactly one unknown member, solve it from the others.
    Returns what it recovered (true values from ``table``, to check it is right)."""
    known = {m: published(s, m) for line in lines(s) for m in line}
    recovered: dict[tuple[str, Hashable], int] = {}
    progress = True
    while progress:
        progress = False
        for line in lines(s):
            unknown = [m for m in line if known[m] is None]
            if len(unknown) != 1:
                continue
            (m,) = unknown
            parts = sum(known[x] or 0 for x in line[:-1] if x != m)
            value = (known[line[-1]] or 0) - parts if m != line[-1] else parts
            known[m] = value
            recovered[m] = value
            progress = True
    truth = {
        **{("cell", k): t.count for k, t in table.cells.items()},
        **{("row", r): t.count for r, t in table.row_totals.items()},
        **{("col", c): t.count for c, t in table.col_totals.items()},
        ("total", None): table.total.count,
    }
    for m, v in recovered.items():
        assert v == truth.get(m, 0), "the attack itself is wrong"
    return recovered


def withheld_per_line(s: Suppressed) -> list[int]:
    return [sum(1 for m in line if published(s, m) is None) for line in lines(s)]


def test_big_cells_are_published_as_they_are() -> None:
    t = tabulate(
        obs({("g1", "a"): people("p", 6), ("g1", "b"): people("q", 5), ("g2", "a"): people("r", 9)})
    )
    s = suppress(t, 5)
    assert s.cells[("g1", "a")].count == 6 and s.cells[("g1", "b")].count == 5
    assert s.cells[("g2", "b")].count == 0 and s.cells[("g2", "b")].suppressed is False
    assert s.row_totals["g1"].count == 11 and s.col_totals["a"].count == 15
    assert s.total.count == 20 and s.primary == 0 and s.complementary == 0


def test_distinct_subjects_not_records_decide() -> None:
    # 12 records about 2 people: a big count, yet about 2 subjects: withheld
    spec = {("g1", "a"): ["x"] * 7 + ["y"] * 5, ("g1", "b"): people("p", 8)}
    spec[("g2", "a")] = people("q", 8)
    spec[("g2", "b")] = people("r", 8)
    s = suppress(tabulate(obs(spec)), 5)
    assert s.cells[("g1", "a")] == s.cells[("g1", "a")].__class__(None, True)
    assert s.primary == 1


def test_threshold_boundary_k_is_shown_k_minus_one_is_not() -> None:
    spec = {
        ("g1", "a"): people("p", 5),
        ("g1", "b"): people("q", 4),
        ("g2", "a"): people("r", 7),
        ("g2", "b"): people("s", 8),
    }
    s = suppress(tabulate(obs(spec)), 5)
    assert s.cells[("g1", "b")].suppressed is True  # 4 < 5
    assert s.primary == 1
    # 5 distinct subjects would be shown had the 4 not forced complementary suppression here
    s3 = suppress(tabulate(obs(spec)), 4)
    assert s3.cells[("g1", "a")].count == 5 and s3.cells[("g1", "b")].count == 4
    assert s3.primary == 0


def test_single_withheld_cell_in_a_row_pulls_the_next_smallest() -> None:
    spec = {
        ("g1", "a"): people("a", 2),  # withheld: 2 subjects
        ("g1", "b"): people("b", 9),
        ("g1", "c"): people("c", 6),  # next-smallest of row g1
        ("g2", "a"): people("d", 7),
        ("g2", "b"): people("e", 8),
        ("g2", "c"): people("f", 10),
        ("g3", "a"): people("g", 5),  # next-smallest of column a
        ("g3", "b"): people("h", 11),
        ("g3", "c"): people("i", 12),
    }
    table = tabulate(obs(spec))
    s = suppress(table, 5)
    assert s.primary == 1
    assert s.cells[("g1", "a")].suppressed
    assert s.cells[("g1", "c")].suppressed  # row g1: smallest other non-zero (6 < 9)
    assert s.cells[("g3", "a")].suppressed  # column a: smallest other non-zero (5 < 7)
    assert not s.cells[("g1", "b")].suppressed
    # the totals stay published, and nothing withheld can be derived from them
    assert s.row_totals["g1"].count == 17 and s.total.count == 70
    assert all(n != 1 for n in withheld_per_line(s))
    assert peel(s, table) == {}


def test_primary_only_would_leak_which_is_what_complementary_prevents() -> None:
    """Without complementary suppression the lone withheld cell is total minus the rest."""
    spec = {("g1", "a"): people("a", 2), ("g1", "b"): people("b", 9)}
    spec.update({("g2", "a"): people("c", 7), ("g2", "b"): people("d", 8)})
    table = tabulate(obs(spec))
    s = suppress(table, 5)
    naive = Suppressed(
        rows=s.rows,
        cols=s.cols,
        cells={
            k: (v if k != ("g1", "a") else v.__class__(None, True))
            for k, v in suppress(table, 1).cells.items()
        },
        row_totals=suppress(table, 1).row_totals,
        col_totals=suppress(table, 1).col_totals,
        total=suppress(table, 1).total,
        k=5,
        primary=1,
        complementary=0,
    )
    assert peel(naive, table) == {("cell", ("g1", "a")): 2}  # the leak
    assert peel(s, table) == {}
    assert s.complementary >= 3  # a 2x2 needs the whole rectangle


def test_zero_cells_are_never_the_complement() -> None:
    spec = {
        ("g1", "a"): people("a", 2),  # withheld; g1/b is 0, the partner must be g1/c
        ("g1", "c"): people("c", 9),
        ("g2", "a"): people("d", 7),
        ("g2", "b"): people("e", 8),
        ("g2", "c"): people("f", 10),
    }
    table = tabulate(obs(spec))
    s = suppress(table, 5)
    assert s.cells[("g1", "b")].count == 0 and not s.cells[("g1", "b")].suppressed
    assert s.cells[("g1", "c")].suppressed
    assert all(n != 1 for n in withheld_per_line(s))
    assert peel(s, table) == {}


def test_row_with_nothing_else_withholds_its_total_and_the_margin_follows() -> None:
    # g1 has one non-zero cell, small: its row total equals it and must go too; then the
    # column of row totals has one withheld member and needs a partner as well
    spec = {
        ("g1", "a"): people("a", 3),
        ("g2", "a"): people("b", 6),
        ("g2", "b"): people("c", 7),
        ("g3", "a"): people("d", 8),
        ("g3", "b"): people("e", 9),
    }
    table = tabulate(obs(spec))
    s = suppress(table, 5)
    assert s.cells[("g1", "a")].suppressed and s.row_totals["g1"].suppressed
    assert s.cells[("g1", "b")] == s.cells[("g1", "b")].__class__(0, False)  # zero: never picked
    assert all(n != 1 for n in withheld_per_line(s))
    assert peel(s, table) == {}


def test_small_totals_are_withheld_too() -> None:
    # two cells of 3 subjects each in a row: both withheld, and the row total (4 distinct
    # subjects, overlapping) is itself below k
    spec = {
        ("g1", "a"): ["p0", "p1", "p2"],
        ("g1", "b"): ["p1", "p2", "p3"],
        ("g2", "a"): people("q", 9),
        ("g2", "b"): people("r", 9),
    }
    table = tabulate(obs(spec))
    assert table.row_totals["g1"] == Tally(6, 4)
    s = suppress(table, 5)
    assert s.row_totals["g1"].suppressed
    assert all(n != 1 for n in withheld_per_line(s))
    assert peel(s, table) == {}


def test_random_tables_never_leave_a_lone_withheld_value() -> None:
    rnd = random.Random(7)
    for _ in range(300):
        rows, cols = rnd.randint(1, 5), rnd.randint(1, 5)
        spec: dict[tuple[str, str], list[str]] = {}
        n = 0
        for r, c in itertools.product(range(rows), range(cols)):
            size = rnd.choice([0, 0, 1, 2, 3, 4, 5, 6, 9, 15])
            if size:
                spec[(f"r{r}", f"c{c}")] = [f"s{n + i}" for i in range(size)]
                n += size
        if not spec:
            continue
        table = tabulate(obs(spec))
        k = rnd.choice([2, 3, 5])
        s = suppress(table, k)
        assert all(x != 1 for x in withheld_per_line(s)), spec
        for key, cell in table.cells.items():
            if cell.subjects < k:
                assert s.cells[key].suppressed and s.cells[key].count is None
        for r, c in itertools.product(table.rows, table.cols):  # a known 0 protects nothing
            if table.cell(r, c).count == 0:
                assert s.cells[(r, c)].count == 0
        assert peel(s, table) == {}, spec


def test_tabulate_fixed_rows_and_columns_keep_order_and_empty_lines() -> None:
    t = tabulate([("b", 2, "x", 1), ("z", 1, "y", 1)], rows=["a", "b"], cols=[1, 2])
    assert t.rows == ("a", "b") and t.cols == (1, 2)
    assert t.row_totals["a"] == Tally(0, 0) and t.cell("b", 2) == Tally(1, 1)
    assert t.total == Tally(1, 1)  # "z" is not a row: dropped
    with pytest.raises(ValueError):
        suppress(t, 0)


def test_month_windows_in_china_standard_time() -> None:
    # 2026-02-28T17:00:00Z is already March 1st 01:00 in Foshan
    now = 1772298000
    w = month_windows(now, 3)
    assert [x[0] for x in w] == ["2026-01", "2026-02", "2026-03"]
    assert w[-1][1] == 1772294400  # 2026-03-01T00:00+08:00
    assert all(a[2] == b[1] for a, b in itertools.pairwise(w))
    year = month_windows(now, 14)
    assert year[0][0] == "2025-02" and len(year) == 14
    with pytest.raises(ValueError):
        month_windows(now, 0)
