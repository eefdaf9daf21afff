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
- Rule-set documents are not on chain (``publishRuleSet`` carries only the content hash), so
  the caller gives them (:func:`load_rule_sets`); list epochs are then re-evaluated from the
  replayed records. Records before ``from_block`` are not re-read for that: a replay that
  starts after the deploy block reports its epochs as ``not-evaluated`` (they need every
  record, verified, from the deploy block; a ``resume`` file carries them between runs).
- With ``resume``, the fold's state is written atomically after every page (at most every
  ``save_every_s`` seconds) and at the end, and a later run with the same file continues from
  the next block; a file from another chain or deployment is refused.
- Signature recovery runs in worker processes (``workers`` > 1, fork) over chunks of a page,
  sent as raw bytes and answered with 21 bytes per record; the order-dependent checks run
  here, in chain order, on the previous page while the workers recover the next one.
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

from eth_utils import keccak, to_checksum_address

from .audit import (
    Auditor,
    AuditReport,
    AuditState,
    BlockHeader,
    RecordChecks,
    RuleSetDoc,
    record_items,
    verify_records,
)
from .catalog import Catalog, load_catalog
from .chain import Chain
from .contracts import load_artifact
from .deploy import Deployment
from .errors import ChainError, InvalidInput

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
        """The logs as plain dicts: hashes, topics and data as ``bytes``, numbers as ``int``.

        Over HTTP the request is sent raw: web3's result formatters cost ~0.4 ms per log
        (more than verifying it); this builds the same shape for a few µs.
        """
        from web3 import HTTPProvider

        provider = self.chain.w3.provider
        if not isinstance(provider, HTTPProvider):
            flt = {"address": addresses, "fromBlock": start, "toBlock": end}
            return list(self.chain._rpc(lambda: self.chain.w3.eth.get_logs(cast(Any, flt))))
        params = [{"address": addresses, "fromBlock": hex(start), "toBlock": hex(end)}]
        resp = self.chain._rpc(lambda: provider.make_request(cast(Any, "eth_getLogs"), params))
        if "error" in resp or not isinstance(resp.get("result"), list):
            raise ChainError(f"eth_getLogs [{start}, {end}] failed: {resp.get('error', resp)}")
        out: list[dict[str, Any]] = []
        memo: dict[str, Any] = {}  # block number, block and tx hashes repeat within a page

        def once(value: str, conv: Callable[[str], Any]) -> Any:
            got = memo.get(value)
            if got is None:
                got = memo[value] = conv(value)
            return got

        for lg in resp["result"]:
            try:
                out.append(
                    {
                        "address": once(lg["address"], to_checksum_address),
                        "topics": [_raw(t) for t in lg["topics"]],
                        "data": _raw(lg["data"]),
                        "blockNumber": once(lg["blockNumber"], _num),
                        "blockHash": once(lg["blockHash"], _raw),
                        "transactionHash": once(lg["transactionHash"], _raw),
                        "transactionIndex": _num(lg.get("transactionIndex", -1)),
                        "logIndex": _num(lg["logIndex"]),
                        "removed": bool(lg.get("removed", False)),
                    }
                )
            except (KeyError, ValueError, TypeError, AttributeError):
                out.append(lg)  # as the node sent it: the auditor reports what is wrong
        return out

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


def _verify_job(args: tuple[list[bytes], int, str]) -> RecordChecks:
    items, chain_id, ledger = args
    return verify_records(items, chain_id, ledger)


def _worker_init() -> None:
    # the hot path calls safe-pysha3 directly; eth_hash picks its backend on first use from
    # this variable, so any other keccak in a worker avoids the 7x slower pycryptodome
    os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")


