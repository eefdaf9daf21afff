// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IDIDRegistry — did:ethr registry (ERC-1056 interface) with EIP-712 and recovery
/// @notice The registry behind `did:ethr:<chainId>:<address>`. Every address is an identity
/// that, until it says otherwise, owns itself. The owner may hand ownership to another key (key
/// rotation), add and revoke delegates (time-limited signing keys, checkable on chain with
/// `validDelegate`) and publish attributes (e.g. an Ed25519 key `did/pub/Ed25519/veriKey/base58`,
/// kept only as events). Each change emits one of the three ERC-1056 events carrying
/// `previousChange`, the block of the identity's previous change, and sets `changed(identity)` to
/// this block, so a resolver walks an identity's history backwards with one `eth_getLogs` per
/// block and needs no index.
///
/// Differences from ERC-1056 (EthereumDIDRegistry), kept so that ERC-1056 resolvers still work:
/// - Signed variants use EIP-712 (domain "zhixin DIDRegistry", version "1", chainId, this
///   contract) instead of ERC-1056's chainless `0x19 0x00` hash, carry the nonce explicitly
///   (so a stale nonce is a named error, not a wrong signer) and a `deadline`. The nonce is
///   counted per identity (`nonce(identity)`), not per owner key.
/// - Setting the owner to the zero address deactivates the identity for good: `identityOwner`
///   then returns zero (ERC-1056 would hand control back to the identity's own key) and every
///   later change, recovery included, reverts with DIDRegistryDeactivated.
/// - A registration authority holding ISSUER in Roles may re-bind a DID whose key was lost
///   (`recoverOwner`, after in-person re-verification off chain). Recovery emits the standard
///   DIDOwnerChanged, so plain ERC-1056 resolvers follow it, and DIDOwnerRecovered naming the
///   issuer and the evidence, so every recovery is auditable from logs. It also ends every
///   delegation made before it.
/// - Signatures with a high `s` or a `v` other than 27/28 are refused (no malleable twins);
///   owners that are contracts (ERC-1271) are not supported by the signed variants.
interface IDIDRegistry {
    /// @notice The Roles address given to the constructor is zero.
    error DIDRegistryZeroAddress();
    /// @notice `caller` is not the current owner of `identity`.
    error DIDRegistryNotOwner(address identity, address caller);
    /// @notice The caller lacks `role` (recovery needs ISSUER).
    error DIDRegistryUnauthorized(address account, bytes32 role);
    /// @notice `identity` was deactivated (owner set to zero); it can never change again.
    error DIDRegistryDeactivated(address identity);
    /// @notice Recovery cannot re-bind a DID to the zero address (that is deactivation).
    error DIDRegistryInvalidOwner(address newOwner);
    /// @notice Recovery must name the evidence of the in-person re-verification.
    error DIDRegistryMissingEvidence();
    /// @notice The signature is malformed, has a high s, or recovers no address.
    error DIDRegistryInvalidSignature();
    /// @notice The signature recovers `signer`, who is not `owner` of `identity` (a wrong key,
    /// or a payload signed for another chain, contract or set of arguments).
    error DIDRegistrySignerNotOwner(address identity, address signer, address owner);
    /// @notice The signed `nonce` is not `identity`'s next nonce `expected` (replayed or stale).
    error DIDRegistryInvalidNonce(address identity, uint256 expected, uint256 nonce);
    /// @notice The signed `deadline` is before the block's `timestamp`.
    error DIDRegistryExpired(uint256 deadline, uint256 timestamp);

    /// @notice ERC-1056: `identity` is now owned by `owner` (zero: deactivated).
    event DIDOwnerChanged(address indexed identity, address owner, uint256 previousChange);
    /// @notice ERC-1056: `delegate` is a `delegateType` delegate of `identity` until `validTo`
    /// (unix seconds; a revocation sets it to the block's timestamp).
    event DIDDelegateChanged(
        address indexed identity,
        bytes32 delegateType,
        address delegate,
        uint256 validTo,
        uint256 previousChange
    );
    /// @notice ERC-1056: attribute `name` = `value` of `identity` until `validTo` (0: revoked).
    event DIDAttributeChanged(
        address indexed identity,
        bytes32 name,
        bytes value,
        uint256 validTo,
        uint256 previousChange
    );
    /// @notice `issuer` re-bound `identity` to `owner` on the strength of `evidenceHash`
    /// (SHA-256 of the re-verification record kept off chain). Emitted right after the
    /// DIDOwnerChanged of the same recovery, with the same `previousChange`.
    event DIDOwnerRecovered(
        address indexed identity,
        address owner,
        address indexed issuer,
        bytes32 evidenceHash,
        uint256 previousChange
    );

    /// @notice The current owner: the identity itself until changed, zero once deactivated.
    function identityOwner(address identity) external view returns (address);

