"""Subject identifiers (GB 11643-1999, GB 32100-2015) and keyed pseudonyms.

A *subject* of a credit record is either a natural person, identified by the 18-character
resident identity number (居民身份证号码, GB 11643-1999), or a legal entity, identified by the
18-character Unified Social Credit Code (统一社会信用代码, GB 32100-2015).

Invariants:

* Pure: no I/O, no clock, no global state. Same input, same output.
* Every identifier that leaves this module is *normalized*: NFKC-folded (full-width digits
  typed on Chinese keyboards become ASCII), whitespace and hyphens removed, upper-case.
  Two spellings of one identifier therefore always give one :class:`Subject` and one
  pseudonym.
* A :class:`Subject` obtained from :func:`parse_subject` passed full validation: length,
  alphabet, check character, and for persons the birth date and the region code as known
  to python-stdnum for the birth year. For entities the check character may be waived
  only for codes named in an explicit :class:`IdentifierPolicy` allow-list (pilot-era codes).
* No full identifier ever appears in an error message or a ``repr``: identifiers are
  personal data, and messages end up in logs. Only :func:`mask` output (a short prefix and
  ``****``) does.
* :data:`SubjectKind` values (1, 2) and the pseudonym construction are part of the on-chain
  format: changing either orphans every record already written.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from stdnum import exceptions as stdnum_exc
from stdnum.cn import ric, uscc

from ledger.errors import ConfigurationError, InvalidInput

__all__ = [
    "DEFAULT_POLICY",
    "MIN_SECRET_BYTES",
    "PSEUDONYM_DOMAIN",
    "USCC_ALPHABET",
    "USCC_REGISTRATION_AUTHORITIES",
    "IdentifierPolicy",
    "InvalidIdentifier",
    "Subject",
    "SubjectKind",
    "detect_kind",
    "mask",
    "normalize",
    "parse_subject",
    "pseudonym",
    "validate_ric",
    "validate_uscc",
]

IDENTIFIER_LENGTH: Final = 18
"""Both GB 11643-1999 and GB 32100-2015 identifiers have exactly 18 characters."""

USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""GB 32100-2015 character set: digits and upper-case letters except I, O, Z, S, V."""

USCC_REGISTRATION_AUTHORITIES: Final = frozenset("123456789ANY")
"""Position 1 of a USCC (GB 32100-2015 table 1): 1-9 the registering departments
(9 = market regulation), A = the Central Military Commission's organisation office,
N = agriculture departments (rural collective economic organisations, e.g. ``N2...``),
Y = others. python-stdnum requires digits here and would reject the ``A``/``N``/``Y`` codes,
which is why the structure is checked here and only the check character delegated."""

PSEUDONYM_DOMAIN: Final = b"zhixin/subject/v1\x00"
"""Prefix of every pseudonym HMAC message; see :func:`pseudonym`."""

MIN_SECRET_BYTES: Final = 32
"""HMAC-SHA256 keys shorter than the 32-byte output waste security; we refuse them."""

_STRIP_RE: Final = re.compile(r"[\s\-]+")
_RIC_CHECK_CHARS: Final = frozenset("0123456789X")


class SubjectKind(IntEnum):
    """What an identifier names. The integer values are written on chain: never renumber."""

    PERSON = 1
    ENTITY = 2

    @property
    def scheme(self) -> str:
        """Human name of the identifier scheme, for messages."""
        if self is SubjectKind.PERSON:
            return "resident identity number (GB 11643-1999)"
        return "Unified Social Credit Code (GB 32100-2015)"

    @classmethod
    def parse(cls, value: str | int | SubjectKind) -> SubjectKind:
        """Accept an enum member, its on-chain int, or its name in any case ("person")."""
        if isinstance(value, cls):
            return value
        if isinstance(value, bool):  # bool is an int; True must not mean PERSON
            raise InvalidInput(f"subject kind must be 'person' or 'entity', got {value!r}")
        if isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                raise InvalidInput(
                    f"subject kind must be 1 (person) or 2 (entity), got {value}"
                ) from None
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                # Never echo a long string: it may be an identifier passed as the kind.
                shown = value if len(value) <= 10 else mask(value)
                raise InvalidInput(
                    f"subject kind must be 'person' or 'entity', got {shown!r}"
                ) from None
        raise InvalidInput(f"subject kind must be a string or int, got {type(value).__name__}")