class FactsPool:
    """Runs :func:`ledger.audit.verify_records` over chunks in ``workers`` forked processes.

    Chunks are large (a worker's share of a page) and travel as lists of raw ``id ‖ data``
    bytes; each comes back as a :class:`~ledger.audit.RecordChecks` of 21 bytes per record.
    """

    def __init__(self, chain_id: int, ledger: str, workers: int | None = None) -> None:
        self.chain_id = chain_id
        self.ledger = ledger
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self._ex: ProcessPoolExecutor | None = None
        if self.workers > 1:
            self._ex = ProcessPoolExecutor(
                self.workers, mp_context=get_context("fork"), initializer=_worker_init
            )

    def submit(self, items: list[bytes]) -> Callable[[], RecordChecks]:
        """Start verifying :func:`~ledger.audit.record_items`; the returned callable waits for
        the checks, in input order, with ``items`` filled in."""
        if self._ex is None or len(items) < 256:
            res = verify_records(items, self.chain_id, self.ledger)._replace(items=items)
            return lambda: res
        size = max(256, -(-len(items) // (self.workers * 2)))
        futs: list[Future[RecordChecks]] = [
            self._ex.submit(_verify_job, (items[i : i + size], self.chain_id, self.ledger))
            for i in range(0, len(items), size)
        ]

        def wait() -> RecordChecks:
            signers, status = bytearray(), bytearray()
            errors: dict[int, tuple[str, str]] = {}
            for i, f in enumerate(futs):
                part = f.result()
                signers += part.signers
                status += part.status
                errors.update((i * size + j, e) for j, e in part.errors.items())
            return RecordChecks(items, bytes(signers), bytes(status), errors)

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


def load_rule_sets(
    directory: Path, catalog: Catalog | None = None, measures: Any = None
) -> list[RuleSetDoc]:
    """Rule-set documents (``*.yaml``, ``*.yml``, ``*.json``, as ``zhixin rules publish`` takes
    them) in ``directory`` with their on-chain id, version and content hash, validated against
    ``catalog`` and ``measures`` (default: the packaged ones, as the service loads them).

    Hash = SHA-256 of the RFC 8785 form of the document parsed as :meth:`RuleSet.from_text`
    parses it (YAML without implicit timestamps), i.e. what the service anchors. A document
    that hashes but does not validate is kept with its ``problem`` (its epochs cannot be
    re-evaluated); a file without id and version is skipped, one that is not YAML/JSON refused.
    """
    import rfc8785
    import yaml

    from .rules.model import InvalidRuleSet, RuleSet, _Loader, load_measures

    if not directory.is_dir():
        raise InvalidInput(f"rule-set directory {directory} does not exist")
    catalog = load_catalog() if catalog is None else catalog
    measures = load_measures() if measures is None else measures
    out: list[RuleSetDoc] = []
    for path in sorted(directory.glob("*")):
        if path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
            continue
        try:
            data = yaml.load(path.read_bytes(), Loader=_Loader)  # the loader from_text uses
        except yaml.YAMLError as exc:
            raise InvalidInput(f"{path} is not YAML/JSON: {exc}") from None
        if not isinstance(data, dict) or "id" not in data or "version" not in data:
            continue  # not a rule set (no id and version)
        document = json.loads(json.dumps(data))
        rule_set, problem = None, None
        try:
            rule_set = RuleSet.from_data(data, catalog, measures)
        except InvalidRuleSet as exc:
            problem = exc.detail
        out.append(
            RuleSetDoc(
                name=path.name,
                set_id=keccak(text=str(document["id"])),
                version=int.from_bytes(keccak(text=str(document["version"]))[:8], "big"),
                content_hash=hashlib.sha256(rfc8785.dumps(document)).digest(),
                rule_set=rule_set,
                problem=problem,
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
    rule_sets: Sequence[RuleSetDoc] | None = None,
    catalog: Catalog | None = None,
    progress: Progress | None = None,
    now: int | None = None,
    save_every_s: float = 5.0,
) -> AuditReport:
    """Replay ``[from_block, to_block]`` of ``deployment`` and return the audit report.

    ``rule_sets``: the rule-set documents the auditor holds (None: none, so list epochs are
    not re-evaluated; given, a published hash without a document is a finding).
    ``catalog``: the category catalog epochs are evaluated with (default: the packaged one)."""
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
    if rule_sets is not None and catalog is None:
        catalog = load_catalog()
    state = _load_resume(resume, deployment.chain_id, contracts) if resume else None
    if state is None:
        state = AuditState(next_block=deploy)
        if start > deploy:
            state.partial_start = True
            state.seq = None
            state.head = None
        auditor = Auditor(
            deployment.chain_id, contracts, state, rule_sets=rule_sets, catalog=catalog
        )
        if start > deploy:
            # roles as of start: Roles logs only, from the deploy block (cheap, never pruned)
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
        auditor = Auditor(
            deployment.chain_id, contracts, state, rule_sets=rule_sets, catalog=catalog
        )
        start = state.next_block if from_block is None else max(start, state.next_block)
    first = start
    total = max(1, last - first + 1)
    last_save = time.monotonic()
    with FactsPool(deployment.chain_id, ledger, workers) as pool:

        def fetch(b: int) -> tuple[int, list[Any], Callable[[], RecordChecks], dict[int, Any]]:
            e = min(b + page - 1, last)
            logs = src.logs(addresses, b, e)
            wait = pool.submit(record_items(logs, ledger))
            numbers = sorted({int(_num(lg["blockNumber"])) for lg in logs})
            headers = {n: h for n in numbers if (h := src.header(n)) is not None}
            return e, logs, wait, headers

        # one page ahead: the workers recover page k+1 while this process folds page k
        nxt = fetch(start) if start <= last else None
        while nxt is not None:
            e, logs, wait, headers = nxt
            nxt = fetch(e + 1) if e < last else None
            auditor.feed(logs, wait(), headers)
            auditor.advance(e + 1)
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
