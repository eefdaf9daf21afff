"""Tests for identity.ids: GB 11643 / GB 32100 validation, policy allow-list, pseudonyms.

Check characters in these tests are computed by independent re-implementations of the
standards (below), not by the code under test, so a wrong algorithm in either place fails.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity.ids import (
    DEFAULT_POLICY,
    PSEUDONYM_DOMAIN,
    IdentifierPolicy,
    InvalidIdentifier,
    Subject,
    SubjectKind,
    detect_kind,
    mask,
    normalize,
    parse_subject,
    pseudonym,
    validate_ric,
    validate_uscc,
)
from ledger.errors import ConfigurationError, InvalidInput

RIC_EXAMPLE = "11010519491231002X"
USCC_EXAMPLES = ("91110000600037341L", "91440300568520498A", "91310115MA1K3BTP2B")
SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def ric_check(body17: str) -> str:
    """ISO 7064 MOD 11-2 as written in GB 11643: weights 2^(17-i) mod 11, 10 -> X."""
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(body17))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def uscc_check(body17: str) -> str:
    """GB 32100: weights 3^i mod 31, check = alphabet[(31 - sum mod 31) mod 31]."""
    total = sum(USCC_ALPHABET.index(c) * pow(3, i, 31) for i, c in enumerate(body17))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def make_ric(region: str, birth: str, seq: str) -> str:
    body = region + birth + seq
    return body + ric_check(body)


def wrong_check(number: str, alphabet: str) -> str:
    """Same number with a different, still well-formed check character."""
    return number[:-1] + next(c for c in alphabet if c != number[-1])


def assert_no_leak(exc: InvalidIdentifier, raw: str) -> None:
    full = normalize(raw)
    if len(full) < 7:  # nothing identifying to leak; "" is "in" every string
        return
    assert full not in str(exc)
    assert full not in repr(exc)
    assert all(full not in str(v) for v in exc.extra.values())


def test_standard_examples_independent_check_helpers() -> None:
    # Guards the helpers themselves against the published examples.
    assert ric_check(RIC_EXAMPLE[:17]) == "X"
    for code in USCC_EXAMPLES:
        assert uscc_check(code[:17]) == code[17]


# --- normalization -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        RIC_EXAMPLE,
        "11010519491231002x",
        " 110105 19491231 002x ",
        "110105-19491231-002X",
        "１１０１０５１９４９１２３１００２ｘ",  # full-width, as typed with a Chinese IME
        "110105\u300019491231002X",  # ideographic space
    ],
)
def test_person_spellings_normalize_to_one_subject(raw: str) -> None:
    subject = parse_subject("person", raw)
    assert subject == Subject(SubjectKind.PERSON, RIC_EXAMPLE)
    assert validate_ric(raw) == RIC_EXAMPLE


@pytest.mark.parametrize("code", USCC_EXAMPLES)
def test_entity_examples_validate_in_any_case_and_spacing(code: str) -> None:
    assert validate_uscc(code) == code
    spaced = " ".join([code[:2], code[2:8], code[8:].lower()])
    assert parse_subject(SubjectKind.ENTITY, spaced) == Subject(SubjectKind.ENTITY, code)


def test_registration_authority_letter_codes_are_accepted() -> None:
    # N2 = rural collective economic organisation (agriculture departments); python-stdnum
    # alone would reject it because it demands digits in position 1.
    body = "N2440604MA1K3BTP2"
    code = body + uscc_check(body)
    assert validate_uscc(code) == code


# --- person failures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason", "fragment"),
    [
        ("", "empty", "empty"),
        ("   ", "empty", "empty"),
        ("1101051949123100", "length", "expected 18 characters, got 16"),
        (RIC_EXAMPLE + "1", "length", "expected 18 characters, got 19"),
        ("11010519491231A02X", "alphabet", "'A' at position 15 is not a digit"),
        ("11010519491231002Y", "alphabet", "must be a digit or 'X'"),
        (wrong_check(RIC_EXAMPLE, "0123456789X"), "check", "MOD 11-2"),
        (make_ric("110105", "19491331", "002"), "birth-date", "birth date"),
        (make_ric("110105", "20230229", "002"), "birth-date", "birth date"),
        (make_ric("999999", "19900101", "002"), "region", "region code 999999"),
        # Chancheng's code 440604 exists only since 2002 (before: 440602, 城区).
        (make_ric("440604", "19900101", "002"), "region", "not in use in 1990"),
    ],
)
def test_person_failures_are_precise_and_masked(raw: str, reason: str, fragment: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        parse_subject("person", raw)
    exc = info.value
    assert exc.reason == reason
    assert exc.kind is SubjectKind.PERSON
    assert fragment in str(exc)
    assert "resident identity number" in str(exc)
    assert isinstance(exc, InvalidInput) and isinstance(exc, ValueError)
    assert exc.code == "invalid-identifier"
    assert_no_leak(exc, raw)


def test_chancheng_code_valid_for_births_since_2002() -> None:
    number = make_ric("440604", "20050101", "123")
    assert validate_ric(number) == number


# --- entity failures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason", "fragment"),
    [
        ("9111000060003734", "length", "got 16"),
        ("O1110000600037341L", "alphabet", "position 1 is not a registration authority"),
        ("911A0000600037341L", "alphabet", "position 4 is not a digit"),
        ("9111000060003734IL", "alphabet", "'I' at position 17 is not allowed"),
        ("91110000600037341O", "alphabet", "'O' at position 18"),
        ("91110000S00037341L", "alphabet", "'S' at position 9"),
        ("91110000600037341M", "check", "mod 31"),
        ("91110000600037341L\u00e9", "length", "got 19"),
        ("9111000060003734\u00e9L", "alphabet", "position 17"),
    ],
)
def test_entity_failures_are_precise_and_masked(raw: str, reason: str, fragment: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        parse_subject("entity", raw)
    exc = info.value
    assert exc.reason == reason
    assert exc.kind is SubjectKind.ENTITY
    assert fragment in str(exc)
    assert "Unified Social Credit Code" in str(exc)
    assert_no_leak(exc, raw)


def test_person_number_is_not_an_entity_code_and_vice_versa() -> None:
    with pytest.raises(InvalidIdentifier):
        parse_subject("entity", RIC_EXAMPLE)
    with pytest.raises(InvalidIdentifier) as info:
        parse_subject("person", USCC_EXAMPLES[2])
    assert info.value.reason == "alphabet"


# --- allow-list ---------------------------------------------------------------------------

PILOT = wrong_check(USCC_EXAMPLES[1], USCC_ALPHABET)


def test_pilot_code_rejected_without_allow_list() -> None:
    with pytest.raises(InvalidIdentifier) as info:
        validate_uscc(PILOT)
    assert info.value.reason == "check"
    assert "allow-list" in str(info.value)
    with pytest.raises(InvalidIdentifier):
        parse_subject("entity", PILOT, DEFAULT_POLICY)


def test_allow_list_admits_exactly_the_listed_code() -> None:
    policy = IdentifierPolicy(uscc_check_exempt=frozenset({" " + PILOT.lower()}))
    assert PILOT in policy.uscc_check_exempt  # entries are normalized
    assert parse_subject("entity", PILOT, policy) == Subject(SubjectKind.ENTITY, PILOT)
    assert detect_kind(PILOT, policy) is SubjectKind.ENTITY
    other = wrong_check(USCC_EXAMPLES[0], USCC_ALPHABET)
    with pytest.raises(InvalidIdentifier):
        parse_subject("entity", other, policy)
    # The allow-list is for entity codes only.
    with pytest.raises(InvalidIdentifier):
        parse_subject("person", PILOT, policy)


@pytest.mark.parametrize("bad", ["9144030056852049", "9144030056852049IA"])
def test_allow_list_entries_still_need_length_and_alphabet(bad: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        IdentifierPolicy(uscc_check_exempt=frozenset({bad}))
    assert info.value.reason in {"length", "alphabet"}


def test_allow_list_must_not_be_a_bare_string() -> None:
    with pytest.raises(InvalidInput):
        IdentifierPolicy(uscc_check_exempt=PILOT)  # type: ignore[arg-type]


# --- kinds and detection -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("person", SubjectKind.PERSON),
        (" Entity ", SubjectKind.ENTITY),
        (1, SubjectKind.PERSON),
        (2, SubjectKind.ENTITY),
        (SubjectKind.ENTITY, SubjectKind.ENTITY),
    ],
)
def test_subject_kind_parse(value: str | int | SubjectKind, expected: SubjectKind) -> None:
    assert SubjectKind.parse(value) is expected


@pytest.mark.parametrize("value", ["company", "", 0, 3, True, 1.0])
def test_subject_kind_parse_rejects(value: object) -> None:
    with pytest.raises(InvalidInput):
        SubjectKind.parse(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        parse_subject(value, RIC_EXAMPLE)  # type: ignore[arg-type]


def test_kind_error_does_not_echo_an_identifier_passed_as_kind() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_subject(RIC_EXAMPLE, "person")
    assert RIC_EXAMPLE not in str(info.value)


def test_on_chain_kind_values_are_fixed() -> None:
    assert (int(SubjectKind.PERSON), int(SubjectKind.ENTITY)) == (1, 2)


def test_detect_kind() -> None:
    assert detect_kind("11010519491231002x") is SubjectKind.PERSON
    for code in USCC_EXAMPLES:
        assert detect_kind(code.lower()) is SubjectKind.ENTITY


def _ambiguous_number() -> str:
    """An 18-digit string that passes both check characters (about 1 in 31 do)."""
    for seq in range(1000):
        number = make_ric("110105", "19900101", f"{seq:03d}")
        if number[-1] != "X" and uscc_check(number[:17]) == number[-1]:
            return number
    raise AssertionError("no ambiguous example found")


def test_detect_kind_refuses_to_guess_when_both_schemes_accept() -> None:
    number = _ambiguous_number()
    assert parse_subject("person", number).kind is SubjectKind.PERSON
    assert parse_subject("entity", number).kind is SubjectKind.ENTITY
    with pytest.raises(InvalidIdentifier) as info:
        detect_kind(number)
    assert info.value.reason == "ambiguous"
    assert info.value.kind is None
    assert_no_leak(info.value, number)


def test_detect_kind_neither() -> None:
    raw = wrong_check(RIC_EXAMPLE, "0123456789")
    with pytest.raises(InvalidIdentifier) as info:
        detect_kind(raw)
    assert "neither" in str(info.value)
    assert info.value.reason == "check"
    assert_no_leak(info.value, raw)
    with pytest.raises(InvalidIdentifier) as info:
        detect_kind("hello")
    assert info.value.reason == "length"


# --- Subject and masking ------------------------------------------------------------------


def test_subject_repr_and_str_are_masked() -> None:
    subject = parse_subject("person", RIC_EXAMPLE)
    for text in (repr(subject), str(subject), f"{subject}", repr([subject])):
        assert RIC_EXAMPLE not in text
        assert "110105****" in text
    assert subject.masked == "110105****"
    assert subject.identifier == RIC_EXAMPLE


def test_subject_constructor_requires_normalized_form() -> None:
    with pytest.raises(InvalidInput):
        Subject(SubjectKind.PERSON, RIC_EXAMPLE.lower())
    with pytest.raises(InvalidInput):
        Subject(SubjectKind.PERSON, "123")
    with pytest.raises(InvalidInput):
        Subject(1, RIC_EXAMPLE)  # type: ignore[arg-type]


def test_mask() -> None:
    assert mask("91110000600037341l") == "911100****"
    assert mask("12345") == "****"
    assert mask("") == "****"


# --- pseudonyms ---------------------------------------------------------------------------


def test_pseudonym_known_answer_pins_the_on_chain_format() -> None:
    expected = hmac.new(
        SECRET, b"zhixin/subject/v1\x00" + b"\x01" + RIC_EXAMPLE.encode(), hashlib.sha256
    ).digest()
    assert PSEUDONYM_DOMAIN == b"zhixin/subject/v1\x00"
    assert pseudonym(SECRET, SubjectKind.PERSON, RIC_EXAMPLE) == expected
    entity = USCC_EXAMPLES[0]
    expected_entity = hmac.new(
        SECRET, PSEUDONYM_DOMAIN + b"\x02" + entity.encode(), hashlib.sha256
    ).digest()
    assert pseudonym(SECRET, "entity", entity) == expected_entity


def test_pseudonym_is_deterministic_32_bytes_and_spelling_invariant() -> None:
    a = pseudonym(SECRET, "person", RIC_EXAMPLE)
    assert isinstance(a, bytes) and len(a) == 32
    assert pseudonym(SECRET, 1, " 110105 19491231002x") == a
    assert parse_subject("person", RIC_EXAMPLE).pseudonym(bytearray(SECRET)) == a


def test_pseudonym_differs_across_secrets_kinds_and_subjects() -> None:
    digits = "110105194912310021"  # well-formed for both kinds
    person = pseudonym(SECRET, SubjectKind.PERSON, digits)
    assert pseudonym(SECRET, SubjectKind.ENTITY, digits) != person
    assert pseudonym(OTHER_SECRET, SubjectKind.PERSON, digits) != person
    assert pseudonym(SECRET, SubjectKind.PERSON, RIC_EXAMPLE) != person


def test_pseudonym_works_for_allow_listed_codes() -> None:
    assert len(pseudonym(SECRET, "entity", PILOT)) == 32


@pytest.mark.parametrize("secret", [b"", b"x" * 31, "y" * 64])
def test_pseudonym_rejects_weak_or_non_bytes_secret(secret: object) -> None:
    with pytest.raises(ConfigurationError):
        pseudonym(secret, "person", RIC_EXAMPLE)  # type: ignore[arg-type]


def test_pseudonym_rejects_malformed_identifier() -> None:
    with pytest.raises(InvalidIdentifier):
        pseudonym(SECRET, "person", "1101051949")
    with pytest.raises(InvalidIdentifier):
        pseudonym(SECRET, "entity", "9111000060003734IL")


# --- properties ---------------------------------------------------------------------------

REGIONS = ("110105", "310104", "440604")  # 440604 (Chancheng) only for births >= 2002


def valid_rics() -> st.SearchStrategy[str]:
    """Valid numbers built with an independently computed check digit."""

    def build(region: str, day: datetime.date, seq: str) -> str:
        if region == "440604" and day.year < 2002:
            region = "110105"
        return make_ric(region, day.strftime("%Y%m%d"), seq)

    return st.builds(
        build,
        st.sampled_from(REGIONS),
        st.dates(min_value=datetime.date(1950, 1, 1), max_value=datetime.date(2030, 12, 31)),
        st.text(string.digits, min_size=3, max_size=3),
    )


@given(valid_rics())
def test_generated_rics_always_validate(number: str) -> None:
    assert validate_ric(number) == number
    assert parse_subject("person", number.lower()).identifier == number


@given(valid_rics(), st.sampled_from("0123456789X"))
def test_changed_check_digit_always_fails(number: str, replacement: str) -> None:
    if replacement == number[-1]:
        replacement = "0" if number[-1] != "0" else "1"
    with pytest.raises(InvalidIdentifier) as info:
        validate_ric(number[:-1] + replacement)
    assert info.value.reason == "check"


@given(st.sampled_from("123456789ANY"), st.text(USCC_ALPHABET, min_size=9, max_size=9))
def test_generated_usccs_validate_and_bad_check_fails(authority: str, org: str) -> None:
    body = authority + "1" + "440604" + org
    code = body + uscc_check(body)
    assert validate_uscc(code) == code
    with pytest.raises(InvalidIdentifier) as info:
        validate_uscc(wrong_check(code, USCC_ALPHABET))
    assert info.value.reason == "check"
