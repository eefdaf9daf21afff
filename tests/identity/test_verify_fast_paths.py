"""The verifier's fast paths answer exactly as the plain ones: base58 decoding, prepared
proofs, the prepared-credential cache key, and the kept connection of the challenge store
(a use is committed before ``consume`` returns, so it survives the process dying)."""

from __future__ import annotations

import multiprocessing as mp
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import base58
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.identity_services import _challenge_engine
from identity import credentials, jcs
from identity.presentations import ChallengeStore
from identity.proofs import _b58decode
from ledger.db import make_engine, migrate

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@given(st.binary(max_size=80))
@settings(max_examples=300)
def test_b58decode_is_the_librarys(raw: bytes) -> None:
    text = base58.b58encode(raw).decode("ascii")
    assert _b58decode(text) == base58.b58decode(text) == raw


@pytest.mark.parametrize("text", ["1", "11", "z", "1z", "zzzzzzzz", "2NEpo7TZRRrLZSi2U"])
def test_b58decode_edge_cases(text: str) -> None:
    assert _b58decode(text) == base58.b58decode(text)


@pytest.mark.parametrize(
    "value, plain",
    [
        ({"a": [1, "x", None, True, {"b": -5}]}, True),
        ({"a": 1.0}, False),  # 1.0 and 1 share a JCS form: never cached
        ({"a": float("nan")}, False),
        ({"a": (1, 2)}, False),
        ({"a": 2**53}, False),
        ({"\ud800": 1}, False),
    ],
)
def test_only_plain_json_is_plain(value: object, plain: bool) -> None:
    assert jcs.is_plain(value) is plain


def test_prepared_credentials_are_cached_by_exact_content(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = credentials._prepare

    def counted(vc: object, digest: bytes | None) -> object:
        calls.append(vc)
        return real(vc, digest)

    monkeypatch.setattr(credentials, "_prepare", counted)
    monkeypatch.setattr(credentials, "_prepared_cache", {})
    vc = {"@context": ["x"], "n": 1, "s": "张三"}
    credentials._prepared(vc)
    credentials._prepared(dict(vc))  # equal content: a hit
    assert len(calls) == 1
    for other in ({**vc, "n": 2}, {**vc, "n": True}, {**vc, "s": "张四"}, {**vc, "x": None}):
        credentials._prepared(other)
    assert len(calls) == 5  # every other content: a miss
    credentials._prepared({**vc, "n": 1.0})  # not plain: never cached, always prepared
    credentials._prepared({**vc, "n": 1.0})
    assert len(calls) == 7


def _consume_and_die(url: str, challenge: str) -> None:
    store = ChallengeStore(_challenge_engine(make_engine(url)))
    code = store.consume(challenge, "bank.example", NOW)
    os._exit(0 if code == "ok" else 3)  # no clean shutdown: no close, no checkpoint


def test_a_use_survives_the_process_dying(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = make_engine(url)
    migrate(engine)
    store = ChallengeStore(_challenge_engine(engine), ttl=timedelta(minutes=5))
    ch = store.issue("bank.example", NOW)
    assert store.consume(store.issue("bank.example", NOW).challenge, "bank.example", NOW) == "ok"
    child = mp.get_context("fork").Process(target=_consume_and_die, args=(url, ch.challenge))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    fresh = ChallengeStore(_challenge_engine(make_engine(url)))  # as after a restart
    assert fresh.consume(ch.challenge, "bank.example", NOW) == "challenge-used"
    assert store.consume(ch.challenge, "bank.example", NOW) == "challenge-used"
