"""What a running service holds: the chain (and its node child), the deployment, the clients.

Invariants:
- One service per data dir (an exclusive lock file), so two processes never share a node state
  file or nonces.
- Start-up either ends with a verified deployment or fails with a one-line ZhixinError, having
  written nothing it cannot reuse.
- :meth:`Runtime.close` stops the node child; it is safe to call twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine

from ledger.catalog import load_catalog
from ledger.chain import Chain, EmbeddedChain, RpcChain, Sender, new_account
from ledger.credit import CreditLedgerClient
from ledger.credit_service import CreditService
from ledger.db import make_engine, migrate
from ledger.deploy import Deployment, decoder, ensure_deployment, write_json_atomic
from ledger.errors import ConfigurationError, TransportError, ZhixinError
from ledger.index import Indexer, RecordFanout
from ledger.keys import account_from_hex, create_keystore, load_keystore
from ledger.node import AnvilNode
from ledger.outbox import Outbox, Submitter
from ledger.roles import Role, RolesClient

from .settings import Settings

__all__ = ["DEMO_IDENTITIES", "Runtime", "open_chain_for_cli"]

log = logging.getLogger("zhixin.runtime")


# name -> (role, catalog category codes for agencies)
DEMO_IDENTITIES: dict[str, tuple[Role, tuple[str, ...]]] = {
    "governor": (Role.GOVERNOR, ()),
    "agency-tax": (Role.AGENCY, ("tax.",)),
    "agency-market": (Role.AGENCY, ("admin_penalty.", "market.", "food_drug.", "contract.")),
    "agency-community": (Role.AGENCY, ("volunteer.", "health.", "honour.", "charity.")),
    "issuer": (Role.ISSUER, ()),
    "auditor": (Role.AUDITOR, ()),
    "rule-publisher": (Role.RULE_PUBLISHER, ()),
}


@dataclass
class Runtime:
    settings: Settings
    chain: Chain
    deployment: Deployment
    governor: Sender | None
    node: AnvilNode | None = None
    started_at: float = field(default_factory=time.time)
    _lock: IO[str] | None = None
    dev_identities: dict[str, dict[str, Any]] = field(default_factory=dict)
    engine: Engine | None = None
    credit: CreditService | None = None
    indexer: Indexer | None = None
    submitter: Submitter | None = None
    # ---- rules (joint reward and punishment) ----
    tlog: Any = None  # ledger.tlog_service.TransparencyLog
    anchorer: Any = None  # ledger.tlog_service.Anchorer
    rules: Any = None  # ledger.rules_service.RulesService
    webhooks: Any = None  # ledger.webhooks.WebhookService
    record_listeners: list[Any] = field(default_factory=list)  # indexer on_records subscribers
    fanout: RecordFanout | None = None  # calls record_listeners off the follower thread
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def tlog_final_depth(self) -> int:
        """How deep a record must be before the transparency log appends it: as deep as the
        outbox's finality on a node that can lose its last blocks; 0 on the embedded chain,
        which cannot lose blocks without the service."""
        if self.settings.chain == "embedded":
            return 0
        return self.submitter.final_depth if self.submitter is not None else 5

    @property
    def roles(self) -> RolesClient:
        return RolesClient(self.chain, self.deployment.address("Roles"))

    def _start_services(self) -> None:
        """Database, outbox submitter, index follower and node watchdog."""
        st = self.settings
        url = st.db_url
        if st.chain == "embedded" and st.database_url is None:
            # an in-memory chain is new every start: so is its index
            url = f"sqlite:///{st.data_dir / 'embedded.db'}"
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    (st.data_dir / f"embedded.db{suffix}").unlink()
        self.engine = make_engine(url)
        migrate(self.engine)
        relayer = Sender(self.chain, _relayer_account(st), decoder())
        relayer.receipt_timeout = 10.0  # a lost transaction is resent, not waited for
        ledger = CreditLedgerClient(self.chain, self.deployment.address("CreditLedger"))
        box = Outbox(self.engine)
        self.submitter = Submitter(box, ledger, relayer, batch_size=st.batch_size)
        self.credit = CreditService(
            engine=self.engine,
            box=box,
            ledger=ledger,
            roles=self.roles,
            catalog=load_catalog(),
            secret=_district_secret(st),
            on_accept=self.submitter.wake,
        )
        if st.verify_workers > 0:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: this process already runs threads
            self.credit.pool = ProcessPoolExecutor(
                st.verify_workers, mp_context=multiprocessing.get_context("spawn")
            )
            self.credit.pool_workers = st.verify_workers
        self.indexer = Indexer(self.chain, self.engine, self.deployment)
        self.indexer.pool, self.indexer.pool_workers = self.credit.pool, self.credit.pool_workers
        # ---- rules (joint reward and punishment): begin ----
        self.fanout = RecordFanout(self._on_records)
        self.fanout.start()
        self.indexer.on_records = self.fanout.put
        self._start_rules()
        # ---- rules: end ----
        self._start_tlog()
        self.indexer.sync()
        self.submitter.start()
        self._spawn(self._follow, "zhixin-indexer")
        if self.node is not None:
            self._spawn(self._watch_node, "zhixin-node-watchdog")

    def _on_records(self, records: list[Any]) -> None:
        """Fan indexed records out to every registered listener; one failing stops no other."""
        for listener in list(self.record_listeners):
            try:
                listener(records)
            except Exception:
                log.exception("record listener %r failed", listener)

    def _start_tlog(self) -> None:
        """The transparency log over all records, and periodic anchoring of its root."""
        from ledger.tlog_service import Anchorer, TransparencyLog, load_or_create_key, log_origin

        assert self.engine is not None
        origin = log_origin(self.deployment.chain_id, self.deployment.address("CreditLedger"))
        self.tlog = TransparencyLog.from_index(
            self.engine,
            origin,
            load_or_create_key(self.settings.data_dir),
            final_depth=self.tlog_final_depth,
        )
        publisher = getattr(self.rules, "publisher", None)
        self.anchorer = Anchorer(
            self.tlog,
            publisher,
            self.deployment.contracts.get("RuleRegistry"),
            every_records=self.settings.checkpoint_every_records,
            every_seconds=self.settings.checkpoint_every_s,
        )
        registry = self.deployment.contracts.get("RuleRegistry")
        if registry is not None:  # resume after the last anchored size (it must only grow)
            from ledger.rules_registry import RuleRegistryClient

            self.anchorer.anchored_size = (
                RuleRegistryClient(self.chain, registry).latest_checkpoint().tree_size
            )
            self.anchorer.anchored_at = time.time()
        self._spawn(self._anchor_loop, "zhixin-tlog")

    def _anchor_loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                assert self.engine is not None
                self.tlog.sync(self.engine)
                self.anchorer.maybe_anchor(time.time())
            except ZhixinError as exc:
                log.warning("transparency log: %s", exc.detail)
            except Exception:
                log.exception("transparency log failed; retrying")

    def _start_rules(self) -> None:
        """Rule registry client, rules service (incremental, hooked to the index), webhooks."""
        from ledger.rules import load_measures
        from ledger.rules_registry import RuleRegistryClient
        from ledger.rules_service import RulesService
        from ledger.webhooks import WebhookService

        assert self.engine is not None and self.credit is not None and self.indexer is not None
        measures = load_measures()
        self.webhooks = WebhookService(
            self.engine,
            known_sectors={m.agency for m in measures.measures},
            secret_key=_webhook_key(self.settings),
        )
        publisher = None
        key = self.dev_identities.get("rule-publisher", {}).get("private_key")
        path = self.settings.data_dir / "publisher.keystore.json"
        if key:
            publisher = Sender(self.chain, account_from_hex(key), decoder())
        elif path.exists():
            publisher = Sender(self.chain, load_keystore(path, self.settings.password()), decoder())
        self.rules = RulesService(
            engine=self.engine,
            registry=RuleRegistryClient(self.chain, self.deployment.address("RuleRegistry")),
            ledger=self.credit.ledger,
            credit=self.credit,
            catalog=self.credit.catalog,
            measures=measures,
            publisher=publisher,
            webhooks=self.webhooks,
            deploy_block=self.deployment.deploy_block,
            sync_index=self.indexer.sync,
        )
        self.rules.start()
        self.record_listeners.append(self.rules.on_records)
        self.webhooks.start()

    def _spawn(self, fn: Any, name: str) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _follow(self) -> None:
        assert self.indexer is not None
        while not self._stop.wait(self.settings.index_poll_s):
            try:
                self.indexer.sync(max_pages=20)
            except ZhixinError as exc:
                log.warning("indexer: %s", exc.detail)
                self._stop.wait(1.0)
            except Exception:
                log.exception("indexer failed; retrying")
                self._stop.wait(1.0)

    def _watch_node(self) -> None:
        assert self.node is not None
        while not self._stop.wait(0.5):
            try:
                if self.node.restart_if_dead():
                    log.warning("local node died and was restarted from its saved state")
                    if self.submitter is not None:
                        self.submitter.sender.reset_nonce()
            except ZhixinError as exc:
                log.error("cannot restart the local node: %s", exc.detail)

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        data_dir = settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = _lock_data_dir(data_dir)
        node: AnvilNode | None = None
        chain: Chain | None = None
        try:
            _district_secret(settings)  # fail before anything is deployed or written
            if settings.chain == "embedded":
                chain = EmbeddedChain()
            elif settings.chain == "anvil":
                node = AnvilNode(
                    data_dir,
                    port=settings.node_port,
                    chain_id=settings.chain_id,
                    block_time=settings.block_time,
                    state_interval=settings.state_interval,
                )
                chain = node.start()
            else:
                if not settings.rpc_url:
                    raise ConfigurationError("--chain external needs --rpc-url (ZHIXIN_RPC_URL)")
                chain = RpcChain(settings.rpc_url)
                chain.head()
            dep_path = data_dir / "deployment.json"
            governor = _governor_sender(settings, chain, must_exist=False)
            if settings.chain == "embedded":
                # an in-memory chain is new every start: its deployment must not be persisted
                from ledger.deploy import deploy_contracts

                if governor is None:
                    governor = Sender(chain, new_account(), decoder())
                dep = deploy_contracts(chain, governor)
            else:
                if governor is None and not dep_path.exists():
                    governor = _governor_sender(settings, chain, must_exist=True)
                settle = settings.state_interval + 0.5 if node else 0.0
                assert governor is not None or dep_path.exists()
                dep = (
                    ensure_deployment(chain, governor, dep_path, settle_seconds=settle)
                    if governor is not None
                    else Deployment.load(dep_path)
                )
                if governor is None:
                    from ledger.deploy import verify_deployment

                    verify_deployment(chain, dep)
                write_json_atomic(data_dir / "node.json", chain.status())
            rt = cls(settings, chain, dep, governor, node, _lock=lock)
            if settings.dev:
                rt.dev_identities = rt._provision_dev()
            rt._start_services()
            return rt
        except BaseException:
            if chain is not None:
                chain.close()
            if node is not None:
                node.stop()
            _unlock(lock)
            raise

    def close(self) -> None:
        """Graceful: drain the outbox, stop the follower and watchdog, then the node."""
        if self.submitter is not None:
            self.submitter.stop()
            self.submitter = None
        if self.webhooks is not None:  # rules: stop the delivery worker (pending rows stay)
            self.webhooks.stop()
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()
        if self.fanout is not None:  # after the follower: deliver what it indexed last
            self.fanout.stop()
            self.fanout = None
        if self.credit is not None and self.credit.pool is not None:
            self.credit.pool.shutdown(wait=True, cancel_futures=True)
            self.credit.pool = None
        if self.engine is not None:
            self.engine.dispose()
        self.chain.close()
        if self.node is not None:
            self.node.stop()
        with contextlib.suppress(FileNotFoundError):
            (self.settings.data_dir / "node.json").unlink()
        _unlock(self._lock)
        self._lock = None

    def health(self) -> dict[str, Any]:
        status = self.chain.status()
        try:
            head = self.chain.head()
            status["status"] = "up"
        except TransportError as exc:
            head = None
            status["status"] = f"down: {exc.detail}"
        return {
            "status": "ok" if head is not None else "degraded",
            "chain_id": self.deployment.chain_id,
            "head_block": head,
            "deploy_block": self.deployment.deploy_block,
            "contracts": self.deployment.contracts,
            "node": status,
            "uptime_s": round(time.time() - self.started_at, 1),
        }

    def _provision_dev(self) -> dict[str, dict[str, Any]]:
        """Demo identities with roles on chain; keys in dev-keys.json (demo and tests only)."""
        path = self.settings.data_dir / "dev-keys.json"
        catalog = load_catalog()
        existing: dict[str, dict[str, Any]] = {}
        if path.exists():
            existing = json.loads(path.read_text())
        gov = self.governor
        if gov is None:
            raise ConfigurationError("--dev needs the governor key to grant demo roles")
        roles = self.roles
        out: dict[str, dict[str, Any]] = {}
        for name, (role, prefixes) in DEMO_IDENTITIES.items():
            if name == "governor":
                acct = gov.account
            elif name in existing:
                acct = account_from_hex(existing[name]["private_key"])
            else:
                acct = new_account()
            cats = sorted(c.id for c in catalog if c.code.startswith(prefixes)) if prefixes else []
            if not roles.has_role(role, acct.address):
                roles.grant(gov, role, acct.address)
            if cats:
                have = set(roles.categories_of(acct.address))
                todo = [c for c in cats if c not in have]
                if todo:
                    roles.grant_categories(gov, acct.address, todo)
            out[name] = {
                "address": acct.address,
                "private_key": "0x" + bytes(acct.key).hex(),
                "role": role.value,
                "categories": [catalog.by_id(c).code for c in cats],
            }
        write_json_atomic(path, out, mode=0o600)
        return out


def _relayer_account(settings: Settings) -> LocalAccount:
    """The service's own key that relays signed records (it authorizes nothing)."""
    if settings.chain == "embedded":
        return new_account()
    path = settings.data_dir / "relayer.keystore.json"
    if path.exists():
        return load_keystore(path, settings.password())
    return create_keystore(path, settings.password())


