"""Crash tests: kill -9 the service, and separately the node, in the middle of a load; after the
restart every accepted record is on chain and indexed exactly once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from eth_utils import keccak

from identity.ids import pseudonym
from ledger.chain import RpcChain
from ledger.credit import CreditLedgerClient
from ledger.node import free_port
from ledger.records import (
    CreditRecord,
    Eip712Domain,
    RecordKind,
    sign_record,
    signed_record_to_json,
)

pytestmark = [pytest.mark.anvil, pytest.mark.slow, pytest.mark.xdist_group("cli")]

ZHIXIN = str(Path(sys.executable).parent / "zhixin")
SECRET = "6b" * 32


class Service:
    def __init__(self, data: Path, env: dict[str, str]) -> None:
        self.data, self.env = data, env
        self.port, self.node_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                ZHIXIN,
                "serve",
                "--data-dir",
                str(data),
                "--port",
                str(self.port),
                "--node-port",
                str(self.node_port),
                "--dev",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read()  # type: ignore[union-attr]
            try:
                r = httpx.get(self.url + "/healthz", timeout=2)
                if r.status_code == 200:
                    self.health = r.json()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("service did not start")

    def kill9(self) -> None:
        node_pid = self.health["node"]["pid"]
        self.proc.kill()
        self.proc.wait()
        wait_gone(node_pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


def wait_gone(pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            st = Path(f"/proc/{pid}/stat").read_text().split()[2]
            if st == "Z":
                return
        except (ProcessLookupError, FileNotFoundError):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still alive")


class Load:
    """Signs records as the demo tax agency and posts them in batches; keeps what got a 202."""

    def __init__(self, data: Path) -> None:
        keys = json.loads((data / "dev-keys.json").read_text())
        dep = json.loads((data / "deployment.json").read_text())
        self.key = bytes.fromhex(keys["agency-tax"]["private_key"][2:])
        self.domain = Eip712Domain(dep["chain_id"], dep["contracts"]["CreditLedger"])
        self.secret = bytes.fromhex(SECRET)
        self.accepted: list[str] = []
        self.nonce = int.from_bytes(os.urandom(6), "big") << 8
        self.url = ""
        self._stop = threading.Event()
        self.errors = 0

    def batch(self, n: int) -> list[dict[str, Any]]:
        now = int(time.time())
        out = []
        for _ in range(n):
            self.nonce += 1
            rec = CreditRecord(
                kind=RecordKind.RECORD,
                subject_kind=2,
                subject=pseudonym(self.secret, 2, "91440300568520498A")
                if self.nonce % 2
                else keccak(b"%d" % self.nonce),
                category=301,
                occurred_at=now - 60,
                effective_from=now - 60,
                deadline=now + 3600,
                nonce=self.nonce,
            )
            out.append(signed_record_to_json(sign_record(rec, self.key, self.domain)))
        return out

    def run(self) -> None:
        while not self._stop.is_set():
            items = self.batch(40)
            try:
                r = httpx.post(self.url + "/v1/credit-records", json=items, timeout=10)
            except httpx.HTTPError:
                self.errors += 1
                time.sleep(0.05)
                continue
            if r.status_code == 202:
                self.accepted += [x["id"] for x in r.json()["items"] if x["status"] == "accepted"]
            time.sleep(0.02)

    def start(self, url: str) -> threading.Thread:
        self.url = url
        self._stop.clear()
        t = threading.Thread(target=self.run, daemon=True)
        t.start()
        return t

    def stop(self, t: threading.Thread) -> None:
        self._stop.set()
        t.join(timeout=30)


def indexed_ids(data: Path) -> list[str]:
    con = sqlite3.connect(data / "zhixin.db", timeout=30)
    try:
        return [r[0] for r in con.execute("select id from credit_records")]
    finally:
        con.close()


def assert_exactly_once(svc: Service, accepted: list[str], timeout: float = 90) -> None:
    want = set(accepted)
    assert len(want) == len(accepted), "the service acknowledged an id twice"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        have = set(indexed_ids(svc.data))
        if want <= have:
            break
        time.sleep(0.5)
    missing = want - set(indexed_ids(svc.data))
    assert not missing, f"{len(missing)} accepted records not indexed"
    ids = indexed_ids(svc.data)
    assert len(ids) == len(set(ids))
    # and on chain, read independently of the service's database
    dep = json.loads((svc.data / "deployment.json").read_text())
    chain = RpcChain(svc.health["node"]["rpc_url"])
    on_chain = [
        "0x" + e.id.hex()
        for e in CreditLedgerClient(chain, dep["contracts"]["CreditLedger"]).fetch_records(
            dep["deploy_block"]
        )
    ]
    dupes = [i for i, n in Counter(on_chain).items() if n > 1]
    assert not dupes, f"{len(dupes)} records written twice on chain"
    assert want <= set(on_chain)
    assert set(ids) == set(on_chain), "index and chain disagree"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ZHIXIN_DISTRICT_SECRET": SECRET,
        "ZHIXIN_LOG_LEVEL": "warning",  # stderr is a pipe read only at exit
        "ZHIXIN_DEMO_SEED": "false",  # this test's records only; the demo is tested elsewhere
        "ZHIXIN_KEYSTORE_PASSWORD": "pw",
        "HOME": str(tmp_path),
    }


def test_kill9_service_mid_load(tmp_path: Path, env: dict[str, str]) -> None:
    data = tmp_path / "data"
    svc = Service(data, env)
    load = Load(data)
    t = load.start(svc.url)
    time.sleep(4)
    svc.kill9()
    load.stop(t)
    before = len(load.accepted)
    assert before > 0
    svc = Service(data, env)
    try:
        t = load.start(svc.url)
        time.sleep(3)
        load.stop(t)
        assert len(load.accepted) > before
        assert_exactly_once(svc, load.accepted)
    finally:
        svc.stop()


def test_kill9_node_mid_load(tmp_path: Path, env: dict[str, str]) -> None:
    data = tmp_path / "data"
    svc = Service(data, env)
    try:
        load = Load(data)
        t = load.start(svc.url)
        time.sleep(4)
        node_pid = svc.health["node"]["pid"]
        os.kill(node_pid, signal.SIGKILL)
        time.sleep(5)
        load.stop(t)
        h = httpx.get(svc.url + "/healthz").json()
        assert h["node"]["running"] and h["node"]["pid"] != node_pid
        svc.health = h
        assert_exactly_once(svc, load.accepted)
    finally:
        svc.stop()
