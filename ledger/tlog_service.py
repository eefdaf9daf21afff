"""The credit log's transparency log: every record id in ledger order as an RFC 9162 tree, with
signed C2SP checkpoints, inclusion and consistency proofs, and roots anchored on chain.

Invariants:
- Leaf ``i`` is the 32-byte id of the record with ``seq == i`` (leaf hash per RFC 9162 over
  those 32 bytes). The tree is append-only and only ever extended with the next seq, so a gap
  in the index stops growth instead of shifting leaves; anyone can rebuild it from the chain.
- The tree lives in memory (~64 bytes per leaf) and is rebuilt from the index at start.
- Checkpoints are c2sp.org/tlog-checkpoint signed notes under an Ed25519 key kept in the data
  dir (created on first use, mode 0600); key name = origin =
  ``zhixin.example/credit-log/<chainId>/<ledger address>``.
- Anchoring is decided by the pure :meth:`Anchorer.due` (every N records or T seconds, ``now``
  a parameter) and done by the publisher's key via ``RuleRegistry.anchorCheckpoint``; it is
  skipped with a reason when RuleRegistry is not deployed.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eth_abi import encode
from eth_utils import keccak
from sqlalchemy import Engine, func, select

from .chain import Sender, TxResult
from .db import credit_records, index_cursor
from .errors import InvalidInput, ZhixinError
from .tlog import (
    Checkpoint,
    MerkleTree,
    ed25519_verifier_key,
    leaf_hash,
    sign_checkpoint,
)

__all__ = [
    "ANCHOR_SELECTOR",
    "KEY_FILE",
    "Anchorer",
    "NotInLog",
    "TransparencyLog",
    "anchor_calldata",
    "load_or_create_key",
    "log_origin",
]

KEY_FILE = "tlog-ed25519.key"
ANCHOR_SELECTOR = keccak(text="anchorCheckpoint(uint64,bytes32)")[:4]


class NotInLog(ZhixinError):
    code = "not-in-log"
    status = 404


def log_origin(chain_id: int, ledger: str) -> str:
    return f"zhixin.example/credit-log/{chain_id}/{ledger}"


def load_or_create_key(data_dir: Path) -> Ed25519PrivateKey:
    """The log's signing key (32 raw bytes, hex) in the data dir; created once, mode 0600."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        raw = Ed25519PrivateKey.generate().private_bytes_raw()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process won the race: use its key
        else:
            with os.fdopen(fd, "w") as f:
                f.write(raw.hex())
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(path.read_text().strip()))


def anchor_calldata(tree_size: int, root: bytes) -> bytes:
    """Calldata of ``RuleRegistry.anchorCheckpoint(uint64 treeSize, bytes32 rootHash)``."""
    return ANCHOR_SELECTOR + encode(["uint64", "bytes32"], [tree_size, root])


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _id_bytes(value: str) -> bytes:
    v = value.strip().removeprefix("0x")
    if len(v) != 64:
        raise InvalidInput(f"record id must be 0x followed by 64 hex digits, got {value!r}")
    try:
        return bytes.fromhex(v)
    except ValueError:
        raise InvalidInput(f"record id is not hexadecimal: {value!r}") from None


