"""Deploy the contracts and keep ``deployment.json`` honest.

Invariants:
- ``deployment.json`` is written atomically and only after every contract's receipt is in.
- On reuse it must describe the chain we are connected to: same chain id, and at every recorded
  address the code of the committed artifact (immutables aside). Otherwise we refuse to start.
- A contract added to the project after the data dir was created is deployed and appended;
  recorded contracts are never redeployed.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi import encode

from .chain import Chain, ErrorDecoder, Sender
from .contracts import CONTRACT_NAMES, code_matches, load_artifact
from .errors import DeploymentMismatch

__all__ = ["Deployment", "all_abis", "deploy_contracts", "ensure_deployment", "write_json_atomic"]

# constructor arguments: a contract may take earlier contracts' addresses (or the governor)
_CTOR_ARGS: dict[str, tuple[str, ...]] = {
    "Roles": ("governor",),
    "CreditLedger": ("Roles",),
    "DIDRegistry": ("Roles",),
    "CredentialRegistry": ("Roles",),
    "RuleRegistry": ("Roles",),
}


@dataclass
class Deployment:
    chain_id: int
    contracts: dict[str, str]
    deploy_block: int
    artifact_hashes: dict[str, str]
    governor: str
    blocks: dict[str, int] = field(default_factory=dict)

    def address(self, name: str) -> str:
        try:
            return self.contracts[name]
        except KeyError:
            raise DeploymentMismatch(f"contract {name} is not deployed") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "deploy_block": self.deploy_block,
            "governor": self.governor,
            "contracts": self.contracts,
            "blocks": self.blocks,
            "artifact_hashes": self.artifact_hashes,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Deployment:
        return cls(
            chain_id=int(doc["chain_id"]),
            contracts=dict(doc["contracts"]),
            deploy_block=int(doc["deploy_block"]),
            artifact_hashes=dict(doc["artifact_hashes"]),
            governor=str(doc["governor"]),
            blocks={k: int(v) for k, v in doc.get("blocks", {}).items()},
        )

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (KeyError, ValueError, TypeError) as exc:
            raise DeploymentMismatch(f"{path} is not a valid deployment file: {exc}") from exc


def all_abis() -> list[list[dict[str, Any]]]:
    return [load_artifact(n).abi for n in CONTRACT_NAMES]


def write_json_atomic(path: Path, doc: Any, mode: int = 0o644, *, sort_keys: bool = True) -> None:
    """Write ``doc`` to ``path`` so a crash leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, sort_keys=sort_keys, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _deploy_one(sender: Sender, name: str, known: dict[str, str]) -> tuple[str, int]:
    art = load_artifact(name)
    args = [sender.address if a == "governor" else known[a] for a in _CTOR_ARGS.get(name, ())]
    ctor = encode(["address"] * len(args), args) if args else b""
    res = sender.deploy(art.bytecode, ctor, what=f"deploy {name}")
    addr = res.receipt["contractAddress"]
    assert addr is not None
    return str(addr), res.block_number


def deploy_contracts(chain: Chain, sender: Sender) -> Deployment:
    """Deploy every contract from scratch, governed by ``sender``."""
    contracts: dict[str, str] = {}
    blocks: dict[str, int] = {}
    for name in CONTRACT_NAMES:
        contracts[name], blocks[name] = _deploy_one(sender, name, contracts)
    return Deployment(
        chain_id=chain.chain_id,
        contracts=contracts,
        deploy_block=min(blocks.values()),
        artifact_hashes={n: load_artifact(n).code_hash for n in CONTRACT_NAMES},
        governor=sender.address,
        blocks=blocks,
    )


def verify_deployment(chain: Chain, dep: Deployment) -> None:
    """Raise DeploymentMismatch unless ``dep`` describes this chain."""
    if dep.chain_id != chain.chain_id:
        raise DeploymentMismatch(
            f"data dir was deployed on chain id {dep.chain_id}, "
            f"but the node reports chain id {chain.chain_id}"
        )
    for name, addr in dep.contracts.items():
        if name not in CONTRACT_NAMES:
            continue
        code = chain.code_at(addr)
        if not code_matches(load_artifact(name), code):
            what = "no code" if not code else "different code"
            raise DeploymentMismatch(
                f"{name} at {addr}: the chain has {what}, not the committed artifact "
                "(was the chain reset, or the contracts changed?)"
            )


def ensure_deployment(
    chain: Chain, sender: Sender, path: Path, *, settle_seconds: float = 0.0
) -> Deployment:
    """Reuse and verify ``path``, or deploy and write it.

    ``settle_seconds``: with a local node that persists its state every N seconds, wait that long
    before recording, so a crash cannot leave deployment.json pointing at lost contracts.
    """
    if path.exists():
        dep = Deployment.load(path)
        verify_deployment(chain, dep)
        missing = [n for n in CONTRACT_NAMES if n not in dep.contracts]
        if not missing:
            return dep
        for name in missing:
            dep.contracts[name], dep.blocks[name] = _deploy_one(sender, name, dep.contracts)
            dep.artifact_hashes[name] = load_artifact(name).code_hash
    else:
        dep = deploy_contracts(chain, sender)
    if settle_seconds:
        time.sleep(settle_seconds)
    write_json_atomic(path, dep.to_json())
    return dep


def decoder() -> ErrorDecoder:
    return ErrorDecoder(*all_abis())