class InvalidIdentifier(InvalidInput):
    """An identifier failed validation.

    ``reason`` is a stable machine-readable slug (``empty``, ``length``, ``alphabet``,
    ``check``, ``birth-date``, ``region``, ``ambiguous``, ``unrecognized``); ``kind`` is the
    expected kind, or ``None`` when the kind was being detected; ``masked`` is the
    safe-to-log form; ``problem`` is the message without the scheme and masked prefix.
    """

    code = "invalid-identifier"

    def __init__(
        self, detail: str, *, reason: str, kind: SubjectKind | None, masked: str, problem: str
    ) -> None:
        super().__init__(
            detail, reason=reason, kind=None if kind is None else kind.name.lower(), masked=masked
        )
        self.reason = reason
        self.kind = kind
        self.masked = masked
        self.problem = problem


def normalize(identifier: str) -> str:
    """Fold to the canonical spelling: NFKC, no whitespace or hyphens, upper-case.

    NFKC turns full-width ``１２３Ｘ`` and the ideographic space into ASCII, so input typed
    with a Chinese IME normalizes to the same string as ASCII input.
    """
    if not isinstance(identifier, str):
        raise InvalidInput(f"identifier must be a string, got {type(identifier).__name__}")
    return _STRIP_RE.sub("", unicodedata.normalize("NFKC", identifier)).upper()


def mask(identifier: str) -> str:
    """Safe-to-log form: the first 6 characters and ``****``; only ``****`` if short.

    Six characters are the region code of a person (or authority, type and part of the
    region of an entity): enough to debug, far from enough to identify anyone.
    """
    value = normalize(identifier) if isinstance(identifier, str) else ""
    return value[:6] + "****" if len(value) >= 10 else "****"


def _fail(message: str, *, reason: str, kind: SubjectKind | None, value: str) -> InvalidIdentifier:
    masked = mask(value)
    scheme = kind.scheme if kind is not None else "subject identifier"
    return InvalidIdentifier(
        f"invalid {scheme} {masked}: {message}",
        reason=reason,
        kind=kind,
        masked=masked,
        problem=message,
    )


def _check_shape(kind: SubjectKind, value: str) -> None:
    """Length and alphabet, position by position; ``value`` is already normalized."""
    if not value:
        raise _fail("identifier is empty", reason="empty", kind=kind, value=value)
    if len(value) != IDENTIFIER_LENGTH:
        raise _fail(
            f"expected {IDENTIFIER_LENGTH} characters, got {len(value)}",
            reason="length",
            kind=kind,
            value=value,
        )
    if kind is SubjectKind.PERSON:
        for pos, ch in enumerate(value[:17], start=1):
            if not ("0" <= ch <= "9"):
                raise _fail(
                    f"character {ch!r} at position {pos} is not a digit "
                    "(positions 1-17 are digits)",
                    reason="alphabet",
                    kind=kind,
                    value=value,
                )
        if value[17] not in _RIC_CHECK_CHARS:
            raise _fail(
                f"check character {value[17]!r} at position 18 must be a digit or 'X'",
                reason="alphabet",
                kind=kind,
                value=value,
            )
        return
    if value[0] not in USCC_REGISTRATION_AUTHORITIES:
        raise _fail(
            f"character {value[0]!r} at position 1 is not a registration authority code "
            "(1-9, A, N or Y)",
            reason="alphabet",
            kind=kind,
            value=value,
        )
    for pos in range(2, IDENTIFIER_LENGTH + 1):
        ch = value[pos - 1]
        if 3 <= pos <= 8 and not ("0" <= ch <= "9"):
            raise _fail(
                f"character {ch!r} at position {pos} is not a digit "
                "(positions 3-8 are the GB/T 2260 region code)",
                reason="alphabet",
                kind=kind,
                value=value,
            )
        if ch not in USCC_ALPHABET:
            raise _fail(
                f"character {ch!r} at position {pos} is not allowed "
                "(digits and upper-case letters except I, O, Z, S, V)",
                reason="alphabet",
                kind=kind,
                value=value,
            )


