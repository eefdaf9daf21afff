"""Presentation verifications per second through the HTTP API (real uvicorn server).

Starts ``zhixin serve --chain embedded --dev`` (or ``--chain anvil``) on 127.0.0.1 in a child
process (``ZHIXIN_DEMO_SEED=0``: no demo scenario), issues one identity credential to a fresh
``did:key`` holder, then, untimed: fetches one challenge per presentation from the service
(``POST /challenges``, well within their 5-minute TTL), signs every presentation and writes
each request body once to a file, and warms the caches with a few verifications.

Timed: the pre-made bodies are posted once each, over keep-alive connections, by a client
that is a separate process and cheap in CPU, since client and server share the machine's
cores: Debian's ``wrk`` (``apt-get install -y wrk``) with a Lua script that sends every body
exactly once and checks every response, or, without ``wrk`` (or with ``--client python``),
raw-socket HTTP/1.1 client processes. Every timed presentation must verify (a fresh challenge
each); a failure aborts the run. ``server_cpu_ms_per_vp`` is the service's CPU time (all its
threads and child processes) over the timed window per verification, ``client_cpu_ms_per_vp``
the client's; ``load1`` the 1-minute load average at the end (other work on the machine).

    python scripts/bench/presentations.py [--quick] [--n N] [--connections C]
        [--client auto|wrk|python] [--chain embedded|anvil] [--py-spy OUT.raw]

The last line is ``key=value`` pairs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from identity.multikey import did_key_from_public_key, verification_method_id
from identity.presentations import build_presentation, sign_presentation
from identity.status import format_datetime
from ledger.node import free_port

DOMAIN = "bench.verifier.example"
ZHIXIN = str(Path(sys.executable).parent / "zhixin")
PATH = "/presentations/verify"
OK_MARK = b'"verified":true'

# wrk sends each pre-made body exactly once: delay() (called before every request) hands out
# one slot per body and parks the connections that find none left; the last response writes
# the done file and stops the thread (the driver then SIGINTs wrk, which prints its summary).
# request() is called once more by wrk itself, to check the script, before any delay(): that
# call sends nothing. Times are CLOCK_MONOTONIC, from the first request to the last response.
WRK_LUA = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } zx_timespec;
int clock_gettime(int clk, zx_timespec *tp);
]]
local ts = ffi.new("zx_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local reqs, n, slots, sent, got, bad = {}, 0, 0, 0, 0, 0
local first, last, done_file = 0, 0, nil
local bad_sample = ""

function init(args)
  done_file = args[2]
  local headers = {["Content-Type"] = "application/json"}
  for line in io.lines(args[1]) do
    n = n + 1
    reqs[n] = wrk.format("POST", "/presentations/verify", headers, line)
  end
end

function delay()
  slots = slots + 1
  if slots <= n then return 0 end
  return 3600000
end

function request()
  if slots == 0 then return reqs[1] end  -- wrk's own check of the script
  sent = sent + 1
  if sent == 1 then first = now_us() end
  return reqs[sent]
end

function response(status, headers, body)
  got = got + 1
  if status ~= 200 or not string.find(body, '"verified":true', 1, true) then
    bad = bad + 1
    if bad == 1 then bad_sample = status .. " " .. string.sub(body, 1, 300) end
  end
  if got == n then
    last = now_us()
    local f = io.open(done_file, "w")
    f:write(string.format("%d %d %d %.0f %.0f\n", got, bad, n, first, last))
    f:close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    "WRK requests=%d p50_us=%d p99_us=%d max_us=%d errors=%d\n",
    summary.requests, latency:percentile(50), latency:percentile(99), latency.max,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout))
end
"""


