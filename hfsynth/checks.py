"""Checks a command runs before it starts work, so that a mistake costs one line, not a traceback an hour in."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hfsynth.errors import HfsynthError


def check_out_dir(out: Path, option: str = "--out") -> None:
    """``out`` must be a folder hfsynth can write into, or a path where one can be created.

    Nothing is created: the nearest existing folder on the way is tried with a temporary file, which catches what
    permission bits do not (read-only file systems, root's permissions, quotas).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HfsynthError(f"{option} {out}: is a file, not a folder: give a folder for the run")
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise HfsynthError(f"{option} {out}: cannot create it: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".hfsynth-write-check-"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        what = "the folder is not writable" if existing == out else f"cannot create it in {existing}"
        raise HfsynthError(f"{option} {out}: {what} ({reason})") from None
    if existing != out and not os.access(existing, os.W_OK | os.X_OK):
        raise HfsynthError(f"{option} {out}: cannot create it in {existing} (permission denied)")


def check_run_dir(out: Path, option: str = "--out") -> None:
    """``out`` must be a run folder some earlier command wrote (a dataset or students in it): the commands that only
    read a run (``publish``, ``space deploy``) would otherwise do nothing, or push an empty Space, and say nothing."""
    from hfsynth.run_folder import RunFolder

    out = Path(out)
    if not out.exists():
        raise HfsynthError(f"{option} {out}: no such folder: give the run folder `hfsynth generate` and `train` wrote")
    if not out.is_dir():
        raise HfsynthError(f"{option} {out}: is a file, not a run folder")
    run = RunFolder(out)
    if not run.dataset.root.is_dir() and not run.students.is_dir():
        raise HfsynthError(f"{option} {out}: not a run folder (no {run.dataset.root.name}/ or {run.students.name}/ "
                           "in it): run `hfsynth generate` and `hfsynth train` first")
