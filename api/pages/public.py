"""Public pages (no sign-in): credit query of a legal entity and red/black list publicity.

Invariants:

* Reads go through the services the JSON routes use (``rt.credit``, ``rt.rules``, the public
  statistics of :mod:`api.routes.stats`) and through the same :class:`api.deps.Reader` gate, so
  the page shows exactly what ``/v1/credit-records``, ``/v1/rules/status`` and
  ``/v1/rules/lists/{id}/publicity`` would show the same caller.
* A natural person's records are never shown here: a resident identity number entered in the
  query is refused (403) with the reason, and list publicity holds legal entities only.
* The code typed in is validated as the API does (GB 32100: length, alphabet, check character);
  a bad one is a readable message on the page with 422. Error texts carry only the masked code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from identity.ids import InvalidIdentifier, validate_ric
from ledger.credit_service import CreditService, RecordQuery
from ledger.errors import NotFound, ZhixinError

from ..deps import ServiceStarting
from . import i18n
from .core import PageRoute, PageSessionDep, lang_of, page_reader, render

__all__ = [
    "CST",
    "RecordView",
    "bar_chart",
    "fmt_date",
    "history_views",
    "list_status",
    "memberships_view",
    "page_credit",
    "page_rules",
    "pick",
    "record_status",
    "record_views",
    "router",
    "short",
]

log = logging.getLogger("zhixin.pages.public")

router = APIRouter(route_class=PageRoute, include_in_schema=False)

CST: Final = timezone(timedelta(hours=8), "CST")
MAX_RECORDS: Final = 500

i18n.register(
    {
        "public.credit.title": ("企业信用查询", "Credit query of a legal entity"),
        "public.credit.help": (
            "输入法人和其他组织的统一社会信用代码 (18 位，GB 32100-2015)，查询其当前信用记录和"
            "红黑名单状态。",
            "Enter the Unified Social Credit Code (18 characters, GB 32100-2015) of a legal"
            " entity to see its current credit records and its red/black list status.",
        ),
        "public.credit.uscc": ("统一社会信用代码", "Unified Social Credit Code"),
        "public.credit.uscc.help": (
            "18 位数字和大写字母 (GB 32100-2015)",
            "18 digits and capital letters (GB 32100-2015)",
        ),
        "public.credit.submit": ("查询", "Search"),
        "public.credit.result": ("查询结果", "Result"),
        "public.credit.subject": ("主体假名", "Subject pseudonym"),
        "public.credit.records": ("当前信用记录", "Current credit records"),
        "public.credit.records.caption": (
            "该主体的当前信用记录 (已适用变更、撤回、异议与修复)",
            "The subject's current records (amendments, withdrawals, objections and repairs"
            " applied)",
        ),
        "public.credit.no_records": ("该主体没有信用记录。", "No credit records for this subject."),
        "public.credit.person": (
            "这是一个居民身份证号码。自然人的信用记录不公开：只有本人 (以数字身份登录后在"
            "“我的信用”查看)、记录的作出部门和审计人员可以查看。",
            "This is a resident identity number. A natural person's credit records are not"
            " public: only the person (after signing in with their digital identity, under"
            " “My credit”), the agencies that wrote them and auditors may see them.",
        ),
        "public.credit.invalid": ("代码无效", "Invalid code"),
        "public.credit.invalid.check": (
            "校验码不符：可能输错了一个字符。",
            "The check character does not match: a character was probably mistyped.",
        ),
        "public.credit.invalid.length": (
            "统一社会信用代码应为 18 位。",
            "A Unified Social Credit Code has 18 characters.",
        ),
        "public.credit.invalid.alphabet": (
            "含有统一社会信用代码不使用的字符 (不使用 I、O、Z、S、V)。",
            "It contains characters a USCC does not use (I, O, Z, S, V are never used).",
        ),
        "public.credit.invalid.empty": ("请输入统一社会信用代码。", "Enter a code."),
        "public.credit.invalid.other": ("代码格式不正确。", "The code is not well formed."),
        "public.status.title": ("红黑名单状态", "Red and black list status"),
        "public.status.none": (
            "该主体目前不在任何红名单或黑名单上。",
            "The subject is currently on no red or black list.",
        ),
        "public.status.no_rules": (
            "尚未发布联合奖惩规则，暂无名单状态。",
            "No joint reward and punishment rules are published yet: no list status.",
        ),
        "public.status.rule": ("认定规则", "Rule"),
        "public.status.entry": ("列入条件", "Entry conditions"),
        "public.status.exit": ("移出条件", "Exit conditions"),
        "public.status.triggering": ("依据的记录", "Records that triggered it"),
        "public.status.since": ("列入日期", "Listed since"),
        "public.status.until": ("公示截止", "Publicity ends"),
        "public.status.exit_eligible": (
            "已满足移出条件，可申请信用修复",
            "Exit conditions met: credit repair may be applied for",
        ),
        "public.status.rule_set": ("规则集", "Rule set"),
        "public.status.as_of": ("评估时间", "Evaluated at"),
        "record.id": ("记录编号", "Record"),
        "record.polarity": ("性质", "Kind"),
        "record.polarity.good": ("守信", "Positive"),
        "record.polarity.bad": ("失信", "Negative"),
        "record.occurred": ("发生日期", "Occurred"),
        "record.effective": ("有效期", "Effective"),
        "record.open_ended": ("长期", "open-ended"),
        "record.status.active": ("有效", "In effect"),
        "record.status.expired": ("已到期", "Expired"),
        "record.status.disputed": ("异议处理中", "Disputed"),
        "record.status.withdrawn": ("已撤回", "Withdrawn"),
        "record.status.upheld": ("异议成立", "Objection upheld"),
        "record.status.repaired": ("已修复", "Repaired"),
        "record.kind": ("类型", "Type"),
        "record.seq": ("序号", "Seq"),
        "record.kind.record": ("记录", "Record"),
        "record.kind.amend": ("变更", "Amendment"),
        "record.kind.withdraw": ("撤回", "Withdrawal"),
        "record.kind.objection": ("异议", "Objection"),
        "record.kind.resolution_upheld": ("异议成立", "Objection upheld"),
        "record.kind.resolution_rejected": ("异议驳回", "Objection rejected"),
        "record.kind.repair": ("信用修复", "Repair"),
        "lists.title": ("红黑名单公示", "Red and black list publicity"),
        "lists.help": (
            "公示最新一次经链上锚定的名单评估结果中的法人和其他组织。自然人名单不公开。主体以假名"
            "显示；输入统一社会信用代码可在“企业信用查询”查看其状态。",
            "Legal entities on the lists at the newest evaluation anchored on chain. Lists of"
            " natural persons are not published. Subjects appear by pseudonym; enter a code under"
            " “Entity credit query” to see an entity's status.",
        ),
        "lists.none": (
            "尚无经锚定的名单评估，暂无公示。",
            "No list evaluation has been anchored yet: nothing is published.",
        ),
        "lists.epoch": ("评估批次", "Evaluation epoch"),
        "lists.anchored": ("已在链上锚定", "anchored on chain"),
        "lists.not_anchored": ("链上锚定未确认", "chain anchor not confirmed"),
        "lists.entries": ("公示名单", "Published entries"),
        "lists.entries.none": ("该名单目前无公示的法人。", "No legal entity on this list now."),
        "lists.entry_reason": ("列入事由", "Entry reason"),
        "lists.entry_date": ("列入日期", "Entry date"),
        "lists.publicity_end": ("公示截止", "End of publicity"),
        "lists.rules": ("列入规则与依据", "Rules and legal basis"),
        "lists.publicity_days": ("公示期", "Publicity period"),
        "lists.days": ("天", "days"),
        "lists.kind.red": ("红名单 (守信激励)", "Red list (reward)"),
        "lists.kind.black": ("黑名单 (失信惩戒)", "Black list (punishment)"),
        "lists.no_rules": (
            "没有规则会将主体列入该名单。",
            "No rule puts subjects on this list.",
        ),
        "stats.sizes.title": ("名单规模", "List sizes"),
        "stats.sizes.desc": (
            "最新评估中各名单的主体数 (法人与自然人合计，只公布数量)",
            "Subjects on each list at the newest evaluation (entities and persons together;"
            " counts only)",
        ),
        "stats.list": ("名单", "List"),
        "stats.size": ("主体数", "Subjects"),
        "stats.entities": ("法人", "Entities"),
        "stats.persons": ("自然人", "Persons"),
        "stats.bycat.title": ("各类信用记录数量 (按月)", "Records per category per month"),
        "stats.bycat.desc": (
            "近期每月新增的原始信用记录数；涉及主体过少的格子不予公布 (—)。",
            "Original records added each month; cells about too few subjects are withheld (—).",
        ),
        "stats.month": ("月份", "Month"),
        "stats.total": ("合计", "Total"),
        "stats.suppressed": ("不予公布", "withheld"),
        "stats.none": ("暂无统计数据。", "No statistics yet."),
    }
)


# ---- formatting ----


def fmt_date(ts: Any) -> str:
    """Unix seconds as a China Standard Time date; '' for 0 / None."""
    try:
        v = int(ts)
    except (TypeError, ValueError):
        return ""
    if v <= 0:
        return ""
    try:
        return datetime.fromtimestamp(v, CST).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return ""


def short(h: str | None, n: int = 10) -> str:
    if not h:
        return ""
    return h if len(h) <= n + 4 else f"{h[:n]}…{h[-4:]}"


def pick(lang: str, pair: Mapping[str, Any] | None) -> str:
    if not pair:
        return ""
    return str(pair.get("en" if lang == "en" else "zh") or pair.get("zh") or "")


# ---- services ----


def page_credit(request: Request) -> CreditService:
    rt = getattr(request.app.state, "runtime", None)
    if rt is None or rt.credit is None:
        raise ServiceStarting("the credit service is starting")
    return rt.credit  # type: ignore[no-any-return]


def page_rules(request: Request) -> Any:
    rt = getattr(request.app.state, "runtime", None)
    if rt is None or getattr(rt, "rules", None) is None:
        raise ServiceStarting("the rules service is starting")
    return rt.rules


# ---- view models ----


RecordView = dict[str, Any]


def record_status(r: Mapping[str, Any], now: int) -> list[tuple[str, str]]:
    """(message key, badge class) of a current record's states, most decisive first."""
    out: list[tuple[str, str]] = []
    if r.get("withdrawn"):
        out.append(("record.status.withdrawn", "pending"))
    if r.get("objection_upheld"):
        out.append(("record.status.upheld", "ok"))
    if r.get("repaired"):
        out.append(("record.status.repaired", "ok"))
    if r.get("disputed"):
        out.append(("record.status.disputed", "pending"))
    if not out:
        until = int(r.get("effective_until") or 0)
        if until and until <= now:
            out.append(("record.status.expired", "muted"))
        else:
            out.append(("record.status.active", "good" if r.get("polarity") == "good" else "bad"))
    return out


