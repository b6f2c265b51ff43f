"""User-facing errors: the CLI prints them as one line and exits non-zero, never with a traceback."""

from __future__ import annotations


class HfsynthError(Exception):
    """A mistake the user can fix (bad recipe, missing file, unreachable server...)."""


class RecipeError(HfsynthError):
    """A recipe that does not validate. The message names the file and the field."""


class TeacherError(HfsynthError):
    """A teacher that cannot be loaded or reached."""


class SharedStorageError(HfsynthError):
    """A worker of a cluster does not see the run folder the driver sees (or the driver not what a worker wrote)."""
