"""Python client of the on-chain Roles (permissioning) contract.

Invariants: role names are parsed strictly (unknown names are :class:`UnknownRole`, a
:class:`~ledger.errors.InvalidInput`); every write is simulated first, so an unauthorized call
fails with the contract's named error and sends nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from eth_utils import keccak

from .chain import Chain, Sender, encode_call, parse_address
from .contracts import load_artifact
from .errors import InvalidInput

__all__ = ["Role", "RoleMember", "RolesClient", "UnknownRole", "parse_role"]


class UnknownRole(InvalidInput):
    code = "unknown-role"


class Role(StrEnum):
    GOVERNOR = "GOVERNOR"
    AGENCY = "AGENCY"
    ISSUER = "ISSUER"
    AUDITOR = "AUDITOR"
    RULE_PUBLISHER = "RULE_PUBLISHER"

    @property
    def id(self) -> bytes:
        """keccak256 of the name, as Common.sol defines it."""
        return keccak(text=self.value)


_BY_ID = {r.id: r for r in Role}


def parse_role(name: str) -> Role:
    """Accepts 'agency', 'AGENCY', 'rule-publisher', 'rule_publisher'."""
    key = name.strip().upper().replace("-", "_")
    try:
        return Role(key)
    except ValueError:
        valid = ", ".join(r.value.lower().replace("_", "-") for r in Role)
        raise UnknownRole(f"unknown role {name!r}; valid roles: {valid}") from None


def role_from_id(role_id: bytes) -> Role | None:
    return _BY_ID.get(bytes(role_id))


@dataclass(frozen=True)
class RoleMember:
    role: Role
    account: str
    categories: tuple[int, ...] = ()


class RolesClient:
    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = address
        self.contract = chain.contract(address, load_artifact("Roles").abi)

    def has_role(self, role: Role, account: str) -> bool:
        return bool(
            self.chain._rpc(lambda: self.contract.functions.hasRole(role.id, account).call())
        )

    def can_write(self, agency: str, category: int) -> bool:
        return bool(
            self.chain._rpc(lambda: self.contract.functions.canWrite(agency, category).call())
        )

    def members(self, role: Role) -> list[str]:
        return list(self.chain._rpc(lambda: self.contract.functions.roleMembers(role.id).call()))

    def categories_of(self, agency: str) -> tuple[int, ...]:
        return tuple(self.chain._rpc(lambda: self.contract.functions.categoriesOf(agency).call()))

    def list_all(self) -> list[RoleMember]:
        out: list[RoleMember] = []
        for role in Role:
            for acct in self.members(role):
                cats = self.categories_of(acct) if role is Role.AGENCY else ()
                out.append(RoleMember(role, acct, cats))
        return out

    def grant(self, sender: Sender, role: Role, account: str) -> bool:
        """True if newly granted, False if ``account`` already held ``role``."""
        account = parse_address(account, "account")
        if self.has_role(role, account):
            sender.simulate(
                self.address, encode_call(self.contract, "grantRole", [role.id, account]), "grant"
            )
            return False
        sender.send(
            self.address,
            encode_call(self.contract, "grantRole", [role.id, account]),
            what=f"grant {role.value}",
        )
        return True

    def revoke(self, sender: Sender, role: Role, account: str) -> bool:
        account = parse_address(account, "account")
        data = encode_call(self.contract, "revokeRole", [role.id, account])
        if not self.has_role(role, account):
            sender.simulate(self.address, data, "revoke")
            return False
        sender.send(self.address, data, what=f"revoke {role.value}")
        return True

    def grant_categories(self, sender: Sender, agency: str, categories: Sequence[int]) -> None:
        agency = parse_address(agency, "agency")
        cats = _check_categories(categories)
        sender.send(
            self.address,
            encode_call(self.contract, "grantCategories", [agency, cats]),
            what="grant categories",
        )

    def revoke_categories(self, sender: Sender, agency: str, categories: Sequence[int]) -> None:
        agency = parse_address(agency, "agency")
        cats = _check_categories(categories)
        sender.send(
            self.address,
            encode_call(self.contract, "revokeCategories", [agency, cats]),
            what="revoke categories",
        )


def _check_categories(categories: Sequence[int]) -> list[int]:
    cats = list(categories)
    if not cats:
        raise InvalidInput("no categories given")
    for c in cats:
        if not isinstance(c, int) or isinstance(c, bool) or not 1 <= c <= 0xFFFF:
            raise InvalidInput(f"category id must be an integer 1..65535, got {c!r}")
    return cats