def _webhook_key(settings: Settings) -> bytes:
    """The key that seals webhook secrets at rest: derived from the district secret (HKDF), so
    it lives in configuration like that secret and never in the database."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(hashes.SHA256(), 32, salt=None, info=b"zhixin webhook secrets v1")
    return hkdf.derive(_district_secret(settings))


def _district_secret(settings: Settings) -> bytes:
    """The HMAC key for pseudonyms: configuration only (dev mode generates one in the data dir)."""
    if settings.district_secret is not None:
        raw = settings.district_secret.get_secret_value().strip().removeprefix("0x")
        try:
            key = bytes.fromhex(raw)
        except ValueError:
            raise ConfigurationError("ZHIXIN_DISTRICT_SECRET must be hex") from None
        if len(key) < 32:
            raise ConfigurationError("ZHIXIN_DISTRICT_SECRET must be at least 32 bytes")
        return key
    if not settings.dev:
        raise ConfigurationError("set ZHIXIN_DISTRICT_SECRET (hex, >= 32 bytes) for pseudonyms")
    path = settings.data_dir / "district-secret.dev"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _governor_sender(settings: Settings, chain: Chain, *, must_exist: bool) -> Sender | None:
    acct = governor_account(settings, create=must_exist)
    return Sender(chain, acct, decoder()) if acct is not None else None


def governor_account(settings: Settings, *, create: bool = False) -> LocalAccount | None:
    if settings.governor_key is not None:
        return account_from_hex(settings.governor_key.get_secret_value(), "ZHIXIN_GOVERNOR_KEY")
    path = settings.keystore_path
    if path.exists():
        return load_keystore(path, settings.password())
    if settings.keystore is not None:
        raise ConfigurationError(f"keystore not found: {path}")
    if create:
        return create_keystore(path, settings.password())
    return None


def _lock_data_dir(data_dir: Path) -> IO[str]:
    f = open(data_dir / ".lock", "w")  # noqa: SIM115 - held for the runtime's life
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise ConfigurationError(
            f"data dir {data_dir} is in use by another zhixin process"
        ) from None
    f.write(str(os.getpid()))
    f.flush()
    return cast(IO[str], f)


def _unlock(f: IO[str] | None) -> None:
    if f is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def open_chain_for_cli(settings: Settings) -> tuple[Chain, Deployment, AnvilNode | None]:
    """A chain for a one-shot CLI command: the running service's node, or a temporary one.

    With a local-node data dir whose service is stopped, the node is started on the saved state
    for the command and stopped afterwards (its state is dumped on stop).
    """
    data_dir = settings.data_dir
    dep_path = data_dir / "deployment.json"
    if settings.chain == "embedded":
        raise ConfigurationError("the embedded chain lives inside `zhixin serve`; use the API")
    if not dep_path.exists():
        raise ConfigurationError(
            f"{dep_path} not found: run `zhixin serve --data-dir {data_dir}` once to deploy"
        )
    dep = Deployment.load(dep_path)
    url = settings.rpc_url
    node_info = data_dir / "node.json"
    if url is None and node_info.exists():
        url = json.loads(node_info.read_text()).get("rpc_url")
    node: AnvilNode | None = None
    if url is not None:
        chain: Chain = RpcChain(url)
        try:
            chain.head()
        except TransportError:
            if settings.chain != "anvil" or settings.rpc_url is not None:
                raise
            url = None
    if url is None:
        if settings.chain != "anvil":
            raise ConfigurationError("no RPC URL: pass --rpc-url")
        from ledger.node import free_port

        lock = _lock_data_dir(data_dir)
        _unlock(lock)  # only a probe: serve is not running on this dir
        node = AnvilNode(data_dir, port=free_port(), chain_id=dep.chain_id)
        chain = node.start()
    from ledger.deploy import verify_deployment

    try:
        verify_deployment(chain, dep)
    except BaseException:
        if node:
            node.stop()
        raise
    return chain, dep, node
