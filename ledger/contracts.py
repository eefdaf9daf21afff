"""Compiled contract artifacts: compile, load, compare with on-chain code.

Invariants:
- The service never needs a compiler: it reads committed artifacts under ``contracts/artifacts``.
- An artifact records the exact compiler version and settings and the SHA-256 of every source
  file, so ``python -m ledger.contracts check`` (and a test) can tell a stale artifact.
- Compilation drives npm ``solc`` (solc-js, pinned in package-lock.json) through
  ``contracts/tools/solc.cjs`` with py-solc-x's ``compile_standard``; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = [
    "ARTIFACTS_DIR",
    "COMPILER_SETTINGS",
    "CONTRACT_NAMES",
    "SOLC_VERSION",
    "SOURCES_DIR",
    "Artifact",
    "code_matches",
    "compile_all",
    "load_artifact",
    "source_hashes",
    "write_artifacts",
]

ROOT = Path(__file__).resolve().parent.parent / "contracts"
SOURCES_DIR = ROOT / "src"
ARTIFACTS_DIR = ROOT / "artifacts"
SOLC_WRAPPER = ROOT / "tools" / "solc.cjs"
SOLC_VERSION = "0.8.37"
# Cancun: the newest fork that py-evm 0.12, anvil 1.7 and Besu all run.
COMPILER_SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "outputSelection": {
        "*": {
            "*": [
                "abi",
                "evm.bytecode.object",
                "evm.deployedBytecode.object",
                "evm.deployedBytecode.immutableReferences",
            ]
        }
    },
}
# Deployed contracts, in deployment order (a contract may take earlier ones as arguments).
CONTRACT_NAMES: tuple[str, ...] = (
    "Roles",
    "CreditLedger",
    "CredentialRegistry",
    "DIDRegistry",
    "RuleRegistry",
)


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    # (start, length) byte ranges in deployed code filled in by the constructor
    immutable_ranges: tuple[tuple[int, int], ...]
    compiler_version: str
    source_hashes: dict[str, str]

    @property
    def code_hash(self) -> str:
        """SHA-256 of the deployed code with immutables zeroed: what deployment.json records."""
        return hashlib.sha256(_mask(self.deployed_bytecode, self.immutable_ranges)).hexdigest()


def _mask(code: bytes, ranges: tuple[tuple[int, int], ...]) -> bytes:
    buf = bytearray(code)
    for start, length in ranges:
        buf[start : start + length] = bytes(length)
    return bytes(buf)


def code_matches(artifact: Artifact, onchain: bytes) -> bool:
    """Whether code read from the chain is this artifact's deployed code (immutables aside)."""
    if len(onchain) != len(artifact.deployed_bytecode):
        return False
    return _mask(onchain, artifact.immutable_ranges) == _mask(
        artifact.deployed_bytecode, artifact.immutable_ranges
    )


def source_hashes() -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(SOURCES_DIR.glob("*.sol"))
    }


def compile_all() -> dict[str, dict[str, Any]]:
    """Compile every source; return artifact JSON documents by contract name."""
    import solcx  # imported lazily: only the compile path needs it

    if not SOLC_WRAPPER.exists():
        raise ConfigurationError(f"solc wrapper missing: {SOLC_WRAPPER}")
    sources = {p.name: {"content": p.read_text()} for p in sorted(SOURCES_DIR.glob("*.sol"))}
    std_input = {"language": "Solidity", "sources": sources, "settings": COMPILER_SETTINGS}
    try:
        out = solcx.compile_standard(std_input, solc_binary=str(SOLC_WRAPPER))
    except Exception as exc:  # solcx raises its own tree; surface the compiler's message
        raise ConfigurationError(f"solc failed: {exc}") from exc
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ConfigurationError("solc: " + "\n".join(e["formattedMessage"] for e in errors))
    version = _solc_version()
    hashes = source_hashes()
    result: dict[str, dict[str, Any]] = {}
    for _file, contracts in out["contracts"].items():
        for name, data in contracts.items():
            if name not in CONTRACT_NAMES:
                continue
            evm = data["evm"]
            refs = evm["deployedBytecode"].get("immutableReferences", {})
            ranges = sorted([r["start"], r["length"]] for rs in refs.values() for r in rs)
            result[name] = {
                "contractName": name,
                "abi": data["abi"],
                "bytecode": "0x" + evm["bytecode"]["object"],
                "deployedBytecode": "0x" + evm["deployedBytecode"]["object"],
                "immutableRanges": ranges,
                "compiler": {"version": version, "settings": COMPILER_SETTINGS},
                "sourceHashes": hashes,
            }
    missing = set(CONTRACT_NAMES) - set(result)
    if missing:
        raise ConfigurationError(f"contracts not found in sources: {sorted(missing)}")
    return result


def _solc_version() -> str:
    import subprocess

    out = subprocess.run(
        [str(SOLC_WRAPPER), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return out.strip().splitlines()[-1].removeprefix("Version: ")


def write_artifacts(artifacts: dict[str, dict[str, Any]]) -> None:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    for name, doc in artifacts.items():
        (ARTIFACTS_DIR / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    load_artifact.cache_clear()


@cache
def load_artifact(name: str) -> Artifact:
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(f"no compiled artifact for {name} at {path}") from None
    return Artifact(
        name=name,
        abi=doc["abi"],
        bytecode=bytes.fromhex(doc["bytecode"][2:]),
        deployed_bytecode=bytes.fromhex(doc["deployedBytecode"][2:]),
        immutable_ranges=tuple((int(s), int(n)) for s, n in doc["immutableRanges"]),
        compiler_version=doc["compiler"]["version"],
        source_hashes=doc["sourceHashes"],
    )


def _main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "compile"
    if cmd == "compile":
        arts = compile_all()
        write_artifacts(arts)
        print(f"wrote {len(arts)} artifacts to {ARTIFACTS_DIR}")
        return 0
    if cmd == "check":
        fresh = compile_all()
        stale = [
            n
            for n, doc in fresh.items()
            if not (ARTIFACTS_DIR / f"{n}.json").exists()
            or json.loads((ARTIFACTS_DIR / f"{n}.json").read_text()) != doc
        ]
        if stale:
            print(f"stale artifacts: {', '.join(stale)} (run `make compile`)", file=sys.stderr)
            return 1
        print("artifacts are fresh")
        return 0
    print("usage: python -m ledger.contracts compile|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
