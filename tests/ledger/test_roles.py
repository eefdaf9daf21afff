"""Roles contract on both backends: grants, revokes, scopes, and every unauthorized path."""

from __future__ import annotations

import pytest

from ledger.chain import Chain, Sender, new_account
from ledger.deploy import Deployment, decoder
from ledger.errors import ContractReverted, InvalidInput
from ledger.roles import Role, RolesClient, UnknownRole, parse_role


@pytest.fixture
def roles(chain: Chain, deployment: Deployment) -> RolesClient:
    return RolesClient(chain, deployment.address("Roles"))


def outsider(chain: Chain) -> Sender:
    return Sender(chain, new_account(), decoder())


def test_deployer_is_governor(roles: RolesClient, governor: Sender) -> None:
    assert roles.members(Role.GOVERNOR) == [governor.address]
    assert roles.has_role(Role.GOVERNOR, governor.address)


def test_grant_and_revoke_each_role(roles: RolesClient, governor: Sender) -> None:
    acct = new_account().address
    for role in Role:
        assert roles.grant(governor, role, acct) is True
        assert roles.has_role(role, acct)
        assert roles.grant(governor, role, acct) is False  # idempotent, no second event
    for role in Role:
        assert roles.revoke(governor, role, acct) is True
        assert not roles.has_role(role, acct)
        assert roles.revoke(governor, role, acct) is False
    assert roles.members(Role.GOVERNOR) == [governor.address]


def test_grant_and_revoke_emit_events(
    chain: Chain, roles: RolesClient, governor: Sender, deployment: Deployment
) -> None:
    acct = new_account().address
    roles.grant(governor, Role.ISSUER, acct)
    roles.revoke(governor, Role.ISSUER, acct)
    c = roles.contract
    granted = c.events.RoleGranted.get_logs(from_block=deployment.deploy_block)
    revoked = c.events.RoleRevoked.get_logs(from_block=deployment.deploy_block)
    assert [(e.args.role, e.args.account, e.args.sender) for e in granted][-1] == (
        Role.ISSUER.id,
        acct,
        governor.address,
    )
    assert [(e.args.account, e.args.sender) for e in revoked] == [(acct, governor.address)]


def test_agency_scope(roles: RolesClient, governor: Sender) -> None:
    agency = new_account().address
    with pytest.raises(ContractReverted) as e:
        roles.grant_categories(governor, agency, [301])
    assert e.value.error_name == "RolesNotAgency"
    roles.grant(governor, Role.AGENCY, agency)
    roles.grant_categories(governor, agency, [301, 101, 301])
    assert roles.categories_of(agency) == (101, 301)
    assert roles.can_write(agency, 301)
    assert not roles.can_write(agency, 201)
    roles.revoke_categories(governor, agency, [301])
    assert roles.categories_of(agency) == (101,)
    assert not roles.can_write(agency, 301)
    # revoking the role removes write permission even though the scope remains
    roles.revoke(governor, Role.AGENCY, agency)
    assert not roles.can_write(agency, 101)
    with pytest.raises(ContractReverted) as e:
        roles.grant_categories(governor, agency, [102])
    assert e.value.error_name == "RolesNotAgency"
    assert e.value.error_args == (agency,)


@pytest.mark.parametrize("role", list(Role))
def test_unauthorized_grant_reverts_with_named_error(
    chain: Chain, roles: RolesClient, role: Role
) -> None:
    intruder = outsider(chain)
    with pytest.raises(ContractReverted) as e:
        roles.grant(intruder, role, intruder.address)
    assert e.value.error_name == "RolesUnauthorized"
    assert e.value.error_args == (intruder.address, Role.GOVERNOR.id)
    assert not roles.has_role(role, intruder.address)


def test_unauthorized_revoke_and_scope(chain: Chain, roles: RolesClient, governor: Sender) -> None:
    intruder = outsider(chain)
    agency = new_account().address
    roles.grant(governor, Role.AGENCY, agency)
    for call in (
        lambda: roles.revoke(intruder, Role.AGENCY, agency),
        lambda: roles.revoke(intruder, Role.GOVERNOR, governor.address),
        lambda: roles.grant_categories(intruder, agency, [301]),
        lambda: roles.revoke_categories(intruder, agency, [301]),
    ):
        with pytest.raises(ContractReverted) as e:
            call()
        assert e.value.error_name == "RolesUnauthorized"
        assert e.value.error_args[0] == intruder.address
    assert roles.has_role(Role.AGENCY, agency)


def test_last_governor_cannot_be_removed(roles: RolesClient, governor: Sender) -> None:
    with pytest.raises(ContractReverted) as e:
        roles.revoke(governor, Role.GOVERNOR, governor.address)
    assert e.value.error_name == "RolesLastGovernor"
    second = new_account().address
    roles.grant(governor, Role.GOVERNOR, second)
    assert roles.revoke(governor, Role.GOVERNOR, governor.address) is True
    assert roles.members(Role.GOVERNOR) == [second]


def test_unknown_role_and_zero_address_revert(roles: RolesClient, governor: Sender) -> None:
    c = roles.contract
    bogus = b"\x01" * 32
    with pytest.raises(ContractReverted) as e:
        governor.send(
            roles.address,
            bytes.fromhex(c.encode_abi("grantRole", [bogus, governor.address])[2:]),
        )
    assert e.value.error_name == "RolesUnknownRole"
    assert e.value.error_args == (bogus,)
    with pytest.raises(ContractReverted) as e:
        governor.send(
            roles.address,
            bytes.fromhex(c.encode_abi("grantRole", [Role.AUDITOR.id, "0x" + "00" * 20])[2:]),
        )
    assert e.value.error_name == "RolesZeroAddress"


def test_bad_input_is_rejected_before_the_chain(roles: RolesClient, governor: Sender) -> None:
    with pytest.raises(UnknownRole):
        parse_role("mayor")
    assert parse_role("rule-publisher") is Role.RULE_PUBLISHER
    for bad in ("0x123", "xyz", "0x" + "g" * 40, "0xA1b2C3d4e5F6a7B8c9D0e1F2a3B4c5D6e7F8a9B0"):
        with pytest.raises(InvalidInput):
            roles.grant(governor, Role.AUDITOR, bad)
    with pytest.raises(InvalidInput):
        roles.grant_categories(governor, governor.address, [])
    with pytest.raises(InvalidInput):
        roles.grant_categories(governor, governor.address, [70000])


def test_category_zero_reverts(roles: RolesClient, governor: Sender) -> None:
    agency = new_account().address
    roles.grant(governor, Role.AGENCY, agency)
    data = bytes.fromhex(roles.contract.encode_abi("grantCategories", [agency, [5, 0]])[2:])
    with pytest.raises(ContractReverted) as e:
        governor.send(roles.address, data)
    assert e.value.error_name == "RolesInvalidCategory"
    assert roles.categories_of(agency) == ()
