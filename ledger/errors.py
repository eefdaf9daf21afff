"""The one error tree of zhixin.

Invariants: every error a caller can cause derives from :class:`ZhixinError`; errors about
bad *data* (a caller can fix the input) derive from :class:`InvalidInput` and never from
:class:`TransportError`, so that an adapter can map the former to a 4xx and the latter to a
503/retry. Each error carries a stable ``code`` (used as the RFC 9457 problem ``type`` suffix)
and a human ``detail``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ChainError",
    "ConfigurationError",
    "ContractReverted",
    "DeploymentMismatch",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "TransportError",
    "ZhixinError",
]


class ZhixinError(Exception):
    """Root of every error zhixin raises on purpose."""

    code: str = "error"
    status: int = 500

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInput(ZhixinError, ValueError):
    """The caller sent something malformed or semantically wrong; nothing was written."""

    code = "invalid-input"
    status = 422


class NotFound(ZhixinError, LookupError):
    code = "not-found"
    status = 404


class Forbidden(ZhixinError, PermissionError):
    code = "forbidden"
    status = 403


class ConfigurationError(ZhixinError):
    """The service's own set-up is wrong (bad data dir, missing tool, wrong password)."""

    code = "configuration"
    status = 500


class DeploymentMismatch(ConfigurationError):
    """deployment.json does not describe the chain we are connected to."""

    code = "deployment-mismatch"


class ChainError(ZhixinError):
    """Something about the chain, not about the caller's data."""

    code = "chain"
    status = 502


class TransportError(ChainError, ConnectionError):
    """The node could not be reached or answered garbage; retrying may help."""

    code = "chain-unavailable"
    status = 503


class ContractReverted(ChainError):
    """A call reverted; ``error_name`` and ``args`` decode the custom error when known."""

    code = "contract-reverted"
    status = 409

    def __init__(
        self, detail: str, *, error_name: str | None = None, args: tuple[Any, ...] = ()
    ) -> None:
        super().__init__(detail, error_name=error_name, args=args)
        self.error_name = error_name
        self.error_args = args
