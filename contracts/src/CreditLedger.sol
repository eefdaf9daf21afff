// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ICreditLedger} from "./ICreditLedger.sol";
import {IRoles} from "./IRoles.sol";
import {
    CreditRecord,
    PackedRecord,
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
    uint256 private constant _U64 = 0xffffffffffffffff;
    // bytes per PackedRecord in calldata, and the byte offset of each of its words
    uint256 private constant _ITEM = 0x120;
    uint256 private constant _AT_SUBJECT = 0x40;
    uint256 private constant _AT_NONCE = 0xa0;
    uint256 private constant _AT_R = 0xc0;
    uint256 private constant _AT_VS = 0xe0;
    uint256 private constant _AT_REF = 0x100;

    IRoles private immutable _roles;
    uint256 private immutable _cachedChainId;
    address private immutable _cachedThis;
    bytes32 private immutable _cachedDomainSeparator;

    bytes32 private _head;
    uint256 private _count;
    // agency => word (nonce >> 8) => bitmap of spent nonces
    mapping(address => mapping(uint256 => uint256)) private _nonceBitmap;

    // byte offsets of Batch members in memory (one word each, in declaration order), for the
    // assembly in `_record`
    uint256 private constant _B_HEAD = 0x20;
    // Batch is the first memory a call allocates (0x80 + 10 words); `_open` reserves the
    // scratch region the core hashes, recovers and logs in right after it
    uint256 private constant _SCRATCH = 0x1c0;
    uint256 private constant _SCRATCH_SIZE = 0x1c0;
    uint256 private constant _B_COUNT = 0x40;
    uint256 private constant _B_SCOPE_KEY = 0x80;
    uint256 private constant _B_SCOPE_ALLOWED = 0xa0;
    uint256 private constant _B_NONCE_DIRTY = 0xc0;
    uint256 private constant _B_NONCE_AGENCY = 0xe0;
    uint256 private constant _B_NONCE_WORD = 0x100;
    uint256 private constant _B_NONCE_BITS = 0x120;

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
    function record(PackedRecord calldata signed) external returns (bytes32 id) {
        Batch memory b = _open();
        uint256 p;
        assembly ("memory-safe") {
            p := signed
        }
        uint8 reason;
        address signer;
        (id, reason, signer) = _record(p, b);
        if (reason != 0) _revertWith(p, reason, signer);
        _close(b);
    }

    /// @inheritdoc ICreditLedger
    function recordBatch(PackedRecord[] calldata signed) external returns (uint256 accepted) {
        uint256 n = signed.length;
        if (n == 0) revert CreditLedgerEmptyBatch();
        if (n > CREDIT_MAX_BATCH) revert CreditLedgerBatchTooLarge(n, CREDIT_MAX_BATCH);
        Batch memory b = _open();
        uint256 p;
        assembly ("memory-safe") {
            p := signed.offset
        }
        // the ABI decoder has checked that n items of _ITEM bytes fit the calldata
        unchecked {
            for (uint256 end = p + n * _ITEM; p < end; p += _ITEM) {
                (bytes32 id, uint8 reason,) = _record(p, b);
                if (reason != 0) emit CreditRecordRejected(id, reason);
            }
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
        return _digestTyped(_domainSeparator(), rec);
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

    /// @dev The core: checks the PackedRecord at calldata offset `p` and appends it, or says why
    /// not (reason 0 = appended). Order matters: shape, signature, nonce, deadline, permission —
    /// so a record already on the ledger reports NONCE_USED even after it expired or its agency
    /// lost the category. The stateless part (id, shape, signature) is one assembly block and
    /// the batch state stays in memory: Solidity's per-helper calls and checks cost ~1.5k gas
    /// per record here. Slow paths (another nonce word, another agency or category) are calls.
    function _record(uint256 p, Batch memory b)
        private
        returns (bytes32 id, uint8 reason, address signer)
    {
        uint256 meta;
        uint256 times;
        assembly ("memory-safe") {
            meta := calldataload(p)
            times := calldataload(add(p, 0x20))
        }
        if (meta >> 160 != 0) revert CreditLedgerMalformedRecord(meta);
        assembly ("memory-safe") {
            // id = keccak256("\x19\x01" ‖ domainSeparator ‖ hashStruct): hashStruct is the type
            // hash and the 13 typed words, i.e. meta and times unpacked, then the 32-byte fields
            // (subject to reasonHash are contiguous in calldata and copied as one block)
            // (scratch words are literal addresses: _SCRATCH = 0x1c0 plus the word's offset)
            mstore(_SCRATCH, _RECORD_TYPEHASH)
            mstore(0x1e0, and(meta, 0xff))
            mstore(0x200, and(shr(8, meta), 0xff))
            mstore(0x220, and(shr(16, meta), 0xffff))
            mstore(0x240, and(times, _U64))
            mstore(0x260, and(shr(64, times), _U64))
            mstore(0x280, and(shr(128, times), _U64))
            mstore(0x2a0, shr(192, times))
            mstore(0x2c0, shr(32, meta)) // amount: meta has no bits above 159
            calldatacopy(0x2e0, add(p, _AT_SUBJECT), 0x60)
            mstore(0x340, calldataload(add(p, _AT_REF)))
            mstore(0x360, calldataload(add(p, _AT_NONCE)))
            mstore(0x1e2, keccak256(_SCRATCH, 0x1c0))
            mstore(_SCRATCH, hex"1901")
            mstore(0x1c2, mload(b)) // b.domainSeparator
            id := keccak256(_SCRATCH, 0x42)
        }
        assembly ("memory-safe") {
            let kind := and(meta, 0xff)
            let subjectKind := and(shr(8, meta), 0xff)
            let until := and(shr(128, times), _U64)
            let ref := calldataload(add(p, _AT_REF))
            let subject := calldataload(add(p, _AT_SUBJECT))
            // a block to break out of at the first problem, in CREDIT_REJECT_* order; one test of
            // every shape rule first, so a good record takes a single branch
            for {} 1 {} {
                if or(
                    or(
                        gt(sub(kind, CREDIT_KIND_RECORD), 6), // kind 1..7 (0 wraps around)
                        xor(eq(kind, CREDIT_KIND_RECORD), iszero(ref)) // ref zero exactly for RECORD
                    ),
                    or(
                        or(iszero(and(meta, 0xffff0000)), iszero(subject)),
                        or(
                            gt(sub(subjectKind, CREDIT_SUBJECT_PERSON), 1), // PERSON or ENTITY
                            and(gt(until, 0), lt(until, and(shr(64, times), _U64)))
                        )
                    )
                ) {
                    reason := CREDIT_REJECT_INVALID_DATES
                    if or(iszero(subject), gt(sub(subjectKind, CREDIT_SUBJECT_PERSON), 1)) {
                        reason := CREDIT_REJECT_INVALID_SUBJECT
                    }
                    if iszero(and(meta, 0xffff0000)) { reason := CREDIT_REJECT_INVALID_CATEGORY }
                    if xor(eq(kind, CREDIT_KIND_RECORD), iszero(ref)) {
                        reason := CREDIT_REJECT_INVALID_REF
                    }
                    if gt(sub(kind, CREDIT_KIND_RECORD), 6) { reason := CREDIT_REJECT_INVALID_KIND }
                    break
                }
                // EIP-2098 (r, vs); high s is refused (malleability); v is 27 or 28 by
                // construction. ecrecover leaves 0x00 zero for a signature it refuses.
                let vs := calldataload(add(p, _AT_VS))
                let sv := and(vs, _S_MASK)
                mstore(0x00, 0)
                if iszero(gt(sv, _HALF_ORDER)) {
                    mstore(_SCRATCH, id)
                    mstore(0x1e0, add(shr(255, vs), 27))
                    mstore(0x200, calldataload(add(p, _AT_R)))
                    mstore(0x220, sv)
                    pop(staticcall(gas(), 0x01, _SCRATCH, 0x80, 0x00, 0x20))
                }
                signer := mload(0x00)
                if iszero(signer) { reason := CREDIT_REJECT_INVALID_SIGNATURE }
                break
            }
        }
        if (reason != 0) return (id, reason, signer);
        // slow paths first (their answers are used below, in the documented order): another
        // nonce word than the last one, another (agency, category) than the last one
        {
            uint256 word;
            uint256 scopeKey;
            uint256 newWord;
            uint256 newScope;
            assembly ("memory-safe") {
                word := shr(8, calldataload(add(p, _AT_NONCE)))
                scopeKey := or(shl(16, signer), and(shr(16, meta), 0xffff))
                newWord := or(
                    xor(mload(add(b, _B_NONCE_WORD)), word),
                    xor(mload(add(b, _B_NONCE_AGENCY)), signer)
                )
                newScope := xor(mload(add(b, _B_SCOPE_KEY)), scopeKey)
            }
            if (newWord != 0) _switchNonceWord(b, signer, word);
            if (newScope != 0) _askRoles(b, signer, scopeKey);
        }
        bytes32 topic0 = CreditRecorded.selector;
        assembly ("memory-safe") {
            let bit := shl(and(calldataload(add(p, _AT_NONCE)), 0xff), 1)
            let bits := mload(add(b, _B_NONCE_BITS))
            for {} 1 {} {
                if and(bits, bit) {
                    reason := CREDIT_REJECT_NONCE_USED
                    break
                }
                if gt(timestamp(), shr(192, times)) {
                    reason := CREDIT_REJECT_EXPIRED
                    break
                }
                if iszero(mload(add(b, _B_SCOPE_ALLOWED))) {
                    reason := CREDIT_REJECT_UNAUTHORIZED
                    break
                }
                mstore(add(b, _B_NONCE_BITS), or(bits, bit))
                mstore(add(b, _B_NONCE_DIRTY), 1)
                // append: head' = keccak256(head ‖ id), count + 1, then the event, whose
                // subject..vs are contiguous in calldata and copied as one block
                let seq := mload(add(b, _B_COUNT))
                mstore(0x00, mload(add(b, _B_HEAD)))
                mstore(0x20, id)
                bits := keccak256(0x00, 0x40) // reused: the new head
                mstore(add(b, _B_HEAD), bits)
                mstore(add(b, _B_COUNT), add(seq, 1))
                mstore(_SCRATCH, or(meta, shl(160, seq)))
                mstore(0x1e0, times)
                calldatacopy(0x200, add(p, _AT_SUBJECT), 0xc0)
                mstore(0x2c0, bits)
                // ref only when there is one (every kind but RECORD): 256 gas less per record
                mstore(0x2e0, calldataload(add(p, _AT_REF)))
                log2(
                    _SCRATCH,
                    add(0x120, mul(0x20, gt(and(meta, 0xff), CREDIT_KIND_RECORD))),
                    topic0,
                    id
                )
                break
            }
        }
    }

    function _open() private view returns (Batch memory b) {
        assembly ("memory-safe") {
            // reserve the scratch region right after `b`, the call's first allocation, so the
            // core addresses it with constants (~150 gas less per record)
            if iszero(eq(mload(0x40), _SCRATCH)) { invalid() }
            mstore(0x40, add(_SCRATCH, _SCRATCH_SIZE))
        }
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

    /// @dev Makes (agency, word) the nonce word in memory, writing back the previous one.
    function _switchNonceWord(Batch memory b, address agency, uint256 word) private {
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

    /// @dev Asks Roles and remembers the answer for `key` = agency << 16 | category: batches
    /// are mostly runs of one agency writing one category, so this saves a call per record.
    function _askRoles(Batch memory b, address agency, uint256 key) private view {
        b.scopeAllowed = _roles.canWrite(agency, uint16(key));
        b.scopeKey = key;
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

    /// @dev The single-record path turns a reason code into its named error.
    function _revertWith(uint256 p, uint8 reason, address signer) private pure {
        uint256 meta;
        uint256 times;
        bytes32 subject;
        bytes32 ref;
        uint256 nonce;
        assembly ("memory-safe") {
            meta := calldataload(p)
            times := calldataload(add(p, 0x20))
            subject := calldataload(add(p, _AT_SUBJECT))
            ref := calldataload(add(p, _AT_REF))
            nonce := calldataload(add(p, _AT_NONCE))
        }
        uint8 kind = uint8(meta);
        uint16 category = uint16(meta >> 16);
        if (reason == CREDIT_REJECT_INVALID_KIND) revert CreditLedgerInvalidKind(kind);
        if (reason == CREDIT_REJECT_INVALID_REF) revert CreditLedgerInvalidRef(kind, ref);
        if (reason == CREDIT_REJECT_INVALID_CATEGORY) revert CreditLedgerInvalidCategory(category);
        if (reason == CREDIT_REJECT_INVALID_SUBJECT) {
            revert CreditLedgerInvalidSubject(uint8(meta >> 8), subject);
        }
        if (reason == CREDIT_REJECT_INVALID_DATES) {
            revert CreditLedgerInvalidDates(uint64(times >> 64), uint64(times >> 128));
        }
        if (reason == CREDIT_REJECT_INVALID_SIGNATURE) revert CreditLedgerInvalidSignature();
        if (reason == CREDIT_REJECT_NONCE_USED) revert CreditLedgerNonceUsed(signer, nonce);
        if (reason == CREDIT_REJECT_EXPIRED) revert CreditLedgerExpired(uint64(times >> 192));
        revert CreditLedgerUnauthorized(signer, category);
    }

    /// @dev The id of a typed record (hashRecord): its 13 words are already EIP-712 encoded in
    /// calldata (every field is static), so they are copied as one block.
    function _digestTyped(bytes32 domainSeparator, CreditRecord calldata rec)
        private
        pure
        returns (bytes32 digest)
    {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, _RECORD_TYPEHASH)
            calldatacopy(add(m, 0x20), rec, 0x1a0)
            let structHash := keccak256(m, 0x1c0)
            mstore(m, hex"1901")
            mstore(add(m, 0x02), domainSeparator)
            mstore(add(m, 0x22), structHash)
            digest := keccak256(m, 0x42)
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
