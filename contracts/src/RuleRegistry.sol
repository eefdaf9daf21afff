// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IRuleRegistry} from "./IRuleRegistry.sol";
import {IRoles} from "./IRoles.sol";
import {RULE_PUBLISHER_ROLE} from "./Common.sol";

/// @title RuleRegistry
/// @notice See {IRuleRegistry}.
/// @dev Gas: a publication takes two slots (version => hash, hash => id/version/block), an
/// epoch three (rule-set hash, lists root, and asOf/memberCount/block packed in one), a
/// checkpoint rewrites two. Every write asks Roles once.
contract RuleRegistry is IRuleRegistry {
    /// @dev Packed: who published a content hash, as which version, at which block.
    struct Publication {
        bytes32 ruleSetId;
        uint64 version;
        uint64 publishedAt;
    }

    /// @dev Three slots per epoch.
    struct ListEpoch {
        bytes32 ruleSetHash;
        bytes32 listsRoot;
        uint64 asOf;
        uint64 memberCount;
        uint64 anchoredAt;
    }

    IRoles private immutable _roles;

    mapping(bytes32 => mapping(uint64 => bytes32)) private _hashes;
    mapping(bytes32 => Publication) private _publications;
    mapping(uint256 => ListEpoch) private _epochs;
    uint256 private _epochCount;
    uint64 private _checkpointSize;
    bytes32 private _checkpointRoot;

    constructor(address roles_) {
        if (roles_ == address(0)) revert RuleRegistryZeroAddress();
        _roles = IRoles(roles_);
    }

    // ---- rule sets ----

    /// @inheritdoc IRuleRegistry
    function publishRuleSet(bytes32 ruleSetId, uint64 version, bytes32 contentHash) external {
        _requirePublisher();
        if (ruleSetId == bytes32(0) || contentHash == bytes32(0)) {
            revert RuleRegistryInvalidHash(ruleSetId, contentHash);
        }
        bytes32 existing = _hashes[ruleSetId][version];
        if (existing != bytes32(0)) {
            revert RuleRegistryVersionAlreadyPublished(ruleSetId, version, existing);
        }
        Publication storage p = _publications[contentHash];
        if (p.publishedAt != 0) {
            revert RuleRegistryHashAlreadyPublished(contentHash, p.ruleSetId, p.version);
        }
        _publish(ruleSetId, version, contentHash);
    }

    /// @inheritdoc IRuleRegistry
    function ruleSetHash(bytes32 ruleSetId, uint64 version) external view returns (bytes32) {
        return _hashes[ruleSetId][version];
    }

    /// @inheritdoc IRuleRegistry
    function ruleSetOf(bytes32 contentHash)
        external
        view
        returns (bytes32 ruleSetId, uint64 version, uint64 publishedAt)
    {
        Publication storage p = _publications[contentHash];
        return (p.ruleSetId, p.version, p.publishedAt);
    }

    // ---- epochs ----

    /// @inheritdoc IRuleRegistry
    function anchorEpoch(bytes32 ruleSetHash_, uint64 asOf, bytes32 listsRoot, uint64 memberCount)
        external
        returns (uint256)
    {
        _requirePublisher();
        if (_publications[ruleSetHash_].publishedAt == 0) {
            revert RuleRegistryUnknownRuleSet(ruleSetHash_);
        }
        return _anchorEpoch(ruleSetHash_, asOf, listsRoot, memberCount);
    }

    /// @inheritdoc IRuleRegistry
    function epoch(uint256 epoch_)
        external
        view
        returns (bytes32 ruleSetHash_, uint64 asOf, bytes32 listsRoot, uint64 memberCount, uint64 anchoredAt)
    {
        if (epoch_ == 0 || epoch_ > _epochCount) revert RuleRegistryUnknownEpoch(epoch_);
        ListEpoch storage e = _epochs[epoch_];
        return (e.ruleSetHash, e.asOf, e.listsRoot, e.memberCount, e.anchoredAt);
    }

    /// @inheritdoc IRuleRegistry
    function epochCount() external view returns (uint256) {
        return _epochCount;
    }

    // ---- checkpoints ----

    /// @inheritdoc IRuleRegistry
    function anchorCheckpoint(uint64 treeSize, bytes32 rootHash) external {
        _requirePublisher();
        if (treeSize <= _checkpointSize) {
            revert RuleRegistryCheckpointNotIncreasing(treeSize, _checkpointSize);
        }
        _anchorCheckpoint(treeSize, rootHash);
    }

    /// @inheritdoc IRuleRegistry
    function latestCheckpoint() external view returns (uint64 treeSize, bytes32 rootHash) {
        return (_checkpointSize, _checkpointRoot);
    }

    // ---- internal writers: each emits right after its change ----

    function _publish(bytes32 ruleSetId, uint64 version, bytes32 contentHash) private {
        _hashes[ruleSetId][version] = contentHash;
        _publications[contentHash] = Publication(ruleSetId, version, uint64(block.number));
        emit RuleSetPublished(ruleSetId, version, contentHash, msg.sender);
    }

    function _anchorEpoch(bytes32 ruleSetHash_, uint64 asOf, bytes32 listsRoot, uint64 memberCount)
        private
        returns (uint256 n)
    {
        n = ++_epochCount;
        _epochs[n] = ListEpoch(ruleSetHash_, listsRoot, asOf, memberCount, uint64(block.number));
        emit ListEpochAnchored(n, ruleSetHash_, asOf, listsRoot, memberCount, msg.sender);
    }

    function _anchorCheckpoint(uint64 treeSize, bytes32 rootHash) private {
        _checkpointSize = treeSize;
        _checkpointRoot = rootHash;
        emit CheckpointAnchored(treeSize, rootHash, msg.sender);
    }

    function _requirePublisher() private view {
        if (!_roles.hasRole(RULE_PUBLISHER_ROLE, msg.sender)) {
            revert RuleRegistryUnauthorized(msg.sender, RULE_PUBLISHER_ROLE);
        }
    }
}
