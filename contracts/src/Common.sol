// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

// Shared constants of every zhixin contract. Role ids are keccak256 of the role name, as in
// OpenZeppelin AccessControl, so off-chain code derives them from the name alone.

/// @dev Manages every other role and agency category scopes.
bytes32 constant GOVERNOR_ROLE = keccak256("GOVERNOR");
/// @dev A government agency that signs credit records within its category scope.
bytes32 constant AGENCY_ROLE = keccak256("AGENCY");
/// @dev A registration authority: issues identity credentials, owns status lists, recovers DIDs.
bytes32 constant ISSUER_ROLE = keccak256("ISSUER");
/// @dev May run audits and read every record through the service.
bytes32 constant AUDITOR_ROLE = keccak256("AUDITOR");
/// @dev Publishes rule-set versions and anchors list epochs and log checkpoints.
bytes32 constant RULE_PUBLISHER_ROLE = keccak256("RULE_PUBLISHER");
