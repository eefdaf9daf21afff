"""Committed artifacts must be what the committed sources compile to."""

from __future__ import annotations

import json

from ledger.contracts import ARTIFACTS_DIR, CONTRACT_NAMES, compile_all, source_hashes


def test_artifacts_are_fresh() -> None:
    fresh = compile_all()  # drives npm solc-js through contracts/tools/solc.cjs
    assert set(fresh) == set(CONTRACT_NAMES)
    for name, doc in fresh.items():
        committed = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
        assert committed["sourceHashes"] == source_hashes(), f"{name}: sources changed"
        assert committed == doc, f"{name}.json is stale: run `make compile`"
        assert doc["compiler"]["version"].startswith("0.8.37+")
        assert doc["compiler"]["settings"]["evmVersion"] == "cancun"
