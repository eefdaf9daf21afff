"""Agency console: scope, writing records (one or a CSV batch) signed in the browser, the
status of recent submissions, objections to answer and the measures to apply to a subject.

Invariants:

* Every page here needs an AGENCY session (401 page signed out, 403 page for other roles).
* Nothing here writes a record: page JS fetches typed data from the JSON API, signs it with the
  agency's keystore unlocked in the browser (ethers) and submits the signature to the JSON
  API. The keystore and its password never reach the server.
* A batch CSV is parsed here, by :func:`parse_batch_csv` (pure), into the JSON fields
  ``POST /v1/credit-records/prepare-batch`` takes; every row is then checked by that API and
  only rows that pass are signed and submitted. A bad row is reported with its spreadsheet row
  number and the precise reason, and never submitted.
* Measures are read through the same service and the same gate as ``GET /v1/rules/measures``
  (any agency may read the measures it applies to a subject).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import select

from ledger.db import credit_records, outbox
from ledger.errors import InvalidInput, ZhixinError
from ledger.records import MAX_BATCH
from ledger.roles import Role

from ..deps import ServiceStarting
from ..problems import problem
from . import i18n
from .core import PageRoute, PageSessionDep, render, require_page_role

__all__ = [
    "CSV_COLUMNS",
    "CSV_REQUIRED",
    "BatchParse",
    "CsvError",
    "RowResult",
    "parse_batch_csv",
    "router",
]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

CST = timezone(timedelta(hours=8), "CST")  # China Standard Time: dates in a CSV are local dates

# ---- the batch CSV format ----

CSV_COLUMNS: tuple[str, ...] = (
    "subject_kind",
    "subject_id",
    "category",
    "occurred_at",
    "effective_from",
    "effective_until",
    "amount",
    "evidence_sha256",
    "reason",
    "grid",
)
"""The documented header, in this order (any order is accepted; these names exactly)."""
CSV_REQUIRED: tuple[str, ...] = ("subject_kind", "subject_id", "category")
MAX_CSV_BYTES = 1_000_000

_KINDS = {
    "person": "person",
    "entity": "entity",
    "个人": "person",
    "自然人": "person",
    "企业": "entity",
    "法人": "entity",
}
_HEX64 = re.compile(r"(?:0x)?([0-9a-fA-F]{64})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DIGITS = re.compile(r"\d{1,12}")
_INT = re.compile(r"\d{1,39}")
_FIELD_OF = {  # CSV column -> the API field it becomes (the service's problem.field)
    "subject_kind": "subject",
    "subject_id": "subject",
    "category": "category",
    "occurred_at": "occurredAt",
    "effective_from": "effectiveFrom",
    "effective_until": "effectiveUntil",
    "amount": "amount",
    "evidence_sha256": "evidenceHash",
    "reason": "reason",
    "grid": "grid",
}
COLUMN_OF_FIELD = {v: k for k, v in _FIELD_OF.items() if k != "subject_kind"}

SAMPLE_CSV = (
    ",".join(CSV_COLUMNS) + "\n"
    "entity,91440300568520498A,tax.arrears,2025-03-01,2025-03-15,,125000,"
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08,"
    '"逾期未缴增值税, overdue VAT",CC-ZM-01\n'
    "person,11010519491231002X,tax.arrears,2025-04-02,,,3800,,个人所得税欠缴 unpaid income tax,\n"
    "entity,91440300568520498B,tax.arrears,2025-05-10,,,990,,"
    "校验位错误的示例行 sample row with a bad check character,CC-SW-02\n"
)


class CsvError(InvalidInput):
    """The file as a whole cannot be read as a batch (header, encoding, size)."""

    code = "invalid-csv"


@dataclass
class RowResult:
    """One data row: its spreadsheet row number (the header is row 1) and either the record
    fields for ``prepare-batch`` or the reason it was refused before reaching the API."""

    row: int
    fields: dict[str, Any] | None = None
    error: str | None = None
    column: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row, "ok": self.error is None}
        if self.error is None:
            out["fields"] = self.fields
        else:
            out["error"] = self.error
            out["column"] = self.column
        return out


@dataclass
class BatchParse:
    header: list[str]
    rows: list[RowResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "header": self.header,
            "columns": list(CSV_COLUMNS),
            "rows": [r.to_json() for r in self.rows],
        }


class _RowProblem(Exception):
    def __init__(self, column: str, detail: str) -> None:
        super().__init__(detail)
        self.column = column
        self.detail = detail


def _timestamp(column: str, value: str) -> int:
    """A CSV time: ``YYYY-MM-DD`` (midnight, China time), ISO 8601 with a time, or unix s."""
    if _DIGITS.fullmatch(value):
        return int(value)
    try:
        if _DATE.fullmatch(value):
            d = date.fromisoformat(value)
            return int(datetime(d.year, d.month, d.day, tzinfo=CST).timestamp())
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise _RowProblem(
            column, f"{column} {value!r} is not a date (YYYY-MM-DD), an ISO 8601 time or unix s"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=CST)
    ts = int(dt.timestamp())
    if ts < 0:
        raise _RowProblem(column, f"{column} {value!r} is before 1970")
    return ts


def _row_fields(values: dict[str, str]) -> dict[str, Any]:
    """The ``prepare`` fields of one CSV row (shape only: the API checks the meaning)."""
    kind_raw = values.get("subject_kind", "").strip()
    kind = _KINDS.get(kind_raw.lower()) or _KINDS.get(kind_raw)
    if kind is None:
        raise _RowProblem(
            "subject_kind", f"subject_kind must be person or entity, got {kind_raw!r}"
        )
    sid = values.get("subject_id", "").strip()
    if not sid:
        raise _RowProblem("subject_id", "subject_id is empty")
    category = values.get("category", "").strip()
    if not category:
        raise _RowProblem("category", "category is empty")
    out: dict[str, Any] = {"subject": {"kind": kind, "id": sid}, "category": category}
    for col, name in (
        ("occurred_at", "occurredAt"),
        ("effective_from", "effectiveFrom"),
        ("effective_until", "effectiveUntil"),
    ):
        v = values.get(col, "").strip()
        if v:
            out[name] = _timestamp(col, v)
    amount = values.get("amount", "").strip().replace(",", "")
    if amount:
        if not _INT.fullmatch(amount):
            raise _RowProblem(
                "amount", f"amount must be a non-negative whole number, got {amount!r}"
            )
        out["amount"] = int(amount)
    ev = values.get("evidence_sha256", "").strip()
    if ev:
        m = _HEX64.fullmatch(ev)
        if m is None:
            raise _RowProblem(
                "evidence_sha256", "evidence_sha256 must be 64 hex digits (a SHA-256 digest)"
            )
        out["evidenceHash"] = "0x" + m.group(1).lower()
    reason = values.get("reason", "")
    if reason.strip():
        if len(reason) > 4000:
            raise _RowProblem("reason", "reason is longer than 4000 characters")
        out["reason"] = reason.strip()
    grid = values.get("grid", "").strip()
    if grid:
        out["grid"] = grid.upper()
    return out


def parse_batch_csv(data: str | bytes) -> BatchParse:
    """Parse a batch CSV into per-row results. Pure: no I/O, no clock.

    The header must name only columns of :data:`CSV_COLUMNS` and include
    :data:`CSV_REQUIRED`; otherwise :class:`CsvError` says which names are wrong or missing.
    UTF-8 (with or without a BOM) or GB 18030 (what Chinese Excel saves) is accepted. Blank
    lines are skipped. A row with the wrong number of cells or a malformed cell gets an error
    naming its column; the other rows are unaffected.
    """
    if isinstance(data, bytes):
        if len(data) > MAX_CSV_BYTES:
            raise CsvError(f"the file is larger than {MAX_CSV_BYTES // 1000} kB")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = data.decode("gb18030")
            except UnicodeDecodeError:
                raise CsvError("the file is neither UTF-8 nor GB 18030 text") from None
    else:
        text = data.removeprefix("\ufeff")
        if len(text.encode()) > MAX_CSV_BYTES:
            raise CsvError(f"the file is larger than {MAX_CSV_BYTES // 1000} kB")
    if "\x00" in text:
        raise CsvError("the file is not a text CSV (it contains NUL bytes)")
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise CsvError(f"the file is not valid CSV: {exc}") from None
    numbered = [(i + 1, r) for i, r in enumerate(records)]
    numbered = [(n, r) for n, r in numbered if any(c.strip() for c in r)]
    if not numbered:
        raise CsvError("the file is empty; the first line must be the header")
    header_row, header = numbered[0][0], [c.strip().lower() for c in numbered[0][1]]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    missing = [c for c in CSV_REQUIRED if c not in header]
    dup = sorted({c for c in header if header.count(c) > 1})
    if unknown or missing or dup:
        parts = []
        if unknown:
            parts.append("unknown columns: " + ", ".join(repr(c) for c in unknown))
        if missing:
            parts.append("missing columns: " + ", ".join(missing))
        if dup:
            parts.append("repeated columns: " + ", ".join(dup))
        raise CsvError(
            f"bad CSV header (line {header_row}): {'; '.join(parts)}. "
            f"The header is: {','.join(CSV_COLUMNS)}"
        )
    data_rows = numbered[1:]
    if not data_rows:
        raise CsvError("the file has a header but no data rows")
    if len(data_rows) > MAX_BATCH:
        raise CsvError(f"at most {MAX_BATCH} rows per batch, the file has {len(data_rows)}")
    out = BatchParse(header=header)
    for n, cells in data_rows:
        if len(cells) != len(header):
            out.rows.append(
                RowResult(
                    n,
                    error=f"row has {len(cells)} cells, the header has {len(header)} "
                    "(quote a text containing commas)",
                )
            )
            continue
        try:
            out.rows.append(RowResult(n, fields=_row_fields(dict(zip(header, cells, strict=True)))))
        except _RowProblem as p:
            out.rows.append(RowResult(n, error=p.detail, column=p.column))
    return out


# ---- pages ----


def _rt(request: Request) -> Any:
    rt = getattr(request.app.state, "runtime", None)
    if rt is None or rt.credit is None or rt.engine is None:
        raise ServiceStarting("the service is starting")
    return rt


def _scope(rt: Any, address: str) -> list[Any]:
    """The catalog categories this agency may write, from the Roles contract."""
    ids = set(rt.roles.categories_of(address))
    return [c for c in rt.credit.catalog if c.id in ids]


def _grids(rt: Any) -> list[Any]:
    grids = getattr(rt.credit, "grids", None)
    return list(grids) if grids is not None else []


def _fmt_ms(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, CST).strftime("%Y-%m-%d %H:%M:%S")


def _fmt_s(s: int | None) -> str:
    if not s:
        return ""
    return datetime.fromtimestamp(int(s), CST).strftime("%Y-%m-%d")


def _stage(st: dict[str, Any]) -> str:
    """pending | submitted | onchain | indexed | rejected (what the agency needs to know)."""
    if st.get("status") == "rejected":
        return "rejected"
    if st.get("indexed"):
        return "indexed"
    if st.get("status") in ("onchain", "final"):
        return "onchain"
    return str(st.get("status") or "pending")


def _recent(rt: Any, address: str, limit: int = 25) -> list[dict[str, Any]]:
    """The agency's latest submissions with their status (outbox, then the index)."""
    t = outbox
    with rt.engine.connect() as conn:
        rows = (
            conn.execute(
                select(
                    t.c.id,
                    t.c.status,
                    t.c.accepted_at,
                    t.c.tx_hash,
                    t.c.block_number,
                    t.c.reject_reason,
                    t.c.payload,
                )
                .where(t.c.agency == address)
                .order_by(t.c.accepted_at.desc(), t.c.id)
                .limit(limit)
            )
            .mappings()
            .all()
        )
        ids = [r["id"] for r in rows]
        idx = {
            r[0]: r
            for r in conn.execute(
                select(
                    credit_records.c.id,
                    credit_records.c.block_number,
                    credit_records.c.tx_hash,
                    credit_records.c.seq,
                ).where(credit_records.c.id.in_(ids))
            ).all()
        }
    out = []
    cat = rt.credit.catalog
    for r in rows:
        try:
            rec = json.loads(r["payload"])["record"]
            category = cat.by_id(int(rec["category"]))
            kind = int(rec["kind"]) if str(rec["kind"]).isdigit() else rec["kind"]
        except (ValueError, KeyError, TypeError, ZhixinError):
            category, kind = None, None
        st: dict[str, Any] = {
            "id": r["id"],
            "status": r["status"],
            "indexed": r["id"] in idx,
            "block_number": r["block_number"],
            "tx_hash": r["tx_hash"],
            "reject_reason": r["reject_reason"],
        }
        if r["id"] in idx:
            _, st["block_number"], st["tx_hash"], st["seq"] = idx[r["id"]]
        st["stage"] = _stage(st)
        st["accepted_at"] = _fmt_ms(r["accepted_at"])
        st["category"] = category
        st["kind"] = kind
        out.append(st)
    return out


