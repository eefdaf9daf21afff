// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {CredentialAnchor, CredentialAnchorInput} from "./Common.sol";

/// @title ICredentialRegistry — identity credential anchors and Bitstring Status List bits
/// @notice A registration authority (ISSUER) anchors each identity credential it issues and owns
/// W3C Bitstring Status Lists whose bits revoke or suspend those credentials. Nothing here
/// names a person: a credential is known by `credentialHash` (SHA-256 of its JCS form, proof
/// included) and its subject by `subjectDidHash` (SHA-256 of the holder's DID).
///
/// Anchors are write-once. The anchored status position is the credential's *revocation*
/// entry: a revocation list owned by the anchoring issuer (or list 0, index 0: no status).
///
/// Status lists: ids count up from 1; a list has one purpose (revocation or suspension), one
/// owner (its creating issuer) and a length between CREDENTIAL_STATUS_MIN_LENGTH (131,072, the
/// W3C minimum) and CREDENTIAL_STATUS_MAX_LENGTH, a multiple of 256. Bit order follows the
/// W3C bitstring: index i is bit (255 - i % 256) of word i / 256, so the words read by
/// `statusWords`, written big-endian one after another, ARE the uncompressed bitstring.
/// Only the owner, while it still holds ISSUER, changes bits; revocation bits never clear.
interface ICredentialRegistry {
    /// @notice The Roles address given to the constructor is zero.
    error CredentialRegistryZeroAddress();
    /// @notice `account` lacks `role` (ISSUER) in Roles.
    error CredentialRegistryUnauthorized(address account, bytes32 role);
    /// @notice The credential hash is zero.
    error CredentialRegistryInvalidCredentialHash(bytes32 credentialHash);
    /// @notice The subject DID hash is zero.
    error CredentialRegistryInvalidSubject(bytes32 credentialHash, bytes32 subjectDidHash);
    /// @notice validFrom is zero, or validUntil is set and not after validFrom.
    error CredentialRegistryInvalidValidity(uint64 validFrom, uint64 validUntil);
    /// @notice `credentialHash` was already anchored by `issuer`; anchors are write-once.
    error CredentialRegistryAlreadyAnchored(bytes32 credentialHash, address issuer);
    /// @notice No status list has id `listId` (or list 0 was given with a non-zero index).
    error CredentialRegistryUnknownStatusList(uint256 listId);
    /// @notice `account` is not `owner`, the issuer that created status list `listId`.
    error CredentialRegistryNotListOwner(uint256 listId, address account, address owner);
    /// @notice Status list `listId` has purpose `purpose`, but `expected` is required here.
    error CredentialRegistryWrongPurpose(uint256 listId, uint8 purpose, uint8 expected);
    /// @notice `purpose` is not CREDENTIAL_STATUS_REVOCATION or CREDENTIAL_STATUS_SUSPENSION.
    error CredentialRegistryInvalidPurpose(uint8 purpose);
    /// @notice `length` is outside [min, max] or not a multiple of 256.
    error CredentialRegistryInvalidLength(uint256 length, uint256 min, uint256 max);
    /// @notice `index` is not below `length`, the size of status list `listId`.
    error CredentialRegistryIndexOutOfRange(uint256 listId, uint256 index, uint256 length);
    /// @notice Words [fromWord, fromWord + count) are not all within the list's `words`.
    error CredentialRegistryWordsOutOfRange(
        uint256 listId, uint256 fromWord, uint256 count, uint256 words
    );
    /// @notice Bit `index` of revocation list `listId` is set; revocation is final.
    error CredentialRegistryRevocationFinal(uint256 listId, uint256 index);
    /// @notice A batch call was given no items.
    error CredentialRegistryEmptyBatch();
    /// @notice A batch call was given `size` items, more than `max`.
    error CredentialRegistryBatchTooLarge(uint256 size, uint256 max);

    /// @notice `issuer` anchored credential `credentialHash` for subject `subjectDidHash`.
    /// @dev Carries everything a verifier needs; `statusListId` 0 means no status entry.
    event CredentialAnchored(
        bytes32 indexed credentialHash,
        address indexed issuer,
        bytes32 indexed subjectDidHash,
        uint64 validFrom,
        uint64 validUntil,
        uint256 statusListId,
        uint256 statusIndex
    );
    /// @notice `issuer` created status list `listId` for `purpose` with `length` entries.
    event StatusListCreated(
        uint256 indexed listId, address indexed issuer, uint8 purpose, uint256 length
    );
    /// @notice Bit `index` of status list `listId` changed to `value`, set by `issuer`.
    /// @dev Emitted only on an actual change, so replaying these events rebuilds every list.
    event StatusChanged(
        uint256 indexed listId, uint256 indexed index, bool value, address indexed issuer
    );

    /// @notice Anchors one credential issued by the caller (an ISSUER).
    /// @dev validUntil 0 is open-ended. A non-zero `statusListId` must be a revocation list
    /// owned by the caller with `statusIndex` in range.
    function anchor(
        bytes32 credentialHash,
        bytes32 subjectDidHash,
        uint64 validFrom,
        uint64 validUntil,
        uint256 statusListId,
        uint256 statusIndex
    ) external;

    /// @notice Anchors every item, or none: any invalid item reverts the whole batch with
    /// that item's named error.
    function anchorBatch(CredentialAnchorInput[] calldata items) external;

    /// @notice Creates a status list owned by the caller (an ISSUER).
    /// @return listId The new list's id (ids count up from 1).
    function createStatusList(uint8 purpose, uint256 length) external returns (uint256 listId);

    /// @notice Sets bit `index` of list `listId` to `value`; the caller must own the list and
    /// still hold ISSUER. Clearing a set revocation bit reverts.
    /// @return changed Whether the bit changed (no event when it did not).
    function setStatus(uint256 listId, uint256 index, bool value) external returns (bool changed);

    /// @notice setStatus for each of `indexes` with the same `value`, atomically.
    /// @dev Indexes sorted ascending cost least: each storage word is read and written once
    /// per run of indexes that share it.
    /// @return changed How many bits changed.
    function setStatusBatch(uint256 listId, uint256[] calldata indexes, bool value)
        external
        returns (uint256 changed);

    /// @notice The anchor of `credentialHash`; `issuer` is zero when it was never anchored.
    function anchorOf(bytes32 credentialHash) external view returns (CredentialAnchor memory);

    /// @notice Owner, purpose and length of status list `listId` (reverts if unknown).
    function statusList(uint256 listId)
        external
        view
        returns (address owner, uint8 purpose, uint256 length);

    /// @notice How many status lists exist; their ids are 1..count.
    function statusListCount() external view returns (uint256);

    /// @notice Bit `index` of list `listId` (reverts if the list is unknown or out of range).
    function statusBit(uint256 listId, uint256 index) external view returns (bool);

    /// @notice `count` words of list `listId` from word `fromWord` (256 entries per word,
    /// index 0 the most significant bit of word 0).
    function statusWords(uint256 listId, uint256 fromWord, uint256 count)
        external
        view
        returns (uint256[] memory words);

    /// @notice The Roles contract that says who holds ISSUER.
    function roles() external view returns (address);

    /// @notice Most items one batch call accepts.
    function maxBatchSize() external pure returns (uint256);
}
