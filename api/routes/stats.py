"""Aggregate statistics: records by category and month, red/black list sizes, and the heat map
of records by community grid (网格) × category for the credit office.

Only counts leave here, with small-cell and complementary suppression (:mod:`ledger.stats`):
a cell or total about fewer than ``k`` distinct subjects (setting ``stats_min_cell``, default
5) is ``{"count": null, "suppressed": true}``. records-by-category, list-sizes and grids are
public; the heat map needs an AUDITOR or GOVERNOR session (401 without a session, 403 else).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from ledger.catalog import Catalog
from ledger.grids import load_grids
from ledger.roles import Role
from ledger.stats import (
    Suppressed,
    heatmap_rows,
    list_sizes,
    month_windows,
    records_by_category_rows,
    suppress,
    tabulate,
)

from ..deps import CreditDep, Session, SettingsDep, require_role

router = APIRouter(prefix="/v1/stats", tags=["statistics"])

MonthsQ = Annotated[int, Query(ge=1, le=60, description="calendar months back, current included")]
CreditOffice = Annotated[Session, Depends(require_role(Role.AUDITOR, Role.GOVERNOR))]


def _category(catalog: Catalog, cid: Any) -> dict[str, Any]:
    c = catalog.by_id(int(cid))
    return {"id": c.id, "code": c.code, "name": {"zh": c.name_zh, "en": c.name_en}}


def _suppression(s: Suppressed) -> dict[str, Any]:
    return {
        "k": s.k,
        "rule": (
            "cells and totals about fewer than k distinct subjects are withheld; so is, in every "
            "row, column and line of totals left with exactly one withheld value, the smallest "
            "other non-zero cell (else that line's total), so no withheld value can be derived"
        ),
        "withheld": s.primary + s.complementary,
    }


@router.get("/records-by-category", summary="Records per category per month (public)")
def records_by_category(
    credit: CreditDep, settings: SettingsDep, months: MonthsQ = 12
) -> dict[str, Any]:
    windows = month_windows(time.time(), months)
    labels = [w[0] for w in windows]
    obs = records_by_category_rows(credit.engine, windows)
    cats = sorted({c for _, c, _, _ in obs})
    # rows: categories, columns: months
    table = tabulate(((c, m, s, n) for m, c, s, n in obs), rows=cats, cols=labels)
    s = suppress(table, settings.stats_min_cell)
    return {
        "months": labels,
        "since": windows[0][1],
        "until": windows[-1][2],
        "timezone": "Asia/Shanghai",
        "categories": [
            {
                **_category(credit.catalog, c),
                "counts": [s.cells[(c, m)].to_json() for m in labels],
                "total": s.row_totals[c].to_json(),
            }
            for c in cats
        ],
        "month_totals": [{"month": m, **s.col_totals[m].to_json()} for m in labels],
        "total": s.total.to_json(),
        "suppression": _suppression(s),
    }


@router.get("/list-sizes", summary="Sizes of the red and black lists at the newest epochs")
def list_sizes_route(credit: CreditDep) -> dict[str, Any]:
    return {"rule_sets": list_sizes(credit.engine)}


@router.get("/grids", summary="The community grids (网格) records may be tagged with")
def grids() -> dict[str, Any]:
    return load_grids().to_json()


@router.get("/heatmap", summary="Records by community grid × category (credit office)")
def heatmap(
    credit: CreditDep, settings: SettingsDep, _office: CreditOffice, months: MonthsQ = 12
) -> dict[str, Any]:
    windows = month_windows(time.time(), months)
    since, until = windows[0][1], windows[-1][2]
    catalog = load_grids()
    obs = heatmap_rows(credit.engine, since, until)
    cats = sorted({c for _, c, _, _ in obs})
    table = tabulate(obs, rows=list(catalog.codes), cols=cats)
    s = suppress(table, settings.stats_min_cell)
    return {
        "since": since,
        "until": until,
        "months": months,
        "timezone": "Asia/Shanghai",
        "categories": [_category(credit.catalog, c) for c in cats],
        "rows": [
            {
                "grid": g.to_json(),
                "cells": [s.cells[(g.code, c)].to_json() for c in cats],
                "total": s.row_totals[g.code].to_json(),
            }
            for g in catalog
        ],
        "category_totals": [
            {"category": credit.catalog.by_id(c).code, **s.col_totals[c].to_json()} for c in cats
        ],
        "total": s.total.to_json(),
        "suppression": _suppression(s),
    }
