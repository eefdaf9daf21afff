"""Chain backends behind one small interface, and local transaction signing.

Three backends give a :class:`Chain`:
- ``embedded``: eth-tester with PyEVM, in-process, for tests;
- ``anvil``: a supervised anvil child on 127.0.0.1 (see :mod:`ledger.node`);
- ``external``: any Ethereum JSON-RPC URL (production: Hyperledger Besu QBFT).

Invariants:
- On the production path only standard ``eth_*`` methods are used; the embedded backend's
  funding of fresh accounts (its genesis has a non-zero base fee) is the one exception, and it
  lives only in :class:`EmbeddedChain`.
- Transactions are signed locally (eth-account, coincurve) and sent raw; a :class:`Sender`
  owns its account's nonce, so one process never races itself.
- Every write is simulated with ``eth_call`` first: a revert is reported as
  :class:`~ledger.errors.ContractReverted` with the decoded custom error and nothing is sent.
"""

from __future__ import annotations

import ast
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import function_abi_to_4byte_selector, keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from .errors import ChainError, ContractReverted, InvalidInput, TransportError

__all__ = [
    "Chain",
    "EmbeddedChain",
    "ErrorDecoder",
    "RpcChain",
    "Sender",
    "TxResult",
    "parse_address",
]


def parse_address(value: str, what: str = "address") -> str:
    """Checksum address from user input, or InvalidInput naming what was wrong."""
    v = value.strip()
    if not (v.startswith(("0x", "0X")) and len(v) == 42):
        raise InvalidInput(f"{what} must be 0x followed by 40 hex digits, got {value!r}")
    try:
        int(v[2:], 16)
    except ValueError:
        raise InvalidInput(f"{what} is not hexadecimal: {value!r}") from None
    if v[2:] != v[2:].lower() and v[2:] != v[2:].upper():
        try:
            if to_checksum_address(v) != v:
                raise InvalidInput(f"{what} has a wrong EIP-55 checksum: {value!r}")
        except ValueError:
            raise InvalidInput(f"{what} is invalid: {value!r}") from None
    return to_checksum_address(v.lower())


class Chain:
    """A connection to one EVM chain."""

    kind: str = "abstract"

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self._chain_id: int | None = None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self._rpc(lambda: int(self.w3.eth.chain_id))
        return self._chain_id

    def head(self) -> int:
        return self._rpc(lambda: int(self.w3.eth.block_number))

    def code_at(self, address: str) -> bytes:
        return self._rpc(lambda: bytes(self.w3.eth.get_code(cast(Any, address))))

    def fund(self, address: str) -> None:
        """Make ``address`` able to pay for gas. Free-gas chains (Besu, our anvil) need nothing."""

    def fee_fields(self) -> dict[str, int]:
        """Fee fields for a new transaction: zero on free-gas chains, 2x base fee otherwise."""
        block = self._rpc(lambda: self.w3.eth.get_block("latest"))
        base = block.get("baseFeePerGas")
        if base is None:
            return {"gasPrice": self._rpc(lambda: int(self.w3.eth.gas_price))}
        return {"maxFeePerGas": 2 * int(base), "maxPriorityFeePerGas": 0}

    def contract(self, address: str, abi: list[dict[str, Any]]) -> Contract:
        return self.w3.eth.contract(address=cast(Any, address), abi=abi)

    def close(self) -> None:
        """Release the connection (and any child process the backend owns)."""

    def _rpc(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (ConnectionError, OSError, TimeoutError) as exc:
            raise TransportError(f"chain node unreachable: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("requests"):
                raise TransportError(f"chain node unreachable: {exc}") from exc
            raise

    def status(self) -> dict[str, Any]:
        return {"kind": self.kind}


class EmbeddedChain(Chain):
    """eth-tester + PyEVM in this process: fast to start, gone when the process ends."""

    kind = "embedded"

    def __init__(self) -> None:
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider

        params = PyEVMBackend.generate_genesis_params(overrides={"gas_limit": 100_000_000})
        self.tester = EthereumTester(PyEVMBackend(genesis_parameters=params))
        super().__init__(Web3(EthereumTesterProvider(self.tester)))
        self._faucet = self.tester.get_accounts()[0]
        self._lock = threading.Lock()

    def fund(self, address: str) -> None:
        with self._lock:
            if self.w3.eth.get_balance(cast(Any, address)) >= 10**20:
                return
            self.tester.send_transaction(
                {
                    "from": self._faucet,
                    "to": address,
                    "value": 10**21,
                    "gas": 21_000,
                    "max_fee_per_gas": 10**11,
                    "max_priority_fee_per_gas": 1,
                }
            )


class RpcChain(Chain):
    """A JSON-RPC node: our supervised anvil child or an external (Besu) network."""

    kind = "external"

    def __init__(self, url: str, *, timeout: float = 30.0, kind: str = "external") -> None:
        from web3 import HTTPProvider

        self.url = url
        self.kind = kind
        w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))
        # "validation" asks eth_chainId before every eth_call (doubling round trips); we sign
        # locally with an explicit chainId and never use ENS names
        for name in ("validation", "ens_name_to_address", "gas_price_strategy"):
            with contextlib.suppress(ValueError, KeyError):
                w3.middleware_onion.remove(name)
        super().__init__(w3)

    def status(self) -> dict[str, Any]:
        return {"kind": self.kind, "rpc_url": self.url}


