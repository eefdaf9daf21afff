"""Presentation verifications per second through the HTTP API (real uvicorn server).

Starts ``zhixin serve --chain embedded --dev`` (or ``--chain anvil``) on 127.0.0.1 in a child
process, issues one identity credential to a fresh ``did:key`` holder, pre-issues one
challenge per presentation and pre-signs every presentation (untimed), warms the caches,
then posts the presentations from concurrent httpx2 client threads and times each request.

Every timed presentation must verify (a fresh challenge each); a failure aborts the run.
The last line is ``key=value`` pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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


def start_server(data_dir: Path, chain: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {**os.environ, "ZHIXIN_DISTRICT_SECRET": "5a" * 32, "ZHIXIN_KEYSTORE_PASSWORD": "b"}
    args = [ZHIXIN, "serve", "--chain", chain, "--dev", "--data-dir", str(data_dir)]
    args += ["--port", str(port)]
    if chain == "anvil":
        args += ["--node-port", str(free_port())]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited: {proc.stderr.read() if proc.stderr else ''}")
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer presentations (smoke run)")
    ap.add_argument("--n", type=int, default=None, help="presentations to verify")
    ap.add_argument("--threads", type=int, default=8, help="concurrent client threads")
    ap.add_argument("--chain", choices=["embedded", "anvil"], default="embedded")
    ap.add_argument("--py-spy", metavar="OUT", help="py-spy raw profile of the timed part")
    args = ap.parse_args()
    n = args.n or (400 if args.quick else 4000)

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
        vps = [json.dumps({"verifiablePresentation": presentation()}) for _ in range(n)]
        prep_s = time.perf_counter() - t0
        for vp in warm:  # warm caches (DID, role, anchor, status lists) and connections
            res = client.post("/presentations/verify", json={"verifiablePresentation": vp})
            assert res.json()["verified"], res.text

        local = threading.local()
        headers = {"content-type": "application/json"}

        def verify(body: str) -> float:
            c = getattr(local, "c", None)
            if c is None:
                c = local.c = httpx.Client(base_url=url, timeout=30)
            t = time.perf_counter()
            res = c.post("/presentations/verify", content=body, headers=headers)
            dt = time.perf_counter() - t
            if res.status_code != 200 or not res.json()["verified"]:
                raise SystemExit(f"verification failed: {res.status_code} {res.text[:300]}")
            return dt

        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(verify, vps[: args.threads * 4]))  # warm each thread's connection
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
            t0 = time.perf_counter()
            lat = list(pool.map(verify, vps[args.threads * 4 :]))
            wall = time.perf_counter() - t0
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=30)
        lat.sort()
        done = len(lat)
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(done - 1, int(done * 0.99))] * 1000
        print(f"prepared {n} challenges+presentations in {prep_s:.1f}s (untimed)")
        print(
            f"chain={args.chain} threads={args.threads} verified={done} wall_s={wall:.2f} "
            f"vp_per_s={done / wall:.0f} p50_ms={p50:.2f} p99_ms={p99:.2f} "
            f"cpus={os.cpu_count()}"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