def _require_agency(session: Any) -> Any:
    return require_page_role(session, Role.AGENCY)


@router.get("/agency", response_class=HTMLResponse)
def console(request: Request, session: PageSessionDep) -> HTMLResponse:
    s = _require_agency(session)
    rt = _rt(request)
    return render(
        request,
        "agency/console.html",
        {
            "scope": _scope(rt, s.address),
            "recent": _recent(rt, s.address),
            "address": s.address,
        },
        session=s,
    )


@router.get("/agency/write", response_class=HTMLResponse)
def write(request: Request, session: PageSessionDep) -> HTMLResponse:
    s = _require_agency(session)
    rt = _rt(request)
    return render(
        request,
        "agency/write.html",
        {
            "scope": _scope(rt, s.address),
            "grids": _grids(rt),
            "address": s.address,
            "columns": CSV_COLUMNS,
            "required": CSV_REQUIRED,
            "max_rows": MAX_BATCH,
            "column_of_field": COLUMN_OF_FIELD,
        },
        session=s,
    )


@router.get("/agency/sample.csv")
def sample_csv() -> Response:
    """A sample batch: two good rows and one with a mistyped USCC check character."""
    return Response(
        SAMPLE_CSV.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="zhixin-batch-sample.csv"'},
    )


@router.post("/agency/batch/parse")
async def batch_parse(request: Request, session: PageSessionDep) -> JSONResponse:
    """CSV text (the request body) → per-row fields or errors, as JSON for the page JS."""
    try:
        _require_agency(session)
        body = await request.body()
        if not body.strip():
            raise CsvError("no CSV given: choose a file")
        return JSONResponse(parse_batch_csv(body).to_json())
    except ZhixinError as exc:
        return problem(exc.status, exc.code, "Batch refused", exc.detail)


