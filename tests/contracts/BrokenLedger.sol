// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title BrokenLedger — TEST ONLY: emits CreditRecorded exactly as given, checking nothing
/// @notice A deliberately broken ledger (no role, scope, signature, seq or head checks) so the
/// audit's pure verifier can be shown logs that the real CreditLedger would never emit.
contract BrokenLedger {
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

    /// @notice Emits one CreditRecorded (of a RECORD: no ref word) with id `id` and words `w`.
    function emitRecord(bytes32 id, bytes32[9] calldata w) external {
        emit CreditRecorded(
            id, uint256(w[0]), uint256(w[1]), w[2], w[3], w[4], uint256(w[5]), w[6], w[7], w[8]
        );
    }
}
