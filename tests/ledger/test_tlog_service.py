"""The transparency log service: rebuilt from the index, signed checkpoints that verify with
the published key, inclusion and consistency proofs that verify, anchoring on schedule."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from ledger.chain import Chain, Sender, new_account
from ledger.db import make_engine, migrate
from ledger.deploy import decoder, deploy_contracts
from ledger.index import Indexer
from ledger.tlog import (
    NoteSignatureError,
    leaf_hash,
    open_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from ledger.tlog_service import Anchorer, TransparencyLog, load_or_create_key, log_origin
from tests.ledger.test_audit import History


def _b(s: str) -> bytes:
    return base64.b64decode(s)


def test_leaves_wait_until_final_depth(embedded_chain: Chain, tmp_path: Path) -> None:
    """With ``final_depth`` a record joins the log only once its block is that deep below the
    index cursor: a node crash that loses the last blocks can then never reorder the log."""
    gov = Sender(embedded_chain, new_account(), decoder())
    dep = deploy_contracts(embedded_chain, gov)
    h = History(embedded_chain, gov, dep)
    engine = make_engine(f"sqlite:///{tmp_path / 'i.db'}")
    migrate(engine)
    indexer = Indexer(embedded_chain, engine, dep)
    key = load_or_create_key(tmp_path)
    origin = log_origin(dep.chain_id, h.ledger.address)
    assert TransparencyLog.from_index(engine, origin, key, final_depth=3).size == 0  # no cursor
    ids = h.write(h.agency([301]), 2)  # each write is its own block on the embedded chain
    indexer.sync()
    log = TransparencyLog.from_index(engine, origin, key, final_depth=3)
    assert log.size == 0  # the records' blocks are the newest ones
    eager = TransparencyLog.from_index(engine, origin, key)
    assert eager.size == 2
    for _ in range(3):  # more blocks on top (other records)
        h.write(h.agency([301]), 1)
    indexer.sync()
    assert log.sync(engine) >= 2
    assert log.ids[:2] == ids[:2]
    assert log.size < eager.sync(engine)  # the newest records still wait


def test_log_from_index(embedded_chain: Chain, tmp_path: Path) -> None:
    gov = Sender(embedded_chain, new_account(), decoder())
    dep = deploy_contracts(embedded_chain, gov)
    h = History(embedded_chain, gov, dep)
    ids = h.write(h.agency([301]), 5)
    engine = make_engine(f"sqlite:///{tmp_path / 'i.db'}")
    migrate(engine)
    Indexer(embedded_chain, engine, dep).sync()
    key = load_or_create_key(tmp_path)
    assert load_or_create_key(tmp_path).private_bytes_raw() == key.private_bytes_raw()
    assert (tmp_path / "tlog-ed25519.key").stat().st_mode & 0o777 == 0o600
    log = TransparencyLog.from_index(engine, log_origin(dep.chain_id, h.ledger.address), key)
    assert log.size == 5

    cp = open_checkpoint(log.checkpoint(), [log.verifier_key], origin=log.origin)
    assert cp.size == 5
    p = log.inclusion("0x" + ids[3].hex())
    verify_inclusion(leaf_hash(ids[3]), p["leaf_index"], 5, [_b(x) for x in p["inclusion_path"]],
                     cp.root_hash)  # fmt: skip
    with pytest.raises(NoteSignatureError):
        other = TransparencyLog(log.origin, load_or_create_key(tmp_path / "other"))
        other.extend(ids)
        open_checkpoint(other.checkpoint(), [log.verifier_key])

    more = h.write(h.agency([301]), 3)
    Indexer(embedded_chain, engine, dep).sync()
    assert log.sync(engine) == 8
    c = log.consistency(5, 8)
    verify_consistency(
        5, 8, cp.root_hash, _b(c["second_root"]), [_b(x) for x in c["consistency_path"]]
    )
    assert log.inclusion(more[0])["leaf_index"] == 5

    if "RuleRegistry" in dep.contracts:
        pub = h.publisher()
        anchorer = Anchorer(
            log, pub, dep.address("RuleRegistry"), every_records=4, every_seconds=60
        )
        t = time.time()
        assert anchorer.maybe_anchor(t) is not None and anchorer.anchored_size == 8
        assert not anchorer.due(t + 1)
        log.extend([b"\x01" * 32])
        assert not anchorer.due(t + 1) and anchorer.due(t + 61)
    assert Anchorer(log, None, None).anchor(0) is None
    engine.dispose()
