// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IRoles — on-chain permissioning for zhixin
/// @notice Holds who has which role (GOVERNOR, AGENCY, ISSUER, AUDITOR, RULE_PUBLISHER) and, for
/// agencies, the set of credit categories each may write. Every other zhixin contract asks this
/// one. Only GOVERNOR holders change roles or scopes; the last governor cannot be removed.
interface IRoles {
    /// @notice The caller lacks `role`.
    error RolesUnauthorized(address account, bytes32 role);
    /// @notice `role` is not one of the five zhixin roles.
    error RolesUnknownRole(bytes32 role);
    /// @notice The zero address cannot hold a role.
    error RolesZeroAddress();
    /// @notice Revoking `account` would leave no governor.
    error RolesLastGovernor(address account);
    /// @notice A scope change names an account that does not hold AGENCY.
    error RolesNotAgency(address account);
    /// @notice A scope change names no categories, or category 0 (reserved).
    error RolesInvalidCategory(uint16 category);

    /// @notice `account` was granted `role` by `sender`.
    event RoleGranted(bytes32 indexed role, address indexed account, address indexed sender);
    /// @notice `account` lost `role`, removed by `sender`.
    event RoleRevoked(bytes32 indexed role, address indexed account, address indexed sender);
    /// @notice `agency` may now write records in `categories`.
    event AgencyScopeGranted(address indexed agency, uint16[] categories, address indexed sender);
    /// @notice `agency` may no longer write records in `categories`.
    event AgencyScopeRevoked(address indexed agency, uint16[] categories, address indexed sender);

    /// @notice Grants `role` to `account`; a no-op (no event) if it already holds it.
    /// @dev Reverts with RolesUnauthorized unless the caller is a GOVERNOR.
    /// @return granted Whether the role was newly granted.
    function grantRole(bytes32 role, address account) external returns (bool granted);

    /// @notice Revokes `role` from `account`; a no-op (no event) if it does not hold it.
    /// @dev Revoking AGENCY also clears nothing from the scope: a re-granted agency keeps its
    /// categories, and every check requires both the role and the category.
    /// @return revoked Whether the role was held and is now revoked.
    function revokeRole(bytes32 role, address account) external returns (bool revoked);

    /// @notice Lets AGENCY holder `agency` write records in each of `categories`.
    function grantCategories(address agency, uint16[] calldata categories) external;

    /// @notice Withdraws `categories` from `agency`'s scope.
    function revokeCategories(address agency, uint16[] calldata categories) external;

    /// @notice Whether `account` holds `role`.
    function hasRole(bytes32 role, address account) external view returns (bool);

    /// @notice Whether `agency` holds AGENCY and has `category` in scope.
    function canWrite(address agency, uint16 category) external view returns (bool);

    /// @notice Whether `category` is in `agency`'s scope (regardless of the AGENCY role).
    function hasCategory(address agency, uint16 category) external view returns (bool);

    /// @notice All current holders of `role`, in no particular order.
    function roleMembers(bytes32 role) external view returns (address[] memory);

    /// @notice The categories in `agency`'s scope, ascending.
    function categoriesOf(address agency) external view returns (uint16[] memory);
}