def record_views(
    credit: CreditService, rows: Iterable[Mapping[str, Any]], lang: str, now: int | None = None
) -> list[RecordView]:
    """Current-view records as template rows (names in the page's language)."""
    now = int(now if now is not None else credit.clock())
    out = []
    for r in rows:
        cat = credit.catalog.by_id(int(r["category"]))
        out.append(
            {
                "id": r["id"],
                "short_id": short(r["id"]),
                "versions": list(r.get("versions") or [r["id"]]),
                "category_code": cat.code,
                "category_name": cat.name_en if lang == "en" else cat.name_zh,
                "polarity": cat.polarity,
                "severity": cat.severity,
                "repairable": bool(cat.repairable),
                "repair_after_days": cat.repair_after_days,
                "agency": r["agency"],
                "occurred": fmt_date(r.get("occurred_at")),
                "effective_from": fmt_date(r.get("effective_from")),
                "effective_until": fmt_date(r.get("effective_until")),
                "effective_until_ts": int(r.get("effective_until") or 0),
                "effective_from_ts": int(r.get("effective_from") or 0),
                "status": record_status(r, now),
                "disputed": bool(r.get("disputed")),
                "withdrawn": bool(r.get("withdrawn")),
                "repaired": bool(r.get("repaired")),
                "upheld": bool(r.get("objection_upheld")),
            }
        )
    return out