    /// @notice The stored owner (ERC-1056 `owners`): zero while the identity owns itself.
    function owners(address identity) external view returns (address);

    /// @notice Until when (unix seconds) `delegate` is a delegate of `identity` of the type whose
    /// keccak256 is `delegateTypeHash` (ERC-1056 `delegates`); 0 if never added since the
    /// identity's last recovery.
    function delegates(address identity, bytes32 delegateTypeHash, address delegate)
        external
        view
        returns (uint256);

    /// @notice The block of `identity`'s latest change; 0 if it never changed.
    function changed(address identity) external view returns (uint256);

    /// @notice The nonce the next signed change of `identity` must carry.
    function nonce(address identity) external view returns (uint256);

    /// @notice Whether `identity` was deactivated.
    function deactivated(address identity) external view returns (bool);

    /// @notice Whether `delegate` is a currently valid `delegateType` delegate of `identity`.
    function validDelegate(address identity, bytes32 delegateType, address delegate)
        external
        view
        returns (bool);

    /// @notice Hands `identity` to `newOwner` (key rotation); zero deactivates it for good.
    function changeOwner(address identity, address newOwner) external;

    /// @notice changeOwner authorized by the owner's EIP-712 signature of
    /// `ChangeOwner(identity, newOwner, nonce, deadline)`; anyone may relay it.
    function changeOwnerSigned(
        address identity,
        uint8 sigV,
        bytes32 sigR,
        bytes32 sigS,
        address newOwner,
        uint256 nonce_,
        uint256 deadline
    ) external;

    /// @notice Makes `delegate` a `delegateType` delegate of `identity` for `validity` seconds.
    function addDelegate(address identity, bytes32 delegateType, address delegate, uint256 validity)
        external;

    /// @notice addDelegate authorized by the owner's EIP-712 signature of
    /// `AddDelegate(identity, delegateType, delegate, validity, nonce, deadline)`.
    function addDelegateSigned(
        address identity,
        uint8 sigV,
        bytes32 sigR,
        bytes32 sigS,
        bytes32 delegateType,
        address delegate,
        uint256 validity,
        uint256 nonce_,
        uint256 deadline
    ) external;

    /// @notice Ends `delegate`'s `delegateType` delegation now.
    function revokeDelegate(address identity, bytes32 delegateType, address delegate) external;

    /// @notice revokeDelegate authorized by the owner's EIP-712 signature of
    /// `RevokeDelegate(identity, delegateType, delegate, nonce, deadline)`.
    function revokeDelegateSigned(
        address identity,
        uint8 sigV,
        bytes32 sigR,
        bytes32 sigS,
        bytes32 delegateType,
        address delegate,
        uint256 nonce_,
        uint256 deadline
    ) external;

    /// @notice Publishes attribute `name` = `value` for `validity` seconds (an event only).
    function setAttribute(address identity, bytes32 name, bytes calldata value, uint256 validity)
        external;

    /// @notice setAttribute authorized by the owner's EIP-712 signature of
    /// `SetAttribute(identity, name, value, validity, nonce, deadline)`.
    function setAttributeSigned(
        address identity,
        uint8 sigV,
        bytes32 sigR,
        bytes32 sigS,
        bytes32 name,
        bytes calldata value,
        uint256 validity,
        uint256 nonce_,
        uint256 deadline
    ) external;

    /// @notice Withdraws attribute `name` = `value` (emits it with validTo 0).
    function revokeAttribute(address identity, bytes32 name, bytes calldata value) external;

    /// @notice revokeAttribute authorized by the owner's EIP-712 signature of
    /// `RevokeAttribute(identity, name, value, nonce, deadline)`.
    function revokeAttributeSigned(
        address identity,
        uint8 sigV,
        bytes32 sigR,
        bytes32 sigS,
        bytes32 name,
        bytes calldata value,
        uint256 nonce_,
        uint256 deadline
    ) external;

    /// @notice Re-binds `identity` to `newOwner` after its holder lost the key.
    /// @dev Only ISSUER holders; `evidenceHash` (non-zero) names the off-chain re-verification.
    /// Emits DIDOwnerChanged then DIDOwnerRecovered. Every delegate added before the recovery
    /// stops counting (`validDelegate`, `delegates`), since the lost key may have been stolen;
    /// zhixin's resolver likewise drops earlier delegates and attributes at DIDOwnerRecovered
    /// (a plain ERC-1056 resolver, which ignores that event, still lists them until the new
    /// owner revokes them). Pending signatures of the old key fail: they no longer recover the
    /// owner.
    function recoverOwner(address identity, address newOwner, bytes32 evidenceHash) external;

    /// @notice The Roles contract asked about ISSUER.
    function roles() external view returns (address);

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
}
