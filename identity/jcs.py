"""RFC 8785 (JCS) canonical JSON, fast for the plain JSON that credentials are made of.

:func:`dumps` is byte-for-byte :func:`rfc8785.dumps`: for documents of exact ``dict``,
``list``, ``str``, ``bool``, ``None`` and I-JSON-range ``int`` values whose object keys sort
the same by code point as by UTF-16 code unit (no key character at or above U+D800), JCS is
what the C JSON encoder writes with sorted keys, no spaces and no ASCII escaping, so it is
used; anything else (floats, subclasses, tuples, exotic keys, invalid input) goes to
``rfc8785``, which also raises its own errors for what JCS cannot serialize. Verification
canonicalizes every document of every request, and ``rfc8785`` is pure Python (~4x slower).
"""

from __future__ import annotations

import json
from typing import Any, Final

import rfc8785

__all__ = ["dumps", "is_plain"]

_INT_MAX: Final = 2**53 - 1
_ENCODE: Final = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, allow_nan=False, sort_keys=True, separators=(",", ":")
).encode


def _plain(obj: object) -> bool:
    """Whether the C encoder's output for ``obj`` is its JCS form (see the module doc)."""
    stack = [obj]
    pop, push = stack.pop, stack.extend
    while stack:
        o = pop()
        t = type(o)
        if t is str or t is bool or o is None:
            continue
        if t is int:
            if -_INT_MAX <= o <= _INT_MAX:  # type: ignore[operator]
                continue
            return False
        if t is dict:
            for k in o:  # type: ignore[attr-defined]
                if type(k) is not str or not (k.isascii() or max(k) < "\ud800"):
                    return False
            push(o.values())  # type: ignore[attr-defined]
        elif t is list:
            push(o)  # type: ignore[arg-type]
        else:
            return False
    return True


def dumps(obj: Any) -> bytes:
    """The JCS form of ``obj`` as UTF-8; raises as :func:`rfc8785.dumps` does."""
    if _plain(obj):
        try:
            return _ENCODE(obj).encode("utf-8")
        except (ValueError, RecursionError):  # lone surrogates, depth: rfc8785 says which
            pass
    return rfc8785.dumps(obj)


def is_plain(obj: object) -> bool:
    """Whether ``obj`` is plain JSON, for which :func:`dumps` takes the fast path: exact
    ``dict``/``list``/``str``/``bool``/``None`` and ``int`` within ±(2**53 - 1), object keys
    below U+D800 (no floats, no subclasses, no tuples)."""
    return _plain(obj)
