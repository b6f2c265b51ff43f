"""User-facing errors: the CLI prints them as one line and exits non-zero, never with a traceback."""

from __future__ import annotations

import errno


class HfsynthError(Exception):
    """A mistake the user can fix (bad recipe, missing file, unreachable server...)."""


class RecipeError(HfsynthError):
    """A recipe that does not validate. The message names the file and the field."""


class TeacherError(HfsynthError):
    """A teacher that cannot be loaded or reached."""


class SharedStorageError(HfsynthError):
    """A worker of a cluster does not see the run folder the driver sees (or the driver not what a worker wrote)."""


#: What "the disk is full" looks like from the libraries that write a run folder: the OS (OSError ENOSPC, EDQUOT),
#: safetensors (its Rust IoError, "StorageFull") and SQLite ("database or disk is full").
_FULL_DISK_WORDS = ("No space left on device", "StorageFull", "database or disk is full", "Disk quota exceeded")


def out_of_space(error: BaseException) -> str | None:
    """The file a full disk kept from being written ("" when the error does not say), or None for another error;
    follows the chain of causes (a library's error raised while handling the OS's)."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return str(seen.filename or "")
        if any(words in str(seen) for words in _FULL_DISK_WORDS):
            return ""
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return None
