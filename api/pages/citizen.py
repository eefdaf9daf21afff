"""Citizen pages (DID sign-in): my credit, objections, credit repair; presenting my identity
credential to a verifier (``/verify`` on the verifier's screen, ``/present`` on the citizen's).

Invariants:

* ``/me`` and everything under it need a DID session that carries a subject pseudonym (it was
  signed in with a valid identity credential); the pseudonym comes from the session only, never
  from the request, and every read passes the same :class:`api.deps.Reader` gate as the JSON
  API, so one citizen never sees another's records, objections or repair applications.
* Filing an objection and applying for repair call the services behind ``POST /v1/objections``
  and ``POST /v1/repairs`` with the API's authorization (a person acts on their own records).
* The citizen's key stays in the browser: ``/present`` loads the wallet file in the page and
  signs the presentation with WebCrypto (``static/did.js``). The hand-off
  (``POST /verify/{challenge}/presentation``) verifies it at once as ``/presentations/verify``
  does (the challenge is consumed there: single use), keeps only the per-check result, in
  memory, for the challenge's lifetime, and drops the presentation. No personal data is
  logged or written to the database; the result kept holds the holder DID and the checks.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

import segno
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy import select

from identity.presentations import CHECKS, check_domain
from ledger.credit_service import RecordQuery
from ledger.errors import Forbidden, InvalidInput, NotFound, ZhixinError
from ledger.rules_db import repair_applications

from ..auth import Unauthenticated
from ..deps import PERSON, Reader, Session
from ..identity_services import IdentityServices, get_identity
from . import i18n
from .core import PageRoute, PageSessionDep, lang_of, page_reader, render
from .home import _demo_index
from .public import (
    MAX_RECORDS,
    fmt_date,
    history_views,
    list_status,
    page_credit,
    page_rules,
    record_views,
    short,
)

__all__ = ["Handoff", "router"]

log = logging.getLogger("zhixin.pages.citizen")

router = APIRouter(route_class=PageRoute, include_in_schema=False)
IdentityDep = Annotated[IdentityServices, Depends(get_identity)]

MAX_PRESENTATION: Final = 64 * 1024  # bytes of a posted presentation (an identity VC is ~3 KB)
MAX_PENDING: Final = 10_000  # verifier challenges waiting for a hand-off, per process
_OID = re.compile(r"0x[0-9a-f]{32}")
_RID = re.compile(r"0x[0-9a-fA-F]{64}")
_CHALLENGE = re.compile(r"[A-Za-z0-9_\-]{8,64}")
OBJECTION_STATES: Final = ("filed", "disputed", "upheld", "rejected")

i18n.register(
    {
        "me.title": ("我的信用", "My credit"),
        "me.intro": (
            "这里是以数字身份登录后本人可见的信用信息。自然人的记录不公开：只有您本人、作出记录的"
            "部门和审计人员可以查看。",
            "Your credit information, visible to you after signing in with your digital"
            " identity. A person's records are not public: only you, the agencies that wrote"
            " them and auditors see them.",
        ),
        "me.no_subject": (
            "此页面需要以包含身份凭证的数字身份钱包登录 (市民登录)。当前会话没有关联的信用主体。",
            "This page needs a citizen sign-in with an identity wallet that holds your identity"
            " credential; this session has no credit subject.",
        ),
        "me.signin": (
            "请先以数字身份钱包登录 (市民登录)，才能查看本人的信用信息。",
            "Sign in with your identity wallet (citizen sign-in) to see your own credit"
            " information.",
        ),
        "me.refused": ("未能提交", "Not accepted"),
        "me.objection.unknown": ("没有这个异议申请。", "No such objection."),
        "me.repair.unknown": ("没有这个修复申请。", "No such repair application."),
        "me.repair.choose": ("请选择您的一条记录。", "Choose one of your records."),
        "me.repair.statement_needed": (
            "请说明失信行为是如何纠正的 (1 至 4000 字)。",
            "Describe how the conduct was corrected (1 to 4000 characters).",
        ),
        "me.identity": ("我的数字身份", "My digital identity"),
        "me.did": ("DID", "DID"),
        "me.methods": ("验证方法", "Verification methods"),
        "me.auth": ("可用于登录与出示", "used to sign in and present"),
        "me.choose": ("— 请选择 —", "— choose —"),
        "me.credentials": ("我的凭证", "My credentials"),
        "me.credentials.wallet": (
            "本服务不保存您的钱包，也不按 DID 保存签发给您的凭证 (只在链上锚定其哈希和状态)。"
            "您的身份凭证保存在您的钱包文件中；出示凭证时在浏览器中载入钱包即可。",
            "The service keeps neither your wallet nor a per-DID copy of the credentials issued"
            " to you (only their hashes and status are anchored on chain). Your identity"
            " credential lives in your wallet file; load it in the browser to present it.",
        ),
        "me.records": ("我的信用记录", "My credit records"),
        "me.view.current": ("当前视图", "Current view"),
        "me.view.history": ("全部历史", "Full history"),
        "me.history.caption": (
            "账本上与您有关的全部条目 (含变更、撤回、异议、处理结果与修复)，按记账顺序",
            "Every ledger entry about you (amendments, withdrawals, objections, resolutions and"
            " repairs included), in ledger order",
        ),
        "me.records.caption": ("我的当前信用记录", "My current credit records"),
        "me.no_records": ("账本上没有与您有关的信用记录。", "No credit records about you."),
        "me.ref": ("关联记录", "Refers to"),
        "me.recorded": ("记账日期", "Recorded"),
        "me.objections": ("异议申请", "Objections"),
        "me.objections.help": (
            "如您认为某条记录有误，可提出异议。作出记录的部门受理后，记录在处理期间不计入名单"
            "认定；部门作出处理决定 (异议成立或驳回) 后，状态会在这里显示。",
            "If you think a record is wrong, file an objection. Once the agency that wrote it"
            " accepts the objection, the record stops counting for the lists while it is"
            " handled; the agency's decision (upheld or rejected) shows here.",
        ),
        "me.objections.none": ("您还没有提出异议。", "You have filed no objection."),
        "me.objection.file": ("提出异议", "File an objection"),
        "me.objection.record": ("异议的记录", "Record"),
        "me.objection.reason": ("异议理由", "Reason"),
        "me.objection.reason.help": ("最多 4000 字。", "At most 4000 characters."),
        "me.objection.submit": ("提交异议", "File objection"),
        "me.objection.no_targets": (
            "没有可以提出异议的记录。",
            "No record can be objected to now.",
        ),
        "me.objection.title": ("异议申请", "Objection"),
        "me.objection.filed_ok": (
            "异议已提交，等待作出记录的部门受理。",
            "Objection filed; waiting for the agency that wrote the record to accept it.",
        ),
        "me.objection.note": ("处理说明", "Decision note"),
        "me.objection.created": ("提交日期", "Filed on"),
        "me.objection.updated": ("更新日期", "Updated"),
        "me.objection.error": ("最近一次处理失败", "Last processing error"),
        "objection.status.filed": ("已提交", "Filed"),
        "objection.status.disputed": ("已受理 (异议处理中)", "Accepted (disputed)"),
        "objection.status.upheld": ("异议成立", "Upheld"),
        "objection.status.rejected": ("异议驳回", "Rejected"),
        "objection.steps": ("处理进度", "Progress"),
        "me.repairs": ("信用修复", "Credit repair"),
        "me.repairs.help": (
            "失信行为纠正后，可对可修复类别的记录申请信用修复。是否符合条件由规则中的移出条件和"
            "类别的修复起始期决定；作出记录的部门审核后签署修复记录。",
            "Once the conduct is corrected you may apply for repair of a record of a repairable"
            " category. Eligibility follows the rules' exit conditions and the category's"
            " waiting period; the agency that wrote the record reviews it and signs the repair.",
        ),
        "me.repairs.none": ("您还没有申请信用修复。", "You have applied for no repair."),
        "me.repair.apply": ("申请信用修复", "Apply for credit repair"),
        "me.repair.record": ("修复的记录", "Record"),
        "me.repair.statement": ("纠正情况说明", "How it was corrected"),
        "me.repair.submit": ("提交申请", "Apply"),
        "me.repair.from": ("可申请修复日期", "Repair possible from"),
        "me.repair.not_repairable": ("不可修复", "not repairable"),
        "me.repair.no_targets": (
            "没有可修复类别的记录。",
            "No record of a repairable category.",
        ),
        "me.repair.title": ("信用修复申请", "Credit repair application"),
        "me.repair.eligibility": ("修复条件", "Eligibility"),
        "me.repair.eligible": ("符合修复条件", "Eligible for repair"),
        "me.repair.not_eligible": ("暂不符合修复条件", "Not eligible yet"),
        "me.repair.reasons": ("原因", "Reasons"),
        "me.repair.applied_ok": (
            "申请已提交，等待作出记录的部门审核。",
            "Application filed; waiting for the agency that wrote the record to review it.",
        ),
        "repair.status.pending": ("审核中", "Pending"),
        "repair.status.approved": ("已批准", "Approved"),
        "me.present": ("向核验方出示身份凭证", "Present my identity credential to a verifier"),
        "me.present.help": (
            "扫描核验方页面上的二维码，或在此粘贴核验方给出的链接。",
            "Scan the QR code on the verifier's page, or paste the link the verifier gave you.",
        ),
        "me.back": ("返回我的信用", "Back to my credit"),
        "verify.title": ("核验身份凭证", "Verify an identity credential"),
        "verify.help": (
            "请市民用手机扫描二维码 (或打开下面的链接)，在浏览器中载入钱包并签名出示。本页会自动"
            "显示核验结果。质询只能使用一次。",
            "Ask the citizen to scan the QR code (or open the link below), load their wallet in"
            " the browser and sign. The result appears here by itself. The challenge works"
            " once.",
        ),
        "verify.domain": ("核验方域名", "Verifier domain"),
        "verify.challenge": ("质询", "Challenge"),
        "verify.expires": ("有效期至", "Valid until"),
        "verify.link": ("出示链接", "Presentation link"),
        "verify.qr": ("出示链接的二维码", "QR code of the presentation link"),
        "verify.waiting": ("等待出示…", "Waiting for the presentation…"),
        "verify.result": ("核验结果", "Result"),
        "verify.verified": ("核验通过", "Verified"),
        "verify.failed": ("核验未通过", "Not verified"),
        "verify.expired": (
            "质询已过期，请刷新页面获取新的质询。",
            "The challenge expired: reload the page for a new one.",
        ),
        "verify.holder": ("持有人", "Holder"),
        "verify.checks": ("逐项检查", "Checks"),
        "verify.check": ("检查", "Check"),
        "verify.outcome": ("结果", "Outcome"),
        "verify.message": ("说明", "Message"),
        "verify.again": ("新的核验", "New verification"),
        "present.title": ("出示身份凭证", "Present my identity credential"),
        "present.to": ("出示给", "Presenting to"),
        "present.help": (
            "选择您的钱包文件。浏览器用您的密钥对核验方的质询签名，密钥不会离开本机；只发送签名"
            "后的可验证表述。",
            "Choose your wallet file. The browser signs the verifier's challenge with your key,"
            " which never leaves this device; only the signed presentation is sent.",
        ),
        "present.wallet": ("钱包文件", "Wallet file"),
        "present.submit": ("签名并出示", "Sign and present"),
        "present.done": (
            "已出示，核验方页面会显示结果。",
            "Presented: the verifier's page shows the result.",
        ),
        "present.code": ("核验方链接或质询", "Verifier link or challenge"),
        "present.go": ("继续", "Continue"),
        "present.unknown": (
            "未知或已过期的质询：请让核验方刷新页面并重新扫描。",
            "Unknown or expired challenge: ask the verifier to reload the page and scan again.",
        ),
        "present.used": (
            "此质询已经使用过。请让核验方刷新页面获取新的质询。",
            "This challenge was already used. Ask the verifier to reload for a new one.",
        ),
        "present.demo": ("演示钱包 (仅限演示)", "Demo wallets (demo only)"),
    }
)


# ---- the verifier hand-off (in memory, per process) ----


@dataclass
class _Pending:
    domain: str
    expires: float  # unix seconds
    result: dict[str, Any] | None = None


@dataclass
class Handoff:
    """Challenges issued by ``/verify`` → the verification result once presented.

    Bounded (:data:`MAX_PENDING` entries), purged as challenges expire; a result is kept until
    its challenge would have expired, then dropped. Holds no presentation."""

    max_pending: int = MAX_PENDING
    _items: dict[str, _Pending] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _purge(self, now: float) -> None:
        for k in [k for k, v in self._items.items() if v.expires <= now]:
            del self._items[k]

    def add(self, challenge: str, domain: str, expires: float) -> None:
        now = time.time()
        with self._lock:
            self._purge(now)
            if len(self._items) >= self.max_pending:
                raise _Busy("too many verifications are waiting; try again in a few minutes")
            self._items[challenge] = _Pending(domain, expires)

    def get(self, challenge: str) -> _Pending | None:
        with self._lock:
            self._purge(time.time())
            return self._items.get(challenge)

    def claim(self, challenge: str) -> _Pending:
        """The pending entry, marked as being verified (a second hand-off gets 409)."""
        with self._lock:
            self._purge(time.time())
            p = self._items.get(challenge)
            if p is None:
                raise NotFound("unknown or expired challenge: ask the verifier for a new one")
            if p.result is not None:
                raise _Used("this challenge was already presented to (single use)")
            p.result = {"status": "verifying"}
            return p

    def finish(self, challenge: str, result: dict[str, Any] | None) -> None:
        with self._lock:
            p = self._items.get(challenge)
            if p is not None:
                p.result = result


class _Busy(ZhixinError):
    code = "busy"
    status = 503


class _Used(InvalidInput):
    code = "challenge-used"
    status = 409


class _TooLarge(InvalidInput):
    code = "too-large"
    status = 413


_HANDOFF_LOCK = threading.Lock()


def _handoff(request: Request) -> Handoff:
    """The app's hand-off store (one per app and process: a verifier polls the worker that
    served its page only when the service runs one worker, as ``zhixin serve`` does)."""
    h = getattr(request.app.state, "verify_handoff", None)
    if h is None:
        with _HANDOFF_LOCK:
            h = getattr(request.app.state, "verify_handoff", None)
            if h is None:
                h = request.app.state.verify_handoff = Handoff()
    return h  # type: ignore[no-any-return]


# ---- helpers ----


def _t(request: Request, key: str) -> str:
    return i18n.translate(key, lang_of(request))


def _signed_in(request: Request, session: Session | None) -> Session:
    if session is None:
        raise Unauthenticated(_t(request, "me.signin"))
    return session


def _citizen(request: Request, session: Session | None) -> tuple[Session, str]:
    """The session and its subject pseudonym; 401 signed out, 403 without a credit subject."""
    s = _signed_in(request, session)
    if s.pseudonym is None:
        raise Forbidden(_t(request, "me.no_subject"))
    return s, s.pseudonym


def _objections(request: Request) -> Any:
    from ..routes.objections import get_objections

    return get_objections(request)


def _my_repairs(request: Request, pseud: str) -> list[dict[str, Any]]:
    """The subject's repair applications (newest first), straight from the service's table."""
    credit = page_credit(request)
    t = repair_applications
    with credit.engine.connect() as conn:
        rows = conn.execute(
            select(t).where(t.c.subject == pseud.lower()).order_by(t.c.created_at.desc())
        ).all()
    return [dict(r._mapping) for r in rows]


def _category_name(request: Request, cid: int, lang: str) -> str:
    try:
        c = page_credit(request).catalog.by_id(int(cid))
    except Exception:  # a name is decoration; the code is shown anyway
        return str(cid)
    return c.name_en if lang == "en" else c.name_zh


def _me_context(
    request: Request, session: Session, pseud: str, ids: IdentityServices, view: str
) -> dict[str, Any]:
    lang = lang_of(request)
    credit = page_credit(request)
    reader = page_reader(request, session)
    scope = reader.record_scope(PERSON, pseud)  # None: the subject sees all of their records
    q = RecordQuery(subject=pseud, agency=scope, limit=MAX_RECORDS)
    current_rows = reader.filter(credit.current(q))
    records = record_views(credit, current_rows, lang)
    history = (
        history_views(credit, reader.filter(credit.history(q)), lang) if view == "history" else []
    )
    status = list_status(request, bytes.fromhex(pseud[2:]), records)

    objections = []
    for o in _objections(request).find(subject=pseud, limit=200):
        objections.append(
            {
                **o,
                "category_name": _category_name(request, o["category"], lang),
                "created": fmt_date(o["created_at"]),
                "updated": fmt_date(o["updated_at"]),
                "short_record": short(o["record_id"]),
            }
        )
    open_roots = {o["root_id"] for o in objections if o["open"]}
    targets = [
        r
        for r in records
        if not (r["withdrawn"] or r["upheld"] or r["disputed"])
        and r["versions"][0] not in open_roots
    ]
    now = int(credit.clock())
    repairable = []
    for r in records:
        if not r["repairable"] or r["repaired"] or r["withdrawn"]:
            continue
        since = r["effective_from_ts"] + int(r["repair_after_days"] or 0) * 86400
        repairable.append({**r, "repair_from": fmt_date(since), "repair_ready": since <= now})
    repairs = []
    by_id = {v: r for r in records for v in r["versions"]}
    for a in _my_repairs(request, pseud):
        rec = by_id.get(a["record_id"])
        repairs.append(
            {
                "id": a["id"],
                "status": a["status"],
                "record_id": a["record_id"],
                "short_record": short(a["record_id"]),
                "category_name": rec["category_name"] if rec else "",
                "created": fmt_date(a["created_at"]),
            }
        )
    return {
        "view": view,
        "did": session.did,
        "identity": _identity(ids, session.did),
        "records": records,
        "history": history,
        "status": status,
        "objections": objections,
        "targets": targets,
        "repairable": repairable,
        "repairs": repairs,
    }


def _identity(ids: IdentityServices, did: str | None) -> dict[str, Any]:
    """What the session's DID resolves to (its verification methods), or the error text."""
    if did is None:
        return {"methods": [], "error": None}
    try:
        doc = ids.resolve(did, datetime.now(UTC)).did_document
    except ZhixinError as exc:
        return {"methods": [], "error": exc.detail}
    auth = set(doc.get("authentication", []) if isinstance(doc, Mapping) else [])
    methods = [
        {"id": m.get("id", ""), "type": m.get("type", ""), "auth": m.get("id") in auth}
        for m in (doc.get("verificationMethod", []) if isinstance(doc, Mapping) else [])
    ]
    return {"methods": methods, "error": None}


