// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IDIDRegistry} from "./IDIDRegistry.sol";
import {IRoles} from "./IRoles.sol";
import {ISSUER_ROLE} from "./Common.sol";

/// @title DIDRegistry
/// @notice See {IDIDRegistry}.
/// @dev Gas: an identity's owner, last-change block, nonce and deactivation flag share one
/// storage slot, so a change reads one slot and rewrites it; attributes live only in events.
/// One internal core per change (`_changeOwner`, `_addDelegate`, `_revokeDelegate`,
/// `_setAttribute`, `_revokeAttribute`) serves the direct, the signed and (for the owner) the
/// recovery entry points, after `_authorize` or `_useSignature` has checked the actor.
contract DIDRegistry is IDIDRegistry {
    // keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    bytes32 private constant _DOMAIN_TYPEHASH =
        0x8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f;
    // keccak256("ChangeOwner(address identity,address newOwner,uint256 nonce,uint256 deadline)")
    bytes32 private constant _CHANGE_OWNER_TYPEHASH =
        0x82298c32b4088832d834ca371c522351245967a47d5004c7ade6988b8602b7cd;
    // keccak256("AddDelegate(address identity,bytes32 delegateType,address delegate,
    //   uint256 validity,uint256 nonce,uint256 deadline)")  (one line, no space after commas)
    bytes32 private constant _ADD_DELEGATE_TYPEHASH =
        0xc9ba9f1f08616b207a06b99592d8b9356c6a6be0ee3d289c5209c845d035ea21;
    // keccak256("RevokeDelegate(address identity,bytes32 delegateType,address delegate,
    //   uint256 nonce,uint256 deadline)")  (one line, no space after commas)
    bytes32 private constant _REVOKE_DELEGATE_TYPEHASH =
        0x903d3ef60d4b028246a2e8fd6e563120fc0ade961ddfc181d03de7957b1a1c0b;
    // keccak256("SetAttribute(address identity,bytes32 name,bytes value,uint256 validity,
    //   uint256 nonce,uint256 deadline)")  (one line, no space after commas)
    bytes32 private constant _SET_ATTRIBUTE_TYPEHASH =
        0xe216be785bfa88e8577af03de0be20d51dbe45acebd108cfe07209d8b8d260b1;
    // keccak256("RevokeAttribute(address identity,bytes32 name,bytes value,uint256 nonce,
    //   uint256 deadline)")  (one line, no space after commas)
    bytes32 private constant _REVOKE_ATTRIBUTE_TYPEHASH =
        0xa2a0eb848b6697c05fc291469c3a4cfa539fa33bc5a666aa2dd36cc16d773781;
    // keccak256("zhixin DIDRegistry")
    bytes32 private constant _HASHED_NAME =
        0x81347256569f338cdc8f0a514da9ac408f14809226f13822b18195d5349a66e8;
    // keccak256("1")
    bytes32 private constant _HASHED_VERSION =
        0xc89efdaa54c0f20c7adf612882df0950f5a951637e0307cdcb4c672f298b8bc6;
    // secp256k1 group order / 2: a larger s is the malleable twin of a valid signature
    uint256 private constant _HALF_ORDER =
        0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    /// @dev One slot per identity. owner 0 with !deactivated means "owns itself" (ERC-1056).
    /// `epoch` counts recoveries: delegates are kept per epoch, so a recovery drops every
    /// delegate the lost key set up. uint40 blocks (a block a second for 30,000 years), uint32
    /// nonces and uint16 recoveries cannot run out in practice.
    struct Identity {
        address owner;
        uint40 changed;
        uint32 nonce;
        uint16 epoch;
        bool deactivated;
    }

    IRoles private immutable _roles;
    uint256 private immutable _cachedChainId;
    address private immutable _cachedThis;
    bytes32 private immutable _cachedDomainSeparator;

    mapping(address => Identity) private _identities;
    // identity => epoch => keccak256(abi.encode(delegateType)) => delegate => validTo (unix s)
    mapping(address => mapping(uint256 => mapping(bytes32 => mapping(address => uint256))))
        private _delegates;

    constructor(address roles_) {
        if (roles_ == address(0)) revert DIDRegistryZeroAddress();
        _roles = IRoles(roles_);
        _cachedChainId = block.chainid;
        _cachedThis = address(this);
        _cachedDomainSeparator = _buildDomainSeparator();
    }

    // ---- reads ----

    /// @inheritdoc IDIDRegistry
    function identityOwner(address identity) external view returns (address) {
        return _ownerOf(identity, _identities[identity]);
    }

    /// @inheritdoc IDIDRegistry
    function owners(address identity) external view returns (address) {
        return _identities[identity].owner;
    }

    /// @inheritdoc IDIDRegistry
    function delegates(address identity, bytes32 delegateTypeHash, address delegate)
        external
        view
        returns (uint256)
    {
        return _delegates[identity][_identities[identity].epoch][delegateTypeHash][delegate];
    }

    /// @inheritdoc IDIDRegistry
    function changed(address identity) external view returns (uint256) {
        return _identities[identity].changed;
    }

    /// @inheritdoc IDIDRegistry
    function nonce(address identity) external view returns (uint256) {
        return _identities[identity].nonce;
    }

    /// @inheritdoc IDIDRegistry
    function deactivated(address identity) external view returns (bool) {
        return _identities[identity].deactivated;
    }

    /// @inheritdoc IDIDRegistry
    function validDelegate(address identity, bytes32 delegateType, address delegate)
        external
        view
        returns (bool)
    {
        return _delegates[identity][_identities[identity].epoch][_typeKey(delegateType)][delegate]
            > block.timestamp;
    }

    /// @inheritdoc IDIDRegistry
    function roles() external view returns (address) {
        return address(_roles);
    }

    /// @inheritdoc IDIDRegistry
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparator();
    }

    /// @inheritdoc IDIDRegistry
    function eip712Domain()
        external
        view
        returns (bytes1, string memory, string memory, uint256, address, bytes32, uint256[] memory)
    {
        return (
            hex"0f", "zhixin DIDRegistry", "1", block.chainid, address(this), bytes32(0),
            new uint256[](0)
        );
    }

    // ---- owner ----

    /// @inheritdoc IDIDRegistry
    function changeOwner(address identity, address newOwner) external {
        _authorize(identity, msg.sender);
        _changeOwner(identity, newOwner);
    }

    /// @inheritdoc IDIDRegistry
    function changeOwnerSigned(
        address identity,
        uint8 sigV,
        bytes32 sigR,
        bytes32 sigS,
        address newOwner,
        uint256 nonce_,
        uint256 deadline
    ) external {
        bytes32 structHash =
            keccak256(abi.encode(_CHANGE_OWNER_TYPEHASH, identity, newOwner, nonce_, deadline));
        _useSignature(identity, structHash, nonce_, deadline, sigV, sigR, sigS);
        _changeOwner(identity, newOwner);
    }

    /// @inheritdoc IDIDRegistry
    function recoverOwner(address identity, address newOwner, bytes32 evidenceHash) external {
        if (!_roles.hasRole(ISSUER_ROLE, msg.sender)) {
            revert DIDRegistryUnauthorized(msg.sender, ISSUER_ROLE);
        }
        if (newOwner == address(0)) revert DIDRegistryInvalidOwner(newOwner);
        if (evidenceHash == bytes32(0)) revert DIDRegistryMissingEvidence();
        if (_identities[identity].deactivated) revert DIDRegistryDeactivated(identity);
        uint256 previous = _changeOwner(identity, newOwner);
        ++_identities[identity].epoch;
        emit DIDOwnerRecovered(identity, newOwner, msg.sender, evidenceHash, previous);
    }

    // ---- delegates ----

    /// @inheritdoc IDIDRegistry
    function addDelegate(address identity, bytes32 delegateType, address delegate, uint256 validity)
        external
    {
        _authorize(identity, msg.sender);
        _addDelegate(identity, delegateType, delegate, validity);
    }

    /// @inheritdoc IDIDRegistry
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
    ) external {
        bytes32 structHash = keccak256(
            abi.encode(
                _ADD_DELEGATE_TYPEHASH, identity, delegateType, delegate, validity, nonce_, deadline
            )
        );
        _useSignature(identity, structHash, nonce_, deadline, sigV, sigR, sigS);
        _addDelegate(identity, delegateType, delegate, validity);
    }

    /// @inheritdoc IDIDRegistry
    function revokeDelegate(address identity, bytes32 delegateType, address delegate) external {
        _authorize(identity, msg.sender);
        _revokeDelegate(identity, delegateType, delegate);
    }

    /// @inheritdoc IDIDRegistry
    function revokeDelegateSigned(
        address identity,
        uint8 sigV,
        bytes32 sigR,
        bytes32 sigS,
        bytes32 delegateType,
        address delegate,
        uint256 nonce_,
        uint256 deadline
    ) external {
        bytes32 structHash = keccak256(
            abi.encode(
                _REVOKE_DELEGATE_TYPEHASH, identity, delegateType, delegate, nonce_, deadline
            )
        );
        _useSignature(identity, structHash, nonce_, deadline, sigV, sigR, sigS);
        _revokeDelegate(identity, delegateType, delegate);
    }

    // ---- attributes ----

    /// @inheritdoc IDIDRegistry
    function setAttribute(address identity, bytes32 name, bytes calldata value, uint256 validity)
        external
    {
        _authorize(identity, msg.sender);
        _setAttribute(identity, name, value, validity);
    }

    /// @inheritdoc IDIDRegistry
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
    ) external {
        bytes32 structHash = keccak256(
            abi.encode(
                _SET_ATTRIBUTE_TYPEHASH,
                identity,
                name,
                keccak256(value),
                validity,
                nonce_,
                deadline
            )
        );
        _useSignature(identity, structHash, nonce_, deadline, sigV, sigR, sigS);
        _setAttribute(identity, name, value, validity);
    }

    /// @inheritdoc IDIDRegistry
    function revokeAttribute(address identity, bytes32 name, bytes calldata value) external {
        _authorize(identity, msg.sender);
        _revokeAttribute(identity, name, value);
    }

    /// @inheritdoc IDIDRegistry
    function revokeAttributeSigned(
        address identity,
        uint8 sigV,
        bytes32 sigR,
        bytes32 sigS,
        bytes32 name,
        bytes calldata value,
        uint256 nonce_,
        uint256 deadline
    ) external {
        bytes32 structHash = keccak256(
            abi.encode(
                _REVOKE_ATTRIBUTE_TYPEHASH, identity, name, keccak256(value), nonce_, deadline
            )
        );
        _useSignature(identity, structHash, nonce_, deadline, sigV, sigR, sigS);
        _revokeAttribute(identity, name, value);
    }

    // ---- cores: the caller has been authorized; each emits right after its change ----

    function _changeOwner(address identity, address newOwner) private returns (uint256 previous) {
        Identity storage id = _identities[identity];
        previous = id.changed;
        // one SSTORE for the whole slot
        _identities[identity] = Identity({
            owner: newOwner,
            changed: uint40(block.number),
            nonce: id.nonce,
            epoch: id.epoch,
            deactivated: newOwner == address(0)
        });
        emit DIDOwnerChanged(identity, newOwner, previous);
    }

    function _addDelegate(
        address identity,
        bytes32 delegateType,
        address delegate,
        uint256 validity
    ) private {
        uint256 validTo = _validTo(validity);
        _delegates[identity][_identities[identity].epoch][_typeKey(delegateType)][delegate] =
            validTo;
        uint256 previous = _touch(identity);
        emit DIDDelegateChanged(identity, delegateType, delegate, validTo, previous);
    }

    function _revokeDelegate(address identity, bytes32 delegateType, address delegate) private {
        _delegates[identity][_identities[identity].epoch][_typeKey(delegateType)][delegate] =
            block.timestamp;
        uint256 previous = _touch(identity);
        emit DIDDelegateChanged(identity, delegateType, delegate, block.timestamp, previous);
    }

    function _setAttribute(
        address identity,
        bytes32 name,
        bytes calldata value,
        uint256 validity
    ) private {
        uint256 previous = _touch(identity);
        emit DIDAttributeChanged(identity, name, value, _validTo(validity), previous);
    }

    function _revokeAttribute(address identity, bytes32 name, bytes calldata value) private {
        uint256 previous = _touch(identity);
        emit DIDAttributeChanged(identity, name, value, 0, previous);
    }

    // ---- authorization ----

    /// @dev Reverts unless `actor` is the current owner of a live `identity`.
    function _authorize(address identity, address actor) private view {
        Identity storage id = _identities[identity];
        if (id.deactivated) revert DIDRegistryDeactivated(identity);
        if (actor != _ownerOf(identity, id)) revert DIDRegistryNotOwner(identity, actor);
    }

    /// @dev Checks deadline, nonce and the owner's EIP-712 signature over `structHash`, then
    /// spends the nonce. Checked in the order that gives the most precise error.
    function _useSignature(
        address identity,
        bytes32 structHash,
        uint256 nonce_,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) private {
        if (block.timestamp > deadline) revert DIDRegistryExpired(deadline, block.timestamp);
        Identity storage id = _identities[identity];
        if (id.deactivated) revert DIDRegistryDeactivated(identity);
        uint256 expected = id.nonce;
        if (nonce_ != expected) revert DIDRegistryInvalidNonce(identity, expected, nonce_);
        bytes32 digest = keccak256(abi.encodePacked(hex"1901", _domainSeparator(), structHash));
        address signer = _recover(digest, v, r, s);
        if (signer == address(0)) revert DIDRegistryInvalidSignature();
        address owner = _ownerOf(identity, id);
        if (signer != owner) revert DIDRegistrySignerNotOwner(identity, signer, owner);
        id.nonce = uint32(expected + 1);
    }

    /// @dev Zero for a malformed or malleable (high s) signature, or one ecrecover refuses.
    function _recover(bytes32 digest, uint8 v, bytes32 r, bytes32 s)
        private
        pure
        returns (address)
    {
        if ((v != 27 && v != 28) || uint256(s) > _HALF_ORDER) return address(0);
        return ecrecover(digest, v, r, s);
    }

    // ---- helpers ----

    function _ownerOf(address identity, Identity storage id) private view returns (address) {
        address owner = id.owner;
        if (owner == address(0) && !id.deactivated) return identity;
        return owner;
    }

    /// @dev Marks `identity` changed in this block; returns the block of its previous change.
    function _touch(address identity) private returns (uint256 previous) {
        Identity storage id = _identities[identity];
        previous = id.changed;
        id.changed = uint40(block.number);
    }

    /// @dev block.timestamp + validity, saturating instead of reverting on overflow.
    function _validTo(uint256 validity) private view returns (uint256) {
        unchecked {
            uint256 t = block.timestamp + validity;
            return t < validity ? type(uint256).max : t;
        }
    }

    /// @dev ERC-1056 keys delegates by the hash of the type (abi.encode == encodePacked here).
    function _typeKey(bytes32 delegateType) private pure returns (bytes32) {
        return keccak256(abi.encode(delegateType));
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
