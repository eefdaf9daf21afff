"""I/O adapter of the audit: page the chain's logs from the deploy block to the head through
standard ``eth_getLogs`` and feed :class:`ledger.audit.Auditor`, resumably.

Invariants:
- Reads only the chain: ``eth_getLogs`` over the deployment's contract addresses, headers of
  the blocks that hold logs (to check each log's ``blockHash``), ``eth_blockNumber`` and the
  ledger's ``state()`` at the last replayed block (skipped with a note if the node has pruned
  it). Never the service's database and never calls at past blocks for roles.
- The range is ``[from_block, to_block]`` (defaults: deploy block, head). A replay that starts
  after the deploy block still rebuilds roles from the deploy block (Roles logs only) and says
  the report is partial; one that ends before the head says so too.
- With ``resume``, the fold's state is written atomically after every page (at most every
  ``save_every_s`` seconds) and at the end, and a later run with the same file continues from
  the next block; a file from another chain or deployment is refused.
- Signature recovery runs in worker processes (``workers`` > 1, fork) over chunks of a page;
  the order-dependent checks run here, in chain order.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, cast

from eth_utils import keccak

from .audit import (
    Auditor,
    AuditReport,
    AuditState,
    BlockHeader,
    RecordFacts,
    RuleSetDoc,
    record_facts,
)
from .chain import Chain
from .contracts import load_artifact
from .deploy import Deployment
from .errors import InvalidInput
from .records import RECORDED_TOPIC

__all__ = [
    "ChainSource",
    "FactsPool",
    "LogSource",
    "load_rule_sets",
    "replay",
]

Progress = Callable[[int, int, int], None]  # (blocks done, blocks total, records so far)


class LogSource:
    """What the audit reads from a node; subclass to test a lying node."""

    def head(self) -> int:
        raise NotImplementedError

    def logs(self, addresses: list[str], start: int, end: int) -> list[Any]:
        raise NotImplementedError

    def header(self, number: int) -> BlockHeader | None:
        raise NotImplementedError

    def ledger_state(self, ledger: str, block: int) -> tuple[bytes, int] | None:
        raise NotImplementedError


class ChainSource(LogSource):
    """The standard JSON-RPC reads of a :class:`~ledger.chain.Chain`."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    def head(self) -> int:
        return self.chain.head()

    def logs(self, addresses: list[str], start: int, end: int) -> list[Any]:
        flt = {"address": addresses, "fromBlock": start, "toBlock": end}
        return list(self.chain._rpc(lambda: self.chain.w3.eth.get_logs(cast(Any, flt))))

    def header(self, number: int) -> BlockHeader | None:
        try:
            b = self.chain._rpc(lambda: self.chain.w3.eth.get_block(number))
        except Exception:
            return None
        return BlockHeader(int(b["number"]), bytes(b["hash"]), int(b["timestamp"]))

    def ledger_state(self, ledger: str, block: int) -> tuple[bytes, int] | None:
        c = self.chain.contract(ledger, load_artifact("CreditLedger").abi)
        try:
            head, count = self.chain._rpc(lambda: c.functions.state().call(block_identifier=block))
        except Exception:
            return None
        return bytes(head), int(count)


# ---- parallel signature recovery ----


def _facts_job(args: tuple[list[tuple[Any, Any]], int, str]) -> list[RecordFacts]:
    items, chain_id, ledger = args
    return record_facts(items, chain_id, ledger)


