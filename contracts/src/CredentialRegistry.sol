// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ICredentialRegistry} from "./ICredentialRegistry.sol";
import {IRoles} from "./IRoles.sol";
import {
    CredentialAnchor,
    CredentialAnchorInput,
    ISSUER_ROLE,
    CREDENTIAL_STATUS_REVOCATION,
    CREDENTIAL_STATUS_SUSPENSION,
    CREDENTIAL_STATUS_MIN_LENGTH,
    CREDENTIAL_STATUS_MAX_LENGTH,
    CREDENTIAL_MAX_BATCH
} from "./Common.sol";

/// @title CredentialRegistry
/// @notice See {ICredentialRegistry}.
/// @dev Gas: one internal core per write (`_anchor`, `_setBit`) serves the single and the batch
/// entry points; a batch asks Roles once and checks each status list once per run of items
/// that name it. An anchor takes three storage slots; a status list one slot plus one slot
/// per 256 entries that ever had a bit set.
contract CredentialRegistry is ICredentialRegistry {
    /// @dev One slot: the owner, the purpose and the length (at most 2^24, fits 32 bits).
    struct StatusListInfo {
        address owner;
        uint8 purpose;
        uint32 length;
    }

    IRoles private immutable _roles;

    uint256 private _listCount;
    mapping(uint256 => StatusListInfo) private _lists;
    // list id => word index (entry >> 8) => 256 status bits, entry 0 the most significant
    mapping(uint256 => mapping(uint256 => uint256)) private _words;
    mapping(bytes32 => CredentialAnchor) private _anchors;

    constructor(address roles_) {
        if (roles_ == address(0)) revert CredentialRegistryZeroAddress();
        _roles = IRoles(roles_);
    }

    // ---- anchors ----

    /// @inheritdoc ICredentialRegistry
    function anchor(
        bytes32 credentialHash,
        bytes32 subjectDidHash,
        uint64 validFrom,
        uint64 validUntil,
        uint256 statusListId,
        uint256 statusIndex
    ) external {
        _requireIssuer();
        uint256 length = statusListId == 0 ? 0 : _anchorListLength(statusListId);
        _anchor(
            credentialHash, subjectDidHash, validFrom, validUntil, statusListId, statusIndex, length
        );
    }

    /// @inheritdoc ICredentialRegistry
    function anchorBatch(CredentialAnchorInput[] calldata items) external {
        _checkBatchSize(items.length);
        _requireIssuer();
        uint256 knownList;
        uint256 knownLength;
        for (uint256 i = 0; i < items.length; ++i) {
            CredentialAnchorInput calldata it = items[i];
            uint256 listId = it.statusListId;
            if (listId != 0 && listId != knownList) {
                knownLength = _anchorListLength(listId);
                knownList = listId;
            }
            _anchor(
                it.credentialHash,
                it.subjectDidHash,
                it.validFrom,
                it.validUntil,
                listId,
                it.statusIndex,
                listId == 0 ? 0 : knownLength
            );
        }
    }

    // ---- status lists ----

    /// @inheritdoc ICredentialRegistry
    function createStatusList(uint8 purpose, uint256 length) external returns (uint256 listId) {
        _requireIssuer();
        if (purpose != CREDENTIAL_STATUS_REVOCATION && purpose != CREDENTIAL_STATUS_SUSPENSION) {
            revert CredentialRegistryInvalidPurpose(purpose);
        }
        if (
            length < CREDENTIAL_STATUS_MIN_LENGTH || length > CREDENTIAL_STATUS_MAX_LENGTH
                || length & 0xff != 0
        ) {
            revert CredentialRegistryInvalidLength(
                length, CREDENTIAL_STATUS_MIN_LENGTH, CREDENTIAL_STATUS_MAX_LENGTH
            );
        }
        listId = ++_listCount;
        _lists[listId] = StatusListInfo(msg.sender, purpose, uint32(length));
        emit StatusListCreated(listId, msg.sender, purpose, length);
    }

    /// @inheritdoc ICredentialRegistry
    function setStatus(uint256 listId, uint256 index, bool value) external returns (bool) {
        StatusListInfo memory info = _writableList(listId);
        return _setBit(_words[listId], listId, info, index, value);
    }

    /// @inheritdoc ICredentialRegistry
    function setStatusBatch(uint256 listId, uint256[] calldata indexes, bool value)
        external
        returns (uint256 changed)
    {
        _checkBatchSize(indexes.length);
        StatusListInfo memory info = _writableList(listId);
        mapping(uint256 => uint256) storage words = _words[listId];
        for (uint256 i = 0; i < indexes.length; ++i) {
            if (_setBit(words, listId, info, indexes[i], value)) ++changed;
        }
    }

    // ---- views ----

    /// @inheritdoc ICredentialRegistry
    function anchorOf(bytes32 credentialHash) external view returns (CredentialAnchor memory) {
        return _anchors[credentialHash];
    }

    /// @inheritdoc ICredentialRegistry
    function statusList(uint256 listId)
        external
        view
        returns (address owner, uint8 purpose, uint256 length)
    {
        StatusListInfo memory info = _existingList(listId);
        return (info.owner, info.purpose, info.length);
    }

    /// @inheritdoc ICredentialRegistry
    function statusListCount() external view returns (uint256) {
        return _listCount;
    }

    /// @inheritdoc ICredentialRegistry
    function statusBit(uint256 listId, uint256 index) external view returns (bool) {
        StatusListInfo memory info = _existingList(listId);
        if (index >= info.length) {
            revert CredentialRegistryIndexOutOfRange(listId, index, info.length);
        }
        return _words[listId][index >> 8] & _mask(index) != 0;
    }

    /// @inheritdoc ICredentialRegistry
    function statusWords(uint256 listId, uint256 fromWord, uint256 count)
        external
        view
        returns (uint256[] memory words)
    {
        uint256 total = uint256(_existingList(listId).length) >> 8;
        if (fromWord > total || count > total - fromWord) {
            revert CredentialRegistryWordsOutOfRange(listId, fromWord, count, total);
        }
        mapping(uint256 => uint256) storage stored = _words[listId];
        words = new uint256[](count);
        for (uint256 i = 0; i < count; ++i) {
            words[i] = stored[fromWord + i];
        }
    }

    /// @inheritdoc ICredentialRegistry
    function roles() external view returns (address) {
        return address(_roles);
    }

    /// @inheritdoc ICredentialRegistry
    function maxBatchSize() external pure returns (uint256) {
        return CREDENTIAL_MAX_BATCH;
    }

    // ---- internals ----

    function _requireIssuer() private view {
        if (!_roles.hasRole(ISSUER_ROLE, msg.sender)) {
            revert CredentialRegistryUnauthorized(msg.sender, ISSUER_ROLE);
        }
    }

    function _checkBatchSize(uint256 size) private pure {
        if (size == 0) revert CredentialRegistryEmptyBatch();
        if (size > CREDENTIAL_MAX_BATCH) {
            revert CredentialRegistryBatchTooLarge(size, CREDENTIAL_MAX_BATCH);
        }
    }

    function _existingList(uint256 listId) private view returns (StatusListInfo memory info) {
        info = _lists[listId];
        if (info.owner == address(0)) revert CredentialRegistryUnknownStatusList(listId);
    }

    /// @dev The list the caller may write: it exists, the caller holds ISSUER and owns it.
    /// The role is asked first, so an issuer that lost ISSUER always sees Unauthorized.
    function _writableList(uint256 listId) private view returns (StatusListInfo memory info) {
        _requireIssuer();
        info = _existingList(listId);
        if (info.owner != msg.sender) {
            revert CredentialRegistryNotListOwner(listId, msg.sender, info.owner);
        }
    }

    /// @dev Length of the caller's revocation list `listId`, which an anchor may point into.
    function _anchorListLength(uint256 listId) private view returns (uint256) {
        StatusListInfo memory info = _existingList(listId);
        if (info.owner != msg.sender) {
            revert CredentialRegistryNotListOwner(listId, msg.sender, info.owner);
        }
        if (info.purpose != CREDENTIAL_STATUS_REVOCATION) {
            revert CredentialRegistryWrongPurpose(
                listId, info.purpose, CREDENTIAL_STATUS_REVOCATION
            );
        }
        return info.length;
    }

    /// @dev `listLength` is the length of `statusListId`, already checked to be the caller's
    /// revocation list (ignored when `statusListId` is 0).
    function _anchor(
        bytes32 credentialHash,
        bytes32 subjectDidHash,
        uint64 validFrom,
        uint64 validUntil,
        uint256 statusListId,
        uint256 statusIndex,
        uint256 listLength
    ) private {
        if (credentialHash == bytes32(0)) {
            revert CredentialRegistryInvalidCredentialHash(credentialHash);
        }
        if (subjectDidHash == bytes32(0)) {
            revert CredentialRegistryInvalidSubject(credentialHash, subjectDidHash);
        }
        if (validFrom == 0 || (validUntil != 0 && validUntil <= validFrom)) {
            revert CredentialRegistryInvalidValidity(validFrom, validUntil);
        }
        if (statusListId == 0) {
            if (statusIndex != 0) revert CredentialRegistryUnknownStatusList(0);
        } else if (statusIndex >= listLength) {
            revert CredentialRegistryIndexOutOfRange(statusListId, statusIndex, listLength);
        }
        address previous = _anchors[credentialHash].issuer;
        if (previous != address(0)) {
            revert CredentialRegistryAlreadyAnchored(credentialHash, previous);
        }
        // list ids never exceed the list count and indexes stay below 2^24: the casts are exact
        _anchors[credentialHash] = CredentialAnchor({
            issuer: msg.sender,
            validFrom: validFrom,
            validUntil: validUntil,
            anchoredAt: uint64(block.number),
            statusListId: uint64(statusListId),
            statusIndex: uint32(statusIndex),
            subjectDidHash: subjectDidHash
        });
        emit CredentialAnchored(
            credentialHash,
            msg.sender,
            subjectDidHash,
            validFrom,
            validUntil,
            statusListId,
            statusIndex
        );
    }

    /// @dev Sets one bit of list `listId`; returns whether it changed (an event iff it did).
    function _setBit(
        mapping(uint256 => uint256) storage words,
        uint256 listId,
        StatusListInfo memory info,
        uint256 index,
        bool value
    ) private returns (bool) {
        if (index >= info.length) {
            revert CredentialRegistryIndexOutOfRange(listId, index, info.length);
        }
        uint256 mask = _mask(index);
        uint256 word = words[index >> 8];
        if ((word & mask != 0) == value) return false;
        if (!value && info.purpose == CREDENTIAL_STATUS_REVOCATION) {
            revert CredentialRegistryRevocationFinal(listId, index);
        }
        words[index >> 8] = value ? word | mask : word & ~mask;
        emit StatusChanged(listId, index, value, msg.sender);
        return true;
    }

    /// @dev Entry `index` is bit 255 - index % 256 of its word: the W3C left-most-bit order.
    function _mask(uint256 index) private pure returns (uint256) {
        return uint256(1) << (255 - (index & 0xff));
    }
}
