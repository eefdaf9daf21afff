// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IRoles} from "./IRoles.sol";
import {
    GOVERNOR_ROLE, AGENCY_ROLE, ISSUER_ROLE, AUDITOR_ROLE, RULE_PUBLISHER_ROLE
} from "./Common.sol";

/// @title Roles
/// @notice See {IRoles}.
contract Roles is IRoles {
    // role => account => index+1 in _members[role] (0 = not a member)
    mapping(bytes32 => mapping(address => uint256)) private _memberIndex;
    mapping(bytes32 => address[]) private _members;
    // agency => category => in scope
    mapping(address => mapping(uint16 => bool)) private _scope;
    mapping(address => uint16[]) private _scopeList;

    constructor(address governor) {
        if (governor == address(0)) revert RolesZeroAddress();
        _grantRole(GOVERNOR_ROLE, governor);
    }

    modifier onlyGovernor() {
        if (_memberIndex[GOVERNOR_ROLE][msg.sender] == 0) {
            revert RolesUnauthorized(msg.sender, GOVERNOR_ROLE);
        }
        _;
    }

    /// @inheritdoc IRoles
    function grantRole(bytes32 role, address account) external onlyGovernor returns (bool) {
        _checkRole(role);
        if (account == address(0)) revert RolesZeroAddress();
        return _grantRole(role, account);
    }

    /// @inheritdoc IRoles
    function revokeRole(bytes32 role, address account) external onlyGovernor returns (bool) {
        _checkRole(role);
        if (role == GOVERNOR_ROLE && _members[role].length == 1 && _memberIndex[role][account] != 0)
        {
            revert RolesLastGovernor(account);
        }
        return _revokeRole(role, account);
    }

    /// @inheritdoc IRoles
    function grantCategories(address agency, uint16[] calldata categories) external onlyGovernor {
        if (_memberIndex[AGENCY_ROLE][agency] == 0) revert RolesNotAgency(agency);
        if (categories.length == 0) revert RolesInvalidCategory(0);
        for (uint256 i = 0; i < categories.length; ++i) {
            uint16 c = categories[i];
            if (c == 0) revert RolesInvalidCategory(0);
            if (!_scope[agency][c]) {
                _scope[agency][c] = true;
                _scopeList[agency].push(c);
            }
        }
        emit AgencyScopeGranted(agency, categories, msg.sender);
    }

    /// @inheritdoc IRoles
    function revokeCategories(address agency, uint16[] calldata categories) external onlyGovernor {
        if (categories.length == 0) revert RolesInvalidCategory(0);
        for (uint256 i = 0; i < categories.length; ++i) {
            uint16 c = categories[i];
            if (c == 0) revert RolesInvalidCategory(0);
            if (_scope[agency][c]) {
                _scope[agency][c] = false;
                uint16[] storage list = _scopeList[agency];
                for (uint256 j = 0; j < list.length; ++j) {
                    if (list[j] == c) {
                        list[j] = list[list.length - 1];
                        list.pop();
                        break;
                    }
                }
            }
        }
        emit AgencyScopeRevoked(agency, categories, msg.sender);
    }

    /// @inheritdoc IRoles
    function hasRole(bytes32 role, address account) external view returns (bool) {
        return _memberIndex[role][account] != 0;
    }

    /// @inheritdoc IRoles
    function canWrite(address agency, uint16 category) external view returns (bool) {
        return _memberIndex[AGENCY_ROLE][agency] != 0 && _scope[agency][category];
    }

    /// @inheritdoc IRoles
    function hasCategory(address agency, uint16 category) external view returns (bool) {
        return _scope[agency][category];
    }

    /// @inheritdoc IRoles
    function roleMembers(bytes32 role) external view returns (address[] memory) {
        return _members[role];
    }

    /// @inheritdoc IRoles
    function categoriesOf(address agency) external view returns (uint16[] memory out) {
        out = _scopeList[agency];
        // insertion sort: scopes are small, and callers want a stable order
        for (uint256 i = 1; i < out.length; ++i) {
            uint16 v = out[i];
            uint256 j = i;
            while (j > 0 && out[j - 1] > v) {
                out[j] = out[j - 1];
                --j;
            }
            out[j] = v;
        }
    }

    function _checkRole(bytes32 role) private pure {
        if (
            role != GOVERNOR_ROLE && role != AGENCY_ROLE && role != ISSUER_ROLE
                && role != AUDITOR_ROLE && role != RULE_PUBLISHER_ROLE
        ) revert RolesUnknownRole(role);
    }

    function _grantRole(bytes32 role, address account) private returns (bool) {
        if (_memberIndex[role][account] != 0) return false;
        _members[role].push(account);
        _memberIndex[role][account] = _members[role].length;
        emit RoleGranted(role, account, msg.sender);
        return true;
    }

    function _revokeRole(bytes32 role, address account) private returns (bool) {
        uint256 idx = _memberIndex[role][account];
        if (idx == 0) return false;
        address[] storage list = _members[role];
        address last = list[list.length - 1];
        list[idx - 1] = last;
        _memberIndex[role][last] = idx;
        list.pop();
        delete _memberIndex[role][account];
        emit RoleRevoked(role, account, msg.sender);
        return true;
    }
}
