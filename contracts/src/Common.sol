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

// ---- Credit records (CreditLedger) ----
// Kinds, subject kinds and rejection reasons are small integers shared with ledger/records.py.

/// @dev An original record of good or bad conduct; the only kind whose `ref` is zero.
uint8 constant CREDIT_KIND_RECORD = 1;
/// @dev Supersedes the record `ref` (the amended content is this record's fields).
uint8 constant CREDIT_KIND_AMEND = 2;
/// @dev Withdraws the record `ref` (e.g. the administrative act was revoked).
uint8 constant CREDIT_KIND_WITHDRAW = 3;
/// @dev The subject disputes the record `ref`; registered by the responsible agency.
uint8 constant CREDIT_KIND_OBJECTION = 4;
/// @dev The objection `ref` was upheld: the disputed record is to be corrected or withdrawn.
uint8 constant CREDIT_KIND_RESOLUTION_UPHELD = 5;
/// @dev Credit repair of the record `ref`: changes what is shown and counted, never the fact.
uint8 constant CREDIT_KIND_REPAIR = 6;
/// @dev The objection `ref` was rejected: the disputed record stands.
uint8 constant CREDIT_KIND_RESOLUTION_REJECTED = 7;

/// @dev The subject is a natural person (pseudonym of the resident identity number).
uint8 constant CREDIT_SUBJECT_PERSON = 1;
/// @dev The subject is an entity (pseudonym of the unified social credit code).
uint8 constant CREDIT_SUBJECT_ENTITY = 2;

/// @dev Most records one recordBatch call accepts.
uint256 constant CREDIT_MAX_BATCH = 500;

// Why a batch item was skipped (CreditRecordRejected.reason); checked in this order.
uint8 constant CREDIT_REJECT_INVALID_KIND = 1;
uint8 constant CREDIT_REJECT_INVALID_REF = 2;
uint8 constant CREDIT_REJECT_INVALID_CATEGORY = 3;
uint8 constant CREDIT_REJECT_INVALID_SUBJECT = 4;
uint8 constant CREDIT_REJECT_INVALID_DATES = 5;
uint8 constant CREDIT_REJECT_INVALID_SIGNATURE = 6;
uint8 constant CREDIT_REJECT_NONCE_USED = 7;
uint8 constant CREDIT_REJECT_EXPIRED = 8;
uint8 constant CREDIT_REJECT_UNAUTHORIZED = 9;

/// @dev One credit record, exactly as the agency signs it (EIP-712 struct `CreditRecord`).
/// Field order puts the narrow fields first and the 32-byte ones last, so the ledger can copy
/// the tail straight from calldata into its event. Dates are unix seconds; effectiveUntil 0 is
/// open-ended; amount 0 is none; subject is a keyed pseudonym (never personal data); the hashes
/// are SHA-256 of texts and documents kept off chain; nonce is a Permit2-style unordered nonce.
struct CreditRecord {
    uint8 kind;
    uint8 subjectKind;
    uint16 category;
    uint64 occurredAt;
    uint64 effectiveFrom;
    uint64 effectiveUntil;
    uint64 deadline;
    uint128 amount;
    bytes32 subject;
    bytes32 evidenceHash;
    bytes32 reasonHash;
    bytes32 ref;
    uint256 nonce;
}

/// @dev A signed record as the ledger takes it in calldata: 9 words instead of the typed 15.
/// Agencies still sign the typed `CreditRecord`; the ledger unpacks these words to hash it. The
/// eight narrow fields travel packed exactly as CreditRecorded carries them:
/// `meta  = kind | subjectKind << 8 | category << 16 | amount << 32` (bits 160 and up zero);
/// `times = occurredAt | effectiveFrom << 64 | effectiveUntil << 128 | deadline << 192`.
/// (r, vs) is the agency's EIP-2098 compact signature over the EIP-712 digest:
/// vs = (v - 27) << 255 | s. `ref` comes last so the words the event copies are contiguous.
struct PackedRecord {
    uint256 meta;
    uint256 times;
    bytes32 subject;
    bytes32 evidenceHash;
    bytes32 reasonHash;
    uint256 nonce;
    bytes32 r;
    bytes32 vs;
    bytes32 ref;
}

// ---- Identity credentials (CredentialRegistry) ----
// Status purposes are small integers shared with identity/status.py.

/// @dev A status list whose set bits revoke credentials; a set bit never clears.
uint8 constant CREDENTIAL_STATUS_REVOCATION = 1;
/// @dev A status list whose set bits suspend credentials; bits may be cleared again.
uint8 constant CREDENTIAL_STATUS_SUSPENSION = 2;
/// @dev Fewest entries of a status list: 16 KiB of bits, the W3C Bitstring Status List minimum.
uint256 constant CREDENTIAL_STATUS_MIN_LENGTH = 131_072;
/// @dev Most entries of a status list: 2 MiB of bits, so a verifier can always expand it.
uint256 constant CREDENTIAL_STATUS_MAX_LENGTH = 16_777_216;
/// @dev Most items one anchorBatch or setStatusBatch call accepts.
uint256 constant CREDENTIAL_MAX_BATCH = 500;

/// @dev One credential to anchor (anchorBatch item); see ICredentialRegistry.anchor.
struct CredentialAnchorInput {
    bytes32 credentialHash;
    bytes32 subjectDidHash;
    uint64 validFrom;
    uint64 validUntil;
    uint256 statusListId;
    uint256 statusIndex;
}

/// @dev What the registry keeps per anchored credential (three storage slots). Dates are unix
/// seconds (validUntil 0: open-ended); anchoredAt is the block number; statusListId 0: no status.
struct CredentialAnchor {
    address issuer;
    uint64 validFrom;
    uint64 validUntil;
    uint64 anchoredAt;
    uint64 statusListId;
    uint32 statusIndex;
    bytes32 subjectDidHash;
}