class TransparencyLog:
    """The in-memory tree over record ids, with signed checkpoints and proofs.

    A leaf is appended only once its block is ``final_depth`` blocks below the index's cursor:
    a node that loses its last blocks in a crash (anvil saves its state every few seconds) makes
    the index roll back and the outbox re-send, and re-sent records may land in another order.
    A transparency log must never un-append (its signed checkpoints promise every later tree
    extends them), so it waits until such a rollback can no longer reach the leaf.
    """

    def __init__(self, origin: str, key: Ed25519PrivateKey, *, final_depth: int = 0) -> None:
        self.origin = origin
        self.key = key
        self.final_depth = final_depth
        self.tree = MerkleTree()
        self.ids: list[bytes] = []
        self._index: dict[bytes, int] = {}
        self._lock = threading.Lock()
        self._notes: dict[int, str] = {}

    @property
    def size(self) -> int:
        return self.tree.size

    @property
    def verifier_key(self) -> str:
        """``<name>+<id>+<key>``: what a client pins to verify checkpoints."""
        return ed25519_verifier_key(self.origin, self.key.public_key())

    @property
    def public_key(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def extend(self, ids: Iterable[bytes]) -> int:
        """Append the next records' ids (in seq order); returns the new size."""
        new = [bytes(i) for i in ids]
        with self._lock:
            self.tree.append_many([leaf_hash(i) for i in new])
            for i in new:
                self._index.setdefault(i, len(self.ids))
                self.ids.append(i)
            return self.tree.size

    def sync(self, engine: Engine) -> int:
        """Append indexed records with seq >= size, stopping at the first gap (and, with
        ``final_depth``, at the first record not yet that deep below the index's cursor)."""
        stmt = (
            select(credit_records.c.seq, credit_records.c.id)
            .where(credit_records.c.seq >= self.size)
            .order_by(credit_records.c.seq)
        )
        with engine.connect() as conn:
            if self.final_depth > 0:
                cursor = conn.execute(
                    select(func.max(index_cursor.c.block_number)).where(
                        index_cursor.c.name == "main"
                    )
                ).scalar()
                if cursor is None:
                    return self.size
                stmt = stmt.where(credit_records.c.block_number <= int(cursor) - self.final_depth)
            rows = conn.execute(stmt).all()
        nxt, new = self.size, []
        for seq, rid in rows:
            if int(seq) != nxt:
                break
            new.append(bytes.fromhex(rid[2:]))
            nxt += 1
        return self.extend(new) if new else self.size

    @classmethod
    def from_index(
        cls, engine: Engine, origin: str, key: Ed25519PrivateKey, *, final_depth: int = 0
    ) -> TransparencyLog:
        log = cls(origin, key, final_depth=final_depth)
        log.sync(engine)
        return log

    # ---- checkpoints and proofs ----

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 < size <= self.size:
            raise InvalidInput(f"size must be 1..{self.size}, got {size}")
        return size

    def checkpoint(self, size: int | None = None) -> str:
        """The signed checkpoint note for ``size`` (default: now)."""
        n = self.size if size is None else self._size(size)
        with self._lock:
            note = self._notes.get(n)
            if note is None:
                cp = Checkpoint(self.origin, n, self.tree.root(n))
                note = self._notes[n] = sign_checkpoint(cp, self.origin, self.key)
                if len(self._notes) > 64:
                    self._notes.pop(next(iter(self._notes)))
            return note

    def leaf_index(self, record_id: bytes) -> int:
        i = self._index.get(record_id)
        if i is None:
            raise NotInLog(f"record 0x{record_id.hex()} is not in the log (size {self.size})")
        return i

    def inclusion(self, record_id: bytes | str, size: int | None = None) -> dict[str, Any]:
        rid = _id_bytes(record_id) if isinstance(record_id, str) else record_id
        i = self.leaf_index(rid)
        n = self._size(size)
        if i >= n:
            raise NotInLog(f"record 0x{rid.hex()} is leaf {i}, not in the tree of size {n}")
        return {
            "id": "0x" + rid.hex(),
            "leaf_index": i,
            "tree_size": n,
            "root_hash": _b64(self.tree.root(n)),
            "inclusion_path": [_b64(h) for h in self.tree.inclusion_proof(i, n)],
            "checkpoint": self.checkpoint(n),
        }

    def consistency(self, first: int, second: int | None = None) -> dict[str, Any]:
        n2 = self._size(second)
        if not 0 < first <= n2:
            raise InvalidInput(f"first must be 1..{n2}, got {first}")
        return {
            "first": first,
            "second": n2,
            "first_root": _b64(self.tree.root(first)),
            "second_root": _b64(self.tree.root(n2)),
            "consistency_path": [_b64(h) for h in self.tree.consistency_proof(first, n2)],
            "checkpoint": self.checkpoint(n2),
        }


@dataclass
class Anchorer:
    """Anchors the log's root on chain every ``every_records`` records or ``every_seconds``."""

    log: TransparencyLog
    sender: Sender | None
    rule_registry: str | None
    every_records: int = 1_000
    every_seconds: float = 3_600.0
    anchored_size: int = 0
    anchored_at: float = 0.0
    last_error: str | None = None

    def due(self, now: float) -> bool:
        """Pure: something new, and enough records or time since the last anchor."""
        grown = self.log.size - self.anchored_size
        if grown <= 0:
            return False
        return grown >= self.every_records or now - self.anchored_at >= self.every_seconds

    def skip_reason(self) -> str | None:
        if self.rule_registry is None:
            return "RuleRegistry is not deployed: checkpoints are not anchored"
        if self.sender is None:
            return "no publisher key: checkpoints are not anchored"
        return None

    def anchor(self, now: float) -> TxResult | None:
        """Anchor the current root now (if anything is new); records why it could not."""
        reason = self.skip_reason()
        if reason is not None:
            self.last_error = reason
            return None
        size = self.log.size
        if size <= self.anchored_size:
            return None
        assert self.sender is not None and self.rule_registry is not None
        root = self.log.tree.root(size)
        try:
            res = self.sender.send(
                self.rule_registry,
                anchor_calldata(size, root),
                gas=150_000,
                what=f"anchorCheckpoint({size})",
            )
        except ZhixinError as exc:
            self.last_error = exc.detail
            return None
        assert isinstance(res, TxResult)
        self.anchored_size, self.anchored_at, self.last_error = size, now, None
        return res

    def maybe_anchor(self, now: float) -> TxResult | None:
        return self.anchor(now) if self.due(now) else None
