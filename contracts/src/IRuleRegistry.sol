// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IRuleRegistry — rule-set versions, list-epoch roots and log checkpoints
/// @notice The public anchor of joint reward and punishment (联合奖惩): a RULE_PUBLISHER
/// publishes the hash of each rule-set version before the service may evaluate it, anchors the
/// Merkle root of the lists each evaluation produced (an *epoch*), and anchors checkpoints of
/// the transparency log. Nothing here names a person: the lists root commits to pseudonyms
/// off chain, and only the root and the number of leaves are stored.
///
/// Identities: `ruleSetId` is keccak256 of the rule set's id string; `version` a uint64 the
/// service derives from the version string; `contentHash` the SHA-256 of the rule set's RFC 8785
/// canonical JSON. A (ruleSetId, version) is published once, and a content hash once (the
/// canonical document contains its id and version, so one hash is one version).
/// Epochs count up from 1 and may only name a published content hash. Checkpoint tree sizes are
/// strictly increasing. Only current RULE_PUBLISHER holders in Roles write.
interface IRuleRegistry {
    /// @notice The Roles address given to the constructor is zero.
    error RuleRegistryZeroAddress();
    /// @notice `account` lacks `role` (RULE_PUBLISHER) in Roles.
    error RuleRegistryUnauthorized(address account, bytes32 role);
    /// @notice A rule-set id or content hash is zero.
    error RuleRegistryInvalidHash(bytes32 ruleSetId, bytes32 contentHash);
    /// @notice `version` of `ruleSetId` was already published, with hash `contentHash`.
    error RuleRegistryVersionAlreadyPublished(bytes32 ruleSetId, uint64 version, bytes32 contentHash);
    /// @notice `contentHash` was already published (as `version` of `ruleSetId`).
    error RuleRegistryHashAlreadyPublished(bytes32 contentHash, bytes32 ruleSetId, uint64 version);
    /// @notice No published rule-set version has content hash `ruleSetHash`.
    error RuleRegistryUnknownRuleSet(bytes32 ruleSetHash);
    /// @notice No epoch has number `epoch`.
    error RuleRegistryUnknownEpoch(uint256 epoch);
    /// @notice A checkpoint's `treeSize` is not above the latest anchored `latestTreeSize`.
    error RuleRegistryCheckpointNotIncreasing(uint64 treeSize, uint64 latestTreeSize);

    /// @notice `publisher` published `version` of `ruleSetId` with `contentHash`.
    event RuleSetPublished(
        bytes32 indexed ruleSetId, uint64 indexed version, bytes32 contentHash, address indexed publisher
    );
    /// @notice Evaluation `epoch` of rule set `ruleSetHash` at `asOf` produced lists whose
    /// combined Merkle root is `listsRoot` with `memberCount` (list, subject) leaves.
    event ListEpochAnchored(
        uint256 indexed epoch,
        bytes32 indexed ruleSetHash,
        uint64 asOf,
        bytes32 listsRoot,
        uint64 memberCount,
        address indexed publisher
    );
    /// @notice The transparency log had `treeSize` leaves with root `rootHash`.
    event CheckpointAnchored(uint64 indexed treeSize, bytes32 rootHash, address indexed publisher);

    /// @notice Publishes `version` of `ruleSetId`; reverts if that version or hash exists.
    function publishRuleSet(bytes32 ruleSetId, uint64 version, bytes32 contentHash) external;

    /// @notice The content hash of `version` of `ruleSetId` (zero: not published).
    function ruleSetHash(bytes32 ruleSetId, uint64 version) external view returns (bytes32);

    /// @notice Which (ruleSetId, version) published `contentHash` and at which block (0: none).
    function ruleSetOf(bytes32 contentHash)
        external
        view
        returns (bytes32 ruleSetId, uint64 version, uint64 publishedAt);

    /// @notice Anchors an evaluation of the published `ruleSetHash` at `asOf`.
    /// @return epoch The new epoch number (1 for the first).
    function anchorEpoch(bytes32 ruleSetHash, uint64 asOf, bytes32 listsRoot, uint64 memberCount)
        external
        returns (uint256 epoch);

    /// @notice Epoch `epoch` as anchored; `anchoredAt` is the block number. Reverts if unknown.
    function epoch(uint256 epoch)
        external
        view
        returns (bytes32 ruleSetHash, uint64 asOf, bytes32 listsRoot, uint64 memberCount, uint64 anchoredAt);

    /// @notice The number of epochs anchored so far (the newest epoch's number).
    function epochCount() external view returns (uint256);

    /// @notice Anchors a transparency-log checkpoint; `treeSize` must grow strictly.
    function anchorCheckpoint(uint64 treeSize, bytes32 rootHash) external;

    /// @notice The newest checkpoint (0, 0 before the first).
    function latestCheckpoint() external view returns (uint64 treeSize, bytes32 rootHash);
}
