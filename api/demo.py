"""The demo scenario ``zhixin serve --dev`` seeds: sign-in files, two citizens, records, lists.

Everything is written under ``DATA_DIR/demo/`` and is for demos and tests only:

* ``<name>.keystore.json`` (mode 0600): each dev identity's chain key as an eth-account
  keystore, password ``demo``. Its scrypt cost is deliberately tiny (n = 4096) so that ethers
  unlocks it in the browser in well under a second; such a keystore protects nothing and must
  never hold a real key.
* ``citizen.wallet.json``, ``citizen-2.wallet.json`` (0600): did:key Ed25519 wallets in the
  ``zhixin wallet`` format, each with an identity credential from the dev issuer, issued by the
  same service code as ``POST /credentials/issue``.
* ``index.json``: what ``/signin`` offers: ``name -> {file, kind, role, label}``.
* ``seed-state.json``: progress of the record seeding (chain, base time, first nonce per
  agency), so that an interrupted seed resumes without writing any record twice.
* ``scenario.json`` (written last: its presence, for the current chain, marks a complete seed):

  - ``version``, ``chain`` ({chain_id, kind, credit_ledger, deploy_block}), ``password``;
  - ``identities``: name -> {kind, role, file, label, address | did};
  - ``entities``: [{uscc, name_zh, name_en, grid, expect ("black" | "red" | "none"),
    expect_lists (list ids), rule, lists (list ids in the seeded epoch), records: [{tag, id,
    category, agency}]}], in this order: serious administrative penalty (black,
    serious_dishonesty), A-grade taxpayer (red), three general penalties in a year (black,
    key_supervision), tax arrears only (none);
  - ``citizens``: [{name (the demo identity: "citizen", "citizen-2"), name_zh, name_en,
    verified_name, ric, did, wallet (file name), credential_id, grid, expect, expect_lists,
    rule, lists, records}];
  - ``records``: record ids of interest by tag, e.g. ``citizen_minor_penalty``,
    ``black_serious_penalty``, ``black_tax_arrears``, ``red_grade_a``,
    ``repeated_general_penalties`` (a list), ``citizen_volunteer`` (a list);
  - ``counts``: {records, subjects, synthetic_subjects, by_category};
  - ``grid_cells``: [{grid, category, subjects}] (distinct subjects per heat-map cell);
  - ``synthetic``: [{kind, id, grid}] (generated subjects, valid identifiers);
  - ``rule_set``: {id, version, hash}; ``epoch``: {epoch, as_of, lists_root, member_count};
  - ``seeded_at``, ``seed_seconds``.

Invariants:

* Idempotent: every step first looks at what exists (files, issued credentials, the outbox,
  rule sets, epochs) and writes only what is missing; a second start with the same data dir
  and chain writes nothing. A chain that is new (the embedded chain at every start) gets a
  new seed; keys and wallets are kept, credentials re-issued.
* Records go through :class:`~ledger.credit_service.CreditService` exactly as over HTTP:
  ``prepare_batch`` (validation, pseudonyms), an EIP-712 signature with the agency's dev key,
  ``submit`` (outbox) → chain → index. Each agency's records use one contiguous nonce range
  fixed in ``seed-state.json`` before anything is submitted; records already accepted are
  found by their nonces and never written again.
* Deterministic subjects (a fixed random seed): identifiers and names are the same on every
  data dir, so docs and tests may name them.
* Any failure is one :class:`DemoSeedError` line, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Final

from eth_account import Account
from sqlalchemy import func, select
from stdnum.cn import ric as stdnum_ric
from stdnum.cn import uscc as stdnum_uscc

from identity.ids import validate_ric, validate_uscc
from identity.multikey import (
    decode_private_multikey,
    did_key_from_public_key,
)
from identity.store import issued_credentials
from ledger.db import credit_records, outbox
from ledger.deploy import write_json_atomic
from ledger.errors import ZhixinError
from ledger.records import record_digest, record_from_json, sign_record, signed_record_to_json
from ledger.rules_db import rule_epochs

from .cli_identity import new_did_key_wallet
from .runtime import Runtime

__all__ = [
    "DEMO_PASSWORD",
    "KEYSTORE_SCRYPT_N",
    "DemoSeedError",
    "seed_demo",
    "sign_in_lines",
]

log = logging.getLogger("zhixin.demo")

DEMO_PASSWORD: Final = "demo"  # = api.pages.home.DEMO_PASSWORD
KEYSTORE_SCRYPT_N: Final = 4096
"""scrypt cost of the demo keystores: demo only (a real keystore uses eth-account's 2**18)."""
SCENARIO_VERSION: Final = 1
DAY: Final = 86_400
DISTRICT: Final = "440604"
DISTRICT_NAME: Final = "佛山市禅城区"
SYNTHETIC_SEED: Final = 440604
MAX_ITEMS: Final = 500  # ledger.records.MAX_BATCH

# name -> (title shown on /signin, role shown); the dev identities of api.runtime come first
TITLES: Final[dict[str, str]] = {
    "governor": "区信用办 District credit office",
    "agency-tax": "税务局 Tax bureau",
    "agency-market": "市场监管局 Market regulator",
    "agency-community": "社区服务中心 Community services",
    "issuer": "身份核验中心 Identity issuer",
    "auditor": "审计员 Auditor",
    "rule-publisher": "规则发布人 Rule publisher",
}


class DemoSeedError(ZhixinError):
    code = "demo-seed"
    status = 500


# ---- the named subjects ----


@dataclass(frozen=True)
class _Rec:
    """One record of a named subject: who writes it, what, how long ago, and its tag."""

    tag: str
    category: str
    days_ago: int
    amount: int = 0
    reason: str = ""


@dataclass(frozen=True)
class _Named:
    key: str
    kind: str  # person | entity
    base: str  # the identifier without its check character
    name_zh: str
    name_en: str
    grid: str
    expect: str  # black | red | none
    expect_lists: tuple[str, ...]
    rule: str | None
    records: tuple[_Rec, ...]
    demo_name: str | None = None  # the citizen's demo identity

    @property
    def identifier(self) -> str:
        return _with_check(self.kind, self.base)


NAMED: Final[tuple[_Named, ...]] = (
    _Named(
        "black",
        "entity",
        "91440604MA51HY001",
        "佛山市禅城区鸿运建材有限公司（演示）",
        "Foshan Chancheng Hongyun Building Materials Co., Ltd. (demo)",
        "CC-ZM-02",
        "black",
        ("serious_dishonesty",),
        "serious-administrative-penalty",
        (
            _Rec("black_tax_arrears", "tax.arrears", 130, 86_500, "逾期未缴增值税 VAT overdue"),
            _Rec(
                "black_serious_penalty",
                "admin_penalty.serious",
                45,
                200_000,
                "销售不合格建材 Sold sub-standard building materials",
            ),
        ),
    ),
    _Named(
        "red",
        "entity",
        "91440604MA52CX002",
        "佛山市禅城区诚信陶瓷有限公司（演示）",
        "Foshan Chancheng Chengxin Ceramics Co., Ltd. (demo)",
        "CC-SW-02",
        "red",
        ("red",),
        "a-grade-taxpayer-red",
        (
            _Rec("red_grade_a", "tax.grade_a", 100, 0, "2025年度纳税信用A级 A-grade taxpayer"),
            _Rec("red_commendation", "honour.commendation", 200, 0, "区级诚信企业 Honest firm"),
            _Rec("red_donation", "charity.donation", 60, 50_000, "助学捐赠 School donation"),
        ),
    ),
    _Named(
        "repeated",
        "entity",
        "91440604MA53KJ003",
        "佛山市禅城区快捷餐饮管理有限公司（演示）",
        "Foshan Chancheng Kuaijie Catering Management Co., Ltd. (demo)",
        "CC-ZC-02",
        "black",
        ("key_supervision",),
        "repeated-general-penalties",
        (
            _Rec(
                "repeated_1", "admin_penalty.general", 300, 5_000, "后厨卫生不达标 Kitchen hygiene"
            ),
            _Rec("repeated_2", "admin_penalty.general", 170, 8_000, "超范围经营 Outside licence"),
            _Rec("repeated_3", "admin_penalty.general", 40, 10_000, "虚假宣传 False advertising"),
        ),
    ),
    _Named(
        "plain",
        "entity",
        "91440604MA54ML004",
        "佛山市禅城区明珠物流有限公司（演示）",
        "Foshan Chancheng Mingzhu Logistics Co., Ltd. (demo)",
        "CC-NZ-02",
        "none",
        (),
        None,
        (
            _Rec(
                "plain_tax_arrears", "tax.arrears", 75, 12_000, "逾期未缴印花税 Stamp duty overdue"
            ),
        ),
    ),
    _Named(
        "citizen",
        "person",
        "44060420030512013",
        "李明",
        "Li Ming",
        "CC-ZM-01",
        "red",
        ("red",),
        "volunteer-red",
        (
            _Rec(
                "citizen_volunteer", "volunteer.service_hours", 320, 40, "社区志愿服务 Volunteering"
            ),
            _Rec(
                "citizen_volunteer", "volunteer.service_hours", 230, 35, "社区志愿服务 Volunteering"
            ),
            _Rec(
                "citizen_volunteer", "volunteer.service_hours", 140, 45, "敬老院志愿服务 Care home"
            ),
            _Rec(
                "citizen_volunteer", "volunteer.service_hours", 35, 40, "防汛志愿服务 Flood relief"
            ),
            _Rec("citizen_blood", "health.blood_donation", 150, 400, "无偿献血 Blood donation"),
            _Rec(
                "citizen_minor_penalty",
                "admin_penalty.minor",
                20,
                200,
                "占道经营（轻微） Street-vending obstruction (minor)",
            ),
        ),
        demo_name="citizen",
    ),
    _Named(
        "citizen-2",
        "person",
        "44060420040918024",
        "王芳",
        "Wang Fang",
        "CC-SW-01",
        "none",
        (),
        None,
        (
            _Rec("citizen2_volunteer", "volunteer.service_hours", 90, 30, "图书馆志愿服务 Library"),
            _Rec("citizen2_volunteer", "volunteer.service_hours", 25, 30, "图书馆志愿服务 Library"),
            _Rec("citizen2_donation", "charity.donation", 180, 500, "慈善捐赠 Donation"),
        ),
        demo_name="citizen-2",
    ),
)

# heat map: four busy grids with one dominant category per subject kind (every subject of that
# kind there has it: >= 5 distinct subjects per cell), eight sparse grids with 2 subjects each
BUSY_GRIDS: Final[dict[str, tuple[str, str]]] = {
    "CC-ZM-01": ("admin_penalty.minor", "volunteer.service_hours"),
    "CC-SW-01": ("tax.grade_a", "health.blood_donation"),
    "CC-ZC-01": ("market.abnormal_operation", "volunteer.service_hours"),
    "CC-NZ-01": ("tax.arrears", "charity.donation"),
}
BUSY_ENTITIES, BUSY_PERSONS, SPARSE_SUBJECTS = 6, 5, 2
ENTITY_POOL: Final = (
    ("admin_penalty.warning", 4),
    ("admin_penalty.minor", 6),
    ("admin_penalty.general", 3),
    ("admin_penalty.serious", 1),
    ("tax.arrears", 3),
    ("tax.grade_a", 3),
    ("market.abnormal_operation", 2),
    ("contract.fraud", 1),
    ("food_drug.serious_violation", 1),
    ("charity.donation", 2),
    ("honour.commendation", 2),
)
PERSON_POOL: Final = (
    ("volunteer.service_hours", 6),
    ("health.blood_donation", 3),
    ("charity.donation", 3),
    ("honour.commendation", 1),
    ("admin_penalty.warning", 2),
    ("admin_penalty.minor", 2),
)
REASONS: Final[dict[str, str]] = {
    "admin_penalty.warning": "行政警告 Administrative warning",
    "admin_penalty.minor": "轻微违法 Minor violation",
    "admin_penalty.general": "一般违法 General violation",
    "admin_penalty.serious": "严重违法 Serious violation",
    "tax.arrears": "欠缴税款 Tax arrears",
    "tax.grade_a": "纳税信用A级 A-grade taxpayer",
    "market.abnormal_operation": "未按时公示年报 Annual report not filed",
    "contract.fraud": "合同欺诈 Contract fraud",
    "food_drug.serious_violation": "食品安全严重违法 Serious food-safety violation",
    "charity.donation": "慈善捐赠 Charitable donation",
    "honour.commendation": "表彰奖励 Commendation",
    "volunteer.service_hours": "志愿服务 Volunteer service",
    "health.blood_donation": "无偿献血 Blood donation",
}


def _with_check(kind: str, base: str) -> str:
    if kind == "person":
        return validate_ric(base + stdnum_ric.calc_check_digit(base + "0"))
    return validate_uscc(base + stdnum_uscc.calc_check_digit(base))


def _agency_for(category: str) -> str:
    if category.startswith("tax."):
        return "agency-tax"
    if category.startswith(("volunteer.", "health.", "honour.", "charity.")):
        return "agency-community"
    return "agency-market"  # admin_penalty. market. food_drug. contract.


def _amount(rng: random.Random, category: str, kind: str) -> int:
    if category == "volunteer.service_hours":
        return rng.randint(4, 40)
    if category == "health.blood_donation":
        return rng.choice((200, 300, 400))
    if category == "charity.donation":
        return rng.randint(1, 50) * (1000 if kind == "entity" else 100)
    if category.startswith(("admin_penalty.", "tax.arrears", "contract.", "food_drug.")):
        return 0 if category.endswith("warning") else rng.randint(5, 400) * 100
    return 0


# ---- the plan ----


@dataclass
class _Planned:
    key: str  # stable within a plan
    agency: str  # demo identity name
    fields: dict[str, Any]  # what an agency gives POST /v1/credit-records/prepare
    tag: str | None = None
    subject: str = ""  # the named subject's key, or "synthetic"


@dataclass
class _Plan:
    records: list[_Planned] = field(default_factory=list)
    synthetic: list[dict[str, str]] = field(default_factory=list)


def _fields(
    kind: str,
    identifier: str,
    category: str,
    occurred: int,
    amount: int,
    reason: str,
    grid: str | None,
    key: str,
) -> dict[str, Any]:
    f: dict[str, Any] = {
        "subject": {"kind": kind, "id": identifier},
        "category": category,
        "occurredAt": occurred,
        "effectiveFrom": occurred,
        "amount": amount,
        "reason": f"{reason} (demo)",
        "evidenceHash": "0x" + hashlib.sha256(f"zhixin-demo-evidence:{key}".encode()).hexdigest(),
    }
    if grid is not None:
        f["grid"] = grid  # off chain: statistics only (ledger/grids.py)
    return f


def _synthetic_subjects(rng: random.Random, grids: list[str]) -> list[tuple[str, str, str]]:
    """(kind, identifier, grid) of ~60 generated subjects with valid identifiers."""
    taken = {n.identifier for n in NAMED}
    out: list[tuple[str, str, str]] = []
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"

    def entity() -> str:
        while True:
            code = _with_check(
                "entity", "9144" + DISTRICT[2:] + "".join(rng.choices(alphabet, k=9))
            )
            if code not in taken:
                taken.add(code)
                return code

    def person() -> str:
        while True:
            born = date(2002, 1, 1) + timedelta(days=rng.randint(0, 5 * 365))
            code = _with_check("person", f"{DISTRICT}{born:%Y%m%d}{rng.randint(1, 999):03d}")
            if code not in taken:
                taken.add(code)
                return code

    for grid in BUSY_GRIDS:
        out += [("entity", entity(), grid) for _ in range(BUSY_ENTITIES)]
        out += [("person", person(), grid) for _ in range(BUSY_PERSONS)]
    for grid in (g for g in grids if g not in BUSY_GRIDS):
        for i in range(SPARSE_SUBJECTS):
            kind = "entity" if i % 2 == 0 else "person"
            out.append((kind, entity() if kind == "entity" else person(), grid))
    return out


def _plan(t0: int, grid_codes: list[str] | None) -> _Plan:
    """Every record of the demo, deterministic for a base time ``t0``."""
    plan = _Plan()
    use_grid = grid_codes is not None
    for n in NAMED:
        for i, r in enumerate(n.records):
            key = f"{n.key}/{i}"
            occurred = t0 - r.days_ago * DAY
            grid = n.grid if use_grid else None
            f = _fields(n.kind, n.identifier, r.category, occurred, r.amount, r.reason, grid, key)
            plan.records.append(_Planned(key, _agency_for(r.category), f, r.tag, n.key))
    rng = random.Random(SYNTHETIC_SEED)
    grids = grid_codes if grid_codes else list(BUSY_GRIDS)
    for s, (kind, ident, grid) in enumerate(_synthetic_subjects(rng, grids)):
        plan.synthetic.append({"kind": kind, "id": ident, "grid": grid})
        pool = ENTITY_POOL if kind == "entity" else PERSON_POOL
        cats = [c for c, _ in pool]
        weights = [w for _, w in pool]
        chosen: list[str] = []
        if grid in BUSY_GRIDS:
            chosen.append(BUSY_GRIDS[grid][0 if kind == "entity" else 1])
        chosen += rng.choices(cats, weights, k=rng.randint(1, 3))
        for i, cat in enumerate(chosen):
            key = f"synthetic/{s}/{i}"
            occurred = t0 - rng.randint(1, 360) * DAY - rng.randint(0, DAY // 2)
            f = _fields(
                kind,
                ident,
                cat,
                occurred,
                _amount(rng, cat, kind),
                REASONS[cat],
                grid if use_grid else None,
                key,
            )
            plan.records.append(_Planned(key, _agency_for(cat), f, None, "synthetic"))
    return plan


# ---- files ----


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, doc: Any, mode: int = 0o600) -> bool:
    """Atomically write ``doc`` unless the file already holds exactly it; whether it wrote."""
    if _read_json(path) == doc:
        return False
    write_json_atomic(path, doc, mode=mode, sort_keys=False)  # index.json keeps its order
    return True


def _keystores(demo: Path, identities: dict[str, dict[str, Any]]) -> None:
    """``<name>.keystore.json`` per dev identity; an existing one for the same key is kept."""
    for name, ident in identities.items():
        path = demo / f"{name}.keystore.json"
        have = _read_json(path)
        addr = ident["address"].lower().removeprefix("0x")
        if isinstance(have, dict) and str(have.get("address", "")).lower() == addr:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
            continue
        doc = Account.encrypt(
            ident["private_key"], DEMO_PASSWORD, kdf="scrypt", iterations=KEYSTORE_SCRYPT_N
        )
        _write_json(path, doc)


def _wallet(demo: Path, name: str) -> dict[str, Any]:
    """The citizen's wallet (``zhixin wallet`` format), created once."""
    path = demo / f"{name}.wallet.json"
    doc = _read_json(path)
    if isinstance(doc, dict):
        try:
            key = decode_private_multikey(doc["secretKeyMultibase"])
            if did_key_from_public_key(key.public_key()) == doc.get("did"):
                return doc
        except (KeyError, TypeError, ValueError, ZhixinError):
            pass
        log.warning("demo wallet %s is not a valid wallet: replacing it", path.name)
    doc = new_did_key_wallet()
    _write_json(path, doc)
    return doc


def _issued_here(rt: Runtime, credential_id: Any) -> bool:
    """Whether this chain's registry holds the credential (the service anchored it)."""
    if not isinstance(credential_id, str):
        return False
    t = issued_credentials
    assert rt.engine is not None
    with rt.engine.connect() as conn:
        row = conn.execute(
            select(t.c.credential_hash).where(
                t.c.credential_id == credential_id,
                t.c.registry == rt.deployment.address("CredentialRegistry"),
            )
        ).first()
    return row is not None and row[0] is not None


class _Issuer:
    """The identity services of the ``/credentials/issue`` route, built on first need."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._ids: Any = None

    def issue(self, holder: str, claims: dict[str, Any]) -> Any:
        if self._ids is None:
            from .identity_services import IdentityServices

            self._ids = IdentityServices(self.rt)
        now = datetime.now(UTC).replace(microsecond=0)
        return self._ids.issue(
            holder=holder,
            claims=claims,
            valid_from=now,
            valid_until=now + timedelta(days=5 * 365),
            now=now,
        )

    def close(self) -> None:
        if self._ids is not None and self._ids.challenges.engine is not self.rt.engine:
            self._ids.challenges.engine.dispose()


def _citizen(rt: Runtime, demo: Path, n: _Named, issuer: _Issuer) -> dict[str, Any]:
    """The citizen's wallet, holding an identity credential issued on this chain."""
    assert n.demo_name is not None
    doc = _wallet(demo, n.demo_name)
    ric = n.identifier
    verified_name = f"{n.name_zh} {n.name_en} (demo)"
    cred = next(
        (
            vc
            for vc in doc.get("credentials", [])
            if isinstance(vc, dict)
            and vc.get("credentialSubject", {}).get("residentIdNumber") == ric
            and vc.get("credentialSubject", {}).get("id") == doc["did"]
            and _issued_here(rt, vc.get("id"))
        ),
        None,
    )
    if cred is None:
        rec = issuer.issue(
            doc["did"],
            {
                "verifiedName": verified_name,
                "residentIdNumber": ric,
                "verificationLevel": "in-person",
                "residenceDistrict": DISTRICT_NAME,
            },
        )
        cred = rec.credential
        doc = {**doc, "credentials": [cred]}  # the credentials of an earlier chain are void
        _write_json(demo / f"{n.demo_name}.wallet.json", doc)
    return {
        "name": n.demo_name,
        "name_zh": n.name_zh,
        "name_en": n.name_en,
        "verified_name": verified_name,
        "ric": ric,
        "did": doc["did"],
        "wallet": f"{n.demo_name}.wallet.json",
        "credential_id": cred["id"],
    }


def _index(rt: Runtime, citizens: list[_Named]) -> dict[str, dict[str, str]]:
    index: dict[str, dict[str, str]] = {}
    for name, ident in rt.dev_identities.items():
        title = TITLES.get(name, name)
        index[name] = {
            "file": f"{name}.keystore.json",
            "kind": "keystore",
            "role": str(ident["role"]),
            "label": f"{title} ({name})",
        }
    for n in citizens:
        assert n.demo_name is not None
        index[n.demo_name] = {
            "file": f"{n.demo_name}.wallet.json",
            "kind": "wallet",
            "role": "citizen",
            "label": f"市民 {n.name_zh} Citizen {n.name_en} ({n.demo_name})",
        }
    return index


# ---- records ----


def _chain_ident(rt: Runtime) -> dict[str, Any]:
    dep = rt.deployment
    return {
        "chain_id": dep.chain_id,
        "kind": rt.chain.kind,
        "credit_ledger": dep.address("CreditLedger"),
        "deploy_block": dep.deploy_block,
    }


def _grid_codes(rt: Runtime) -> list[str] | None:
    """The district's grid codes when the service knows grids (ledger/data/grids.json)."""
    grids = getattr(rt.credit, "grids", None)
    return list(grids.codes) if grids is not None and len(grids) else None


def _prepare(rt: Runtime, address: str, items: list[_Planned]) -> list[dict[str, Any]]:
    assert rt.credit is not None
    out: list[dict[str, Any]] = []
    for i in range(0, len(items), MAX_ITEMS):
        chunk = items[i : i + MAX_ITEMS]
        prepared = rt.credit.prepare_batch(address, [p.fields for p in chunk])
        for p, prep in zip(chunk, prepared, strict=True):
            if prep["status"] != "ready":
                raise DemoSeedError(f"demo record {p.key} refused: {prep['problem']['detail']}")
        out += prepared
    return out


def _seed_records(rt: Runtime, demo: Path, deadline: float) -> tuple[_Plan, dict[str, str]]:
    """Write the plan's records not yet accepted; wait until all are indexed; key -> id."""
    assert rt.credit is not None and rt.engine is not None
    credit, ident = rt.credit, _chain_ident(rt)
    state_path = demo / "seed-state.json"
    state = _read_json(state_path)
    fresh = not (isinstance(state, dict) and state.get("chain") == ident)
    t0 = int(time.time()) if fresh else int(state["t0"])
    plan = _plan(t0, _grid_codes(rt))
    by_agency: dict[str, list[_Planned]] = defaultdict(list)
    for p in plan.records:
        by_agency[p.agency].append(p)
    keys = {name: rt.dev_identities[name] for name in by_agency}
    ids: dict[str, str] = {}
    todo: list[tuple[_Planned, dict[str, Any], int]] = []  # planned, prepared, nonce
    if fresh:
        first: dict[str, int] = {}
        for name, planned in by_agency.items():
            prepared = _prepare(rt, keys[name]["address"], planned)
            nonces = [int(record_from_json(prep["record"]).nonce) for prep in prepared]
            if nonces != list(range(nonces[0], nonces[0] + len(nonces))):
                raise DemoSeedError("prepare_batch gave non-contiguous nonces")  # pragma: no cover
            first[name] = nonces[0]
            todo += list(zip(planned, prepared, nonces, strict=True))
        state = {"chain": ident, "t0": t0, "first_nonce": first}
        _write_json(state_path, state)  # before anything is submitted: a rerun resumes
    else:
        for name, planned in by_agency.items():
            base = int(state["first_nonce"][name])
            nonces = list(range(base, base + len(planned)))
            taken = credit.box.nonces_taken(keys[name]["address"], nonces)
            pairs = list(zip(planned, nonces, strict=True))
            missing = [(p, n) for p, n in pairs if n not in taken]
            ids.update({p.key: taken[n] for p, n in pairs if n in taken})
            if missing:
                prepared = _prepare(rt, keys[name]["address"], [p for p, _ in missing])
                todo += [(p, prep, n) for (p, n), prep in zip(missing, prepared, strict=True)]
        if todo:
            log.info("demo: resuming an interrupted seed (%d records to write)", len(todo))
    items: list[dict[str, Any]] = []
    for p, prep, nonce in todo:
        rec = replace(record_from_json(prep["record"]), nonce=nonce)
        key = bytes.fromhex(keys[p.agency]["private_key"].removeprefix("0x"))
        item = signed_record_to_json(sign_record(rec, key, credit.domain))
        if prep.get("reason"):
            item["reason"] = prep["reason"]
        if prep.get("grid"):
            item["grid"] = prep["grid"]
        items.append(item)
        ids[p.key] = "0x" + record_digest(rec, credit.domain).hex()
    for i in range(0, len(items), MAX_ITEMS):
        results = credit.submit(items[i : i + MAX_ITEMS])
        bad = [r for r in results if r.status == "rejected"]
        if bad:
            p = todo[i + bad[0].index][0]
            detail = (bad[0].problem or {}).get("detail", "rejected")
            raise DemoSeedError(f"demo record {p.key} was rejected: {detail}")
    _wait_indexed(rt, sorted(set(ids.values())), deadline)
    return plan, ids


def _wait_indexed(rt: Runtime, ids: list[str], deadline: float) -> None:
    assert rt.engine is not None
    missing = list(ids)
    while True:
        with rt.engine.connect() as conn:
            found: set[str] = set()
            refused: list[tuple[str, str]] = []
            for i in range(0, len(missing), 500):
                chunk = missing[i : i + 500]
                found |= {
                    r[0]
                    for r in conn.execute(
                        select(credit_records.c.id).where(credit_records.c.id.in_(chunk))
                    )
                }
                refused += [
                    (r[0], r[1] or "refused")
                    for r in conn.execute(
                        select(outbox.c.id, outbox.c.reject_reason).where(
                            outbox.c.id.in_(chunk), outbox.c.status == "rejected"
                        )
                    )
                ]
        if refused:
            raise DemoSeedError(
                f"{len(refused)} demo records were refused on chain (first: {refused[0][1]})"
            )
        missing = [i for i in missing if i not in found]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise DemoSeedError(f"{len(missing)} demo records were not indexed in time")
        if rt.submitter is not None:
            rt.submitter.wake()
        time.sleep(0.1)


# ---- rules ----


def _rules(rt: Runtime, record_count: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Publish the packaged rule set if none is; anchor one epoch over the seeded records."""
    rules = rt.rules
    if rules is None or rules.publisher is None:
        raise DemoSeedError("no rule-publisher key: the demo needs the dev rule publisher")
    if not rules.rule_sets():
        text = (
            resources.files("ledger")
            .joinpath("data", "rules", "district-joint-credit.yaml")
            .read_bytes()
        )
        rules.publish(text)
    rs, content = rules.rule_set()
    rule_set = {"id": rs.id, "version": rs.version, "hash": "0x" + content.hex()}
    assert rt.engine is not None
    with rt.engine.connect() as conn:
        row = conn.execute(
            select(rule_epochs.c.epoch)
            .where(
                rule_epochs.c.rule_set_hash == rule_set["hash"],
                rule_epochs.c.record_count >= record_count,
            )
            .order_by(rule_epochs.c.epoch.desc())
            .limit(1)
        ).first()
    n = int(row[0]) if row is not None else int(rules.evaluate_full()["epoch"])
    ep = rules.epoch(n)
    epoch = {k: ep[k] for k in ("epoch", "as_of", "lists_root", "member_count")}
    return rule_set, epoch


# ---- the seed ----


def seed_demo(rt: Runtime, *, timeout_s: float = 120) -> dict[str, Any]:
    """Seed the demo scenario (idempotent); returns the content of ``scenario.json``."""
    if not rt.dev_identities or rt.credit is None or rt.engine is None:
        raise DemoSeedError("demo seeding needs a started runtime in --dev mode")
    started = time.monotonic()
    deadline = started + timeout_s
    issuer = _Issuer(rt)
    try:
        return _seed(rt, started, deadline, issuer)
    except DemoSeedError:
        raise
    except ZhixinError as exc:
        raise DemoSeedError(f"demo seeding failed: {exc.detail}") from exc
    except Exception as exc:
        log.debug("demo seeding failed", exc_info=True)
        raise DemoSeedError(f"demo seeding failed: {type(exc).__name__}: {exc}") from exc
    finally:
        issuer.close()


def _seed(rt: Runtime, started: float, deadline: float, issuer: _Issuer) -> dict[str, Any]:
    demo = rt.settings.data_dir / "demo"
    demo.mkdir(mode=0o700, exist_ok=True)
    _keystores(demo, rt.dev_identities)
    people = [n for n in NAMED if n.demo_name is not None]
    citizens = {n.key: _citizen(rt, demo, n, issuer) for n in people}
    index = _index(rt, people)
    _write_json(demo / "index.json", index)
    path = demo / "scenario.json"
    scenario = _read_json(path)
    if (
        isinstance(scenario, dict)
        and scenario.get("version") == SCENARIO_VERSION
        and scenario.get("chain") == _chain_ident(rt)
        and _complete(rt, scenario)
    ):
        return scenario  # seeded before, on this chain: nothing more to write

    plan, ids = _seed_records(rt, demo, deadline)
    rule_set, epoch = _rules(rt, len(ids))
    assert rt.credit is not None and rt.rules is not None
    identities: dict[str, dict[str, Any]] = {}
    for name, entry in index.items():
        extra = (
            {"did": citizens[name]["did"]}
            if name in citizens
            else {"address": rt.dev_identities[name]["address"]}
        )
        identities[name] = {**entry, **extra}

    records_of_interest: dict[str, Any] = {}
    subjects: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in plan.records:
        if p.tag is None:
            continue
        rid = ids[p.key]
        subjects[p.subject].append(
            {"tag": p.tag, "id": rid, "category": p.fields["category"], "agency": p.agency}
        )
        if p.tag in ("citizen_volunteer", "citizen2_volunteer") or p.tag.startswith("repeated"):
            group = "repeated_general_penalties" if p.tag.startswith("repeated") else p.tag
            records_of_interest.setdefault(group, []).append(rid)
        else:
            records_of_interest[p.tag] = rid

    def described(n: _Named) -> dict[str, Any]:
        _k, pseud = rt.credit.subject_pseudonym(n.kind, n.identifier)  # type: ignore[union-attr]
        status = rt.rules.status(pseud)
        lists = sorted((status.get("latest_epoch") or {}).get("lists", []))
        if lists != sorted(n.expect_lists):
            log.warning("demo subject %s is on %s, expected %s", n.key, lists, n.expect_lists)
        return {
            "grid": n.grid,
            "expect": n.expect,
            "expect_lists": list(n.expect_lists),
            "rule": n.rule,
            "lists": lists,
            "records": subjects[n.key],
        }

    entities = [
        {"uscc": n.identifier, "name_zh": n.name_zh, "name_en": n.name_en, **described(n)}
        for n in NAMED
        if n.kind == "entity"
    ]
    people_out = [{**citizens[n.key], **described(n)} for n in people]
    cells: dict[tuple[str, str], set[str]] = defaultdict(set)
    for p in plan.records:
        if "grid" in p.fields:
            cells[(p.fields["grid"], p.fields["category"])].add(p.fields["subject"]["id"])
    scenario = {
        "version": SCENARIO_VERSION,
        "chain": _chain_ident(rt),
        "password": DEMO_PASSWORD,
        "identities": identities,
        "entities": entities,
        "citizens": people_out,
        "records": records_of_interest,
        "counts": {
            "records": len(ids),
            "subjects": len(NAMED) + len(plan.synthetic),
            "synthetic_subjects": len(plan.synthetic),
            "by_category": dict(
                sorted(Counter(p.fields["category"] for p in plan.records).items())
            ),
        },
        "grid_cells": [
            {"grid": g, "category": c, "subjects": len(s)} for (g, c), s in sorted(cells.items())
        ],
        "synthetic": plan.synthetic,
        "rule_set": rule_set,
        "epoch": epoch,
        "seeded_at": int(time.time()),
        "seed_seconds": round(time.monotonic() - started, 1),
    }
    _write_json(path, scenario)
    log.info(
        "demo seeded: %d records, epoch %s, in %.1f s",
        len(ids),
        epoch["epoch"],
        scenario["seed_seconds"],
    )
    return scenario


def _complete(rt: Runtime, scenario: dict[str, Any]) -> bool:
    """A scenario's records of interest are indexed and its epoch stored (this database)."""
    ids: list[str] = []
    for v in scenario.get("records", {}).values():
        ids += v if isinstance(v, list) else [v]
    ep = (scenario.get("epoch") or {}).get("epoch")
    if not ids or ep is None:
        return False
    assert rt.engine is not None
    with rt.engine.connect() as conn:
        n = conn.execute(
            select(func.count()).select_from(credit_records).where(credit_records.c.id.in_(ids))
        ).scalar()
        has_epoch = conn.execute(
            select(rule_epochs.c.epoch).where(rule_epochs.c.epoch == int(ep))
        ).first()
    return n == len(set(ids)) and has_epoch is not None


# ---- what `zhixin serve --dev` prints ----


def sign_in_lines(url: str, data_dir: Path, scenario: dict[str, Any]) -> list[str]:
    """How to sign in as each demo identity, and two entities to look up (plain text)."""
    demo = data_dir / "demo"
    lines = [
        f"Sign in: open {url}/signin and click a demo button, or choose the file below",
        f'(keystores: password "{scenario.get("password", DEMO_PASSWORD)}"; wallets: none).',
    ]
    ids = scenario.get("identities", {})
    width = max((len(str(demo / d["file"])) for d in ids.values()), default=0)
    for name, d in ids.items():
        title = d.get("label", name).removesuffix(f" ({name})")
        path = str(demo / d["file"])
        lines.append(f"  {name:<16} {d.get('role', ''):<14} {path:<{width}}  {title}")
    tries = []
    for kind in ("black", "red"):
        e = next((e for e in scenario.get("entities", []) if e.get("expect") == kind), None)
        if e is not None:
            tries.append(f"  {url}/credit?uscc={e['uscc']}  ({kind} list)")
    if tries:
        lines += ["Public credit query, try:", *tries]
    return lines
