"""Encrypted eth-account keystores for the service's own keys (governor, relayer, demo).

Invariants: key files are written atomically with mode 0600; a wrong password is a
:class:`KeystoreError` (never a stack trace); private keys never appear in logs or reprs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount

from .deploy import write_json_atomic
from .errors import InvalidInput

__all__ = ["KeystoreError", "account_from_hex", "create_keystore", "load_keystore"]


class KeystoreError(InvalidInput):
    code = "keystore"


def create_keystore(path: Path, password: str, *, kdf: str = "scrypt") -> LocalAccount:
    """Generate a key and store it encrypted at ``path`` (0600). Refuses to overwrite."""
    if not password:
        raise KeystoreError("a keystore password is required (set ZHIXIN_KEYSTORE_PASSWORD)")
    if path.exists():
        raise KeystoreError(f"keystore {path} already exists")
    acct = cast(LocalAccount, Account.create())
    doc = Account.encrypt(acct.key, password, kdf=cast(Any, kdf))
    write_json_atomic(path, doc, mode=0o600)
    return acct


def load_keystore(path: Path, password: str) -> LocalAccount:
    try:
        doc: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeystoreError(f"keystore not found: {path}") from None
    except (ValueError, OSError) as exc:
        raise KeystoreError(f"keystore {path} is not readable JSON: {exc}") from None
    if not password:
        raise KeystoreError(f"keystore {path} needs a password (set ZHIXIN_KEYSTORE_PASSWORD)")
    try:
        key = Account.decrypt(doc, password)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeystoreError(f"wrong password for keystore {path}") from None
        raise KeystoreError(f"keystore {path} is malformed: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise KeystoreError(f"keystore {path} is malformed: missing {exc}") from None
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)
    return cast(LocalAccount, Account.from_key(key))


def account_from_hex(value: str, what: str = "private key") -> LocalAccount:
    v = value.strip().removeprefix("0x")
    if len(v) != 64:
        raise KeystoreError(f"{what} must be 32 bytes of hex")
    try:
        return cast(LocalAccount, Account.from_key(bytes.fromhex(v)))
    except ValueError:
        raise KeystoreError(f"{what} is not a valid secp256k1 key") from None
