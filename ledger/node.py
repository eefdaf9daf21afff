"""A supervised local anvil node: spawn, wait until it answers, stop cleanly.

Invariants:
- anvil always runs with ``--prune-history`` and with ``HOME`` pointed inside the data dir, so
  nothing grows under the user's ``$HOME/.foundry``.
- State persists to ``<data-dir>/chain/state.json`` every ``state_interval`` seconds and on
  SIGTERM; a restart with the same data dir resumes the chain.
- The child dies with its parent (PR_SET_PDEATHSIG) and :meth:`AnvilNode.stop` waits for it,
  so no anvil process is left behind.
- Gas is free (base fee and gas price 0), as on the production Besu QBFT network.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .chain import RpcChain
from .errors import ConfigurationError

__all__ = ["DEFAULT_CHAIN_ID", "AnvilNode", "find_anvil", "free_port", "port_in_use"]

# 2017-06-23: the day Chancheng launched IMI.
DEFAULT_CHAIN_ID = 20170623
REPO_ROOT = Path(__file__).resolve().parent.parent


def find_anvil() -> Path:
    """The pinned anvil binary from node_modules (or $ZHIXIN_ANVIL)."""
    env = os.environ.get("ZHIXIN_ANVIL")
    if env:
        if Path(env).is_file() and os.access(env, os.X_OK):
            return Path(env)
        raise ConfigurationError(f"anvil not found at ZHIXIN_ANVIL={env}")
    pinned = REPO_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if pinned.is_file() and os.access(pinned, os.X_OK):
        return pinned
    which = shutil.which("anvil")
    if which:
        return Path(which)
    raise ConfigurationError(
        "anvil not found: run `npm ci` in the project (it installs @foundry-rs/anvil) "
        "or set ZHIXIN_ANVIL to the binary"
    )


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class AnvilNode:
    """One anvil child process bound to a data dir."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 8545,
        chain_id: int = DEFAULT_CHAIN_ID,
        block_time: float = 1.0,
        state_interval: int = 1,
        host: str = "127.0.0.1",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.host = host
        self.chain_id = chain_id
        self.block_time = block_time
        self.state_interval = state_interval
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "chain" / "state.json"

    def _spawn(self, timeout: float) -> None:
        binary = find_anvil()
        if port_in_use(self.host, self.port):
            raise ConfigurationError(
                f"port {self.port} on {self.host} is in use: is another node running? "
                "choose another with --node-port"
            )
        chain_dir = self.state_file.parent
        home = self.data_dir / "chain" / "home"
        home.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(binary),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            # keep the last 64 states in memory (nothing on disk): calls at "latest" race with
            # interval mining when only one state is kept
            "--prune-history",
            "64",
            "--state",
            str(self.state_file),
            "--state-interval",
            str(self.state_interval),
            "--block-time",
            str(self.block_time),
            "--base-fee",
            "0",
            "--gas-price",
            "0",
            "--disable-min-priority-fee",
            "--gas-limit",
            "100000000",
            "--hardfork",
            "cancun",
            "--accounts",
            "0",
        ]
        log = open(chain_dir / "anvil.log", "ab")  # noqa: SIM115 - owned by the child
        env = {**os.environ, "HOME": str(home)}
        self.proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent,
        )
        log.close()
        probe = RpcChain(self.url, kind="anvil", timeout=2.0)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                tail = (chain_dir / "anvil.log").read_text(errors="replace")[-600:]
                self.proc = None
                raise ConfigurationError(f"anvil exited at start: {tail.strip()}")
            try:
                got = probe.chain_id
                break
            except Exception:
                probe._chain_id = None
                if time.monotonic() > deadline:
                    self.stop()
                    raise ConfigurationError(f"anvil did not answer on {self.url}") from None
                time.sleep(0.05)
        if got != self.chain_id:
            self.stop()
            raise ConfigurationError(f"anvil reports chain id {got}, expected {self.chain_id}")

    def restart_if_dead(self) -> bool:
        """Supervision: respawn a node that died (state resumes from the last dump)."""
        if self.proc is None or self.proc.poll() is None:
            return False
        self.proc = None
        self._spawn(20.0)
        return True

    def start(self, timeout: float = 20.0) -> RpcChain:
        self._spawn(timeout)
        chain = RpcChain(self.url, kind="anvil")
        chain.close = self.stop  # type: ignore[method-assign]
        chain.status = lambda: {  # type: ignore[method-assign]
            "kind": "anvil",
            "rpc_url": self.url,
            "pid": self.proc.pid if self.proc else None,
            "running": self.running,
        }
        return chain

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (anvil dumps its state), then SIGKILL if it hangs; always reaps."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would: state since the last interval is lost."""
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
