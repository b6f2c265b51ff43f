"""The folder a loopback Hub server keeps its repos in: checked, created if needed, and locked for the server's life.

Two servers on one folder would each serialize writers with their own in-process locks and overwrite each other's
refs.json, silently losing commits. An exclusive `flock` on `hub-server.lock` inside the folder rules that out; the
kernel drops it when the process ends, however it ends, so a crash leaves no stale lock behind. The file holds the
owner's pid for the message a second server prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hfsynth.errors import HfsynthError

LOCK_FILE_NAME = "hub-server.lock"


class DataDirError(HfsynthError):
    """A data folder that cannot be used: not a folder, not writable, or already served by another server."""


class DataDirLock:
    """Ownership of a data folder, held until `release()` or the end of the process."""

    def __init__(self, descriptor: int) -> None:
        self._descriptor: int | None = descriptor

    def release(self) -> None:
        if self._descriptor is None:
            return
        os.ftruncate(self._descriptor, 0)  # no pid of a server that is gone
        os.close(self._descriptor)  # closing drops the flock; the file stays (deleting it would race a new owner)
        self._descriptor = None


def _owner_pid(descriptor: int) -> str:
    text = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
    return text if text.isdigit() else "unknown"  # the owner may not have written its pid yet


def claim_data_dir(folder: Path) -> DataDirLock:
    """Create `folder` if needed and lock it for this process, or raise DataDirError with one line naming it."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataDirError(f"hub data folder {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
        descriptor = os.open(folder / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise DataDirError(f"cannot use {folder} as the hub data folder: {error.strerror or error}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        owner = _owner_pid(descriptor)
        os.close(descriptor)
        if isinstance(error, BlockingIOError):
            raise DataDirError(f"{folder} is already served by another hub server (pid {owner})") from None
        raise DataDirError(f"cannot lock the hub data folder {folder}: {error.strerror or error}") from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return DataDirLock(descriptor)


@contextlib.contextmanager
def served_data_dir(folder: Path | None) -> Iterator[Path]:
    """`folder`, or a temporary folder removed afterwards, claimed by this process while the context lasts."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            temporary = tempfile.TemporaryDirectory(prefix="hfsynth-hub-", ignore_cleanup_errors=True)
            folder = Path(stack.enter_context(temporary))
        stack.callback(claim_data_dir(folder).release)  # released before a temporary folder is removed
        yield folder
