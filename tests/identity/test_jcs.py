"""identity.jcs is byte-for-byte rfc8785 (the fast path and every fallback)."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from identity import jcs

_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False)
)
_DOC = st.recursive(
    _LEAF,
    lambda ch: st.lists(ch, max_size=4) | st.dictionaries(st.text(max_size=6), ch, max_size=4),
    max_leaves=20,
)


def _outcome(fn: Any, doc: object) -> tuple[bytes | None, type | None]:
    try:
        return fn(doc), None
    except Exception as exc:  # the same error type, or the same bytes
        return None, type(exc)


@settings(max_examples=3000, deadline=None)
@given(_DOC)
def test_same_as_rfc8785(doc: object) -> None:
    assert _outcome(jcs.dumps, doc) == _outcome(rfc8785.dumps, doc)


@pytest.mark.parametrize(
    "doc",
    [
        {"\ue000": 1, "\U0001f600": 2},  # UTF-16 order differs from code point order
        {"a": "\ud800"},  # lone surrogate
        {"n": 2**53},  # beyond I-JSON
        {"t": (1, 2)},  # tuple
        {"f": 1.0, "g": 1e21},
        {1: "x"},
        {"s": '\x00\x1f"\\\u2028\x7f 张三'},
    ],
)
def test_edge_cases(doc: object) -> None:
    assert _outcome(jcs.dumps, doc) == _outcome(rfc8785.dumps, doc)
