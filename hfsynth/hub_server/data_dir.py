"""The folder a loopback Hub server keeps its repos in: checked, created if needed, and locked for the server's life.

Two servers on one folder would each serialize writers with their own in-process locks and overwrite each other's
refs.json, silently losing commits. An exclusive `flock` on `hub-server.lock` inside the folder
(:mod:`hfsynth.storage.folder_lock`) rules that out; the kernel drops it when the process ends, however it ends, so a
crash leaves no stale lock behind. The file names its holder for the message a second server prints.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hfsynth.errors import HfsynthError
from hfsynth.storage.folder_lock import FolderLockedError, locked_folder

LOCK_FILE_NAME = "hub-server.lock"


class DataDirError(HfsynthError):
    """A data folder that cannot be used: not a folder, not writable, or already served by another server."""


@contextlib.contextmanager
def claimed_data_dir(folder: Path) -> Iterator[Path]:
    """Create ``folder`` if needed and hold it for the block (also against a second server in this process), or raise
    DataDirError with one line naming it and its server."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataDirError(f"hub data folder {folder} is a file, not a folder")
    with contextlib.ExitStack() as held:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied")
            held.enter_context(locked_folder(folder, LOCK_FILE_NAME, "hub data folder", reentrant=False))
        except FolderLockedError as error:
            raise DataDirError(f"{folder} is already served by another hub server ({error.holder})") from None
        except OSError as error:
            raise DataDirError(f"cannot use {folder} as the hub data folder: {error.strerror or error}") from None
        yield folder  # the server's own errors pass through as they are


@contextlib.contextmanager
def served_data_dir(folder: Path | None) -> Iterator[Path]:
    """`folder`, or a temporary folder removed afterwards, claimed by this process while the context lasts."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            temporary = tempfile.TemporaryDirectory(prefix="hfsynth-hub-", ignore_cleanup_errors=True)
            folder = Path(stack.enter_context(temporary))
        yield stack.enter_context(claimed_data_dir(folder))  # released before a temporary folder is removed