_OBJECTION_STATUSES = ("filed", "disputed", "upheld", "rejected")


@router.get("/agency/objections", response_class=HTMLResponse)
def objections(request: Request, session: PageSessionDep) -> HTMLResponse:
    """The objections to this agency's records (what ``GET /v1/objections`` gives an agency),
    newest first; the actions sign in the browser (agency.js)."""
    from ..routes.objections import get_objections

    s = _require_agency(session)
    rt = _rt(request)
    status = request.query_params.get("status") or None
    if status is not None and status not in _OBJECTION_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(_OBJECTION_STATUSES)}")
    rows = get_objections(request).find(agency=s.address, status=status, limit=200)
    cat = rt.credit.catalog
    for r in rows:
        try:
            r["category_obj"] = cat.by_id(int(r["category"]))
        except ZhixinError:
            r["category_obj"] = None
        r["created_text"] = datetime.fromtimestamp(int(r["created_at"]), CST).strftime(
            "%Y-%m-%d %H:%M"
        )
    return render(
        request,
        "agency/objections.html",
        {
            "address": s.address,
            "objections": rows,
            "status": status or "",
            "statuses": _OBJECTION_STATUSES,
        },
        session=s,
    )


def _sectors(rt: Any) -> list[str]:
    rules = getattr(rt, "rules", None)
    if rules is None:
        raise ServiceStarting("the rules service is starting")
    return sorted({m.agency for m in rules.measures.measures})


