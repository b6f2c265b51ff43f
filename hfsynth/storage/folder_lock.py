"""One process at a time in a folder: an exclusive ``flock`` held for a command's life.

Two commands on one run folder would each pay for every teacher call and both write ``dataset/``. The kernel drops
the lock when the process ends, however it ends, so a crash or a kill leaves no stale lock behind. The lock file holds
who holds it (pid, host, command), for the one line a second command prints. Reentrant within a process: a stage
called by ``run`` holds the lock ``run`` already holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from hfsynth.errors import HfsynthError


class FolderLockedError(HfsynthError):
    """Another process (or, not reentrant, another holder in this one) works in the folder."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        #: Who holds it: "pid 123 on host (hfsynth generate)".
        self.holder = holder


_held: dict[Path, tuple[int, int]] = {}  # lock file -> (descriptor, depth) of this process
_guard = threading.Lock()


def _holder() -> str:
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:2]]) if sys.argv and sys.argv[0] else "python"
    return f"pid {os.getpid()} on {socket.gethostname()} ({command})"


@contextlib.contextmanager
def locked_folder(folder: Path, lock_name: str, what: str, reentrant: bool = True) -> Iterator[None]:
    """Hold ``folder/lock_name`` for the block (creating ``folder``), or raise FolderLockedError naming the holder.
    ``what`` names the folder in that message ("run folder"). Not ``reentrant``: a second holder in this process
    is refused too (two servers on one folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / lock_name).resolve()
    with _guard:
        if reentrant and path in _held:
            descriptor, depth = _held[path]
            _held[path] = (descriptor, depth + 1)
        else:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(descriptor, 512, 0).decode(errors="replace").strip() or "another process"
                os.close(descriptor)
                raise FolderLockedError(f"{folder}: the {what} is in use by {holder}: wait for it to finish, or "
                                        "give this command another folder", holder) from None
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{_holder()}\n".encode(), 0)
            if reentrant:
                _held[path] = (descriptor, 1)
    try:
        yield
    finally:
        with _guard:
            depth = _held[path][1] if reentrant else 1
            if depth > 1:
                _held[path] = (descriptor, depth - 1)
            else:
                if reentrant:
                    del _held[path]
                os.ftruncate(descriptor, 0)  # no holder that is gone
                os.close(descriptor)  # drops the flock; the file stays (deleting it would race a new holder)
