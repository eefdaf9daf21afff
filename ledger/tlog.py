"""RFC 9162 Merkle tree, inclusion/consistency proofs and C2SP signed checkpoints.

Everything here is pure: bytes in, result out, no I/O and no clock, so a proof checked today
checks the same way in ten years.

Invariants:

* Hashing is RFC 9162 §2.1.1 with SHA-256: ``leaf = SHA-256(0x00 || data)``,
  ``node = SHA-256(0x01 || left || right)``, and the empty tree's root is ``SHA-256("")``.
  Every hash handled by the verifiers is exactly :data:`HASH_SIZE` (32) bytes; anything else is
  rejected with a precise message rather than silently failing to match.
* :class:`MerkleTree` stores only *complete* (perfect) subtree hashes, one packed ``bytearray``
  per level. A complete node never changes once its last leaf is appended, so the root at any
  earlier size and every proof are assembled from O(log² n) stored nodes, never by rehashing
  leaves; appending costs O(1) hashes amortised.
* :func:`verify_inclusion` and :func:`verify_consistency` run the RFC 9162 §2.1.3.2 and
  §2.1.4.2 algorithms step for step. They first check the proof length against the length the
  tree shape dictates, only to report *why* a proof is wrong; the RFC loop rejects the same
  proofs.
* Consistency from the empty tree to a non-empty one is rejected: RFC 9162 defines consistency
  proofs only for ``0 < old_size``. Equal sizes are consistent iff the proof is empty and the
  roots are equal.
* Checkpoints follow c2sp.org/tlog-checkpoint and are wrapped in c2sp.org/signed-note with
  Ed25519 (signature type 0x01). A note is only ever returned after at least one signature by a
  caller-supplied key verified; a known key whose signature fails rejects the whole note.

Every error raised on purpose is a :class:`TlogError` (an ``InvalidInput``): the caller's data
is wrong, retrying will not help.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.errors import InvalidInput

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_NOTE_SIGNATURES",
    "Checkpoint",
    "CheckpointError",
    "ConsistencyProofError",
    "InclusionProofError",
    "MerkleTree",
    "NoteError",
    "NoteSignature",
    "NoteSignatureError",
    "SignedNote",
    "TlogError",
    "VerifierKey",
    "VerifierKeyError",
    "ed25519_verifier_key",
    "format_checkpoint_body",
    "leaf_hash",
    "node_hash",
    "note_key_id",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint_body",
    "parse_verifier_key",
    "root_from_leaf_hashes",
    "sign_checkpoint",
    "sign_note",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root hash of the empty tree, RFC 9162 §2.1.1: SHA-256 of the empty string."""

MAX_NOTE_SIGNATURES = 100
"""Signature lines accepted per note; signed-note requires at least 16 (Go uses 100)."""

_MAX_TREE_SIZE = (1 << 64) - 1  # tree sizes are uint64 on the wire (RFC 9162, Go, C2SP)
_ED25519_SIG_TYPE = 0x01
_SIG_PREFIX = "\u2014 "  # em dash, space
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")

# Looked up at call time (not bound at import) so tests can count hash invocations.
_sha256 = hashlib.sha256


# --------------------------------------------------------------------------------------------
# Errors


class TlogError(InvalidInput):
    """Root of every transparency-log error: the data handed in is malformed or does not verify."""

    code = "tlog-invalid"


class InclusionProofError(TlogError):
    """An inclusion proof does not prove the leaf is in the tree with that root."""

    code = "tlog-inclusion-proof"


class ConsistencyProofError(TlogError):
    """A consistency proof does not prove the new tree extends the old one."""

    code = "tlog-consistency-proof"


class CheckpointError(TlogError):
    """A checkpoint (or the signed note carrying it) is malformed or untrusted."""

    code = "tlog-checkpoint"


class NoteError(CheckpointError):
    """The signed-note envelope is malformed; a CheckpointError because notes carry checkpoints."""

    code = "tlog-note"


class NoteSignatureError(NoteError):
    """No known key signed the note, or a known key's signature does not verify."""

    code = "tlog-note-signature"


class VerifierKeyError(NoteError):
    """A verifier key string (``<name>+<hex id>+<base64 key>``) is malformed or inconsistent."""

    code = "tlog-verifier-key"


# --------------------------------------------------------------------------------------------
# Hashing (RFC 9162 §2.1.1)