def validate_ric(identifier: str) -> str:
    """Validate a resident identity number and return its normalized form.

    Order of checks: length, alphabet, check digit (ISO 7064 MOD 11-2; a mistyped digit is
    the likeliest error), birth date, region code valid in the birth year (stdnum's table).
    Finally stdnum's own ``validate`` runs, so this never accepts what stdnum rejects.
    """
    kind = SubjectKind.PERSON
    value = normalize(identifier)
    _check_shape(kind, value)
    if value[17] != ric.calc_check_digit(value):
        raise _fail(
            "check character does not match (ISO 7064 MOD 11-2); a character was likely mistyped",
            reason="check",
            kind=kind,
            value=value,
        )
    try:
        birth = ric.get_birth_date(value)
    except stdnum_exc.ValidationError:
        raise _fail(
            "positions 7-14 are not a valid birth date (YYYYMMDD)",
            reason="birth-date",
            kind=kind,
            value=value,
        ) from None
    try:
        ric.get_birth_place(value)
    except stdnum_exc.ValidationError:
        raise _fail(
            f"region code {value[:6]} (positions 1-6) is unknown or was not in use in {birth.year}",
            reason="region",
            kind=kind,
            value=value,
        ) from None
    try:
        return str(ric.validate(value))
    except stdnum_exc.ValidationError as exc:  # pragma: no cover - belt and braces
        raise _fail(
            f"rejected by python-stdnum ({type(exc).__name__})",
            reason="check",
            kind=kind,
            value=value,
        ) from None


def validate_uscc(identifier: str, policy: IdentifierPolicy | None = None) -> str:
    """Validate a Unified Social Credit Code and return its normalized form.

    Checks length, the per-position alphabet, then the check character (weights 3^i mod 31,
    computed by python-stdnum). A code in ``policy.uscc_check_exempt`` skips only the check
    character; its length and alphabet are still enforced.
    """
    kind = SubjectKind.ENTITY
    policy = DEFAULT_POLICY if policy is None else policy
    value = normalize(identifier)
    _check_shape(kind, value)
    if value[17] == uscc.calc_check_digit(value) or value in policy.uscc_check_exempt:
        return value
    raise _fail(
        "check character does not match (GB 32100-2015 mod 31); a character was likely "
        "mistyped, or this is a pilot-era code that must be added to the allow-list",
        reason="check",
        kind=kind,
        value=value,
    )


@dataclass(frozen=True, slots=True)
class IdentifierPolicy:
    """Deployment-specific exceptions to the identifier rules.

    ``uscc_check_exempt``: entity codes issued in the USCC pilot period whose check
    character does not verify but which are genuine (GB 32100 transition). Listing them
    explicitly, instead of relaxing the check, keeps typo detection for every other code.
    Entries are normalized and must have a valid length and alphabet.
    """

    uscc_check_exempt: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if isinstance(self.uscc_check_exempt, str):
            raise InvalidInput("uscc_check_exempt must be a collection of codes, not a string")
        normalized = frozenset(normalize(code) for code in self.uscc_check_exempt)
        for code in normalized:
            _check_shape(SubjectKind.ENTITY, code)
        object.__setattr__(self, "uscc_check_exempt", normalized)


DEFAULT_POLICY: Final = IdentifierPolicy()
"""No exemptions: every entity code must pass its check character."""


@dataclass(frozen=True, slots=True)
class Subject:
    """A validated, normalized subject identifier.

    Build it with :func:`parse_subject`; the constructor only checks the cheap invariants
    (kind type, normalized 18-character form) because the full check may depend on a policy.
    Equality and hashing use the full identifier; ``repr``/``str`` show only the masked form.
    """

    kind: SubjectKind
    identifier: str

    def __post_init__(self) -> None:
        if not isinstance(self.kind, SubjectKind):
            raise InvalidInput(f"Subject.kind must be a SubjectKind, got {self.kind!r}")
        if (
            not isinstance(self.identifier, str)
            or normalize(self.identifier) != self.identifier
            or len(self.identifier) != IDENTIFIER_LENGTH
        ):
            raise InvalidInput(
                "Subject.identifier must be a normalized 18-character identifier; "
                "use parse_subject()"
            )

    @property
    def masked(self) -> str:
        """Safe-to-log form of the identifier."""
        return mask(self.identifier)

    def pseudonym(self, secret: bytes | bytearray) -> bytes:
        """Shorthand for :func:`pseudonym` of this subject."""
        return pseudonym(secret, self.kind, self.identifier)

    def __repr__(self) -> str:
        return f"Subject(kind={self.kind.name}, identifier={self.masked!r})"

    __str__ = __repr__


