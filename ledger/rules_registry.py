"""Python client of the on-chain RuleRegistry: rule-set versions, list epochs, log checkpoints.

Invariants:
- ``ruleSetId`` is ``keccak256(utf8(rule set id))``; the on-chain ``uint64`` version of a
  version string is :func:`version_number` — the first 8 bytes (big-endian) of
  ``keccak256(utf8(version))`` — so anyone holding the document recomputes both from it.
- Every write is simulated first: a refused call raises
  :class:`~ledger.errors.ContractReverted` with the contract's named error and sends nothing.
- Reads never raise for absence: an unpublished version reads as ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from eth_utils import keccak, to_checksum_address

from .chain import Chain, Sender, TxResult, encode_call
from .contracts import load_artifact
from .errors import ContractReverted, InvalidInput

__all__ = [
    "CHECKPOINT_TOPIC",
    "EPOCH_TOPIC",
    "PUBLISHED_TOPIC",
    "Checkpoint",
    "EpochAnchor",
    "Publication",
    "RuleRegistryClient",
    "rule_set_id",
    "version_number",
]

PUBLISHED_TOPIC = keccak(text="RuleSetPublished(bytes32,uint64,bytes32,address)")
EPOCH_TOPIC = keccak(text="ListEpochAnchored(uint256,bytes32,uint64,bytes32,uint64,address)")
CHECKPOINT_TOPIC = keccak(text="CheckpointAnchored(uint64,bytes32,address)")


def rule_set_id(name: str) -> bytes:
    """The on-chain id of a rule set: keccak256 of its id string."""
    if not name:
        raise InvalidInput("rule set id is empty")
    return keccak(text=name)


def version_number(version: str) -> int:
    """The on-chain uint64 of a version string (first 8 bytes of its keccak256)."""
    if not version:
        raise InvalidInput("rule set version is empty")
    return int.from_bytes(keccak(text=version)[:8], "big")


@dataclass(frozen=True)
class Publication:
    rule_set_id: bytes
    version: int
    content_hash: bytes
    published_at: int  # block number


@dataclass(frozen=True)
class EpochAnchor:
    epoch: int
    rule_set_hash: bytes
    as_of: int
    lists_root: bytes
    member_count: int
    anchored_at: int  # block number
    tx_hash: str | None = None
    publisher: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    tree_size: int
    root_hash: bytes


def _check32(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise InvalidInput(f"{what} must be 32 bytes")
    return value


def _check64(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
        raise InvalidInput(f"{what} must be an integer in 0..2^64-1, got {value!r}")
    return value


class RuleRegistryClient:
    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = address
        self.contract = chain.contract(address, load_artifact("RuleRegistry").abi)

    # ---- reads ----

    def rule_set_hash(self, set_id: bytes, version: int) -> bytes | None:
        h = bytes(self._call(self.contract.functions.ruleSetHash(set_id, version)))
        return None if h == bytes(32) else h

    def publication(self, content_hash: bytes) -> Publication | None:
        sid, version, block = self._call(self.contract.functions.ruleSetOf(content_hash))
        if int(block) == 0:
            return None
        return Publication(bytes(sid), int(version), content_hash, int(block))

    def epoch(self, n: int) -> EpochAnchor | None:
        if n < 1 or n > self.epoch_count():
            return None
        rs, as_of, root, count, block = self._call(self.contract.functions.epoch(n))
        return EpochAnchor(n, bytes(rs), int(as_of), bytes(root), int(count), int(block))

    def epoch_count(self) -> int:
        return int(self._call(self.contract.functions.epochCount()))

    def latest_checkpoint(self) -> Checkpoint:
        size, root = self._call(self.contract.functions.latestCheckpoint())
        return Checkpoint(int(size), bytes(root))

    # ---- writes ----

    def publish(self, sender: Sender, set_id: bytes, version: int, content_hash: bytes) -> TxResult:
        data = encode_call(
            self.contract,
            "publishRuleSet",
            [
                _check32(set_id, "ruleSetId"),
                _check64(version, "version"),
                _check32(content_hash, "contentHash"),
            ],
        )
        return self._send(sender, data, "publish rule set")

    def anchor_epoch(
        self, sender: Sender, rule_set_hash: bytes, as_of: int, lists_root: bytes, count: int
    ) -> EpochAnchor:
        data = encode_call(
            self.contract,
            "anchorEpoch",
            [
                _check32(rule_set_hash, "ruleSetHash"),
                _check64(as_of, "asOf"),
                _check32(lists_root, "listsRoot"),
                _check64(count, "memberCount"),
            ],
        )
        res = self._send(sender, data, "anchor list epoch")
        logs = self.contract.events.ListEpochAnchored().process_receipt(res.receipt)
        if len(logs) != 1:
            raise ContractReverted(f"anchorEpoch emitted {len(logs)} events (tx {res.tx_hash})")
        a = logs[0]["args"]
        return EpochAnchor(
            int(a["epoch"]),
            bytes(a["ruleSetHash"]),
            int(a["asOf"]),
            bytes(a["listsRoot"]),
            int(a["memberCount"]),
            res.block_number,
            res.tx_hash,
            to_checksum_address(a["publisher"]),
        )

    def anchor_checkpoint(self, sender: Sender, tree_size: int, root_hash: bytes) -> TxResult:
        data = encode_call(
            self.contract,
            "anchorCheckpoint",
            [_check64(tree_size, "treeSize"), _check32(root_hash, "rootHash")],
        )
        return self._send(sender, data, "anchor checkpoint")

    # ---- logs ----

    def fetch_epochs(self, from_block: int, to_block: int | None = None) -> list[EpochAnchor]:
        """Every ListEpochAnchored event in the range, in epoch order (for audits)."""
        flt: dict[str, Any] = {
            "address": self.address,
            "fromBlock": from_block,
            "toBlock": self.chain.head() if to_block is None else to_block,
            "topics": ["0x" + EPOCH_TOPIC.hex()],
        }
        raw = self.chain._rpc(lambda: self.chain.w3.eth.get_logs(cast(Any, flt)))
        out = []
        for lg in raw:
            a = self.contract.events.ListEpochAnchored().process_log(lg)["args"]
            out.append(
                EpochAnchor(
                    int(a["epoch"]),
                    bytes(a["ruleSetHash"]),
                    int(a["asOf"]),
                    bytes(a["listsRoot"]),
                    int(a["memberCount"]),
                    int(lg["blockNumber"]),
                    "0x" + bytes(lg["transactionHash"]).hex(),
                    to_checksum_address(a["publisher"]),
                )
            )
        return sorted(out, key=lambda e: e.epoch)

    def _send(self, sender: Sender, data: bytes, what: str) -> TxResult:
        res = sender.send(self.address, data, what=what)
        assert isinstance(res, TxResult)
        return res

    def _call(self, fn: Any) -> Any:
        return self.chain._rpc(lambda: fn.call())