def leaf_hash(data: bytes) -> bytes:
    """Hash a leaf's data; the 0x00 prefix keeps leaves and interior nodes from colliding."""
    return _sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two child hashes into their parent (0x01 prefix, left before right).

    Sizes are not checked here (this is the hot primitive); the verifiers check them.
    """
    return _sha256(_NODE_PREFIX + bytes(left) + bytes(right)).digest()


def _check_hash(value: object, what: str, error: type[TlogError] = TlogError) -> bytes:
    """Return ``value`` as bytes if it is a 32-byte hash, else raise ``error`` saying which."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise error(f"{what} must be bytes, got {type(value).__name__}")
    raw = bytes(value)
    if len(raw) != HASH_SIZE:
        raise error(f"{what} must be {HASH_SIZE} bytes, got {len(raw)}")
    return raw


def _check_size(value: object, what: str, error: type[TlogError] = TlogError) -> int:
    """Return ``value`` if it is an int in the uint64 range, else raise ``error``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{what} must be an int, got {type(value).__name__}")
    if not 0 <= value <= _MAX_TREE_SIZE:
        raise error(f"{what} must be between 0 and 2^64-1, got {value}")
    return value


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Compute the RFC 9162 root of a list of leaf hashes, level by level.

    A lone node at the end of a level is carried up unchanged, which yields exactly the RFC's
    "largest power of two smaller than n" split without recursion.
    """
    level = _pack_hashes(hashes, 0)
    sha, prefix, pair = _sha256, _NODE_PREFIX, 2 * HASH_SIZE
    if not level:
        return EMPTY_ROOT
    while len(level) > HASH_SIZE:
        paired = len(level) // pair * pair
        nxt = b"".join([sha(prefix + level[i : i + pair]).digest() for i in range(0, paired, pair)])
        level = nxt + level[paired:]
    return level


def _pack_hashes(hashes: Iterable[bytes], first_index: int) -> bytes:
    """Concatenate 32-byte hashes, naming the first bad one (by leaf index) if any."""
    items = hashes if isinstance(hashes, list | tuple) else list(hashes)
    try:
        packed = b"".join(items)
    except TypeError:
        packed = b""
    if len(packed) == HASH_SIZE * len(items) and all(len(h) == HASH_SIZE for h in items):
        return packed
    for i, h in enumerate(items):
        _check_hash(h, f"leaf hash {first_index + i}")
    raise TlogError("leaf hashes are malformed")  # pragma: no cover - the loop always raises


# --------------------------------------------------------------------------------------------
# The tree


