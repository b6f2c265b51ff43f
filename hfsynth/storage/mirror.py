"""A run folder on object storage (``--out s3://BUCKET/PREFIX``), for clusters whose nodes share no disk.

As Ray Tune's ``storage_path``, through ``pyarrow.fs`` (S3 and S3-compatible servers, GCS, HDFS, Azure; the URI's
query sets the endpoint, e.g. ``s3://runs/q?endpoint_override=127.0.0.1:9000&scheme=http``; credentials come from
the usual variables, ``AWS_ACCESS_KEY_ID`` and so on):

- the driver works in a **local copy** of the run folder (under ``HFSYNTH_SCRATCH``, by default the temporary folder,
  named after the URI, one per location however it is spelled): :func:`run_folder_on` checks that storage can be
  written (before any teacher call), makes the copy what storage holds (a resume; storage is the truth), and every
  stage sends its changes up when it ends, also when it fails or is interrupted by Ctrl-C or SIGTERM
  (:func:`push_if_mirrored`); the call cache also goes up as it grows (:mod:`hfsynth.storage.cache_sync`);
- a **unit on a cluster node** (a student run, an evaluation) works in node-local scratch: it brings down the folder
  it needs (:meth:`StagedFolders.staged`), and a training sends each checkpoint up as the trainer saves it and the
  finished student when it is done; the driver then brings that student into its copy (:meth:`StagedFolders.collect`).
  A unit retried on another node resumes from the last checkpoint that reached storage.

Object stores have no folder renames, so the file that marks a folder finished (a student's meta file, a
checkpoint's trainer state) is uploaded after every other file of its folder: a folder cut short in transfer never
passes as finished. Every object is checked once it is written, and against hfsynth's record of it when it comes
down (:mod:`hfsynth.storage.object_store`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfsynth.errors import HfsynthError
from hfsynth.runs.folder import RUN_FOLDER_LOCK
from hfsynth.stop_signals import terminate_as_interrupt
from hfsynth.storage.cache_sync import CacheSync
from hfsynth.storage.folder_lock import FolderLockedError, locked_folder
from hfsynth.storage.object_store import (
    CACHE_NAME,
    UNSENT_FILE,
    RunStorage,
    StorageError,
    check_writable,
    sending,
    storage_uri,
)

if TYPE_CHECKING:
    from hfsynth.engines.base import Engine

#: Where the driver's copies of storage run folders and the units' scratch folders go (default: the temp folder).
SCRATCH_VARIABLE = "HFSYNTH_SCRATCH"


def is_storage_uri(location: str) -> bool:
    """Whether ``--out location`` names object storage (one line for a URI hfsynth cannot use)."""
    return storage_uri(location) is not None


def scratch_root() -> Path:
    return Path(os.environ.get(SCRATCH_VARIABLE) or Path(tempfile.gettempdir()) / "hfsynth-scratch")


# --- the driver's local copy ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MirroredFolder:
    """A local run folder (``local``) that is a copy of ``storage``."""

    local: Path
    storage: RunStorage

    def relative(self, folder: Path) -> str:
        return Path(folder).relative_to(self.local).as_posix()

    def push(self) -> None:
        # Nothing deleted: storage may hold what units sent up that this copy has not brought down yet (a stage that
        # failed before collecting them, the checkpoints of units still running). The call cache always goes: its
        # snapshots sent while it grew (hfsynth.storage.cache_sync) may have storage's time without all its answers.
        with sending(self.storage):
            self.storage.upload(self.local, "", only_changed=True, delete_missing=False, always=(CACHE_NAME,))

    def shown(self, path: Path) -> str:
        """``path`` of this copy as the user named it: its URI on storage."""
        return self.storage.object_name(self.relative(path)).rstrip("/")


#: The run folders of this process that are copies of storage (set by :func:`run_folder_on`).
_MIRRORS: dict[Path, MirroredFolder] = {}
def mirror_of(folder: Path) -> MirroredFolder | None:
    """The storage copy ``folder`` is in (itself, or a recipe's folder inside it), if any."""
    folder = Path(folder).absolute()
    for candidate in (folder, *folder.parents):
        if candidate in _MIRRORS:
            return _MIRRORS[candidate]
    return None


def shown_path(path: Path) -> str:
    """A path of the run folder as the user named it: its ``s3://`` URI when the run folder is a copy of storage."""
    mirror = mirror_of(path)
    return str(path) if mirror is None else mirror.shown(Path(path).absolute())


@contextlib.contextmanager
def run_folder_on(location: str) -> Iterator[Path]:
    """The run folder to work in for ``--out location``: the folder itself, or for a storage URI the driver's local
    copy of it. Storage is checked first (before any teacher call: one line when it cannot be written), the copy is
    made what storage holds (storage is the truth: a prefix deleted there starts the run afresh), held against other
    commands on the same location however it is spelled, sent up after every stage, as the call cache grows, and
    when the block ends (also on Ctrl-C and SIGTERM)."""
    uri = storage_uri(location)
    if uri is None:
        yield Path(location)
        return

    storage = RunStorage(uri)
    check_writable(uri)
    local = (scratch_root() / "runs" / hashlib.sha256(uri.encode()).hexdigest()[:16]).absolute()
    with _held_by_this_command(local, storage), terminate_as_interrupt():
        mirror = MirroredFolder(local, storage)
        unsent = local / UNSENT_FILE
        if unsent.exists():  # the last command here could not send everything up: this copy is ahead of storage
            mirror.push()
            unsent.unlink()
        else:
            storage.download("", local, mirror=True)
        _MIRRORS[local] = mirror
        try:
            with CacheSync(mirror.local, mirror.storage):
                yield local
        except HfsynthError as error:
            error.args = tuple(_named_as_stored(arg, local, storage) for arg in error.args)
            raise
        finally:
            del _MIRRORS[local]
            _push_or_mark(mirror, unsent)


def _push_or_mark(mirror: MirroredFolder, unsent: Path) -> None:
    """The last push of a command; when it fails (a storage outage), the copy is marked ahead of storage, so that
    the next command here sends it up instead of taking storage's older state."""
    try:
        mirror.push()
    except HfsynthError:
        unsent.touch()
        raise


def _named_as_stored(message: object, local: Path, storage: RunStorage) -> object:
    """A message that names the local copy names the user's URI instead."""
    return message.replace(str(local), storage.name) if isinstance(message, str) else message


@contextlib.contextmanager
def _held_by_this_command(local: Path, storage: RunStorage) -> Iterator[None]:
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(locked_folder(local, RUN_FOLDER_LOCK, "run folder"))
        except FolderLockedError as error:
            raise StorageError(f"--out {storage.name}: the run folder is in use by {error.holder}: wait for it to "
                               "finish, or give this command another --out") from None
        yield


def push_if_mirrored(folder: Path) -> None:
    """After a stage: send what it wrote up to storage, when the run folder is a copy of storage."""
    mirror = mirror_of(folder)
    if mirror is not None:
        mirror.push()


# --- units on cluster nodes ----------------------------------------------------------------------------------------


class FolderAccess:
    """How a unit of work reaches a folder of the run folder: directly, where it is (this machine, or storage every
    node mounts at the same path)."""

    #: Whether units read and write the run folder's own path (then an engine checks that they see it).
    direct = True

    @contextlib.contextmanager
    def staged(self, folder: Path, *, write: bool) -> Iterator[Path]:
        """The folder to use for ``folder`` in the unit (``write``: the unit writes it, and what it wrote is kept)."""
        yield folder

    def checkpoint_callbacks(self, folder: Path, staged_folder: Path) -> list[Any]:
        """Trainer callbacks that keep the checkpoints a training writes into ``staged_folder`` (the unit's
        ``folder``) where a retried unit finds them."""
        return []

    def collect(self, folder: Path) -> None:
        """In the driver, once a unit wrote ``folder``: have it in the run folder."""


@dataclass(frozen=True)
class StagedFolders(FolderAccess):
    """Units on nodes without the run folder: each folder a unit needs comes down from storage into node-local
    scratch, and what it writes goes back up (see the module's docstring)."""

    mirror: MirroredFolder
    direct = False

    @contextlib.contextmanager
    def staged(self, folder: Path, *, write: bool) -> Iterator[Path]:
        relative = self.mirror.relative(folder)
        # Under the unit's own folder, the run folder's layout: a training's progress names its student, not this.
        unit_root = scratch_root() / "units" / uuid.uuid4().hex
        scratch = unit_root / relative
        scratch.mkdir(parents=True)
        try:
            self.mirror.storage.download(relative, scratch)
            yield scratch
            if write:
                self.mirror.storage.upload(scratch, relative, only_changed=True)
        finally:
            shutil.rmtree(unit_root, ignore_errors=True)

    def checkpoint_callbacks(self, folder: Path, staged_folder: Path) -> list[Any]:
        return [_checkpoint_upload(self.mirror.storage, self.mirror.relative(folder), staged_folder)]

    def collect(self, folder: Path) -> None:
        self.mirror.storage.download(self.mirror.relative(folder), Path(folder), only_changed=True)


def _checkpoint_upload(storage: RunStorage, relative: str, staged_folder: Path) -> Any:
    """A trainer callback that sends the staged folder (its checkpoints) up each time the trainer saved one."""
    from transformers import TrainerCallback

    class CheckpointUpload(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            storage.upload(staged_folder, relative, only_changed=True)

    return CheckpointUpload()


def unit_folders(run_dir: Path, engine: Engine) -> FolderAccess:
    """How the units ``engine`` runs for the run folder ``run_dir`` reach it."""
    mirror = mirror_of(run_dir)
    if mirror is None or engine.units_run_here:
        return FolderAccess()
    return StagedFolders(mirror)
