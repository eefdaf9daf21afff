// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ICreditLedger} from "./ICreditLedger.sol";
import {IRoles} from "./IRoles.sol";
import {
    CreditRecord,
    SignedRecord,
    CREDIT_KIND_RECORD,
    CREDIT_KIND_RESOLUTION_REJECTED,
    CREDIT_SUBJECT_PERSON,
    CREDIT_SUBJECT_ENTITY,
    CREDIT_MAX_BATCH,
    CREDIT_REJECT_INVALID_KIND,
    CREDIT_REJECT_INVALID_REF,
    CREDIT_REJECT_INVALID_CATEGORY,
    CREDIT_REJECT_INVALID_SUBJECT,
    CREDIT_REJECT_INVALID_DATES,
    CREDIT_REJECT_INVALID_SIGNATURE,
    CREDIT_REJECT_NONCE_USED,
    CREDIT_REJECT_EXPIRED,
    CREDIT_REJECT_UNAUTHORIZED
} from "./Common.sol";

/// @title CreditLedger
/// @notice See {ICreditLedger}.
/// @dev Gas: one internal core (`_record`) serves `record` and `recordBatch`. Within a call the
/// running hash, the count, the last nonce word and the last (agency, category) permission are
/// kept in memory and written once at the end; hashing and the event use scratch memory so cost
/// stays linear in the batch size.
contract CreditLedger is ICreditLedger {
    // keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    bytes32 private constant _DOMAIN_TYPEHASH =
        0x8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f;
    // keccak256("CreditRecord(uint8 kind,uint8 subjectKind,uint16 category,uint64 occurredAt,
    //   uint64 effectiveFrom,uint64 effectiveUntil,uint64 deadline,uint128 amount,bytes32 subject,
    //   bytes32 evidenceHash,bytes32 reasonHash,bytes32 ref,uint256 nonce)")  (one line, no spaces
    //   after the commas)
    bytes32 private constant _RECORD_TYPEHASH =
        0x8c0be0eba457ebb9a89d21c5360b5d8a4b41a22c6aa6ac787c383a7cf5f6b75c;
    // keccak256("zhixin CreditLedger")
    bytes32 private constant _HASHED_NAME =
        0xa5dfeda16790469af93da42ada9e26aed2964c1f1671e219cddc9f7a505d302c;
    // keccak256("1")
    bytes32 private constant _HASHED_VERSION =
        0xc89efdaa54c0f20c7adf612882df0950f5a951637e0307cdcb4c672f298b8bc6;
    // secp256k1 group order / 2: a larger s is the malleable twin of a valid signature
    uint256 private constant _HALF_ORDER =
        0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    uint256 private constant _S_MASK = (1 << 255) - 1;

    IRoles private immutable _roles;
    uint256 private immutable _cachedChainId;
    address private immutable _cachedThis;
    bytes32 private immutable _cachedDomainSeparator;

    bytes32 private _head;
    uint256 private _count;
    // agency => word (nonce >> 8) => bitmap of spent nonces
    mapping(address => mapping(uint256 => uint256)) private _nonceBitmap;

    /// @dev What one call keeps in memory and writes back once in `_close`.
    struct Batch {
        bytes32 domainSeparator;
        bytes32 head;
        uint256 count;
        uint256 startCount;
        // last permission asked of Roles: key = agency << 16 | category (0 = none yet)
        uint256 scopeKey;
        bool scopeAllowed;
        // last nonce word read (and possibly changed); agency 0 = none yet
        bool nonceDirty;
        address nonceAgency;
        uint256 nonceWord;
        uint256 nonceBits;
    }

    constructor(address roles_) {
        if (roles_ == address(0)) revert CreditLedgerZeroAddress();
        _roles = IRoles(roles_);
        _cachedChainId = block.chainid;
        _cachedThis = address(this);
        _cachedDomainSeparator = _buildDomainSeparator();
    }

    /// @inheritdoc ICreditLedger
    function record(SignedRecord calldata signed) external returns (bytes32 id) {
        Batch memory b = _open();
        uint8 reason;
        address signer;
        (id, reason, signer) = _record(signed, b);
        if (reason != 0) _revertWith(signed.record, reason, signer);
        _close(b);
    }

    /// @inheritdoc ICreditLedger
    function recordBatch(SignedRecord[] calldata signed) external returns (uint256 accepted) {
        uint256 n = signed.length;
        if (n == 0) revert CreditLedgerEmptyBatch();
        if (n > CREDIT_MAX_BATCH) revert CreditLedgerBatchTooLarge(n, CREDIT_MAX_BATCH);
        Batch memory b = _open();
        for (uint256 i = 0; i < n; ++i) {
            (bytes32 id, uint8 reason,) = _record(signed[i], b);
            if (reason != 0) emit CreditRecordRejected(id, reason);
        }
        accepted = b.count - b.startCount;
        _close(b);
    }

    /// @inheritdoc ICreditLedger
    function state() external view returns (bytes32, uint256) {
        return (_head, _count);
    }

    /// @inheritdoc ICreditLedger
    function head() external view returns (bytes32) {
        return _head;
    }

    /// @inheritdoc ICreditLedger
    function count() external view returns (uint256) {
        return _count;
    }

    /// @inheritdoc ICreditLedger
    function nonceUsed(address agency, uint256 nonce) external view returns (bool) {
        return _nonceBitmap[agency][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @inheritdoc ICreditLedger
    function nonceBitmap(address agency, uint256 word) external view returns (uint256) {
        return _nonceBitmap[agency][word];
    }

    /// @inheritdoc ICreditLedger
    function hashRecord(CreditRecord calldata rec) external view returns (bytes32) {
        _packFields(rec); // validates the narrow fields before their raw words are hashed
        return _digest(_domainSeparator(), rec);
    }

    /// @inheritdoc ICreditLedger
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparator();
    }

    /// @inheritdoc ICreditLedger
    function eip712Domain()
        external
        view
        returns (bytes1, string memory, string memory, uint256, address, bytes32, uint256[] memory)
    {
        return (
            hex"0f", "zhixin CreditLedger", "1", block.chainid, address(this), bytes32(0),
            new uint256[](0)
        );
    }

    /// @inheritdoc ICreditLedger
    function roles() external view returns (address) {
        return address(_roles);
    }

    /// @inheritdoc ICreditLedger
    function maxBatchSize() external pure returns (uint256) {
        return CREDIT_MAX_BATCH;
    }

    /// @dev The core: checks one record and appends it, or says why not (reason 0 = appended).
    /// Order matters: shape, signature, nonce, deadline, permission — so a record already on
    /// the ledger reports NONCE_USED even after it expired or its agency lost the category.
    function _record(SignedRecord calldata s, Batch memory b)
        private
        returns (bytes32 id, uint8 reason, address signer)
    {
        (uint256 meta, uint256 times) = _packFields(s.record);
        id = _digest(b.domainSeparator, s.record);
        reason = _checkShape(meta, times, s.record.subject, s.record.ref);
        if (reason != 0) return (id, reason, address(0));
        signer = _recover(id, s);
        if (signer == address(0)) return (id, CREDIT_REJECT_INVALID_SIGNATURE, address(0));
        uint256 nonce = s.record.nonce;
        _loadNonceWord(b, signer, nonce >> 8);
        uint256 bit = 1 << (nonce & 0xff);
        if (b.nonceBits & bit != 0) return (id, CREDIT_REJECT_NONCE_USED, signer);
        if (block.timestamp > times >> 192) return (id, CREDIT_REJECT_EXPIRED, signer);
        if (!_canWrite(b, signer, uint16(meta >> 16))) {
            return (id, CREDIT_REJECT_UNAUTHORIZED, signer);
        }
        b.nonceBits |= bit;
        b.nonceDirty = true;
        _append(b, s, id, signer, meta, times);
    }

    /// @dev Advances the in-memory head and count, then emits the record's event. The event is
    /// written in assembly: the six 32-byte fields from evidenceHash to vs are contiguous in
    /// calldata and are copied as one block, and scratch memory keeps the batch cost linear.
    function _append(
        Batch memory b,
        SignedRecord calldata s,
        bytes32 id,
        address agency,
        uint256 meta,
        uint256 times
    ) private {
        uint256 seq = b.count;
        bytes32 h = _chain(b.head, id);
        b.head = h;
        b.count = seq + 1;
        meta |= seq << 160;
        bytes32 topic0 = CreditRecorded.selector;
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, meta)
            mstore(add(p, 0x20), times)
            // SignedRecord words 9..14: evidenceHash, reasonHash, ref, nonce, r, vs
            calldatacopy(add(p, 0x40), add(s, 0x120), 0xc0)
            mstore(add(p, 0x100), h)
            // topic 3: subject (word 8)
            log4(p, 0x120, topic0, id, agency, calldataload(add(s, 0x100)))
        }
    }

    function _open() private view returns (Batch memory b) {
        b.domainSeparator = _domainSeparator();
        b.head = _head;
        b.count = _count;
        b.startCount = b.count;
    }

    /// @dev Writes back what the call changed: the last nonce word, the head and the count.
    function _close(Batch memory b) private {
        _flushNonceWord(b);
        if (b.count != b.startCount) {
            _head = b.head;
            _count = b.count;
        }
    }

    function _loadNonceWord(Batch memory b, address agency, uint256 word) private {
        if (b.nonceAgency == agency && b.nonceWord == word) return; // agency is never zero
        _flushNonceWord(b);
        b.nonceAgency = agency;
        b.nonceWord = word;
        b.nonceBits = _nonceBitmap[agency][word];
    }

    function _flushNonceWord(Batch memory b) private {
        if (!b.nonceDirty) return;
        _nonceBitmap[b.nonceAgency][b.nonceWord] = b.nonceBits;
        b.nonceDirty = false;
    }

    /// @dev Asks Roles, remembering the last answer: batches are mostly runs of one agency
    /// writing one category, so this saves an external call per record.
    function _canWrite(Batch memory b, address agency, uint16 category)
        private
        view
        returns (bool allowed)
    {
        uint256 key = (uint256(uint160(agency)) << 16) | category;
        if (b.scopeKey == key) return b.scopeAllowed;
        allowed = _roles.canWrite(agency, category);
        b.scopeKey = key;
        b.scopeAllowed = allowed;
    }

    /// @dev Packs the eight narrow fields (the first eight calldata words of the record) into
    /// `meta` and `times` as the event lays them out, and refuses dirty high bits exactly as the
    /// ABI decoder would, so the raw words `_digest` hashes are the typed values the agency
    /// signed. One assembly block instead of eight checked member reads saves ~1.5k gas/record.
    function _packFields(CreditRecord calldata rec)
        private
        pure
        returns (uint256 meta, uint256 times)
    {
        assembly ("memory-safe") {
            let kind := calldataload(rec)
            let subjectKind := calldataload(add(rec, 0x20))
            let category := calldataload(add(rec, 0x40))
            let occurredAt := calldataload(add(rec, 0x60))
            let effectiveFrom := calldataload(add(rec, 0x80))
            let effectiveUntil := calldataload(add(rec, 0xa0))
            let deadline := calldataload(add(rec, 0xc0))
            let amount := calldataload(add(rec, 0xe0))
            let dirty := or(or(shr(8, kind), shr(8, subjectKind)), shr(16, category))
            dirty := or(dirty, or(shr(64, occurredAt), shr(64, effectiveFrom)))
            dirty := or(dirty, or(or(shr(64, effectiveUntil), shr(64, deadline)), shr(128, amount)))
            if dirty { revert(0, 0) }
            meta := or(or(kind, shl(8, subjectKind)), or(shl(16, category), shl(32, amount)))
            times := or(or(occurredAt, shl(64, effectiveFrom)), or(shl(128, effectiveUntil), shl(192, deadline)))
        }
    }

    /// @dev Everything about a record that needs no signature or chain state.
    function _checkShape(uint256 meta, uint256 times, bytes32 subject, bytes32 ref)
        private
        pure
        returns (uint8)
    {
        uint256 kind = meta & 0xff;
        if (kind < CREDIT_KIND_RECORD || kind > CREDIT_KIND_RESOLUTION_REJECTED) {
            return CREDIT_REJECT_INVALID_KIND;
        }
        if ((kind == CREDIT_KIND_RECORD) != (ref == bytes32(0))) return CREDIT_REJECT_INVALID_REF;
        if ((meta >> 16) & 0xffff == 0) return CREDIT_REJECT_INVALID_CATEGORY;
        uint256 subjectKind = (meta >> 8) & 0xff;
        if (
            (subjectKind != CREDIT_SUBJECT_PERSON && subjectKind != CREDIT_SUBJECT_ENTITY)
                || subject == 0
        ) return CREDIT_REJECT_INVALID_SUBJECT;
        uint256 until = (times >> 128) & type(uint64).max;
        if (until != 0 && until < (times >> 64) & type(uint64).max) {
            return CREDIT_REJECT_INVALID_DATES;
        }
        return 0;
    }

    /// @dev The single-record path turns a reason code into its named error.
    function _revertWith(CreditRecord calldata rec, uint8 reason, address signer) private pure {
        if (reason == CREDIT_REJECT_INVALID_KIND) revert CreditLedgerInvalidKind(rec.kind);
        if (reason == CREDIT_REJECT_INVALID_REF) revert CreditLedgerInvalidRef(rec.kind, rec.ref);
        if (reason == CREDIT_REJECT_INVALID_CATEGORY) {
            revert CreditLedgerInvalidCategory(rec.category);
        }
        if (reason == CREDIT_REJECT_INVALID_SUBJECT) {
            revert CreditLedgerInvalidSubject(rec.subjectKind, rec.subject);
        }
        if (reason == CREDIT_REJECT_INVALID_DATES) {
            revert CreditLedgerInvalidDates(rec.effectiveFrom, rec.effectiveUntil);
        }
        if (reason == CREDIT_REJECT_INVALID_SIGNATURE) revert CreditLedgerInvalidSignature();
        if (reason == CREDIT_REJECT_NONCE_USED) revert CreditLedgerNonceUsed(signer, rec.nonce);
        if (reason == CREDIT_REJECT_EXPIRED) revert CreditLedgerExpired(rec.deadline);
        revert CreditLedgerUnauthorized(signer, rec.category);
    }

    /// @dev EIP-2098 compact signature (r, vs); rejects high s (malleability). v can only be 27
    /// or 28 because it is one bit of `vs`. Returns zero for anything ecrecover refuses. Calls
    /// the precompile directly in scratch memory: the builtin's extra copies cost ~150 gas.
    function _recover(bytes32 digest, SignedRecord calldata s) private view returns (address a) {
        assembly ("memory-safe") {
            let vs := calldataload(add(s, 0x1c0))
            let sv := and(vs, _S_MASK)
            if iszero(gt(sv, _HALF_ORDER)) {
                let p := mload(0x40)
                mstore(p, digest)
                mstore(add(p, 0x20), add(shr(255, vs), 27))
                mstore(add(p, 0x40), calldataload(add(s, 0x1a0)))
                mstore(add(p, 0x60), sv)
                mstore(0x00, 0)
                // ecrecover returns nothing (and leaves 0x00 zero) for an invalid signature
                pop(staticcall(gas(), 0x01, p, 0x80, 0x00, 0x20))
                a := mload(0x00)
            }
        }
    }

    /// @dev keccak256("\x19\x01" ‖ domainSeparator ‖ hashStruct(rec)). hashStruct is the type
    /// hash followed by the record's 13 words, which are already EIP-712 encoded in calldata
    /// (every field is static), so they are copied as one block.
    function _digest(bytes32 domainSeparator, CreditRecord calldata rec)
        private
        pure
        returns (bytes32 digest)
    {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, _RECORD_TYPEHASH)
            calldatacopy(add(p, 0x20), rec, 0x1a0)
            let structHash := keccak256(p, 0x1c0)
            mstore(p, hex"1901")
            mstore(add(p, 0x02), domainSeparator)
            mstore(add(p, 0x22), structHash)
            digest := keccak256(p, 0x42)
        }
    }

    /// @dev keccak256(abi.encode(prev, id)) in scratch space.
    function _chain(bytes32 prev, bytes32 id) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            mstore(0x00, prev)
            mstore(0x20, id)
            h := keccak256(0x00, 0x40)
        }
    }

    function _domainSeparator() private view returns (bytes32) {
        if (address(this) == _cachedThis && block.chainid == _cachedChainId) {
            return _cachedDomainSeparator;
        }
        return _buildDomainSeparator();
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(
            abi.encode(
                _DOMAIN_TYPEHASH, _HASHED_NAME, _HASHED_VERSION, block.chainid, address(this)
            )
        );
    }
}