def parse_subject(
    kind: str | int | SubjectKind, identifier: str, policy: IdentifierPolicy | None = None
) -> Subject:
    """Validate ``identifier`` as the given kind and return the normalized :class:`Subject`."""
    subject_kind = SubjectKind.parse(kind)
    if subject_kind is SubjectKind.PERSON:
        return Subject(subject_kind, validate_ric(identifier))
    return Subject(subject_kind, validate_uscc(identifier, policy))


def detect_kind(identifier: str, policy: IdentifierPolicy | None = None) -> SubjectKind:
    """Guess the kind from the identifier alone.

    Tries both schemes; exactly one must accept. An 18-digit string can in principle satisfy
    both check characters, and guessing wrong would credit a record to a different subject,
    so that case raises ``reason="ambiguous"`` and the caller must state the kind.
    """
    value = normalize(identifier)
    accepted: list[SubjectKind] = []
    errors: list[InvalidIdentifier] = []
    for kind in SubjectKind:
        try:
            parse_subject(kind, value, policy)
        except InvalidIdentifier as exc:
            errors.append(exc)
        else:
            accepted.append(kind)
    if len(accepted) == 1:
        return accepted[0]
    if accepted:
        raise _fail(
            "valid both as a resident identity number and as a Unified Social Credit Code; "
            "state the subject kind explicitly",
            reason="ambiguous",
            kind=None,
            value=value,
        )
    details = "; ".join(f"as {e.kind.name.lower() if e.kind else '?'}: {e.problem}" for e in errors)
    raise _fail(
        f"neither a valid resident identity number nor a valid Unified Social Credit Code "
        f"({details})",
        reason=errors[0].reason if len({e.reason for e in errors}) == 1 else "unrecognized",
        kind=None,
        value=value,
    )


def pseudonym(secret: bytes | bytearray, kind: str | int | SubjectKind, identifier: str) -> bytes:
    """32-byte keyed pseudonym of a subject: the only form of a subject that goes on chain.

    ``HMAC-SHA256(secret, PSEUDONYM_DOMAIN || kind byte || normalized identifier)``.

    Why keyed: the identifier space is small and structured (region, birth date, sequence),
    so an unkeyed hash of an identity number is reversed by enumeration in minutes. With the
    district secret (configuration only, never on chain) the chain reveals nothing.

    Why domain separation: the same secret may later key other MACs (record ids, tokens,
    a v2 scheme). The fixed, NUL-terminated, versioned prefix guarantees a pseudonym can
    never equal a MAC computed for another purpose, and the kind byte makes the same
    18-character string as a person and as an entity two unrelated pseudonyms (the two
    schemes overlap in form). The identifier has a fixed length, so the encoding is
    unambiguous.

    The identifier is normalized and must have a valid length and alphabet for its kind;
    check characters are not re-verified here (allow-listed entity codes must still get a
    pseudonym), so pass the output of :func:`parse_subject`.
    """
    if not isinstance(secret, bytes | bytearray):
        raise ConfigurationError(f"pseudonym secret must be bytes, got {type(secret).__name__}")
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"pseudonym secret must be at least {MIN_SECRET_BYTES} bytes, got {len(secret)}"
        )
    subject_kind = SubjectKind.parse(kind)
    value = normalize(identifier)
    _check_shape(subject_kind, value)
    message = PSEUDONYM_DOMAIN + bytes([int(subject_kind)]) + value.encode("ascii")
    return hmac.new(bytes(secret), message, hashlib.sha256).digest()