@router.get("/agency/measures", response_class=HTMLResponse)
def measures(request: Request, session: PageSessionDep) -> HTMLResponse:
    s = _require_agency(session)
    rt = _rt(request)
    sectors = _sectors(rt)
    q = request.query_params
    kind = q.get("subject_kind", "entity")
    sid = (q.get("subject_id") or "").strip()
    sector = q.get("sector", "")
    ctx: dict[str, Any] = {
        "sectors": sectors,
        "kind": kind,
        "subject_id": sid,
        "sector": sector,
        "result": None,
    }
    status = 200
    if sid:
        try:
            if kind not in ("person", "entity"):
                raise InvalidInput("subject kind must be person or entity")
            if sector and sector not in sectors:
                raise InvalidInput(f"unknown sector {sector!r}; sectors: {', '.join(sectors)}")
            _k, pseud = rt.credit.subject_pseudonym(kind, sid)
            chosen = [sector] if sector else sectors
            merged: list[dict[str, Any]] = []
            info: dict[str, Any] = {}
            for sec in chosen:
                res = rt.rules.measures_for(bytes(pseud), sec)
                merged.extend(res["measures"])
                info = res
            for meas in merged:
                for b in meas["because"]:
                    b["until_text"] = _fmt_s(b.get("publicity_until"))
            ctx["result"] = {
                "subject": info.get("subject"),
                "as_of": info.get("as_of"),
                "rule_set": info.get("rule_set"),
                "measures": merged,
                "as_of_text": _fmt_s(info.get("as_of")),
            }
        except ZhixinError as exc:
            if exc.status >= 500:
                raise
            status = exc.status
            ctx["error"] = exc.detail
    return render(request, "agency/measures.html", ctx, session=s, status=status)