def history_views(
    credit: CreditService, rows: Iterable[Mapping[str, Any]], lang: str
) -> list[RecordView]:
    """Raw ledger rows (every record and lifecycle entry) as template rows."""
    out = []
    for r in rows:
        cat = credit.catalog.by_id(int(r["category"]))
        ref = str(r.get("ref") or "")
        out.append(
            {
                "id": r["id"],
                "short_id": short(r["id"]),
                "seq": r.get("seq"),
                "kind": r.get("kind_name", ""),
                "category_name": cat.name_en if lang == "en" else cat.name_zh,
                "category_code": cat.code,
                "polarity": cat.polarity,
                "agency": r["agency"],
                "occurred": fmt_date(r.get("occurred_at")),
                "effective_from": fmt_date(r.get("effective_from")),
                "effective_until": fmt_date(r.get("effective_until")),
                "recorded": fmt_date(r.get("block_timestamp")),
                "ref": "" if not ref or set(ref[2:]) == {"0"} else ref,
                "short_ref": short(ref) if ref and set(ref[2:]) != {"0"} else "",
            }
        )
    return out


def memberships_view(
    status: Mapping[str, Any], records: Sequence[RecordView], lang: str
) -> list[dict[str, Any]]:
    """``rules.status`` memberships with their triggering records resolved to table rows."""
    by_version: dict[str, RecordView] = {}
    for r in records:
        for v in r["versions"]:
            by_version[v] = r
    out = []
    for m in status.get("memberships", []):
        trig = []
        for rid in m.get("triggering", []):
            rec = by_version.get(rid)
            trig.append(
                {
                    "id": rid,
                    "anchor": rec["id"] if rec else None,
                    "short_id": short(rid),
                    "category_name": rec["category_name"] if rec else "",
                }
            )
        out.append(
            {
                "list": m["list"],
                "list_name": pick(lang, m.get("list_name")),
                "list_kind": m.get("list_kind", "black"),
                "rule": m["rule"],
                "rule_name": pick(lang, m.get("rule_name")),
                "legal_basis": m.get("legal_basis", ""),
                "entry_conditions": pick(lang, m.get("entry_conditions")),
                "exit_conditions": pick(lang, m.get("exit_conditions")),
                "since": fmt_date(m.get("since")),
                "until": fmt_date(m.get("publicity_until")),
                "exit_eligible": bool(m.get("exit_eligible")),
                "triggering": trig,
            }
        )
    return out


