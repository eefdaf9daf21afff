"""The real `zhixin` command against a real anvil child: serve, restart, roles, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from ledger.node import free_port

pytestmark = [pytest.mark.anvil, pytest.mark.xdist_group("cli")]

ZHIXIN = str(Path(sys.executable).parent / "zhixin")


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ZHIXIN, *args], capture_output=True, text=True, timeout=timeout, env=env)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not "left behind" only if reaped; check /proc state
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.exists() else 0


class Server:
    def __init__(self, data_dir: Path, env: dict[str, str], *extra: str) -> None:
        self.port = free_port()
        self.node_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                ZHIXIN,
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                str(self.port),
                "--node-port",
                str(self.node_port),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def wait_healthy(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                r = httpx.get(self.url + "/healthz", timeout=2)
                if r.status_code == 200:
                    return r.json()  # type: ignore[no-any-return]
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("service did not become healthy")

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=30)
        return err


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    e = {
        **os.environ,
        "ZHIXIN_KEYSTORE_PASSWORD": "correct horse",
        "ZHIXIN_DISTRICT_SECRET": "5a" * 32,
        "ZHIXIN_LOG_LEVEL": "warning",  # stderr is a pipe read only at exit
        "HOME": str(tmp_path / "home"),
    }
    (tmp_path / "home").mkdir()
    yield e


def test_serve_restart_roles_and_no_leftovers(tmp_path: Path, env: dict[str, str]) -> None:
    data = tmp_path / "data"
    home_foundry = tmp_path / "home" / ".foundry"
    srv = Server(data, env, "--dev")
    try:
        h1 = srv.wait_healthy()
        assert h1["node"]["kind"] == "anvil" and h1["node"]["running"] is True
        pid = h1["node"]["pid"]
        time.sleep(1.5)
        h1b = httpx.get(srv.url + "/healthz").json()
        assert h1b["head_block"] > h1["head_block"], "interval mining should advance the head"
        keystore = data / "governor.keystore.json"
        assert oct(keystore.stat().st_mode & 0o777) == "0o600"
        dep = json.loads((data / "deployment.json").read_text())
        assert dep["contracts"] == h1["contracts"] and dep["chain_id"] == h1["chain_id"]
        # a CLI grant while the service runs goes through the service's node
        acct = "0x" + "ab" * 20
        r = run("roles", "grant", "auditor", acct, "--data-dir", str(data), env=env)
        assert r.returncode == 0, r.stderr
        time.sleep(1.5)  # let the node persist its state (state interval 1 s)
    finally:
        srv.stop()
    assert not pid_alive(pid), "anvil child left behind"
    assert not (data / "node.json").exists()

    # with the service stopped, the CLI starts the node on the saved state for itself
    r = run("roles", "list", "--json", "--data-dir", str(data), env=env)
    assert r.returncode == 0, r.stderr
    listed = {(m["role"], m["account"].lower()) for m in json.loads(r.stdout)}
    assert ("AUDITOR", "0x" + "ab" * 20) in listed
    assert (
        "AGENCY",
        json.loads((data / "dev-keys.json").read_text())["agency-tax"]["address"].lower(),
    ) in listed

    srv2 = Server(data, env, "--dev")
    try:
        h2 = srv2.wait_healthy()
        assert h2["contracts"] == h1["contracts"]
        assert h2["head_block"] >= h1b["head_block"]
        pid2 = h2["node"]["pid"]
    finally:
        srv2.stop()
    assert not pid_alive(pid2)
    assert dir_size(home_foundry) == 0, "anvil wrote under $HOME/.foundry"


def test_cli_bad_input_is_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    data = tmp_path / "data"
    srv = Server(data, env)
    try:
        srv.wait_healthy()
        cases = [
            (("roles", "grant", "mayor", "0x" + "11" * 20), "unknown role 'mayor'"),
            (("roles", "grant", "auditor", "0x1234"), "account must be 0x followed by 40 hex"),
            (
                ("roles", "grant", "auditor", "0x" + "11" * 20, "--categories", "tax.arrears"),
                "applies to the agency role only",
            ),
            (("roles", "grant", "agency", "0x" + "11" * 20, "--categories", "no.such"), "no.such"),
        ]
        for args, needle in cases:
            r = run(*args, "--data-dir", str(data), env=env)
            assert r.returncode != 0, args
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and needle in lines[0], r.stderr
            assert "Traceback" not in r.stderr
        bad_pw = {**env, "ZHIXIN_KEYSTORE_PASSWORD": "wrong"}
        r = run("roles", "grant", "auditor", "0x" + "22" * 20, "--data-dir", str(data), env=bad_pw)
        assert r.returncode == 1
        assert r.stderr.strip().startswith("zhixin: error: wrong password for keystore")
        r = run("roles", "list", "--json", "--data-dir", str(data), env=env)
        assert "0x" + "22" * 20 not in r.stdout.lower()  # nothing was written
        # a second service on the same data dir is refused
        other = run(
            "serve",
            "--data-dir",
            str(data),
            "--port",
            str(free_port()),
            "--node-port",
            str(free_port()),
            env=env,
        )
        assert other.returncode == 1 and "in use by another zhixin process" in other.stderr
        # the HTTP port in use
        busy = run("serve", "--data-dir", str(tmp_path / "d2"), "--port", str(srv.port), env=env)
        assert busy.returncode == 1 and f"HTTP port {srv.port}" in busy.stderr
    finally:
        srv.stop()


def test_serve_refuses_other_chain_id_and_missing_anvil(
    tmp_path: Path, env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    srv = Server(data, env)
    try:
        srv.wait_healthy()
    finally:
        srv.stop()
    r = run(
        "serve",
        "--data-dir",
        str(data),
        "--port",
        str(free_port()),
        "--node-port",
        str(free_port()),
        env={**env, "ZHIXIN_CHAIN_ID": "31337"},
    )
    assert r.returncode == 1
    assert "deployed on chain id 20170623" in r.stderr and "31337" in r.stderr
    r = run(
        "serve",
        "--data-dir",
        str(tmp_path / "x"),
        "--port",
        str(free_port()),
        env={**env, "ZHIXIN_ANVIL": str(tmp_path / "nope")},
    )
    assert r.returncode == 1 and "anvil not found" in r.stderr
    nosecret = {k: v for k, v in env.items() if k != "ZHIXIN_DISTRICT_SECRET"}
    r = run(
        "serve",
        "--data-dir",
        str(tmp_path / "y"),
        "--port",
        str(free_port()),
        "--node-port",
        str(free_port()),
        env=nosecret,
    )
    assert r.returncode == 1 and "set ZHIXIN_DISTRICT_SECRET" in r.stderr
    assert not (tmp_path / "y" / "deployment.json").exists()
    assert not (tmp_path / "y" / "governor.keystore.json").exists()
    assert not (tmp_path / "x" / "deployment.json").exists()


def test_keys_new_writes_an_encrypted_keystore(tmp_path: Path) -> None:
    """`zhixin keys new`: a 0600 scrypt keystore the service can load, the address printed,
    never the key; no password or an existing file → one clear line and exit 1."""
    from ledger.keys import load_keystore

    path = tmp_path / "publisher.keystore.json"
    env = {**os.environ, "ZHIXIN_KEYSTORE_PASSWORD": "correct horse"}
    env.pop("ZHIXIN_DEV", None)
    r = subprocess.run([ZHIXIN, "keys", "new", str(path)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    address = r.stdout.strip()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    acct = load_keystore(path, "correct horse")
    assert acct.address == address and bytes(acct.key).hex() not in r.stdout + path.read_text()
    again = subprocess.run(
        [ZHIXIN, "keys", "new", str(path)], capture_output=True, text=True, env=env
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    assert again.stderr.count("\n") == 1
    nopw = {k: v for k, v in env.items() if k != "ZHIXIN_KEYSTORE_PASSWORD"}
    r = subprocess.run(
        [ZHIXIN, "keys", "new", str(tmp_path / "x.json")], capture_output=True, text=True, env=nopw
    )
    assert r.returncode == 1 and "password" in r.stderr and not (tmp_path / "x.json").exists()