class FactsPool:
    """Runs :func:`ledger.audit.record_facts` over chunks in ``workers`` forked processes."""

    def __init__(self, chain_id: int, ledger: str, workers: int | None = None) -> None:
        self.chain_id = chain_id
        self.ledger = ledger
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self._ex: ProcessPoolExecutor | None = None
        if self.workers > 1:
            self._ex = ProcessPoolExecutor(self.workers, mp_context=get_context("fork"))

    def submit(self, items: list[tuple[Any, Any]]) -> Callable[[], list[RecordFacts]]:
        """Start computing; the returned callable waits for the facts, in input order."""
        if self._ex is None or len(items) < 256:
            res = record_facts(items, self.chain_id, self.ledger)
            return lambda: res
        size = max(256, -(-len(items) // (self.workers * 2)))
        futs: list[Future[list[RecordFacts]]] = [
            self._ex.submit(_facts_job, (items[i : i + size], self.chain_id, self.ledger))
            for i in range(0, len(items), size)
        ]

        def wait() -> list[RecordFacts]:
            out: list[RecordFacts] = []
            for f in futs:
                out.extend(f.result())
            return out

        return wait

    def close(self) -> None:
        if self._ex is not None:
            self._ex.shutdown()
            self._ex = None

    def __enter__(self) -> FactsPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- rule-set documents ----


def load_rule_sets(directory: Path) -> list[RuleSetDoc]:
    """Rule-set documents (YAML/JSON) in ``directory`` with their on-chain id, version, hash.

    Hash = SHA-256 of the RFC 8785 form of the parsed document, as ledger.rules publishes it.
    """
    import rfc8785
    import yaml

    out: list[RuleSetDoc] = []
    for path in sorted(directory.glob("*")):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        doc = yaml.safe_load(path.read_text())
        if not isinstance(doc, dict) or "id" not in doc or "version" not in doc:
            continue
        content = hashlib.sha256(rfc8785.dumps(json.loads(json.dumps(doc)))).digest()
        out.append(
            RuleSetDoc(
                name=path.name,
                set_id=keccak(text=str(doc["id"])),
                version=int.from_bytes(keccak(text=str(doc["version"]))[:8], "big"),
                content_hash=content,
            )
        )
    return out


# ---- resume file ----


def _load_resume(path: Path, chain_id: int, contracts: dict[str, str]) -> AuditState | None:
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
        if doc["chain_id"] != chain_id or doc["contracts"] != contracts:
            raise InvalidInput(
                f"{path} belongs to another chain or deployment (chain {doc['chain_id']})"
            )
        return AuditState.from_json(doc["state"])
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInput(f"{path} is not an audit checkpoint file: {exc}") from None


def _save_resume(
    path: Path, chain_id: int, contracts: dict[str, str], from_block: int, st: AuditState
) -> None:
    doc = {"chain_id": chain_id, "contracts": contracts, "from_block": from_block,
           "saved_at": int(time.time()), "state": st.to_json()}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---- the replay ----


def replay(
    source: LogSource | Chain,
    deployment: Deployment,
    *,
    from_block: int | None = None,
    to_block: int | None = None,
    page: int = 2_000,
    resume: Path | None = None,
    workers: int | None = 1,
    rule_sets: Sequence[RuleSetDoc] = (),
    progress: Progress | None = None,
    now: int | None = None,
    save_every_s: float = 5.0,
) -> AuditReport:
    """Replay ``[from_block, to_block]`` of ``deployment`` and return the audit report."""
    src = ChainSource(source) if isinstance(source, Chain) else source
    contracts = dict(deployment.contracts)
    ledger = contracts["CreditLedger"]
    addresses = list(contracts.values())
    deploy = deployment.deploy_block
    head = src.head()
    start = deploy if from_block is None else from_block
    last = head if to_block is None else min(to_block, head)
    if start < deploy:
        raise InvalidInput(f"--from-block {start} is before the deploy block {deploy}")
    if last < start:
        raise InvalidInput(f"--to-block {last} is before the first block {start}")
    state = _load_resume(resume, deployment.chain_id, contracts) if resume else None
    if state is None:
        state = AuditState(next_block=deploy)
        auditor = Auditor(deployment.chain_id, contracts, state, rule_sets=rule_sets)
        if start > deploy:
            # roles as of start: Roles logs only, from the deploy block (cheap, never pruned)
            state.partial_start = True
            state.seq = None
            state.head = None
            roles_only = {"Roles": contracts["Roles"]}
            pre = Auditor(deployment.chain_id, {**roles_only, "CreditLedger": ledger}, state)
            b = deploy
            while b < start:
                e = min(b + page - 1, start - 1)
                pre.feed(src.logs([contracts["Roles"]], b, e))
                b = e + 1
            state.notes = [n for n in state.notes if "RuleRegistry" not in n]
            state.next_block = start
    else:
        auditor = Auditor(deployment.chain_id, contracts, state, rule_sets=rule_sets)
        start = state.next_block if from_block is None else max(start, state.next_block)
    first = start
    total = max(1, last - first + 1)
    last_save = time.monotonic()
    with FactsPool(deployment.chain_id, ledger, workers) as pool:
        b = start
        while b <= last:
            e = min(b + page - 1, last)
            logs = src.logs(addresses, b, e)
            ledger_lc = ledger.lower()
            items = [
                (lg["topics"], lg["data"])
                for lg in logs
                if str(lg["address"]).lower() == ledger_lc
                and lg["topics"]
                and bytes(_raw(lg["topics"][0])) == RECORDED_TOPIC
            ]
            wait = pool.submit(items)
            numbers = sorted({int(_num(lg["blockNumber"])) for lg in logs})
            headers = {n: h for n in numbers if (h := src.header(n)) is not None}
            auditor.feed(logs, wait(), headers)
            auditor.advance(e + 1)
            b = e + 1
            if progress is not None:
                progress(e - first + 1, total, state.counts.get("records", 0))
            if resume is not None and time.monotonic() - last_save >= save_every_s:
                _save_resume(resume, deployment.chain_id, contracts, first, state)
                last_save = time.monotonic()
    if resume is not None:
        _save_resume(resume, deployment.chain_id, contracts, first, state)
    led_state = src.ledger_state(ledger, last)
    note = None
    if led_state is None:
        note = f"the node did not serve CreditLedger.state() at block {last}; not compared"
    return auditor.finish(
        from_block=first,
        to_block=last,
        head_block=head,
        now=int(time.time()) if now is None else now,
        ledger_state=led_state,
        ledger_state_note=note,
    )


def _raw(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


def _num(value: Any) -> int:
    if isinstance(value, str):
        return int(value, 16) if value.startswith("0x") else int(value)
    return int(value)