def list_status(request: Request, pseud: bytes, records: Sequence[RecordView]) -> dict[str, Any]:
    """The subject's list status as ``/v1/rules/status`` gives it, for a template; the caller
    has already passed the reader gate. ``error`` is set when no rule set is published."""
    from ledger.rules_service import RuleSetNotPublished

    lang = lang_of(request)
    try:
        st = page_rules(request).status(pseud)
    except RuleSetNotPublished:
        return {"available": False, "memberships": []}
    return {
        "available": True,
        "as_of": fmt_date(st.get("as_of")),
        "rule_set": st.get("rule_set", {}),
        "memberships": memberships_view(st, records, lang),
    }


# ---- charts (server-rendered SVG; the same numbers are in a table beside it) ----


def bar_chart(
    bars: Sequence[tuple[str, int | None, str]], title: str, desc: str, chart_id: str
) -> dict[str, Any]:
    """Horizontal bars: (label, value or None for withheld, css class) → geometry for the
    template (a ``<svg role=img>`` with ``<title>`` and ``<desc>``)."""
    width, label_w, row_h, pad = 560, 200, 26, 8
    top = max([v or 0 for _, v, _ in bars] + [1])
    rows = []
    for i, (label, value, cls) in enumerate(bars):
        w = 0 if value is None else int((width - label_w - 60) * value / top)
        rows.append(
            {
                "y": pad + i * row_h,
                "label": label,
                "value": "—" if value is None else str(value),
                "w": max(w, 1 if value else 0),
                "cls": cls,
            }
        )
    return {
        "id": chart_id,
        "title": title,
        "desc": desc,
        "width": width,
        "height": pad * 2 + row_h * max(len(rows), 1),
        "label_w": label_w,
        "rows": rows,
    }