class ErrorDecoder:
    """Decodes revert data into (custom error name, args) using contract ABIs."""

    def __init__(self, *abis: list[dict[str, Any]]) -> None:
        self._errors: dict[bytes, dict[str, Any]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") == "error":
                    self._errors[function_abi_to_4byte_selector(cast(Any, item))] = item

    def decode(self, data: bytes) -> tuple[str | None, tuple[Any, ...]]:
        if len(data) < 4:
            return None, ()
        if data[:4] == keccak(text="Error(string)")[:4]:
            return "Error", tuple(abi_decode(["string"], data[4:]))
        item = self._errors.get(data[:4])
        if item is None:
            return None, ()
        types = [i["type"] for i in item["inputs"]]
        try:
            values = abi_decode(types, data[4:])
        except Exception:
            return item["name"], ()
        return item["name"], tuple(
            to_checksum_address(v) if t == "address" else v
            for t, v in zip(types, values, strict=True)
        )


def _revert_data(exc: Exception) -> bytes | None:
    """Raw revert bytes from eth-tester's or web3's exception, whichever raised."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, dict):
        inner = data.get("data")
        if isinstance(inner, str) and inner.startswith("0x"):
            return bytes.fromhex(inner[2:])
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, bytes | bytearray):
            return bytes(arg)
        if isinstance(arg, str) and arg.startswith("execution reverted: b"):
            # eth-tester puts the raw revert bytes' repr into its message
            with contextlib.suppress(ValueError, SyntaxError):
                raw = ast.literal_eval(arg.removeprefix("execution reverted: "))
                if isinstance(raw, bytes):
                    return raw
        if isinstance(arg, str) and arg.startswith("0x"):
            try:
                return bytes.fromhex(arg[2:])
            except ValueError:
                continue
    return None


@dataclass(frozen=True)
class TxResult:
    tx_hash: str
    block_number: int
    gas_used: int
    receipt: TxReceipt


class Sender:
    """Signs and sends transactions from one local account, owning its nonce."""

    def __init__(self, chain: Chain, account: LocalAccount, decoder: ErrorDecoder) -> None:
        self.chain = chain
        self.account = account
        self.decoder = decoder
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self.receipt_timeout = 60.0
        chain.fund(account.address)

    def reset_nonce(self) -> None:
        """Forget the cached nonce (after the node restarted or a transaction vanished)."""
        with self._lock:
            self._nonce = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    def _revert(self, exc: Exception, what: str) -> ContractReverted:
        data = _revert_data(exc)
        name, args = self.decoder.decode(data) if data else (None, ())
        if name is None:
            return ContractReverted(f"{what} reverted: {exc}")
        shown = ", ".join("0x" + a.hex() if isinstance(a, bytes) else str(a) for a in args)
        return ContractReverted(f"{what} reverted: {name}({shown})", error_name=name, args=args)

    def simulate(self, to: str, data: bytes, what: str = "call") -> bytes:
        """eth_call from this account; raises ContractReverted with the decoded error."""
        try:
            return bytes(
                self.chain.w3.eth.call(
                    cast(Any, {"from": self.address, "to": to, "data": data}), "latest"
                )
            )
        except (ConnectionError, OSError) as exc:
            raise TransportError(f"chain node unreachable: {exc}") from exc
        except Exception as exc:
            raise self._revert(exc, what) from exc

    def send(
        self,
        to: str | None,
        data: bytes,
        *,
        gas: int | None = None,
        what: str = "transaction",
        simulate: bool = True,
        wait: bool = True,
        timeout: float | None = None,
    ) -> TxResult | str:
        """Simulate, sign and send; returns the receipt summary (or the hash if not waiting)."""
        w3 = self.chain.w3
        if simulate and to is not None:
            self.simulate(to, data, what)
        if gas is None:
            tx_est: dict[str, Any] = {"from": self.address, "data": data}
            if to is not None:
                tx_est["to"] = to
            try:
                gas = int(w3.eth.estimate_gas(cast(Any, tx_est)) * 1.2) + 10_000
            except (ConnectionError, OSError) as exc:
                raise TransportError(f"chain node unreachable: {exc}") from exc
            except Exception as exc:
                raise self._revert(exc, what) from exc
        with self._lock:
            if self._nonce is None:
                self._nonce = int(
                    self.chain._rpc(
                        lambda: w3.eth.get_transaction_count(cast(Any, self.address), "pending")
                    )
                )
            tx: dict[str, Any] = {
                "nonce": self._nonce,
                "gas": gas,
                "chainId": self.chain.chain_id,
                "data": data,
                "value": 0,
                **self.chain.fee_fields(),
            }
            if to is not None:
                tx["to"] = to
            signed = self.account.sign_transaction(tx)
            try:
                tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
            except (ConnectionError, OSError) as exc:
                self._nonce = None  # unknown whether it got through: re-read next time
                raise TransportError(f"chain node unreachable: {exc}") from exc
            except Exception as exc:
                self._nonce = None
                raise self._revert(exc, what) from exc
            self._nonce += 1
        if not wait:
            return "0x" + bytes(tx_hash).hex()
        return self.wait(bytes(tx_hash), what=what, timeout=timeout)

    def wait(
        self, tx_hash: bytes, *, what: str = "transaction", timeout: float | None = None
    ) -> TxResult:
        timeout = self.receipt_timeout if timeout is None else timeout
        try:
            receipt = self.chain.w3.eth.wait_for_transaction_receipt(
                cast(Any, tx_hash), timeout=timeout, poll_latency=0.05
            )
        except (ConnectionError, OSError) as exc:
            self.reset_nonce()
            raise TransportError(f"chain node unreachable: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("requests"):
                self.reset_nonce()
                raise TransportError(f"chain node unreachable: {exc}") from exc
            if type(exc).__name__ == "TimeExhausted":
                # the node may have lost it (restart): later sends must re-read the nonce
                self.reset_nonce()
                raise ChainError(f"{what}: no receipt after {timeout}s") from exc
            raise
        if receipt["status"] != 1:
            raise ContractReverted(f"{what} reverted on chain (tx 0x{tx_hash.hex()})")
        return TxResult(
            tx_hash="0x" + tx_hash.hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            receipt=receipt,
        )

    def deploy(self, bytecode: bytes, ctor_data: bytes = b"", *, what: str) -> TxResult:
        res = self.send(None, bytecode + ctor_data, what=what, simulate=False)
        assert isinstance(res, TxResult)
        return res


def new_account() -> LocalAccount:
    return cast(LocalAccount, Account.create())


def encode_call(contract: Contract, fn: str, args: Sequence[Any]) -> bytes:
    return bytes.fromhex(contract.encode_abi(fn, args=list(args))[2:])
