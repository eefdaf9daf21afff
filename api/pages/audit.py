"""Audit dashboard (``/audit``, AUDITOR) and credit office (``/office``, AUDITOR or GOVERNOR).

Invariants:

* The audit run is the very code of ``POST /v1/audit/run`` (:func:`api.routes.audit.run_audit`);
  the page keeps the last result in memory on the app (``app.state.page_audit``) with when it ran
  and who ran it. A service restart forgets it (run it again: the audit reads only the chain).
* The checkpoint shown is the one ``GET /v1/log/checkpoint`` serves; inclusion proofs are
  fetched by the page JS from ``GET /v1/log/proof/inclusion`` and verified in the browser
  (audit.js: RFC 9162 §2.1.3.2 with WebCrypto), never by trusting the server's word.
* The office's figures come from the functions behind ``/v1/stats/*`` (same counts, same
  small-cell suppression). A withheld cell is drawn hatched and labelled as withheld, never
  with a number; every chart is inline SVG with ``<title>``/``<desc>`` and the same numbers in a
  table; colour is never the only signal (numbers in every heat-map cell, labels and legends).
"""

from __future__ import annotations

import base64
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ledger.errors import InvalidInput, ZhixinError
from ledger.roles import Role

from ..deps import ServiceStarting
from . import i18n
from .core import PageRoute, PageSessionDep, lang_of, render, require_page_role

__all__ = [
    "HEAT_BINS",
    "PALETTE",
    "bar_chart",
    "heat_bins",
    "heat_class",
    "parse_note",
    "router",
    "stacked_bars",
]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

CST = timezone(timedelta(hours=8), "CST")
_RUN_LOCK = threading.Lock()


def _fmt(ts: float | int | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(float(ts), CST).strftime("%Y-%m-%d %H:%M:%S")


def _rt(request: Request) -> Any:
    rt = getattr(request.app.state, "runtime", None)
    if rt is None or rt.engine is None or rt.credit is None:
        raise ServiceStarting("the service is starting")
    return rt


# ---- the checkpoint note ----


def parse_note(note: str) -> dict[str, Any]:
    """A C2SP signed checkpoint, split for display: origin, size, root, signature lines."""
    split = note.rfind("\n\n")
    body, sigs = (note[: split + 1], note[split + 2 :]) if split >= 0 else (note, "")
    lines = body.rstrip("\n").split("\n")
    root_b64 = lines[2] if len(lines) > 2 else ""
    try:
        root_hex = base64.b64decode(root_b64).hex()
    except ValueError:
        root_hex = ""
    return {
        "origin": lines[0] if lines else "",
        "size": lines[1] if len(lines) > 1 else "",
        "root": root_b64,
        "root_hex": root_hex,
        "extensions": lines[3:],
        "signatures": [s for s in sigs.split("\n") if s],
        "text": note,
    }


def _checkpoint(request: Request, rt: Any) -> dict[str, Any]:
    from ..routes.audit import _tlog

    log = _tlog(request, rt)
    cp = parse_note(log.checkpoint())
    cp["verifier_key"] = log.verifier_key
    cp["anchor"] = _anchored(rt, log)
    return cp


def _anchored(rt: Any, log: Any) -> dict[str, Any] | None:
    """The newest checkpoint anchored on chain (RuleRegistry) and whether our log agrees."""
    anchorer = getattr(rt, "anchorer", None)
    registry = rt.deployment.contracts.get("RuleRegistry")
    out: dict[str, Any] = {
        "deployed": registry is not None,
        "every_records": getattr(anchorer, "every_records", None),
        "every_seconds": getattr(anchorer, "every_seconds", None),
        "last_error": getattr(anchorer, "last_error", None),
        "skip_reason": anchorer.skip_reason() if anchorer is not None else None,
        "anchored_at": _fmt(getattr(anchorer, "anchored_at", None)),
    }
    if registry is None:
        return out
    from ledger.rules_registry import RuleRegistryClient

    try:
        latest = RuleRegistryClient(rt.chain, registry).latest_checkpoint()
    except ZhixinError as exc:
        out["error"] = exc.detail
        return out
    out["size"] = latest.tree_size
    out["root"] = base64.b64encode(latest.root_hash).decode() if latest.tree_size else ""
    if 0 < latest.tree_size <= log.size:
        out["matches"] = log.tree.root(latest.tree_size) == latest.root_hash
    return out


# ---- the audit dashboard ----


@dataclass
class AuditRun:
    at: float
    by: str | None
    seconds: float
    result: dict[str, Any] | None = None
    error: str | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)