def _stats_routes() -> Any:
    """The public statistics routes (absent in a build without them)."""
    try:
        from ..routes import stats
    except ImportError:  # pragma: no cover - the statistics module is optional
        return None
    return stats


def records_by_category(request: Request, months: int = 6) -> dict[str, Any] | None:
    """``GET /v1/stats/records-by-category`` (public), or None without statistics."""
    stats = _stats_routes()
    if stats is None:
        return None
    try:
        return stats.records_by_category(  # type: ignore[no-any-return]
            page_credit(request), request.app.state.settings, months
        )
    except ZhixinError:
        return None


# ---- routes ----


def _invalid_message(exc: InvalidIdentifier, t: Any) -> str:
    key = f"public.credit.invalid.{exc.reason}"
    hint = t(key) if i18n.MESSAGES.get(key) else t("public.credit.invalid.other")
    return f"{t('public.credit.invalid')} ({exc.masked}): {hint}"


def _is_person_number(code: str, credit: CreditService) -> bool:
    """A valid resident identity number that is not also a valid USCC."""
    try:
        validate_ric(code)
    except InvalidIdentifier:
        return False
    try:
        credit.subject_pseudonym("entity", code)
    except InvalidIdentifier:
        return True
    return False  # valid as both: the user asked about an entity


@router.get("/credit", response_class=HTMLResponse)
def credit_page(request: Request, session: PageSessionDep, uscc: str = "") -> HTMLResponse:
    lang = lang_of(request)
    t = lambda k: i18n.translate(k, lang)  # noqa: E731
    ctx: dict[str, Any] = {"uscc": uscc[:64], "result": None}
    code = uscc.strip()
    if "uscc" not in request.query_params:
        return render(request, "public/credit.html", ctx, session=session)
    credit = page_credit(request)
    if _is_person_number(code, credit):
        ctx["uscc"] = ""  # a person's number is not echoed back
        ctx["error"] = t("public.credit.person")
        return render(request, "public/credit.html", ctx, session=session, status=403)
    try:
        kind, pseud = credit.subject_pseudonym("entity", code)
    except InvalidIdentifier as exc:
        ctx["error"] = _invalid_message(exc, t)
        return render(request, "public/credit.html", ctx, session=session, status=422)
    subject = "0x" + bytes(pseud).hex()
    reader = page_reader(request, session)
    reader.require_subject(int(kind), subject)  # an entity: public (the API's gate)
    rows = reader.filter(credit.current(RecordQuery(subject=subject, limit=MAX_RECORDS)))
    records = record_views(credit, rows, lang)
    ctx["result"] = {
        "subject": subject,
        "records": records,
        "status": list_status(request, bytes(pseud), records),
    }
    return render(request, "public/credit.html", ctx, session=session)


def _rule_rows(rs: Any, list_id: str, lang: str) -> list[dict[str, Any]]:
    out = []
    for r in rs.rules:
        if list_id not in r.outcomes:
            continue
        out.append(
            {
                "id": r.id,
                "name": r.name_en if lang == "en" else r.name_zh,
                "legal_basis": r.legal_basis,
                "entry_conditions": r.entry_conditions_en
                if lang == "en"
                else r.entry_conditions_zh,
                "exit_conditions": r.exit_conditions_en if lang == "en" else r.exit_conditions_zh,
                "publicity_days": r.publicity_days,
                "entities": "entity" in r.subject_kinds,
            }
        )
    return out


