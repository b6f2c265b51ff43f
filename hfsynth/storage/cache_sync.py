"""The call cache of a run folder on storage goes up as it grows, not only when a stage ends: a storage outage, a
killed driver or a lost machine then costs at most the answers of one window (``HFSYNTH_CACHE_SYNC_ANSWERS``
answers, default 25, or ``HFSYNTH_CACHE_SYNC_SECONDS`` seconds, default 30, whichever comes first).

A thread of the driver looks at each recipe's ``cache/teacher_calls.sqlite`` of the local copy every second; when
the window is full it takes a consistent snapshot (SQLite's backup API: committed answers only, whatever the writer
is doing) and sends it up as one object (an object store replaces an object whole: a reader sees the old cache or
the new one, never half of one), checked like every object hfsynth writes. A failed send is retried at the next
window; the stage still ends with a full push (:meth:`hfsynth.storage.mirror.MirroredFolder.push`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from hfsynth.errors import HfsynthError
from hfsynth.runs.folder import RunFolder
from hfsynth.storage.object_store import RunStorage, sending

logger = logging.getLogger(__name__)

ANSWERS_VARIABLE = "HFSYNTH_CACHE_SYNC_ANSWERS"
SECONDS_VARIABLE = "HFSYNTH_CACHE_SYNC_SECONDS"
#: How often the thread looks at the caches.
POLL_SECONDS = 1.0


def _setting(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise HfsynthError(f"{name}={value}: give a number") from None


def answers_in(path: Path) -> int:
    """How many answers the cache at ``path`` holds (0 when it has none yet)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return 0
    try:
        return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        db.close()


def snapshot(path: Path, into: Path) -> None:
    """A consistent copy of the cache at ``path`` (its committed answers) into the file ``into``."""
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(into)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


class CacheSync:
    """For the life of a ``with`` block: sends each recipe's call cache of the folder ``local``, a copy of
    ``storage``, up as it grows."""

    def __init__(self, local: Path, storage: RunStorage) -> None:
        self.local, self.storage = local, storage
        self.answers = max(1, int(_setting(ANSWERS_VARIABLE, 25)))
        self.seconds = _setting(SECONDS_VARIABLE, 30.0)
        self._sent: dict[Path, tuple[int, float]] = {}  # cache -> (answers sent, when)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hfsynth-cache-sync", daemon=True)

    def __enter__(self) -> CacheSync:
        for cache in self.caches():  # what came down from storage is there already
            self._sent[cache] = (answers_in(cache), time.monotonic())
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def caches(self) -> list[Path]:
        """The call caches of the run folder: its own, and each recipe's folder's (``run`` with several)."""
        relative = RunFolder(self.local).cache.relative_to(self.local)
        return [path for path in (self.local / relative, *self.local.glob(f"*/{relative}"))
                if path.is_file()]

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            for cache in self.caches():
                self.sync_if_due(cache)

    def sync_if_due(self, cache: Path) -> bool:
        """Send ``cache`` up when its window is full; whether it was sent."""
        count = answers_in(cache)
        sent, when = self._sent.setdefault(cache, (0, time.monotonic()))
        due = count - sent >= self.answers or (count > sent and time.monotonic() - when >= self.seconds)
        if not due:
            return False
        try:
            self.send(cache)
        except (HfsynthError, OSError, sqlite3.Error) as error:
            logger.warning("the call cache did not reach storage (retried at the next window): %s", error)
            self._sent[cache] = (sent, time.monotonic())
            return False
        self._sent[cache] = (count, time.monotonic())
        return True

    def send(self, cache: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="hfsynth-cache-") as folder:
            copy = Path(folder) / cache.name
            snapshot(cache, copy)
            with sending(self.storage):
                self.storage.put_file(copy, cache.relative_to(self.local).as_posix(), keep_local_time=True)