i18n.register(
    {
        "agency.title": ("部门工作台", "Agency console"),
        "agency.nav.overview": ("概览", "Overview"),
        "agency.nav.write": ("写入记录", "Write records"),
        "agency.nav.objections": ("异议处理", "Objections"),
        "agency.nav.measures": ("联合奖惩措施", "Measures to apply"),
        "agency.address": ("本部门链上地址", "This agency's chain address"),
        "agency.scope.title": ("可写入的信用类别", "Categories in this agency's scope"),
        "agency.scope.caption": (
            "链上 Roles 合约授予本部门的类别",
            "Categories the Roles contract grants this agency",
        ),
        "agency.scope.none": (
            "本部门尚未被授予任何类别，无法写入记录。",
            "This agency has no category in scope and cannot write records.",
        ),
        "agency.code": ("代码", "Code"),
        "agency.name": ("名称", "Name"),
        "agency.polarity": ("性质", "Polarity"),
        "agency.polarity.good": ("守信", "good"),
        "agency.polarity.bad": ("失信", "bad"),
        "agency.kinds": ("适用主体", "Subjects"),
        "agency.unit": ("金额单位", "Amount unit"),
        "agency.kind.person": ("自然人", "person"),
        "agency.kind.entity": ("法人和非法人组织", "legal entity"),
        "agency.kind.record.2": ("更正", "amendment"),
        "agency.kind.record.3": ("撤回", "withdrawal"),
        "agency.kind.record.4": ("异议", "objection"),
        "agency.kind.record.5": ("异议成立", "objection upheld"),
        "agency.kind.record.6": ("信用修复", "repair"),
        "agency.kind.record.7": ("异议不成立", "objection rejected"),
        "agency.recent.title": ("最近提交", "Recent submissions"),
        "agency.recent.caption": (
            "本部门最近提交的记录：待上链 → 已上链（区块、交易）→ 已索引；页面自动刷新状态",
            "This agency's latest submissions: pending → on chain (block, tx) → indexed;"
            " the status refreshes by itself",
        ),
        "agency.recent.none": ("暂无提交。", "No submissions yet."),
        "agency.recent.accepted": ("提交时间", "Accepted at"),
        "agency.record": ("记录编号", "Record id"),
        "agency.stage": ("状态", "Status"),
        "agency.block": ("区块", "Block"),
        "agency.tx": ("交易", "Transaction"),
        "agency.stage.pending": ("待上链", "pending"),
        "agency.stage.submitted": ("已发送", "submitted"),
        "agency.stage.onchain": ("已上链", "on chain"),
        "agency.stage.indexed": ("已索引", "indexed"),
        "agency.stage.rejected": ("被拒绝", "rejected"),
        "agency.write.title": ("写入一条信用记录", "Write one credit record"),
        "agency.write.help": (
            "填写记录，浏览器计算证据文件的 SHA-256 并向服务请求待签名数据，再用您的密钥文件在本机"
            "签名后提交。",
            "Fill in the record; the browser computes the evidence file's SHA-256, asks the"
            " service for the data to sign, signs it here with your keystore and submits it.",
        ),
        "agency.subject_kind": ("主体类型", "Subject kind"),
        "agency.subject_id": (
            "身份证号码 / 统一社会信用代码",
            "Resident identity number / unified social credit code",
        ),
        "agency.category": ("类别", "Category"),
        "agency.occurred_at": ("发生日期", "Occurred on"),
        "agency.effective_from": ("生效日期", "Effective from"),
        "agency.effective_until": ("失效日期（可空）", "Effective until (optional)"),
        "agency.amount": ("金额（整数，可空）", "Amount (whole number, optional)"),
        "agency.evidence": (
            "证据文件（只计算 SHA-256，不上传）",
            "Evidence file (hashed only, not uploaded)",
        ),
        "agency.reason": ("原因说明", "Reason"),
        "agency.grid": (
            "社区网格（可空，仅用于统计）",
            "Community grid (optional, statistics only)",
        ),
        "agency.grid.none": ("不指定", "none"),
        "agency.sign_submit": ("签名并提交", "Sign and submit"),
        "agency.result": ("结果", "Result"),
        "agency.status_link": ("状态", "Status"),
        "agency.unlock.title": ("签名密钥", "Signing key"),
        "agency.unlock.help": (
            "选择本部门的加密密钥文件并输入密码。密钥只在本页内存中解锁，离开或刷新页面即清除；"
            "不会发送到服务器。",
            "Choose this agency's encrypted keystore file and enter its password. The key is"
            " unlocked only in this page's memory, cleared when you leave or reload; it is never"
            " sent to the server.",
        ),
        "agency.unlock.keystore": ("密钥文件 (keystore JSON)", "Keystore file (JSON)"),
        "agency.unlock.password": ("密码", "Password"),
        "agency.unlock.submit": ("解锁", "Unlock"),
        "agency.unlock.needed": (
            "请先解锁签名密钥（下方），然后继续。",
            "Unlock the signing key (below) to continue.",
        ),
        "agency.unlock.locked": ("未解锁", "locked"),
        "agency.unlock.forget": ("清除密钥", "Forget key"),
        "agency.batch.title": ("批量上传 (CSV)", "Batch upload (CSV)"),
        "agency.batch.help": (
            "每行一条记录，第一行为表头。服务器解析 CSV，再由 prepare-batch 接口逐行校验；"
            "只有校验通过的行会在浏览器中签名并一次提交，出错的行不会提交。",
            "One record per line, the first line is the header. The server parses the CSV and"
            " the prepare-batch API checks each row; only rows that pass are signed in the"
            " browser and submitted together; a bad row is never submitted.",
        ),
        "agency.batch.columns": ("列", "Columns"),
        "agency.batch.required": ("必填", "required"),
        "agency.batch.dates": (
            "日期写作 YYYY-MM-DD（北京时间零点）、ISO 8601 时间或 Unix 秒；"
            "金额为整数；evidence_sha256 为 64 位十六进制；grid 为网格代码；"
            "含逗号的文本请加英文双引号。文件为 UTF-8 或 GB 18030。",
            "Dates as YYYY-MM-DD (midnight China time), ISO 8601 times or unix seconds; amount"
            " a whole number; evidence_sha256 64 hex digits; grid a grid code; quote a text"
            " containing commas. The file is UTF-8 or GB 18030.",
        ),
        "agency.batch.sample": (
            "下载示例 CSV（含一行故意写错校验位的记录）",
            "Download a sample CSV (with one row whose check character is deliberately wrong)",
        ),
        "agency.batch.file": ("CSV 文件", "CSV file"),
        "agency.batch.check": ("校验", "Check rows"),
        "agency.batch.submit": ("签名并提交校验通过的行", "Sign and submit the rows that passed"),
        "agency.batch.row": ("行号", "Row"),
        "agency.batch.check_result": ("校验", "Check"),
        "agency.batch.outcome": ("提交结果", "Outcome"),
        "agency.batch.caption": (
            "逐行校验结果（行号为电子表格中的行号，表头为第 1 行）",
            "Per-row results (spreadsheet row numbers; the header is row 1)",
        ),
        "agency.batch.summary": ("校验通过 / 出错", "rows passed / failed"),
        "agency.batch.not_submitted": ("未提交", "not submitted"),
        "agency.objections.title": ("对本部门记录的异议", "Objections to this agency's records"),
        "agency.objections.help": (
            "受理异议：签署 OBJECTION 记录，记录进入争议状态；处理：签署 RESOLUTION 记录（异议成立"
            "或不成立）。签名在浏览器中完成。",
            "Accept an objection: sign an OBJECTION record (the record becomes disputed)."
            " Resolve it: sign a RESOLUTION record (upheld or rejected). Signing happens in this"
            " browser.",
        ),
        "agency.objections.filter": ("状态筛选", "Filter by status"),
        "agency.objections.all": ("全部", "all"),
        "agency.objections.none": ("暂无异议。", "No objections."),
        "agency.objections.caption": ("异议列表", "Objections"),
        "agency.objections.filed": ("提出时间", "Filed"),
        "agency.objections.actions": ("操作", "Actions"),
        "agency.objections.accept": ("受理（签署 OBJECTION）", "Accept (sign OBJECTION)"),
        "agency.objections.uphold": ("异议成立", "Uphold"),
        "agency.objections.reject": ("异议不成立", "Reject"),
        "agency.objections.note": ("处理说明", "Resolution note"),
        "agency.objections.status.filed": ("已提出", "filed"),
        "agency.objections.status.disputed": ("争议中", "disputed"),
        "agency.objections.status.upheld": ("异议成立", "upheld"),
        "agency.objections.status.rejected": ("异议不成立", "rejected"),
        "agency.objections.unavailable": (
            "异议接口暂不可用。",
            "The objections API is not available.",
        ),
        "agency.measures.title": ("对主体应实施的联合奖惩措施", "Measures to apply to a subject"),
        "agency.measures.help": (
            "输入主体标识，查询当前规则下本部门（所选领域）应实施的措施、法律依据和触发的名单。",
            "Enter a subject's identifier to see the measures your sector applies under the"
            " current rules, their legal basis and the lists that trigger them.",
        ),
        "agency.measures.sector": ("措施领域", "Sector"),
        "agency.measures.all": ("全部领域", "all sectors"),
        "agency.measures.query": ("查询", "Look up"),
        "agency.measures.none": (
            "该主体当前没有本领域应实施的措施。",
            "No measure of this sector applies to the subject now.",
        ),
        "agency.measures.caption": ("应实施的措施", "Measures to apply"),
        "agency.measures.measure": ("措施", "Measure"),
        "agency.measures.kind": ("类型", "Kind"),
        "agency.measures.kind.reward": ("激励", "reward"),
        "agency.measures.kind.punishment": ("惩戒", "punishment"),
        "agency.measures.because": ("触发名单", "Triggered by list"),
        "agency.measures.until": ("公示至", "public until"),
        "agency.measures.as_of": ("计算时间", "As of"),
        "agency.measures.rule_set": ("规则集", "Rule set"),
        "agency.measures.pseudonym": ("主体假名", "Subject pseudonym"),
        "agency.js.unlocked": ("已解锁：{address}", "Unlocked: {address}"),
        "agency.js.wrong_key": (
            "该密钥文件属于 {key}，而您以 {me} 登录；请选择本部门的密钥文件。",
            "This keystore is {key}, but you are signed in as {me}; choose this agency's keystore.",
        ),
        "agency.js.wrong_password": ("密钥文件密码错误", "wrong keystore password"),
        "agency.js.signing": ("正在签名…", "Signing…"),
        "agency.js.submitted": (
            "已提交：接受 {accepted} 条，拒绝 {rejected} 条。",
            "Submitted: {accepted} accepted, {rejected} rejected.",
        ),
        "agency.js.id_mismatch": (
            "待签名数据的摘要 {digest} 与服务给出的记录编号 {id} 不一致，已停止签名。",
            "The typed data hashes to {digest}, not the record id {id} the service gave;"
            " nothing was signed.",
        ),
        "agency.js.ok": ("通过", "ok"),
        "agency.js.error": ("错误", "error"),
        "agency.js.accepted": ("已接受", "accepted"),
        "agency.js.duplicate": ("重复（此前已接受）", "duplicate (accepted before)"),
        "agency.js.rejected": ("被拒绝", "rejected"),
        "agency.js.checking": ("正在校验…", "Checking…"),
        "agency.js.nothing_to_submit": ("没有可提交的行。", "No row to submit."),
        "agency.js.passed": ("{ok} 行通过，{bad} 行出错。", "{ok} rows passed, {bad} failed."),
        "agency.js.failed": ("出错", "failed"),
        "agency.js.column": ("列 {column}", "column {column}"),
        "agency.js.hashing": ("正在计算 SHA-256…", "Computing SHA-256…"),
        "agency.js.done": ("完成。", "Done."),
        "agency.js.ask_note": ("请填写处理说明。", "Write the resolution note first."),
        "agency.js.bad_amount": (
            "金额须为不大于 2^53 的非负整数",
            "The amount must be a non-negative whole number below 2^53",
        ),
    }
)