def _findings(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every failed check of a run, from the chain replay, the index comparison and the
    re-evaluated list epochs, as rows for one table."""
    rows = [{"source": "chain", **f} for f in result.get("findings", [])]
    rows += [{"source": "index", **f} for f in (result.get("index") or {}).get("findings", [])]
    for e in result.get("epochs") or []:
        if not e.get("matches"):
            rows.append(
                {
                    "source": "epochs",
                    "check": "epoch-root",
                    "epoch": e.get("epoch"),
                    "detail": e.get("error")
                    or f"lists root {e.get('lists_root')} is not the anchored "
                    f"{e.get('anchored_root')}",
                    "expected": e.get("anchored_root"),
                    "actual": e.get("lists_root"),
                }
            )
    return rows


def _last_run(request: Request) -> AuditRun | None:
    return getattr(request.app.state, "page_audit", None)


@router.get("/audit", response_class=HTMLResponse)
def dashboard(request: Request, session: PageSessionDep) -> HTMLResponse:
    s = require_page_role(session, Role.AUDITOR)
    rt = _rt(request)
    last = _last_run(request)
    error = None
    try:
        cp = _checkpoint(request, rt)
    except ZhixinError as exc:
        if exc.status >= 500 and exc.status != 503:
            raise
        cp, error = None, exc.detail
    return render(
        request,
        "audit/dashboard.html",
        {
            "last": last,
            "last_at": _fmt(last.at) if last else "",
            "cp": cp,
            "error": error,
            "counts": sorted((last.result or {}).get("counts", {}).items()) if last else [],
        },
        session=s,
    )


@router.post("/audit/run")
def run(request: Request, session: PageSessionDep) -> Response:
    """Run the audit as ``POST /v1/audit/run`` does; keep the result; back to the dashboard."""
    from ..routes.audit import AuditIn, run_audit

    s = require_page_role(session, Role.AUDITOR)
    rt = _rt(request)
    if not _RUN_LOCK.acquire(blocking=False):
        raise InvalidInput("an audit is already running; wait for it and reload")
    t0 = time.monotonic()
    try:
        try:
            result = run_audit(AuditIn(), rt, s)
            entry = AuditRun(time.time(), s.address, time.monotonic() - t0, result=result)
            entry.findings = _findings(result)
        except ZhixinError as exc:
            if exc.status < 500 or exc.status in (502, 503):
                entry = AuditRun(time.time(), s.address, time.monotonic() - t0, error=exc.detail)
            else:
                raise
        request.app.state.page_audit = entry
    finally:
        _RUN_LOCK.release()
    return RedirectResponse("/audit#last", status_code=303)


# ---- charts (pure geometry; the templates draw them) ----

PALETTE: tuple[str, ...] = (  # Okabe-Ito: distinguishable with colour-vision deficiencies
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
)
OTHER_COLOUR = "#8c8c8c"


def _nice_max(v: int) -> int:
    if v <= 5:
        return 5
    mag = 10 ** int(math.log10(v))
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * mag)
        if top >= v:
            return top
    return v  # pragma: no cover


def stacked_bars(
    labels: list[str],
    series: list[dict[str, Any]],
    *,
    width: int = 720,
    height: int = 280,
) -> dict[str, Any]:
    """Geometry of a stacked bar chart: one bar per label, one segment per series value.

    ``series``: ``[{"name", "colour", "values": [int | None per label]}]``; ``None`` is a withheld
    value: it is not drawn (its size is unknown) and its bar is flagged ``withheld``.
    """
    left, right, top, bottom = 48, 10, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    sums = [sum(s["values"][i] or 0 for s in series) for i in range(len(labels))]
    ymax = _nice_max(max(sums, default=0))
    n = max(len(labels), 1)
    slot = plot_w / n
    bw = max(4.0, slot * 0.7)
    bars = []
    for i, label in enumerate(labels):
        x = left + i * slot + (slot - bw) / 2
        y = top + plot_h
        segs = []
        withheld = False
        for s in series:
            v = s["values"][i]
            if v is None:
                withheld = True
                continue
            if v <= 0:
                continue
            h = v / ymax * plot_h
            y -= h
            segs.append({"x": round(x, 1), "y": round(y, 1), "h": round(h, 1), "w": round(bw, 1),
                         "colour": s["colour"], "name": s["name"], "value": v})  # fmt: skip
        bars.append(
            {
                "label": label,
                "x": round(x, 1),
                "cx": round(x + bw / 2, 1),
                "w": round(bw, 1),
                "top": round(y, 1),
                "sum": sums[i],
                "withheld": withheld,
                "segments": segs,
            }
        )
    ticks = [
        {"value": round(ymax * k / 4), "y": round(top + plot_h - plot_h * k / 4, 1)}
        for k in range(5)
    ]
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "top": top,
        "base": top + plot_h,
        "bars": bars,
        "ticks": ticks,
        "ymax": ymax,
    }


def bar_chart(items: list[dict[str, Any]], *, width: int = 720, row: int = 26) -> dict[str, Any]:
    """Horizontal bars: ``[{"label", "value", "colour"}]`` → geometry."""
    left, right = 260, 60
    vmax = max((it["value"] for it in items), default=0) or 1
    out = []
    for i, it in enumerate(items):
        w = (width - left - right) * it["value"] / vmax
        out.append({**it, "y": 8 + i * row, "w": round(w, 1), "h": row - 8})
    return {"width": width, "height": 16 + len(items) * row, "left": left, "bars": out}


HEAT_BINS = 5
_HEAT_COLOURS = ("#ffffff", "#deebf7", "#9ecae1", "#4292c6", "#2171b5", "#08306b")


def heat_bins(vmax: int) -> list[dict[str, Any]]:
    """Legend of the colour scale: 0, then :data:`HEAT_BINS` equal-width bins up to vmax."""
    out = [{"lo": 0, "hi": 0, "colour": _HEAT_COLOURS[0], "dark": False}]
    if vmax <= 0:
        return out
    prev = 0
    for b in range(1, HEAT_BINS + 1):
        hi = math.ceil(vmax * b / HEAT_BINS)
        if hi <= prev:
            continue
        out.append({"lo": prev + 1, "hi": hi, "colour": _HEAT_COLOURS[b], "dark": b >= 4})
        prev = hi
    return out


def heat_class(value: int | None, bins: list[dict[str, Any]]) -> dict[str, Any]:
    """The bin (colour, dark text?) of a cell value; ``None`` (withheld) has none."""
    if value is None:
        return {"colour": None, "dark": False}
    for b in bins:
        if b["lo"] <= value <= b["hi"]:
            return b
    return bins[-1]


# ---- the credit office ----


def _name(obj: dict[str, str], lang: str) -> str:
    return obj.get(lang) or obj.get("zh") or ""


def _months(request: Request) -> int:
    raw = request.query_params.get("months", "12")
    if not raw.isdigit() or not 1 <= int(raw) <= 60:
        raise InvalidInput("months must be a whole number from 1 to 60")
    return int(raw)


def _by_category_chart(data: dict[str, Any], lang: str) -> dict[str, Any]:
    cats = data["categories"]

    def total(c: dict[str, Any]) -> int:
        return int(c["total"]["count"] or 0) + (1 if c["total"]["suppressed"] else 0)

    ranked = sorted(cats, key=lambda c: (-total(c), c["id"]))
    top, rest = ranked[: len(PALETTE)], ranked[len(PALETTE) :]
    series = [
        {
            "name": _name(c["name"], lang),
            "code": c["code"],
            "colour": PALETTE[i],
            "values": [x["count"] for x in c["counts"]],
        }
        for i, c in enumerate(top)
    ]
    if rest:
        months = len(data["months"])
        vals: list[int | None] = []
        for i in range(months):
            cells = [c["counts"][i] for c in rest]
            vals.append(None if any(x["suppressed"] for x in cells) else
                        sum(int(x["count"] or 0) for x in cells))  # fmt: skip
        series.append(
            {"name": "…", "code": "other", "colour": OTHER_COLOUR, "values": vals, "other": True}
        )
    return {"series": series, **stacked_bars(data["months"], series)}


def _list_chart(lists: list[dict[str, Any]], lang: str) -> dict[str, Any]:
    items = []
    for rs in lists:
        for lst in rs["lists"]:
            items.append(
                {
                    "label": _name(lst["name"], lang),
                    "id": lst["id"],
                    "kind": lst["kind"],
                    "value": int(lst["size"]),
                    "entities": lst["entities"],
                    "persons": lst["persons"],
                    "rule_set": rs["rule_set"],
                    "epoch": rs["epoch"],
                    "colour": "#1a7f37" if lst["kind"] == "red" else "#24292f",  # as app.css badges
                }
            )
    return bar_chart(items)


def _heat(data: dict[str, Any], lang: str) -> dict[str, Any]:
    values = [c["count"] for r in data["rows"] for c in r["cells"] if c["count"] is not None]
    bins = heat_bins(max(values, default=0))
    rows = []
    for r in data["rows"]:
        rows.append(
            {
                "code": r["grid"]["code"],
                "name": _name(r["grid"]["name"], lang),
                "street": r["grid"]["street"]["en" if lang == "en" else "zh"],
                "cells": [{**c, "bin": heat_class(c["count"], bins)} for c in r["cells"]],
                "total": r["total"],
            }
        )
    return {"rows": rows, "bins": bins}


@router.get("/office", response_class=HTMLResponse)
def office(request: Request, session: PageSessionDep) -> HTMLResponse:
    from ..routes.stats import heatmap, list_sizes_route, records_by_category

    s = require_page_role(session, Role.AUDITOR, Role.GOVERNOR)
    rt = _rt(request)
    lang = lang_of(request)
    error = None
    status = 200
    try:
        months = _months(request)
    except InvalidInput as exc:
        months, error, status = 12, exc.detail, 422
    settings = request.app.state.settings
    by_cat = records_by_category(rt.credit, settings, months)
    lists = list_sizes_route(rt.credit)["rule_sets"]
    heat = heatmap(rt.credit, settings, s, months)
    return render(
        request,
        "audit/office.html",
        {
            "months": months,
            "by_cat": by_cat,
            "chart": _by_category_chart(by_cat, lang),
            "lists": lists,
            "list_chart": _list_chart(lists, lang),
            "heat": heat,
            "heat_view": _heat(heat, lang),
            "k": heat["suppression"]["k"],
            "error": error,
            "name": lambda obj: _name(obj, lang),
            "fmt_date": lambda ts: _fmt(ts)[:10],
        },
        session=s,
        status=status,
    )


i18n.register(
    {
        "audit.title": ("审计", "Audit"),
        "audit.last.title": ("最近一次审计", "Last audit"),
        "audit.last.none": (
            "本次服务启动后尚未运行审计。",
            "No audit has run since the service started.",
        ),
        "audit.run": ("运行审计（从链上重放）", "Run the audit (replay the chain)"),
        "audit.run.help": (
            "审计只读取链上数据：重放所有记录并校验签名、角色、随机数、生命周期与哈希链，"
            "再与服务的索引和名单周期比对。可能需要几秒钟。",
            "The audit reads only the chain: it replays every record and checks signatures,"
            " roles, nonces, lifecycles and the running hash, then compares the service's index"
            " and the list epochs. It may take a few seconds.",
        ),
        "audit.ran_at": ("运行时间", "Ran at"),
        "audit.ran_by": ("运行人", "Run by"),
        "audit.duration": ("耗时（秒）", "Duration (s)"),
        "audit.passed": ("通过", "passed"),
        "audit.failed": ("未通过", "failed"),
        "audit.partial": ("（部分范围）", "(partial range)"),
        "audit.blocks": ("区块范围", "Blocks"),
        "audit.head": ("链头", "Head block"),
        "audit.running_hash": ("运行哈希", "Running hash"),
        "audit.log": ("日志树（重放所得）", "Log tree (from the replay)"),
        "audit.index": ("索引比对", "Index comparison"),
        "audit.epochs": ("名单周期重算", "List epochs re-evaluated"),
        "audit.counts": ("计数", "Counts"),
        "audit.count": ("数量", "Count"),
        "audit.item": ("项目", "Item"),
        "audit.notes": ("说明", "Notes"),
        "audit.findings": ("发现的问题", "Findings"),
        "audit.findings.none": ("没有发现问题。", "No findings."),
        "audit.f.source": ("来源", "Source"),
        "audit.f.check": ("检查项", "Check"),
        "audit.f.detail": ("详情", "Detail"),
        "audit.f.where": ("位置", "Where"),
        "audit.f.expected": ("期望 / 实际", "Expected / actual"),
        "audit.f.block": ("区块", "block"),
        "audit.f.tx": ("交易", "tx"),
        "audit.f.record": ("记录", "record"),
        "audit.f.field": ("字段", "field"),
        "audit.f.epoch": ("周期", "epoch"),
        "audit.error": ("审计无法完成", "The audit could not complete"),
        "audit.cp.title": ("最新签名检查点", "Latest signed checkpoint"),
        "audit.cp.help": (
            "透明日志（RFC 9162）的 C2SP 签名检查点，与 /v1/log/checkpoint 提供的文本一致。",
            "The transparency log's (RFC 9162) C2SP signed checkpoint, exactly as"
            " /v1/log/checkpoint serves it.",
        ),
        "audit.cp.origin": ("来源 (origin)", "Origin"),
        "audit.cp.size": ("树大小", "Tree size"),
        "audit.cp.root": ("根哈希 (base64)", "Root hash (base64)"),
        "audit.cp.sig": ("签名行", "Signature line"),
        "audit.cp.vkey": ("验证公钥", "Verifier key"),
        "audit.cp.sig_state": ("签名（在您的浏览器中验证）", "Signature (checked in your browser)"),
        "audit.cp.text": ("检查点原文", "Checkpoint text"),
        "audit.anchor.title": ("链上锚定的检查点", "Checkpoints anchored on chain"),
        "audit.anchor.none": ("尚未锚定检查点。", "No checkpoint anchored yet."),
        "audit.anchor.undeployed": (
            "未部署 RuleRegistry：检查点不锚定上链。",
            "RuleRegistry is not deployed: checkpoints are not anchored.",
        ),
        "audit.anchor.latest": ("最新锚定", "Latest anchored"),
        "audit.anchor.matches": ("与本日志一致", "matches this log"),
        "audit.anchor.differs": ("与本日志不一致！", "differs from this log!"),
        "audit.anchor.policy": ("锚定策略", "Anchoring policy"),
        "audit.anchor.every": ("每 {n} 条记录或 {s} 秒", "every {n} records or {s} seconds"),
        "audit.anchor.last_error": ("最近错误", "Last error"),
        "audit.proof.lookup": ("包含证明查询", "Inclusion proof lookup"),
        "audit.proof.help": (
            "输入记录编号，浏览器获取包含证明，用 WebCrypto SHA-256 按 RFC 9162 §2.1.3.2 重新计算"
            "（叶 = SHA-256(0x00 ‖ 记录编号 32 字节)，"
            "节点 = SHA-256(0x01 ‖ 左 ‖ 右)），并与签名检查点的根比对。",
            "Enter a record id: the browser fetches its inclusion proof and recomputes it with"
            " WebCrypto SHA-256 per RFC 9162 §2.1.3.2 (leaf = SHA-256(0x00 ‖ the record id's 32"
            " bytes), node = SHA-256(0x01 ‖ left ‖ right)) against the signed checkpoint's root.",
        ),
        "audit.proof.id": ("记录编号", "Record id"),
        "audit.proof.submit": ("获取并验证", "Fetch and verify"),
        "audit.proof.title": ("包含证明", "Inclusion proof"),
        "audit.proof.withdrawn": ("撤回记录的包含证明", "Inclusion proof of its withdrawal"),
        "audit.proof.leaf_index": ("叶序号", "Leaf index"),
        "audit.proof.tree_size": ("树大小", "Tree size"),
        "audit.proof.leaf_hash": ("叶哈希 (hex)", "Leaf hash (hex)"),
        "audit.proof.root": ("检查点根 (base64)", "Checkpoint root (base64)"),
        "audit.proof.computed": ("浏览器算得的根 (base64)", "Root computed here (base64)"),
        "audit.proof.path": (
            "审计路径（{n} 个哈希，自叶向根）",
            "Audit path ({n} hashes, leaf to root)",
        ),
        "audit.proof.checkpoint": (
            "所依据的签名检查点",
            "The signed checkpoint it is checked against",
        ),
        "audit.js.verified": (
            "已在您的浏览器中验证：该记录包含在大小为 {size} 的日志树中",
            "Verified in your browser: the record is in the log tree of size {size}",
        ),
        "audit.js.mismatch": ("验证失败", "Verification failed"),
        "audit.js.bad_id": (
            "记录编号应为 0x 加 64 位十六进制数字。",
            "A record id is 0x followed by 64 hex digits.",
        ),
        "audit.js.not_in_log": ("日志中没有该记录：{detail}", "Not in the log: {detail}"),
        "audit.js.fetching": ("正在获取证明…", "Fetching the proof…"),
        "audit.js.sig_ok": ("检查点签名有效", "checkpoint signature valid"),
        "audit.js.sig_bad": ("检查点签名无效", "checkpoint signature INVALID"),
        "audit.js.sig_unchecked": (
            "此浏览器不支持 Ed25519，签名未检查",
            "this browser has no Ed25519: signature not checked",
        ),
        "office.title": ("信用办", "Credit office"),
        "office.help": (
            "以下均为汇总数字。涉及少于 k 个不同主体的格子（以及为防止推算而一并隐藏的格子）"
            "不公开，以斜线底纹标示。",
            "Aggregates only. Cells about fewer than k distinct subjects (and cells withheld so"
            " that those cannot be derived) are withheld and drawn hatched.",
        ),
        "office.months": ("统计月数", "Months"),
        "office.show": ("显示", "Show"),
        "office.bycat.title": ("各类别记录数（按月）", "Records per category per month"),
        "office.bycat.desc": (
            "堆叠柱状图：每月一根柱，按类别分段；被隐藏的数值不绘制，该月以 * 标示。",
            "Stacked bars: one bar per month, one segment per category; withheld values are not"
            " drawn and their month is marked with *.",
        ),
        "office.bycat.table": ("各类别记录数（表格）", "Records per category (table)"),
        "office.total": ("合计", "Total"),
        "office.other": ("其他类别", "other categories"),
        "office.lists.title": ("红黑名单规模", "Red and black list sizes"),
        "office.lists.desc": (
            "横向柱状图：每个名单在其规则集最新周期中的主体数。",
            "Horizontal bars: subjects on each list at its rule set's newest epoch.",
        ),
        "office.lists.none": ("尚无名单周期。", "No list epoch yet."),
        "office.lists.table": ("名单规模（表格）", "List sizes (table)"),
        "office.list": ("名单", "List"),
        "office.kind": ("类型", "Kind"),
        "office.kind.red": ("红名单", "red list"),
        "office.kind.black": ("黑名单", "black list"),
        "office.size": ("主体数", "Subjects"),
        "office.entities": ("法人", "Entities"),
        "office.persons": ("自然人", "Persons"),
        "office.epoch": ("周期", "Epoch"),
        "office.heat.title": ("网格 × 类别热力图", "Heat map: community grid × category"),
        "office.heat.desc": (
            "每格为该网格该类别的记录数（格内均标数字，颜色越深越多）；斜线底纹为不公开的格子。",
            "Each cell is the number of records of the category in the grid (the number is in"
            " every cell; darker is more); hatched cells are withheld.",
        ),
        "office.heat.none": (
            "该期间没有带网格信息的记录。",
            "No record with a community grid in this period.",
        ),
        "office.grid": ("网格", "Grid"),
        "office.street": ("街道", "Street"),
        "office.withheld": ("不公开", "withheld"),
        "office.legend": ("图例", "Legend"),
        "office.legend.withheld": (
            "不公开：少于 k={k} 个不同主体，或为防止推算而隐藏",
            "withheld: fewer than k={k} distinct subjects, or withheld so that such a cell"
            " cannot be derived",
        ),
        "office.period": ("统计期间", "Period"),
        "office.month": ("月份", "Month"),
    }
)