@router.get("/lists", response_class=HTMLResponse)
def lists_page(request: Request, session: PageSessionDep) -> HTMLResponse:
    lang = lang_of(request)
    t = lambda k: i18n.translate(k, lang)  # noqa: E731
    rules = page_rules(request)
    ctx: dict[str, Any] = {"epoch": None, "lists": [], "sizes": None, "bycat": None}
    try:
        ep = rules.epoch()
    except NotFound:
        ep = None
    if ep is not None:
        rs, _content = rules.rule_set(ep["rule_set"]["version"], ep["rule_set"]["id"])
        ctx["epoch"] = {
            "n": ep["epoch"],
            "as_of": fmt_date(ep["as_of"]),
            "rule_set": ep["rule_set"],
            "anchored": ep["anchored"],
            "legal_basis": list(rs.legal_basis),
        }
        order = sorted(rs.list_ids, key=lambda i: (rs.list_decl(i).kind != "red", i))
        for list_id in order:
            pub = rules.publicity(list_id, include_persons=False, epoch=ep["epoch"])
            decl = rs.list_decl(list_id)
            entries = [
                {
                    "subject": e["subject"],
                    "short": short(e["subject"], 12),
                    "reason": pick(lang, e.get("rule_name")),
                    "rule": e.get("rule"),
                    "since": fmt_date(e.get("since")),
                    "until": fmt_date(e.get("publicity_until")),
                    "records": len(e.get("triggering", [])),
                }
                for e in pub["entries"]
                if e.get("subject_kind") == "entity"  # legal entities only, whatever changes
            ]
            ctx["lists"].append(
                {
                    "id": list_id,
                    "kind": decl.kind,
                    "name": decl.name_en if lang == "en" else decl.name_zh,
                    "rules": _rule_rows(rs, list_id, lang),
                    "entries": entries,
                }
            )
        sizes = ep.get("lists", {})
        by_kind = _sizes_by_kind(request, ep["rule_set"]["id"])
        size_rows = []
        for item in ctx["lists"]:
            n = int(sizes.get(item["id"], {}).get("size", 0))
            k = by_kind.get(item["id"], {})
            size_rows.append(
                {
                    "name": item["name"],
                    "kind": item["kind"],
                    "size": n,
                    "entities": k.get("entities"),
                    "persons": k.get("persons"),
                }
            )
        ctx["sizes"] = {
            "rows": size_rows,
            "chart": bar_chart(
                [(r["name"], r["size"], r["kind"]) for r in size_rows],
                t("stats.sizes.title"),
                t("stats.sizes.desc"),
                "chart-sizes",
            ),
        }
    ctx["bycat"] = _bycat_view(records_by_category(request), lang, t)
    return render(request, "public/lists.html", ctx, session=session)


def _sizes_by_kind(request: Request, set_id: str) -> dict[str, dict[str, int]]:
    """Entities / persons per list from ``GET /v1/stats/list-sizes`` (public), if present."""
    stats = _stats_routes()
    if stats is None:
        return {}
    try:
        body = stats.list_sizes_route(page_credit(request))
    except (ZhixinError, AttributeError):
        return {}
    for rs in body.get("rule_sets", []):
        if rs.get("rule_set", {}).get("id") == set_id:
            return {x["id"]: x for x in rs.get("lists", [])}
    return {}


def _bycat_view(body: Mapping[str, Any] | None, lang: str, t: Any) -> dict[str, Any] | None:
    if not body or not body.get("categories"):
        return None
    months = list(body["months"])
    rows = []
    for c in body["categories"]:
        counts = [x.get("count") for x in c["counts"]]
        rows.append(
            {
                "name": pick(lang, c.get("name")),
                "code": c.get("code"),
                "counts": counts,
                "total": c.get("total", {}).get("count"),
            }
        )
    totals = [x.get("count") for x in body.get("month_totals", [])]
    # a small line chart of the month totals (withheld months are gaps)
    width, height, pad = 560, 160, 30
    known = [v for v in totals if v is not None]
    top = max([*known, 1])
    step = (width - 2 * pad) / max(len(months) - 1, 1)
    points = []
    for i, v in enumerate(totals):
        if v is None:
            continue
        x = pad + i * step
        y = height - pad - (height - 2 * pad) * v / top
        points.append({"x": round(x, 1), "y": round(y, 1), "v": v, "m": months[i]})
    return {
        "months": months,
        "rows": rows,
        "totals": totals,
        "total": body.get("total", {}).get("count"),
        "k": body.get("suppression", {}).get("k"),
        "chart": {
            "title": t("stats.bycat.title"),
            "desc": t("stats.bycat.desc"),
            "width": width,
            "height": height,
            "pad": pad,
            "points": points,
            "path": " ".join(
                f"{'M' if i == 0 else 'L'}{p['x']},{p['y']}" for i, p in enumerate(points)
            ),
            "labels": [
                {"x": round(pad + i * step, 1), "m": m[5:] if len(m) >= 7 else m}
                for i, m in enumerate(months)
            ],
        },
    }
