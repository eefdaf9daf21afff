"""The one Settings object; every value can come from a ZHIXIN_* environment variable."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.node import DEFAULT_CHAIN_ID

__all__ = ["Settings"]

DEV_PASSWORD = "zhixin-dev-only"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZHIXIN_", extra="ignore")

    data_dir: Path = Path("data")
    chain: Literal["anvil", "embedded", "external"] = "anvil"
    rpc_url: str | None = None
    chain_id: int = DEFAULT_CHAIN_ID
    node_port: int = 8545
    block_time: float = 1.0
    state_interval: int = 1

    host: str = "127.0.0.1"
    port: int = 8000
    public_domain: str | None = Field(
        default=None, description="EIP-4361 domain (authority) users sign in to; default host:port"
    )
    public_url: str | None = Field(default=None, description="the service's public base URL")
    session_ttl_s: int = Field(default=1800, ge=60, description="sign-in session lifetime")
    nonce_ttl_s: int = Field(default=300, ge=10, description="SIWE nonce / DID challenge life")

    keystore: Path | None = Field(default=None, description="governor keystore path")
    keystore_password: SecretStr | None = None
    governor_key: SecretStr | None = Field(default=None, description="hex key, overrides keystore")

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite file in the data dir"
    )
    district_secret: SecretStr | None = Field(
        default=None, description="hex HMAC key for subject pseudonyms (>= 32 bytes)"
    )
    batch_size: int = 200
    verify_workers: int = Field(
        default=2, description="processes checking signatures of large requests (0 = inline)"
    )
    checkpoint_every_records: int = 1000
    checkpoint_every_s: float = 300.0
    index_poll_s: float = 0.2
    stats_min_cell: int = Field(
        default=5,
        ge=1,
        description="statistics: a cell (or total) with fewer distinct subjects is suppressed",
    )

    dev: bool = False
    demo_seed: bool = Field(
        default=True, description="with --dev, seed the demo scenario at start (benchmarks: off)"
    )

    def password(self) -> str:
        if self.keystore_password is not None:
            return self.keystore_password.get_secret_value()
        return DEV_PASSWORD if self.dev else ""

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'zhixin.db'}"

    @property
    def keystore_path(self) -> Path:
        return self.keystore or self.data_dir / "governor.keystore.json"