def _render_me(
    request: Request,
    session: Session,
    pseud: str,
    ids: IdentityServices,
    *,
    view: str = "current",
    error: str | None = None,
    status: int = 200,
    form: Mapping[str, str] | None = None,
) -> HTMLResponse:
    ctx = _me_context(request, session, pseud, ids, view)
    ctx["form"] = dict(form or {})
    if error:
        ctx["error"] = error
    return render(request, "citizen/me.html", ctx, session=session, status=status)


# ---- /me ----


@router.get("/me", response_class=HTMLResponse)
def me(
    request: Request,
    session: PageSessionDep,
    ids: IdentityDep,
    view: Literal["current", "history"] = "current",
) -> HTMLResponse:
    s, pseud = _citizen(request, session)
    return _render_me(request, s, pseud, ids, view=view)


@router.post("/me/objections", response_model=None)
def file_objection(
    request: Request,
    session: PageSessionDep,
    ids: IdentityDep,
    record_id: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    s, pseud = _citizen(request, session)

    def authorize(kind: int, subject: str) -> None:  # as POST /v1/objections for a person
        if Reader(s).is_subject(subject):
            return
        if kind == PERSON:
            raise Forbidden("a person files objections to their own records only")
        raise Forbidden("the record does not concern you")

    try:
        app = _objections(request).file(record_id.strip(), reason, authorize)
    except ZhixinError as exc:
        if not 400 <= exc.status < 500 or isinstance(exc, Unauthenticated):
            raise
        form = {"record_id": record_id, "reason": reason[:4000], "which": "objection"}
        msg = f"{_t(request, 'me.refused')}: {exc.detail}"
        return _render_me(request, s, pseud, ids, error=msg, status=exc.status, form=form)
    return RedirectResponse(f"/me/objections/{app['id']}?filed=1", status_code=303)


@router.get("/me/objections/{oid}", response_class=HTMLResponse)
def objection_page(request: Request, session: PageSessionDep, oid: str) -> HTMLResponse:
    s = _signed_in(request, session)
    if not _OID.fullmatch(oid):
        raise NotFound(_t(request, "me.objection.unknown"))
    app = _objections(request).detail(oid)
    page_reader(request, s).require_subject(app["subject_kind"], app["subject"], app["agency"])
    lang = lang_of(request)
    steps = []
    reached = {
        "filed": 1,
        "disputed": 2,
        "upheld": 3,
        "rejected": 3,
    }[app["status"]]
    for i, st in enumerate(("filed", "disputed", app["status"] if reached == 3 else "upheld")):
        steps.append({"status": st, "done": i < reached, "current": i == reached - 1})
    ctx = {
        "o": {
            **app,
            "category_name": _category_name(request, app["category"], lang),
            "created": fmt_date(app["created_at"]),
            "updated": fmt_date(app["updated_at"]),
        },
        "steps": steps,
        "states": OBJECTION_STATES,
    }
    if request.query_params.get("filed"):
        ctx["notice"] = i18n.translate("me.objection.filed_ok", lang)
    return render(request, "citizen/objection.html", ctx, session=s)


@router.post("/me/repairs", response_model=None)
def apply_repair(
    request: Request,
    session: PageSessionDep,
    ids: IdentityDep,
    record: Annotated[str, Form()] = "",
    statement: Annotated[str, Form()] = "",
) -> Response:
    s, pseud = _citizen(request, session)
    try:
        if not _RID.fullmatch(record.strip()):
            raise InvalidInput(_t(request, "me.repair.choose"))
        if not statement.strip():
            raise InvalidInput(_t(request, "me.repair.statement_needed"))
        app = page_rules(request).apply_repair(bytes.fromhex(pseud[2:]), record.strip(), statement)
    except ZhixinError as exc:
        if not 400 <= exc.status < 500:
            raise
        form = {"record": record, "statement": statement[:4000], "which": "repair"}
        msg = f"{_t(request, 'me.refused')}: {exc.detail}"
        return _render_me(request, s, pseud, ids, error=msg, status=exc.status, form=form)
    return RedirectResponse(f"/me/repairs/{app['id']}?applied=1", status_code=303)


@router.get("/me/repairs/{app_id}", response_class=HTMLResponse)
def repair_page(request: Request, session: PageSessionDep, app_id: str) -> HTMLResponse:
    s = _signed_in(request, session)
    if not _OID.fullmatch(app_id):
        raise NotFound(_t(request, "me.repair.unknown"))
    rules = page_rules(request)
    app = rules.repair(app_id)
    page_reader(request, s).require_subject(int(app["subject_kind"]), app["subject"], app["agency"])
    lang = lang_of(request)
    elig = rules.repair_eligibility(app_id) if app["status"] == "pending" else None
    ctx: dict[str, Any] = {
        "a": {
            **app,
            "created": fmt_date(app["created_at"]),
            "effective": fmt_date(app.get("effective_from")),
        },
        "elig": elig,
        "category_name": elig
        and elig.get("category")
        and _category_code_name(request, elig["category"], lang),
    }
    if request.query_params.get("applied"):
        ctx["notice"] = i18n.translate("me.repair.applied_ok", lang)
    return render(request, "citizen/repair.html", ctx, session=s)


def _category_code_name(request: Request, code: str, lang: str) -> str:
    try:
        c = page_credit(request).catalog.by_code(code)
    except Exception:  # unknown code: shown as is
        return code
    return c.name_en if lang == "en" else c.name_zh


# ---- presenting to a verifier ----


@router.get("/me/present", response_model=None)
def me_present(request: Request) -> Response:
    q = urlencode({k: v for k, v in request.query_params.items() if k in ("challenge", "domain")})
    return RedirectResponse("/present" + (f"?{q}" if q else ""), status_code=303)


def _present_url(request: Request, challenge: str, domain: str) -> str:
    base = str(request.base_url).rstrip("/")
    return f"{base}/present?{urlencode({'challenge': challenge, 'domain': domain})}"


@router.get("/verify", response_class=HTMLResponse)
def verify_page(
    request: Request,
    session: PageSessionDep,
    ids: IdentityDep,
    domain: Annotated[str | None, Query(max_length=255)] = None,
) -> HTMLResponse:
    lang = lang_of(request)
    dom = check_domain(domain or request.url.netloc)  # 422 for a bad one
    ch = ids.issue_challenge(dom, datetime.now(UTC))  # as POST /challenges
    _handoff(request).add(ch.challenge, dom, ch.expires_at.timestamp())
    url = _present_url(request, ch.challenge, dom)
    qr_title = i18n.translate("verify.qr", lang)
    qr = segno.make(url, error="m").svg_inline(scale=4, title=qr_title, omitsize=True)
    qr = qr.replace("<svg ", f'<svg role="img" aria-label="{html.escape(qr_title)}" ', 1)
    ctx = {
        "challenge": ch.challenge,
        "domain": dom,
        "expires": ch.expires_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "expires_ts": int(ch.expires_at.timestamp()),
        "url": url,
        "qr": qr,
        "checks": CHECKS,
    }
    return render(request, "citizen/verify.html", ctx, session=session)


@router.get("/present", response_class=HTMLResponse)
def present_page(
    request: Request,
    session: PageSessionDep,
    challenge: Annotated[str | None, Query(max_length=200)] = None,
    code: Annotated[str | None, Query(max_length=2000)] = None,
) -> HTMLResponse:
    """The citizen's side; the domain shown and signed is the one the verifier's challenge was
    issued for (the ``domain`` in the link is informative only)."""
    lang = lang_of(request)
    if code and not challenge:  # a pasted link or a bare challenge
        challenge = _parse_code(code)
    ctx: dict[str, Any] = {"challenge": None, "domain": None, "demo": {}}
    if not challenge:
        return render(request, "citizen/present.html", ctx, session=session)
    pending = _handoff(request).get(challenge) if _CHALLENGE.fullmatch(challenge) else None
    if pending is None:
        ctx["error"] = i18n.translate("present.unknown", lang)
        return render(request, "citizen/present.html", ctx, session=session, status=404)
    if pending.result is not None:
        ctx["error"] = i18n.translate("present.used", lang)
        return render(request, "citizen/present.html", ctx, session=session, status=409)
    demo = {k: v for k, v in _demo_index(request).items() if v.get("kind") == "wallet"}
    ctx.update(challenge=challenge, domain=pending.domain, demo=demo, checks=CHECKS)
    return render(request, "citizen/present.html", ctx, session=session)


def _parse_code(code: str) -> str | None:
    """The challenge of a pasted presentation link, or the pasted challenge itself."""
    from urllib.parse import parse_qs, urlparse

    code = code.strip()
    if "challenge=" in code:
        qs = parse_qs(urlparse(code).query or code.split("?", 1)[-1])
        found = qs.get("challenge")
        return found[0] if found else None
    return code or None


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is None or origin.rstrip("/") == str(request.base_url).rstrip("/")


async def handoff_presentation(request: Request, challenge: str) -> JSONResponse:
    """``POST /verify/{challenge}/presentation``: verify the citizen's presentation over the
    verifier's challenge now, keep only the result for the verifier's page (single use)."""
    if not _same_origin(request):
        raise Forbidden("cross-origin hand-offs are refused")
    if not _CHALLENGE.fullmatch(challenge):
        raise NotFound("unknown or expired challenge")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_PRESENTATION):
        raise _TooLarge(f"a presentation is at most {MAX_PRESENTATION} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_PRESENTATION:
            raise _TooLarge(f"a presentation is at most {MAX_PRESENTATION} bytes")
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidInput("the body must be JSON: {verifiablePresentation: {...}}") from None
    vp = body.get("verifiablePresentation") if isinstance(body, dict) else None
    if not isinstance(vp, dict):
        raise InvalidInput("the body must be JSON: {verifiablePresentation: {...}}")
    store = _handoff(request)
    pending = store.claim(challenge)  # 404 unknown / expired, 409 already presented
    try:
        ids = await get_identity(request)
        res = await ids.run_verification(
            lambda: ids.verify_presentation(
                vp, datetime.now(UTC), challenge=challenge, domain=pending.domain
            )
        )
    except BaseException:
        store.finish(challenge, None)  # nothing was verified: the verifier may retry
        raise
    result = _summary(res.to_json())
    store.finish(challenge, result)
    log.info("hand-off verified=%s failed=%s", result["verified"], ",".join(result["failed"]))
    return JSONResponse(result, headers={"Cache-Control": "no-store"})


def _summary(res: Mapping[str, Any]) -> dict[str, Any]:
    """What the verifier's page shows: every check by name; no claims, no credential."""
    return {
        "status": "done",
        "verified": bool(res.get("verified")),
        "holder": res.get("holder"),
        "failed": list(res.get("failed", [])),
        "checks": [
            {
                "name": str(c.get("name")),
                "ok": bool(c.get("ok")),
                "code": str(c.get("code")),
                "message": str(c.get("message", ""))[:300],
            }
            for c in res.get("checks", [])
        ],
        "verified_at": int(time.time()),
    }


async def handoff_result(request: Request, challenge: str) -> JSONResponse:
    """``GET /verify/{challenge}/result``: pending, or the verification result."""
    pending = _handoff(request).get(challenge) if _CHALLENGE.fullmatch(challenge) else None
    if pending is None:
        raise NotFound("unknown or expired challenge")
    body = pending.result or {"status": "pending"}
    if body.get("status") == "verifying":
        body = {"status": "pending"}
    return JSONResponse(
        {**body, "expires": int(pending.expires)}, headers={"Cache-Control": "no-store"}
    )


# JSON routes (problem+json errors, for page JS): added with the plain route class
router.add_api_route(
    "/verify/{challenge}/presentation",
    handoff_presentation,
    methods=["POST"],
    route_class_override=APIRoute,
    include_in_schema=False,
)
router.add_api_route(
    "/verify/{challenge}/result",
    handoff_result,
    methods=["GET"],
    route_class_override=APIRoute,
    include_in_schema=False,
)