def start_server(data_dir: Path, chain: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {
        **os.environ,
        "ZHIXIN_DISTRICT_SECRET": "5a" * 32,
        "ZHIXIN_KEYSTORE_PASSWORD": "b",
        "ZHIXIN_LOG_LEVEL": "warning",
        "ZHIXIN_DEMO_SEED": "0",  # no demo scenario at start (a benchmark needs none)
    }
    args = [ZHIXIN, "serve", "--chain", chain, "--dev", "--data-dir", str(data_dir)]
    args += ["--port", str(port)]
    if chain == "anvil":
        args += ["--node-port", str(free_port())]
    log = data_dir.parent / "serve.log"  # a file, not a pipe: a full pipe would stall it
    with log.open("w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("service did not become healthy")


def issuer_auth(client: httpx.Client, tmp: Path) -> dict[str, str]:
    """A bearer header for the dev issuer, signed in by SIWE (EIP-4361)."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from api.auth import SiweMessage

    keys = json.loads((tmp / "data" / "dev-keys.json").read_text())
    key = keys["issuer"]["private_key"]
    n = client.get("/auth/siwe/nonce").json()
    text = SiweMessage(
        domain=n["domain"],
        address=Account.from_key(key).address,
        uri=n["uri"],
        chain_id=n["chainId"],
        nonce=n["nonce"],
        issued_at=n["issuedAt"],
        statement="Sign in to zhixin",
    ).to_text()
    sig = "0x" + bytes(Account.sign_message(encode_defunct(text=text), key).signature).hex()
    r = client.post("/auth/siwe", json={"message": text, "signature": sig})
    r.raise_for_status()
    client.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) of a process and all its live descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(d))
        stats[int(d)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


# ---- clients (separate processes) ----


def run_wrk(
    url: str, bodies: Path, n: int, connections: int, tmp: Path, server_pid: int
) -> dict[str, float]:
    script = tmp / "presentations.lua"
    script.write_text(WRK_LUA)
    done = tmp / "wrk.done"
    cpu0 = cpu_seconds(server_pid)
    wrk = subprocess.Popen(
        [
            *("wrk", "-t1", f"-c{connections}", "-d3600s", "--timeout", "30s"),
            *("-s", str(script), url, "--", str(bodies), str(done)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60 + n / 50
    while not done.exists() or not done.read_text().endswith("\n"):
        if wrk.poll() is not None or time.monotonic() > deadline:
            wrk.kill()
            raise SystemExit(f"wrk did not finish: {wrk.communicate()[0][-2000:]}")
        time.sleep(0.02)
    cpu1 = cpu_seconds(server_pid)
    wrk.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(wrk.pid, 0)
    wrk.returncode = os.waitstatus_to_exitcode(status)
    out = wrk.stdout.read() if wrk.stdout else ""
    got, bad, _total, first, last = done.read_text().split()
    line = next((ln for ln in out.splitlines() if ln.startswith("WRK ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no summary: {out[-2000:]}")
    figures = dict(kv.split("=") for kv in line.split()[1:])
    if int(bad) or int(figures["errors"]) or int(figures["requests"]) != n:
        raise SystemExit(f"verification failed: {bad} bad responses, wrk: {line}\n{out[-1500:]}")
    return {
        "done": int(got),
        "wall_s": (float(last) - float(first)) / 1e6,
        "p50_ms": int(figures["p50_us"]) / 1000,
        "p99_ms": int(figures["p99_us"]) / 1000,
        "client_cpu_s": usage.ru_utime + usage.ru_stime,
        "server_cpu_s": cpu1 - cpu0,
    }


def _py_client(port: int, reqs: list[bytes], connections: int, start_at: float, out: Any) -> None:
    """Raw keep-alive HTTP/1.1: ``connections`` sockets, one request in flight on each."""
    sel = selectors.DefaultSelector()
    todo = list(reversed(reqs))
    lat: list[float] = []
    bad = 0
    state: dict[socket.socket, list[Any]] = {}
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.perf_counter()
    cpu0 = time.process_time()

    def send(s: socket.socket) -> None:
        if todo:
            state[s] = [time.perf_counter(), b""]
            s.sendall(todo.pop())
        else:
            sel.unregister(s)
            s.close()

    for _ in range(min(connections, len(reqs))):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sel.register(s, selectors.EVENT_READ)
        send(s)
    while sel.get_map():
        for key, _ in sel.select():
            s = key.fileobj
            assert isinstance(s, socket.socket)
            st = state[s]
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("server closed a connection")
            st[1] += chunk
            head, sep, body = st[1].partition(b"\r\n\r\n")
            if not sep:
                continue
            length = 0
            for h in head.split(b"\r\n")[1:]:
                name, _, value = h.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(body) < length:
                continue
            lat.append(time.perf_counter() - st[0])
            if not head.startswith(b"HTTP/1.1 200") or OK_MARK not in body:
                bad += 1
            send(s)
    out.put((lat, bad, t0, time.perf_counter(), time.process_time() - cpu0))


def run_python(
    port: int, bodies: list[str], connections: int, procs: int, server_pid: int
) -> dict[str, float]:
    def request(body: str) -> bytes:
        raw = body.encode()
        return (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
        ).encode() + raw

    reqs = [request(b) for b in bodies]
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + 1.0
    per = -(-connections // procs)
    workers = [
        ctx.Process(target=_py_client, args=(port, reqs[i::procs], per, start_at, out))
        for i in range(procs)
    ]
    for w in workers:
        w.start()
    while time.time() < start_at:
        time.sleep(0.001)
    cpu0 = cpu_seconds(server_pid)
    results = [out.get(timeout=600) for _ in workers]
    cpu1 = cpu_seconds(server_pid)
    for w in workers:
        w.join()
    lat = sorted(x for r in results for x in r[0])
    if sum(r[1] for r in results) or len(lat) != len(reqs):
        raise SystemExit(f"verification failed: {sum(r[1] for r in results)} bad responses")
    # monotonic clocks of forked processes share a base: the window is first start..last end
    return {
        "done": len(lat),
        "wall_s": max(r[3] for r in results) - min(r[2] for r in results),
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
        "client_cpu_s": sum(r[4] for r in results),
        "server_cpu_s": cpu1 - cpu0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer presentations (smoke run)")
    ap.add_argument("--n", type=int, default=None, help="presentations to verify (timed)")
    ap.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    ap.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--procs", type=int, default=2, help="python client processes")
    ap.add_argument("--chain", choices=["embedded", "anvil"], default="embedded")
    ap.add_argument("--py-spy", metavar="OUT", help="py-spy raw profile of the timed part")
    args = ap.parse_args()
    n = args.n or (400 if args.quick else 4000)
    client_kind = args.client
    if client_kind == "auto":
        client_kind = "wrk" if shutil.which("wrk") else "python"

    tmp = Path(tempfile.mkdtemp(prefix="zhixin-bench-vp-"))
    proc, url = start_server(tmp / "data", args.chain)
    try:
        client = httpx.Client(base_url=url, timeout=30)
        key = Ed25519PrivateKey.generate()
        holder = did_key_from_public_key(key.public_key())
        subject = {
            "id": holder,
            "verifiedName": "张三",
            "residentIdNumber": "11010519491231002X",
            "verificationLevel": "in-person",
            "residenceDistrict": "禅城区",
        }
        body = {"credential": {"credentialSubject": subject}}
        r = client.post("/credentials/issue", json=body)
        if r.status_code == 401:  # issuing needs an ISSUER session: sign the dev issuer in
            r = client.post("/credentials/issue", json=body, headers=issuer_auth(client, tmp))
        r.raise_for_status()
        vc = r.json()["verifiableCredential"]

        def presentation() -> dict[str, Any]:
            ch = client.post("/challenges", json={"domain": DOMAIN})
            ch.raise_for_status()
            return sign_presentation(
                build_presentation(holder, [vc]),
                private_key=key,
                verification_method=verification_method_id(holder),
                challenge=ch.json()["challenge"],
                domain=DOMAIN,
                created=format_datetime(datetime.now(UTC)),
            )

        t0 = time.perf_counter()
        warm = [presentation() for _ in range(50)]
        bodies = [
            json.dumps({"verifiablePresentation": presentation()}, separators=(",", ":"))
            for _ in range(n)
        ]
        body_file = tmp / "bodies.jsonl"
        body_file.write_text("".join(b + "\n" for b in bodies))
        prep_s = time.perf_counter() - t0
        for vp in warm:  # warm caches (DID, role, anchor, status lists)
            res = client.post(PATH, json={"verifiablePresentation": vp})
            assert res.json()["verified"], res.text
        client.close()

        spy = None
        if args.py_spy:  # profile the server during the timed part only
            spy_bin = str(Path(sys.executable).parent / "py-spy")
            spy_args = ["--threads", "-f", "raw", "-r", "250", "-o", args.py_spy]
            spy = subprocess.Popen(
                [spy_bin, "record", "-p", str(proc.pid), *spy_args],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        if client_kind == "wrk":
            res = run_wrk(url, body_file, n, args.connections, tmp, proc.pid)
        else:
            port = int(url.rsplit(":", 1)[1])
            res = run_python(port, bodies, args.connections, args.procs, proc.pid)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
        done, wall = res["done"], res["wall_s"]
        print(f"prepared {n} challenges+presentations in {prep_s:.1f}s (untimed)")
        print(
            f"chain={args.chain} client={client_kind} connections={args.connections} "
            f"verified={done:.0f} wall_s={wall:.2f} vp_per_s={done / wall:.0f} "
            f"p50_ms={res['p50_ms']:.2f} p99_ms={res['p99_ms']:.2f} "
            f"server_cpu_ms_per_vp={res['server_cpu_s'] * 1000 / done:.3f} "
            f"client_cpu_ms_per_vp={res['client_cpu_s'] * 1000 / done:.3f} "
            f"cpus={os.cpu_count()} load1={os.getloadavg()[0]:.2f}"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
