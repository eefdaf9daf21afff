"""RuleRegistry on both chains: publish once, epochs only for published hashes, checkpoints
strictly increasing, every refusal decoded by name."""

from __future__ import annotations

import hashlib

import pytest

from ledger.chain import Chain, Sender, new_account
from ledger.deploy import Deployment, decoder
from ledger.errors import ContractReverted
from ledger.roles import Role, RolesClient
from ledger.rules_registry import RuleRegistryClient, rule_set_id, version_number

PUB = Role.RULE_PUBLISHER.id


def h(s: str) -> bytes:
    return hashlib.sha256(s.encode()).digest()


@pytest.fixture
def env(
    chain: Chain, governor: Sender, deployment: Deployment
) -> tuple[RuleRegistryClient, Sender, Sender]:
    roles = RolesClient(chain, deployment.address("Roles"))
    publisher = Sender(chain, new_account(), decoder())
    roles.grant(governor, Role.RULE_PUBLISHER, publisher.address)
    outsider = Sender(chain, new_account(), decoder())
    return RuleRegistryClient(chain, deployment.address("RuleRegistry")), publisher, outsider


def err(e: pytest.ExceptionInfo[ContractReverted]) -> tuple[str | None, tuple]:
    return e.value.error_name, e.value.error_args


def test_publish_once_and_read(env: tuple[RuleRegistryClient, Sender, Sender]) -> None:
    reg, pub, outsider = env
    sid, v = rule_set_id("district.joint-credit"), version_number("2025.1")
    assert reg.rule_set_hash(sid, v) is None and reg.publication(h("a")) is None
    with pytest.raises(ContractReverted) as e:
        reg.publish(outsider, sid, v, h("a"))
    assert err(e) == ("RuleRegistryUnauthorized", (outsider.address, PUB))
    tx = reg.publish(pub, sid, v, h("a"))
    logs = reg.contract.events.RuleSetPublished().process_receipt(tx.receipt)
    assert [
        (x.args.ruleSetId, x.args.version, x.args.contentHash, x.args.publisher) for x in logs
    ] == [(sid, v, h("a"), pub.address)]
    assert reg.rule_set_hash(sid, v) == h("a")
    p = reg.publication(h("a"))
    assert p is not None and (p.rule_set_id, p.version, p.published_at) == (sid, v, tx.block_number)
    with pytest.raises(ContractReverted) as e:
        reg.publish(pub, sid, v, h("b"))
    assert err(e) == ("RuleRegistryVersionAlreadyPublished", (sid, v, h("a")))
    with pytest.raises(ContractReverted) as e:
        reg.publish(pub, sid, v + 1, h("a"))
    assert err(e) == ("RuleRegistryHashAlreadyPublished", (h("a"), sid, v))
    with pytest.raises(ContractReverted) as e:
        reg.publish(pub, sid, v + 1, bytes(32))
    assert err(e) == ("RuleRegistryInvalidHash", (sid, bytes(32)))


def test_epochs_and_checkpoints(env: tuple[RuleRegistryClient, Sender, Sender]) -> None:
    reg, pub, outsider = env
    with pytest.raises(ContractReverted) as e:
        reg.anchor_epoch(pub, h("nope"), 1, h("root"), 3)
    assert err(e) == ("RuleRegistryUnknownRuleSet", (h("nope"),))
    reg.publish(pub, rule_set_id("x"), 1, h("rs"))
    with pytest.raises(ContractReverted) as e:
        reg.anchor_epoch(outsider, h("rs"), 1, h("root"), 3)
    assert err(e) == ("RuleRegistryUnauthorized", (outsider.address, PUB))
    a1 = reg.anchor_epoch(pub, h("rs"), 1_750_000_000, h("root1"), 3)
    a2 = reg.anchor_epoch(pub, h("rs"), 1_750_000_100, h("root2"), 0)
    assert (a1.epoch, a2.epoch, a1.publisher) == (1, 2, pub.address)
    assert reg.epoch_count() == 2
    got = reg.epoch(1)
    assert got is not None
    assert (got.rule_set_hash, got.as_of, got.lists_root, got.member_count, got.anchored_at) == (
        h("rs"),
        1_750_000_000,
        h("root1"),
        3,
        a1.anchored_at,
    )
    assert reg.epoch(3) is None
    with pytest.raises(ContractReverted) as e:
        pub.simulate(reg.address, bytes.fromhex(reg.contract.encode_abi("epoch", args=[3])[2:]))
    assert err(e) == ("RuleRegistryUnknownEpoch", (3,))
    assert [x.epoch for x in reg.fetch_epochs(0)] == [1, 2]
    assert reg.latest_checkpoint().tree_size == 0
    with pytest.raises(ContractReverted) as e:
        reg.anchor_checkpoint(outsider, 5, h("t5"))
    assert err(e) == ("RuleRegistryUnauthorized", (outsider.address, PUB))
    tx = reg.anchor_checkpoint(pub, 5, h("t5"))
    logs = reg.contract.events.CheckpointAnchored().process_receipt(tx.receipt)
    assert [(x.args.treeSize, x.args.rootHash) for x in logs] == [(5, h("t5"))]
    for size in (5, 4):
        with pytest.raises(ContractReverted) as e:
            reg.anchor_checkpoint(pub, size, h("again"))
        assert err(e) == ("RuleRegistryCheckpointNotIncreasing", (size, 5))
    reg.anchor_checkpoint(pub, 6, h("t6"))
    cp = reg.latest_checkpoint()
    assert (cp.tree_size, cp.root_hash) == (6, h("t6"))


def test_gas(env: tuple[RuleRegistryClient, Sender, Sender]) -> None:
    """Publication, epoch and checkpoint costs stay small (measured, with headroom)."""
    reg, pub, _ = env
    g_pub = reg.publish(pub, rule_set_id("g"), 1, h("g")).gas_used
    a = reg.anchor_epoch(pub, h("g"), 1, h("r"), 9)
    g_epoch = pub.chain.w3.eth.get_transaction_receipt(a.tx_hash)["gasUsed"]
    g_cp = reg.anchor_checkpoint(pub, 1, h("c")).gas_used
    print(f"gas publishRuleSet={g_pub} anchorEpoch={g_epoch} anchorCheckpoint={g_cp}")
    assert g_pub < 110_000 and g_epoch < 130_000 and g_cp < 80_000
