// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {CreditRecord, PackedRecord} from "./Common.sol";

/// @title ICreditLedger — append-only ledger of agency-signed credit records
/// @notice Government agencies sign EIP-712 `CreditRecord`s off chain; anyone may relay them.
/// The signature is what authorizes: the signer must hold AGENCY with the record's category in
/// scope (IRoles.canWrite) at the block of inclusion. Accepted records are kept only as events
/// (no storage slot per record) plus a running hash `head = keccak256(abi.encode(head, id))` and
/// a count, so the full ledger can be re-verified from logs alone.
///
/// Record id = the EIP-712 digest of the record (domain "zhixin CreditLedger", version "1",
/// chainId, this contract): computable off chain before submission and unique per agency
/// because each agency spends each nonce once.
///
/// Nonces are unordered (Permit2 style): bit `nonce & 0xff` of word `nonce >> 8` in a per-agency
/// bitmap, so a rejected record never blocks later ones and records of one agency with nearby
/// nonces share one storage slot.
///
/// Lifecycle references (`ref`) are checked for shape only (zero exactly for RECORD); that the
/// referenced record exists and belongs to the same agency is checked off chain by the index and
/// the audit, since the ledger stores no per-record state.
interface ICreditLedger {
    /// @notice The Roles address given to the constructor is zero.
    error CreditLedgerZeroAddress();
    /// @notice `kind` is not one of the CREDIT_KIND_* constants.
    error CreditLedgerInvalidKind(uint8 kind);
    /// @notice `ref` must be zero for RECORD and non-zero for every other kind.
    error CreditLedgerInvalidRef(uint8 kind, bytes32 ref);
    /// @notice Category 0 is reserved.
    error CreditLedgerInvalidCategory(uint16 category);
    /// @notice `subjectKind` is not PERSON or ENTITY, or `subject` is zero.
    error CreditLedgerInvalidSubject(uint8 subjectKind, bytes32 subject);
    /// @notice `effectiveUntil` is set and before `effectiveFrom`.
    error CreditLedgerInvalidDates(uint64 effectiveFrom, uint64 effectiveUntil);
    /// @notice The signature is malformed, has a high s, or recovers no address.
    error CreditLedgerInvalidSignature();
    /// @notice `agency` has already spent `nonce` (the record may already be on the ledger).
    error CreditLedgerNonceUsed(address agency, uint256 nonce);
    /// @notice The record's `deadline` is before the block's timestamp.
    error CreditLedgerExpired(uint64 deadline);
    /// @notice `account` may not write records in `category` (not AGENCY, or out of scope).
    error CreditLedgerUnauthorized(address account, uint16 category);
    /// @notice A PackedRecord's `meta` word has bits set above bit 159 (malformed calldata).
    error CreditLedgerMalformedRecord(uint256 meta);
    /// @notice recordBatch was given no records.
    error CreditLedgerEmptyBatch();
    /// @notice recordBatch was given `size` records, more than `max`.
    error CreditLedgerBatchTooLarge(uint256 size, uint256 max);

    /// @notice Record `id` was appended as number `seq`.
    /// @dev Carries every signed field, so each record can be re-verified from logs alone.
    /// Narrow fields are packed to save log bytes (as in PackedRecord, plus the sequence number):
    /// `meta  = kind | subjectKind << 8 | category << 16 | amount << 32 | seq << 160`;
    /// `times = occurredAt | effectiveFrom << 64 | effectiveUntil << 128 | deadline << 192`.
    /// `r`, `vs` are the EIP-2098 signature; `headAfter` the running hash including this record.
    /// Only `id` is a topic (each topic costs 375 gas per record; the index answers queries):
    /// the agency is ecrecover(id, r, vs), which the ledger checked before appending, so a
    /// reader recovers it from the log alone. The data of a lifecycle record (every kind but
    /// RECORD) has one more word after `headAfter`: its `ref`. A RECORD's ref is zero by rule
    /// and is not logged (256 gas per record); ABI decoders read the declared words of both.
    event CreditRecorded(
        bytes32 indexed id,
        uint256 meta,
        uint256 times,
        bytes32 subject,
        bytes32 evidenceHash,
        bytes32 reasonHash,
        uint256 nonce,
        bytes32 r,
        bytes32 vs,
        bytes32 headAfter
    );

    /// @notice A recordBatch item was skipped for `reason` (a CREDIT_REJECT_* constant).
    /// @dev recordBatch emits exactly one CreditRecorded or CreditRecordRejected per item, in
    /// item order, so a relayer can pair outcomes with its inputs. A resubmitted batch yields
    /// NONCE_USED for items already on the ledger: resubmission is idempotent.
    event CreditRecordRejected(bytes32 indexed id, uint8 reason);

    /// @notice Appends one record; reverts with the named error if it cannot be accepted.
    /// @return id The record id (the EIP-712 digest of the typed record it packs).
    function record(PackedRecord calldata signed) external returns (bytes32 id);

    /// @notice Appends every acceptable record of `signed`; skips the others with an event.
    /// @dev Reverts only for an empty batch, one larger than CREDIT_MAX_BATCH, or malformed
    /// calldata (CreditLedgerMalformedRecord); per-item problems never revert.
    /// @return accepted How many records were appended.
    function recordBatch(PackedRecord[] calldata signed) external returns (uint256 accepted);

    /// @notice The running hash over all accepted ids (zero when empty) and their count.
    function state() external view returns (bytes32 head, uint256 count);

    /// @notice The running hash over all accepted ids, in order; zero when empty.
    function head() external view returns (bytes32);

    /// @notice How many records have been accepted.
    function count() external view returns (uint256);

    /// @notice Whether `agency` has spent `nonce`.
    function nonceUsed(address agency, uint256 nonce) external view returns (bool);

    /// @notice Bit i of the result is nonce `word << 8 | i` of `agency`.
    function nonceBitmap(address agency, uint256 word) external view returns (uint256);

    /// @notice The id (EIP-712 digest) `record` would have on this ledger.
    function hashRecord(CreditRecord calldata rec) external view returns (bytes32);

    /// @notice The EIP-712 domain separator for this chain.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32);

    /// @notice The EIP-712 domain, as EIP-5267 specifies.
    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        );

    /// @notice The Roles contract that authorizes agencies.
    function roles() external view returns (address);

    /// @notice Most records recordBatch accepts in one call.
    function maxBatchSize() external pure returns (uint256);
}
