"""The teacher-call cache: stable keys, batches stored at once, answers kept across processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hfsynth.cache import CallCache, call_key


def test_call_key_is_stable_and_order_free() -> None:
    assert call_key(model="m", prompt="p", seed=1) == call_key(seed=1, prompt="p", model="m")
    assert call_key(model="m", prompt="p", seed=1) != call_key(model="m", prompt="p", seed=2)
    assert len(call_key(text="ü")) == 64


def test_answers_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "calls.sqlite"
    with CallCache(path) as cache:
        cache.put_many({"a": "1", "b": "2"})
        cache.put_many({"b": "3"})  # a re-run's answer replaces the old one
    with CallCache(path) as cache:
        assert len(cache) == 2 and cache.get_many(["a", "b", "missing"]) == {"a": "1", "b": "3"}


def test_lookups_beyond_sqlites_parameter_limit(tmp_path: Path) -> None:
    with CallCache(tmp_path / "calls.sqlite") as cache:
        cache.put_many({str(index): "x" for index in range(1200)})
        assert len(cache.get_many(str(index) for index in range(1300))) == 1200


def test_a_failed_batch_stores_nothing(tmp_path: Path) -> None:
    with CallCache(tmp_path / "calls.sqlite") as cache:
        with pytest.raises(Exception):
            cache.put_many({"a": "1", "b": None})  # type: ignore[dict-item]  # NOT NULL: the batch fails
        assert len(cache) == 0


def test_tokens_are_stored_with_answers_and_kept_when_an_answer_is_stored_again(tmp_path: Path) -> None:
    with CallCache(tmp_path / "calls.sqlite") as cache:
        cache.put_many({"a": "1", "b": "2"}, {"a": (30, 7)})
        cache.put_many({"a": "1 with timing"})  # the evaluation's second write of an answer: its tokens stay
        assert cache.tokens_of(["a", "b", "missing"]) == {"a": (30, 7)}
        assert cache.spent() == (30, 7) and cache.get_many(["a"]) == {"a": "1 with timing"}


def test_a_cache_written_before_tokens_were_kept_opens_with_its_answers(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE calls (key TEXT PRIMARY KEY, response TEXT NOT NULL)")
        db.execute("INSERT INTO calls VALUES ('old', 'an answer paid before')")
    with CallCache(path) as cache:
        assert cache.get_many(["old"]) == {"old": "an answer paid before"}
        assert cache.tokens_of(["old"]) == {} and cache.spent() == (0, 0)  # uncounted, not lost
        cache.put_many({"new": "x"}, {"new": (1, 2)})
        assert cache.spent() == (1, 2)