def _largest_power_of_two_below(n: int) -> int:
    """Return k, the largest power of two with k < n (RFC 9162's split point); needs n > 1."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only RFC 9162 tree over leaf hashes, with proofs for any past size.

    ``_levels[k]`` packs, 32 bytes each, the hashes of every complete subtree of 2^k leaves
    (level 0 = the leaf hashes). Nothing else is stored, so memory is about 64 bytes per leaf.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self.append_many(leaf_hashes)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return len(self._levels[0]) // HASH_SIZE

    def __len__(self) -> int:
        return self.size

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash (not leaf data: use :func:`leaf_hash`); return its index."""
        return self.append_many((leaf_hash,)).start

    def append_many(self, leaf_hashes: Iterable[bytes]) -> range:
        """Append leaf hashes in order and return the range of indices they received.

        All hashes are validated before any is stored, so a bad one leaves the tree unchanged.
        """
        first = self.size
        packed = _pack_hashes(leaf_hashes, first)
        if not packed:
            return range(first, first)
        self._levels[0] += packed
        self._complete_parents()
        return range(first, self.size)

    def _complete_parents(self) -> None:
        """Hash every pair of complete siblings whose parent is not stored yet, bottom up."""
        sha, prefix, levels = _sha256, _NODE_PREFIX, self._levels
        pair = 2 * HASH_SIZE
        depth = 0
        while True:
            children = levels[depth]
            complete = len(children) // pair
            if depth + 1 == len(levels):
                if complete == 0:
                    return
                levels.append(bytearray())
            parents = levels[depth + 1]
            have = len(parents) // HASH_SIZE
            if have == complete:
                return  # nothing new at this level, so nothing new above it either
            new = bytearray()
            for j in range(have, complete):
                new += sha(prefix + children[j * pair : (j + 1) * pair]).digest()
            parents += new
            depth += 1

    def leaf_hash_at(self, index: int) -> bytes:
        """Return the stored hash of leaf ``index``."""
        self._check_index(index, self.size)
        return self._node(0, index)

    def root(self, size: int | None = None) -> bytes:
        """Return the root hash of the tree as it was at ``size`` leaves (default: now)."""
        size = self._resolve_size(size)
        return self._range_hash(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, ordered leaf to root."""
        size = self._resolve_size(size)
        self._check_index(index, size)
        path: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            mid = lo + _largest_power_of_two_below(hi - lo)
            if index < mid:
                path.append(self._range_hash(mid, hi))
                hi = mid
            else:
                path.append(self._range_hash(lo, mid))
                lo = mid
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Return PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1, ordered bottom up.

        Defined for ``0 < old_size <= new_size``; equal sizes give the empty proof. A proof
        from the empty tree is refused (the RFC defines none).
        """
        new_size = self._resolve_size(new_size)
        old_size = _check_size(old_size, "old_size", ConsistencyProofError)
        if old_size > new_size:
            raise ConsistencyProofError(
                f"old_size {old_size} is larger than new_size {new_size}",
                old_size=old_size,
                new_size=new_size,
            )
        if old_size == new_size:
            return []
        if old_size == 0:
            raise ConsistencyProofError(
                "RFC 9162 defines no consistency proof from the empty tree (old_size 0)",
                old_size=old_size,
                new_size=new_size,
            )
        path: list[bytes] = []
        lo, hi, whole = 0, new_size, True  # whole: the old tree is a prefix we must not emit
        while old_size != hi:
            mid = lo + _largest_power_of_two_below(hi - lo)
            if old_size <= mid:
                path.append(self._range_hash(mid, hi))
                hi = mid
            else:
                path.append(self._range_hash(lo, mid))
                lo, whole = mid, False
        if not whole:
            path.append(self._range_hash(lo, hi))
        path.reverse()
        return path

    # -- internals --------------------------------------------------------------------------

    def _resolve_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        size = _check_size(size, "size")
        if size > self.size:
            raise TlogError(
                f"size {size} is beyond the tree's {self.size} leaves", size=size, have=self.size
            )
        return size

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TlogError(f"leaf index must be an int, got {type(index).__name__}")
        if not 0 <= index < size:
            raise TlogError(
                f"leaf index {index} is outside a tree of size {size}", index=index, size=size
            )

    def _node(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree of 2^level leaves starting at leaf index << level."""
        return bytes(self._levels[level][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def _range_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range the RFC's splitting produces (start aligned, end>start).

        Such a range is a run of complete subtrees of decreasing size; fold them right to left.
        """
        nodes: list[bytes] = []
        pos, remaining = start, end - start
        while remaining:
            level = remaining.bit_length() - 1
            nodes.append(self._node(level, pos >> level))
            pos += 1 << level
            remaining -= 1 << level
        sha = _sha256
        acc = nodes.pop()
        while nodes:
            acc = sha(_NODE_PREFIX + nodes.pop() + acc).digest()
        return acc


# --------------------------------------------------------------------------------------------
# Verification (RFC 9162 §2.1.3.2 and §2.1.4.2)


def _inclusion_proof_length(index: int, size: int) -> int:
    """Hashes in a proof for ``index`` in a tree of ``size``: path below and along the border."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _check_proof(proof: Sequence[bytes], error: type[TlogError]) -> list[bytes]:
    if isinstance(proof, bytes | bytearray | str):
        raise error("proof must be a sequence of hashes, not a single bytes/str value")
    return [_check_hash(p, f"proof[{i}]", error) for i, p in enumerate(proof)]


def _digest_mismatch(computed: bytes, expected: bytes) -> bool:
    return not hmac.compare_digest(computed, expected)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Returns None on success and raises :class:`InclusionProofError` on any failure.
    """
    err = InclusionProofError
    leaf = _check_hash(leaf_hash, "leaf_hash", err)
    expected_root = _check_hash(root, "root", err)
    index = _check_size(index, "index", err)
    size = _check_size(size, "size", err)
    path = _check_proof(proof, err)
    # Step 1.
    if index >= size:
        raise err(f"leaf index {index} is not below tree size {size}", index=index, size=size)
    want = _inclusion_proof_length(index, size)
    if len(path) != want:
        raise err(
            f"proof has {len(path)} hashes; leaf {index} of a tree of size {size} needs {want}",
            index=index,
            size=size,
        )
    # Steps 2-4.
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise err("proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # Step 5.
    if sn != 0:
        raise err("proof is shorter than the path to the root")
    if _digest_mismatch(r, expected_root):
        raise err(
            f"proof for leaf {index} gives root {r.hex()}, not {expected_root.hex()}",
            index=index,
            size=size,
        )


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    """Hashes in a proof from ``old_size`` to ``new_size`` (0 < old_size < new_size)."""
    shift = (old_size & -old_size).bit_length() - 1  # trailing zero bits of old_size
    seed_in_proof = 0 if old_size == 1 << shift else 1
    return seed_in_proof + _inclusion_proof_length(old_size - 1, new_size) - shift


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size``/``new_root`` extends that of ``old_size``/``old_root``.

    Returns None on success and raises :class:`ConsistencyProofError` on any failure.
    """
    err = ConsistencyProofError
    old_size = _check_size(old_size, "old_size", err)
    new_size = _check_size(new_size, "new_size", err)
    first = _check_hash(old_root, "old_root", err)
    second = _check_hash(new_root, "new_root", err)
    path = _check_proof(proof, err)
    sizes = {"old_size": old_size, "new_size": new_size}
    if old_size > new_size:
        raise err(f"old_size {old_size} is larger than new_size {new_size}", **sizes)
    if old_size == new_size:
        if path:
            raise err(f"sizes are equal ({old_size}) but the proof has {len(path)} hashes", **sizes)
        if _digest_mismatch(first, second):
            raise err(f"sizes are equal ({old_size}) but the roots differ", **sizes)
        return
    if old_size == 0:
        raise err("RFC 9162 defines no consistency proof from the empty tree (old_size 0)", **sizes)
    # Step 1.
    if not path:
        raise err(f"empty proof between different sizes {old_size} and {new_size}", **sizes)
    want = _consistency_proof_length(old_size, new_size)
    if len(path) != want:
        raise err(
            f"proof has {len(path)} hashes; sizes {old_size} -> {new_size} need {want}", **sizes
        )
    # Step 2.
    if old_size & (old_size - 1) == 0:
        path.insert(0, first)
    # Steps 3-5.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:
            raise err("proof is longer than the path to the root", **sizes)
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # Step 7.
    if sn != 0:
        raise err("proof is shorter than the path to the root", **sizes)
    if _digest_mismatch(fr, first):
        raise err(f"proof gives old root {fr.hex()}, not {first.hex()}", **sizes)
    if _digest_mismatch(sr, second):
        raise err(f"proof gives new root {sr.hex()}, not {second.hex()}", **sizes)


# --------------------------------------------------------------------------------------------
# Checkpoints (c2sp.org/tlog-checkpoint)


def _check_line(value: object, what: str, error: type[TlogError]) -> str:
    """A non-empty single line of note text: str, no control characters, valid UTF-8."""
    if not isinstance(value, str):
        raise error(f"{what} must be a str, got {type(value).__name__}")
    if not value:
        raise error(f"{what} must not be empty")
    bad = next((c for c in value if c < " "), None)
    if bad is not None:
        raise error(f"{what} contains control character U+{ord(bad):04X}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(f"{what} is not valid UTF-8 text (lone surrogate)") from exc
    return value


def _b64decode_canonical(text: str, what: str, error: type[TlogError]) -> bytes:
    """Decode standard padded base64, refusing anything but the one canonical spelling."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise error(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise error(f"{what} is not canonical base64")
    return raw


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's signed statement of (origin, tree size, root hash), plus opaque extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        _check_line(self.origin, "checkpoint origin", CheckpointError)
        _check_size(self.size, "checkpoint size", CheckpointError)
        object.__setattr__(
            self, "root_hash", _check_hash(self.root_hash, "checkpoint root_hash", CheckpointError)
        )
        if isinstance(self.extensions, str):
            raise CheckpointError("checkpoint extensions must be a sequence of lines, not a str")
        exts = tuple(self.extensions)
        for i, line in enumerate(exts):
            _check_line(line, f"checkpoint extension line {i}", CheckpointError)
        object.__setattr__(self, "extensions", exts)


def format_checkpoint_body(checkpoint: Checkpoint) -> str:
    """Render the note text: origin, decimal size, base64 root, extensions; each ends in \\n."""
    lines = [
        checkpoint.origin,
        str(checkpoint.size),
        base64.b64encode(checkpoint.root_hash).decode("ascii"),
        *checkpoint.extensions,
    ]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint_body(text: str) -> Checkpoint:
    """Parse checkpoint note text, accepting only the exact canonical spelling."""
    err = CheckpointError
    if not isinstance(text, str):
        raise err(f"checkpoint body must be a str, got {type(text).__name__}")
    if not text.endswith("\n"):
        raise err("checkpoint body must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise err(f"checkpoint body has {len(lines)} lines, needs at least 3")
    origin, size_line, root_line, *extensions = lines
    _check_line(origin, "checkpoint origin", err)
    if not _DECIMAL.fullmatch(size_line):
        raise err(f"checkpoint size {size_line!r} is not a canonical decimal number")
    size = int(size_line)
    if size > _MAX_TREE_SIZE:
        raise err(f"checkpoint size {size_line} does not fit in 64 bits")
    root = _b64decode_canonical(root_line, "checkpoint root hash", err)
    if len(root) != HASH_SIZE:
        raise err(f"checkpoint root hash is {len(root)} bytes, must be {HASH_SIZE}")
    for i, line in enumerate(extensions):
        _check_line(line, f"checkpoint extension line {i}", err)
    return Checkpoint(origin=origin, size=size, root_hash=root, extensions=tuple(extensions))


# --------------------------------------------------------------------------------------------
# Signed notes (c2sp.org/signed-note), Ed25519 only


def _check_key_name(name: object, error: type[TlogError]) -> str:
    if not isinstance(name, str):
        raise error(f"key name must be a str, got {type(name).__name__}")
    if not name:
        raise error("key name must not be empty")
    if "+" in name or any(c.isspace() for c in name):
        raise error(f"key name {name!r} must not contain spaces or '+'")
    _check_line(name, "key name", error)
    return name


def _raw_public_key(public_key: Ed25519PublicKey | bytes, error: type[TlogError]) -> bytes:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    if isinstance(public_key, bytes | bytearray) and len(public_key) == 32:
        return bytes(public_key)
    raise error("public key must be an Ed25519PublicKey or its 32 raw bytes")


def note_key_id(key_name: str, public_key: Ed25519PublicKey | bytes) -> bytes:
    """Return the 4-byte key ID: SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]."""
    name = _check_key_name(key_name, VerifierKeyError)
    raw = _raw_public_key(public_key, VerifierKeyError)
    return _sha256(name.encode("utf-8") + b"\n" + bytes([_ED25519_SIG_TYPE]) + raw).digest()[:4]


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A trusted Ed25519 note key: its name, 4-byte ID and 32-byte public key."""

    name: str
    key_id: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        if note_key_id(self.name, self.public_key) != self.key_id:
            raise VerifierKeyError(f"key ID {self.key_id.hex()} is not the ID of key {self.name}")

    def __str__(self) -> str:
        encoded = base64.b64encode(bytes([_ED25519_SIG_TYPE]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"


def ed25519_verifier_key(key_name: str, public_key: Ed25519PublicKey | bytes) -> str:
    """Return the Go-compatible verifier key string ``<name>+<hex id>+<base64(0x01||key)>``."""
    raw = _raw_public_key(public_key, VerifierKeyError)
    return str(VerifierKey(key_name, note_key_id(key_name, raw), raw))


def parse_verifier_key(vkey: str) -> VerifierKey:
    """Parse a ``<name>+<hex id>+<base64(0x01||key)>`` string, checking the ID matches the key."""
    err = VerifierKeyError
    if not isinstance(vkey, str):
        raise err(f"verifier key must be a str, got {type(vkey).__name__}")
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise err("verifier key must look like <name>+<hex key id>+<base64 key>")
    name, id_hex, key_b64 = parts
    _check_key_name(name, err)
    if not _HEX8.fullmatch(id_hex):
        raise err(f"verifier key ID {id_hex!r} is not 8 hex digits")
    material = _b64decode_canonical(key_b64, "verifier key material", err)
    if not material:
        raise err("verifier key material is empty")
    if material[0] != _ED25519_SIG_TYPE:
        raise err(f"verifier key type 0x{material[0]:02x} is not Ed25519 (0x01)")
    if len(material) != 33:
        raise err(f"Ed25519 verifier key is {len(material) - 1} bytes, must be 32")
    return VerifierKey(name=name, key_id=bytes.fromhex(id_hex), public_key=material[1:])


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line of a note: key name, key ID and the raw signature bytes."""

    key_name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class SignedNote:
    """An opened note: its text and which signatures verified (by trusted keys) or were unknown."""

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


def _check_note_text(text: object, what: str) -> str:
    """Note text: str ending in newline, no control characters but newline, encodable UTF-8."""
    if not isinstance(text, str):
        raise NoteError(f"{what} must be a str, got {type(text).__name__}")
    if not text.endswith("\n"):
        raise NoteError(f"{what} must end with a newline")
    bad = next((c for c in text if c < " " and c != "\n"), None)
    if bad is not None:
        raise NoteError(f"{what} contains control character U+{ord(bad):04X}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError(f"{what} is not valid UTF-8 text (lone surrogate)") from exc
    return text


def sign_note(text: str, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``text`` (which must end in a newline) and return the complete note."""
    body = _check_note_text(text, "note text")
    if not isinstance(private_key, Ed25519PrivateKey):
        raise NoteError("private key must be an Ed25519PrivateKey")
    key_id = note_key_id(key_name, private_key.public_key())
    signature = private_key.sign(body.encode("utf-8"))
    encoded = base64.b64encode(key_id + signature).decode("ascii")
    return f"{body}\n{_SIG_PREFIX}{key_name} {encoded}\n"


def _verifier_index(verifier_keys: Iterable[str | VerifierKey]) -> dict[tuple[str, bytes], bytes]:
    if isinstance(verifier_keys, str | VerifierKey):
        verifier_keys = (verifier_keys,)
    index: dict[tuple[str, bytes], bytes] = {}
    for vk in verifier_keys:
        key = vk if isinstance(vk, VerifierKey) else parse_verifier_key(vk)
        slot = (key.name, key.key_id)
        if index.setdefault(slot, key.public_key) != key.public_key:
            raise VerifierKeyError(
                f"two different keys share name and ID {key.name}+{slot[1].hex()}"
            )
    return index


def open_note(note: str | bytes, verifier_keys: Iterable[str | VerifierKey]) -> SignedNote:
    """Parse a signed note and verify it against trusted keys (vkey strings or VerifierKeys).

    Signatures by unknown keys are kept as unverified and ignored; a signature by a known key
    that fails to verify rejects the note; at least one known key must have signed.
    """
    if isinstance(note, bytes | bytearray):
        try:
            note = bytes(note).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("note is not valid UTF-8") from exc
    if not isinstance(note, str):
        raise NoteError(f"note must be str or bytes, got {type(note).__name__}")
    _check_note_text(note, "note")
    trusted = _verifier_index(verifier_keys)
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line separating its text from the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise NoteError("note has no signature lines after the blank line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_NOTE_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, more than {MAX_NOTE_SIGNATURES}")
    message = text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, bytes]] = set()
    for n, line in enumerate(lines, start=1):
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"signature line {n} does not start with an em dash and a space")
        name, sep, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not encoded:
            raise NoteError(f"signature line {n} has no signature after the key name")
        _check_key_name(name, NoteError)
        raw = _b64decode_canonical(encoded, f"signature line {n}", NoteError)
        if len(raw) < 5:
            raise NoteError(f"signature line {n} is {len(raw)} bytes, too short for ID+signature")
        sig = NoteSignature(key_name=name, key_id=raw[:4], signature=raw[4:])
        slot = (name, sig.key_id)
        public = trusted.get(slot)
        if public is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if slot in seen:
            continue  # as in Go's note.Open: one verdict per key
        seen.add(slot)
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(sig.signature, message)
        except InvalidSignature as exc:
            raise NoteSignatureError(
                f"invalid signature by known key {name}+{sig.key_id.hex()}",
                key_name=name,
                key_id=sig.key_id.hex(),
            ) from exc
        verified.append(sig)
    if not verified:
        signers = ", ".join(f"{s.key_name}+{s.key_id.hex()}" for s in unverified)
        raise NoteSignatureError(f"note has no signature by a trusted key (signed by: {signers})")
    return SignedNote(text=text, verified=tuple(verified), unverified=tuple(unverified))


def sign_checkpoint(checkpoint: Checkpoint, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """Return the signed-note text of ``checkpoint``, signed by ``key_name``'s Ed25519 key."""
    if not isinstance(checkpoint, Checkpoint):
        raise CheckpointError(f"expected a Checkpoint, got {type(checkpoint).__name__}")
    return sign_note(format_checkpoint_body(checkpoint), key_name, private_key)


def open_checkpoint(
    note: str | bytes,
    verifier_keys: Iterable[str | VerifierKey],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint note and parse its body; optionally pin the expected origin."""
    checkpoint = parse_checkpoint_body(open_note(note, verifier_keys).text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(
            f"checkpoint origin {checkpoint.origin!r} is not the expected {origin!r}"
        )
    return checkpoint
