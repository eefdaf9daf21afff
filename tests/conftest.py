"""Shared fixtures: real chains (embedded PyEVM and a real anvil child) with contracts deployed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")

from ledger.chain import Chain, EmbeddedChain, Sender, new_account
from ledger.deploy import Deployment, decoder, deploy_contracts
from ledger.node import AnvilNode, free_port


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give ``xdist_group`` items the ``@group`` node-id suffix ``--dist loadgroup`` groups by,
    when xdist could not: pytest 9.2 keeps node ids structured (``Node._id``) while
    pytest-xdist 3.8 still writes the old ``_nodeid`` field, so grouping silently stops
    (pytest-dev/pytest-xdist#1386). A no-op where xdist's own suffix took effect."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = {
            str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")
        }
        if not names:
            continue
        suffix = "@" + "_".join(sorted(names))
        if item.nodeid.endswith(suffix):
            continue
        if hasattr(item, "_id"):
            from _pytest.nodeid import NodeId

            item._id = NodeId.parse(item.nodeid + suffix)
        else:  # older pytest, where xdist's own suffix works
            setattr(item, "_nodeid", item.nodeid + suffix)  # noqa: B010


@pytest.fixture
def embedded_chain() -> Iterator[Chain]:
    chain = EmbeddedChain()
    yield chain
    chain.close()


@pytest.fixture
def anvil_node(tmp_path: Path) -> Iterator[AnvilNode]:
    node = AnvilNode(tmp_path / "node", port=free_port(), block_time=0.2)
    yield node
    node.stop()


@pytest.fixture
def anvil_chain(anvil_node: AnvilNode) -> Iterator[Chain]:
    chain = anvil_node.start()
    yield chain
    chain.close()


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def chain(request: pytest.FixtureRequest) -> Chain:
    """The same test on both backends."""
    return request.getfixturevalue(f"{request.param}_chain")  # type: ignore[no-any-return]


@pytest.fixture
def governor(chain: Chain) -> Sender:
    return Sender(chain, new_account(), decoder())


@pytest.fixture
def deployment(chain: Chain, governor: Sender) -> Deployment:
    return deploy_contracts(chain, governor)
