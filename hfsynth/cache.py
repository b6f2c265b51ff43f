"""A content-addressed, crash-safe record of teacher calls: nothing already paid for is paid for twice.

Each finished call is stored under a key made from everything that determines its output (model, prompt, sampling
parameters, seed), with the tokens it cost. The stages commit each answer in its own SQLite transaction the moment
it arrives, so a run killed at any point loses nothing it was paid for, and a re-run finds every earlier answer.

The cache is ``teacher_calls.sqlite`` in WAL mode: committed answers first land in ``teacher_calls.sqlite-wal`` and
are moved into the main file by a checkpoint. One runs after every write and when the cache is opened and closed, so
the main file alone holds every answer except, after a kill, perhaps the last; the ``-wal`` and ``-shm`` files
belong with it until the next open or :func:`checkpoint` merges them. Copy a run folder when no run is using it, or
call :func:`checkpoint` first.

A damaged cache (a disk fault, a partial copy, another file under its name) fails with one line that names the file
and says what to do, not with SQLite's traceback.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hfsynth.errors import HfsynthError

#: The files SQLite keeps beside the cache in WAL mode; they belong with it (see the module docstring).
SIDE_SUFFIXES = ("-wal", "-shm")
#: Each answer's cost, where the teacher reported it: ``(prompt tokens, completion tokens)``.
Tokens = tuple[int, int]
TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens")


class CacheError(HfsynthError):
    """The teacher call cache cannot be read or written."""


def _cache_error(path: Path, error: sqlite3.Error) -> CacheError:
    reason = str(error) or type(error).__name__
    if isinstance(error, sqlite3.OperationalError) and "locked" in reason:
        return CacheError(f"{path}: the teacher call cache is in use by another hfsynth process ({reason}): "
                          "wait for it to finish, or give this run another --out")
    if isinstance(error, sqlite3.OperationalError) and ("unable to open" in reason or "readonly" in reason
                                                        or "disk I/O" in reason or "full" in reason):
        return CacheError(f"{path}: cannot write the teacher call cache ({reason}): check the folder's permissions "
                          "and free space")
    sides = " and ".join(f"{path.name}{suffix}" for suffix in SIDE_SUFFIXES)
    return CacheError(f"{path}: the teacher call cache is damaged ({reason}): move it aside or delete it "
                      f"(with {sides}, if present) and re-run; the calls it held will be asked again")


def call_key(**parts: Any) -> str:
    """A stable key for a call: sha256 of its canonical JSON description."""
    canonical = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class CallCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CacheError(f"{path.parent}: cannot create the cache folder ({error.strerror or error})") from None
        with self._guard():
            # isolation_level=None + explicit BEGIN: one transaction per batch, WAL so readers never block the writer.
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, response TEXT NOT NULL, "
                             "prompt_tokens INTEGER, completion_tokens INTEGER)")
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(calls)")}
            for column in TOKEN_COLUMNS:  # a cache written before tokens were recorded: its answers stay, uncounted
                if column not in columns:
                    self._db.execute(f"ALTER TABLE calls ADD COLUMN {column} INTEGER")
            # Answers a killed run left in the -wal file move into the main file now.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            raise _cache_error(self.path, error) from None

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(keys)
        found: dict[str, str] = {}
        with self._guard():
            for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, response FROM calls WHERE key IN ({marks})", chunk)
                found.update(dict(rows.fetchall()))
        return found

    def put_many(self, responses: Mapping[str, str], tokens: Mapping[str, Tokens | None] | None = None) -> None:
        """Store answers, with the ``(prompt, completion)`` tokens each cost where known (an answer stored again
        keeps its tokens when none are given)."""
        tokens = tokens or {}
        rows = [(key, response, *(tokens.get(key) or (None, None))) for key, response in responses.items()]
        with self._guard():
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO calls VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                    "response = excluded.response, prompt_tokens = coalesce(excluded.prompt_tokens, prompt_tokens), "
                    "completion_tokens = coalesce(excluded.completion_tokens, completion_tokens)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            # Into the main file at once: a copy of the .sqlite alone then has every answer but the next batch's.
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def tokens_of(self, keys: Iterable[str]) -> dict[str, Tokens]:
        """``(prompt, completion)`` tokens of each of ``keys`` stored with its tokens."""
        keys = list(keys)
        found: dict[str, Tokens] = {}
        with self._guard():
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, prompt_tokens, completion_tokens FROM calls WHERE key IN "
                                        f"({marks}) AND prompt_tokens IS NOT NULL", chunk)
                found.update({key: (prompt, completion) for key, prompt, completion in rows.fetchall()})
        return found

    def spent(self) -> Tokens:
        """Every token the stored answers cost: what this run folder's teacher calls were paid, in any run."""
        with self._guard():
            prompt, completion = self._db.execute(
                "SELECT coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0) FROM calls").fetchone()
        return int(prompt), int(completion)

    def __len__(self) -> int:
        with self._guard():
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        if getattr(self, "_db", None) is None:
            return
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # closing must not hide the error that is being raised, if any
        self._db.close()
        self._db = None

    def __enter__(self) -> CallCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def checkpoint(path: Path) -> None:
    """Merge a cache's ``-wal`` file into the main file (no-op when there is no cache): before copying, moving or
    publishing a run folder that a killed run left behind."""
    if not Path(path).is_file():
        return
    CallCache(Path(path)).close()
