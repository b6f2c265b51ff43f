"""A run folder on object storage (``--out s3://BUCKET/PREFIX``), for clusters whose nodes share no disk.

As Ray Tune's ``storage_path``, through ``pyarrow.fs`` (S3 and S3-compatible servers, GCS, HDFS, Azure; the URI's
query sets the endpoint, e.g. ``s3://runs/q?endpoint_override=127.0.0.1:9000&scheme=http``; credentials come from
the usual variables, ``AWS_ACCESS_KEY_ID`` and so on):

- the driver works in a **local copy** of the run folder (under ``HFSYNTH_SCRATCH``, by default the temporary folder,
  named after the URI): :func:`run_folder_on` brings down what storage holds (a resume), and every stage sends its
  changes up when it ends, also when it fails or is interrupted (:func:`push_if_mirrored`);
- a **unit on a cluster node** (a student run, an evaluation) works in node-local scratch: it brings down the folder
  it needs (:meth:`StagedFolders.staged`), and a training sends each checkpoint up as the trainer saves it and the
  finished student when it is done; the driver then brings that student into its copy (:meth:`StagedFolders.collect`).
  A unit retried on another node resumes from the last checkpoint that reached storage.

Object stores have no folder renames, so the file that marks a folder finished (a student's meta file, a
checkpoint's trainer state) is uploaded after every other file of its folder: a folder cut short in transfer never
passes as finished.
"""

from __future__ import annotations

import contextlib
import functools
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
from hfsynth.run_folder import RUN_FOLDER_LOCK

if TYPE_CHECKING:
    import pyarrow.fs

    from hfsynth.execution import Engine

#: Where the driver's copies of storage run folders and the units' scratch folders go (default: the temp folder).
SCRATCH_VARIABLE = "HFSYNTH_SCRATCH"
#: The schemes of ``pyarrow.fs.FileSystem.from_uri`` that name remote storage.
STORAGE_SCHEMES = ("s3://", "gs://", "gcs://", "hdfs://", "abfs://", "abfss://")
#: Files that mark their folder finished, uploaded after the rest of it (a student's meta, a checkpoint's state).
FINISHING_FILES = ("hfsynth_student.json", "trainer_state.json")
#: The run folder's lock (held by the command working in this copy, meaningless elsewhere).
NEVER_SYNCED = (RUN_FOLDER_LOCK,)


def is_storage_uri(location: str) -> bool:
    return location.startswith(STORAGE_SCHEMES)


def scratch_root() -> Path:
    return Path(os.environ.get(SCRATCH_VARIABLE) or Path(tempfile.gettempdir()) / "hfsynth-scratch")


@functools.lru_cache(maxsize=8)
def _filesystem(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    import pyarrow.fs

    try:
        filesystem, root = pyarrow.fs.FileSystem.from_uri(uri)
    except (pyarrow.ArrowInvalid, OSError) as error:
        raise HfsynthError(f"--out {_without_query(uri)}: cannot open that storage: {error}") from None
    if not root.strip("/"):
        raise HfsynthError(f"--out {_without_query(uri)}: name a bucket and a prefix for the run, e.g. "
                           "s3://BUCKET/runs/NAME")
    return filesystem, root


def _without_query(uri: str) -> str:
    return uri.split("?", 1)[0]


@dataclass(frozen=True)
class RunStorage:
    """A run folder's home on storage: ``uri`` (picklable: each process opens its own file system from it)."""

    uri: str

    @property
    def name(self) -> str:
        """The URI without its query (which may hold an endpoint or options): for messages."""
        return _without_query(self.uri)

    def _path(self, relative: str) -> tuple[pyarrow.fs.FileSystem, str]:
        filesystem, root = _filesystem(self.uri)
        return filesystem, f"{root.rstrip('/')}/{relative}".rstrip("/")

    def _files(self, relative: str) -> dict[str, pyarrow.fs.FileInfo]:
        """Every file under ``relative``, by its path relative to it."""
        import pyarrow.fs

        filesystem, path = self._path(relative)
        try:
            infos = filesystem.get_file_info(pyarrow.fs.FileSelector(path, recursive=True, allow_not_found=True))
        except OSError as error:
            raise HfsynthError(f"--out {self.name}: cannot read the run folder there: {error}") from None
        return {info.path[len(path) + 1:]: info for info in infos if info.type == pyarrow.fs.FileType.File}

    def exists(self, relative: str) -> bool:
        """Whether storage has the file ``relative``, or files under the folder ``relative``."""
        import pyarrow.fs

        filesystem, path = self._path(relative)
        if filesystem.get_file_info(path).type == pyarrow.fs.FileType.File:
            return True
        return bool(self._files(relative))

    def upload(self, local: Path, relative: str, only_changed: bool = False, delete_missing: bool = True) -> None:
        """Make ``relative`` on storage hold what the local folder ``local`` holds: its files (with
        ``only_changed``, those newer or of another size than storage's), the finishing files last, then (with
        ``delete_missing``) storage's files that are not in ``local`` any more are deleted."""
        import pyarrow.fs

        filesystem, root = self._path(relative)
        remote = self._files(relative)
        local_files = {path.relative_to(local).as_posix(): path for path in sorted(local.rglob("*"))
                       if path.is_file() and path.name not in NEVER_SYNCED}
        order = sorted(local_files, key=lambda name: (Path(name).name in FINISHING_FILES, name))
        for name in order:
            path, known = local_files[name], remote.get(name)
            if only_changed and known is not None and known.size == path.stat().st_size \
                    and known.mtime is not None and known.mtime.timestamp() >= path.stat().st_mtime:
                continue
            filesystem.create_dir(f"{root}/{name}".rsplit("/", 1)[0], recursive=True)
            pyarrow.fs.copy_files(str(path), f"{root}/{name}", source_filesystem=pyarrow.fs.LocalFileSystem(),
                                  destination_filesystem=filesystem)
        for name in sorted(set(remote) - set(local_files)) if delete_missing else ():
            filesystem.delete_file(f"{root}/{name}")

    def download(self, relative: str, local: Path, only_changed: bool = False) -> bool:
        """Bring ``relative`` down into ``local`` (with ``only_changed``, only files newer on storage than here, or
        missing here); False when storage has nothing there. Each file gets storage's time, so that an unchanged
        file is not sent back up."""
        import pyarrow.fs

        filesystem, root = self._path(relative)
        remote = self._files(relative)
        for name, info in sorted(remote.items()):
            target = local / name
            remote_time = info.mtime.timestamp() if info.mtime is not None else None
            if only_changed and target.is_file() and (remote_time is None or target.stat().st_mtime >= remote_time):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
            pyarrow.fs.copy_files(f"{root}/{name}", str(partial), source_filesystem=filesystem,
                                  destination_filesystem=pyarrow.fs.LocalFileSystem())
            if remote_time is not None:
                os.utime(partial, (remote_time, remote_time))
            partial.replace(target)
        return bool(remote)


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
        # failed before collecting them, the checkpoints of units still running).
        self.storage.upload(self.local, "", only_changed=True, delete_missing=False)


#: The run folders of this process that are copies of storage (set by :func:`run_folder_on`).
_MIRRORS: dict[Path, MirroredFolder] = {}


def mirror_of(folder: Path) -> MirroredFolder | None:
    """The storage copy ``folder`` is in (itself, or a recipe's folder inside it), if any."""
    folder = Path(folder).absolute()
    for candidate in (folder, *folder.parents):
        if candidate in _MIRRORS:
            return _MIRRORS[candidate]
    return None


@contextlib.contextmanager
def run_folder_on(location: str) -> Iterator[Path]:
    """The run folder to work in for ``--out location``: the folder itself, or for a storage URI the driver's local
    copy of it, brought up to date from storage first and sent back when the block ends (and after every stage)."""
    if not is_storage_uri(location):
        yield Path(location)
        return
    storage = RunStorage(location)
    digest = hashlib.sha256(storage.uri.encode()).hexdigest()[:16]
    local = (scratch_root() / "runs" / digest).absolute()
    local.mkdir(parents=True, exist_ok=True)
    storage.download("", local, only_changed=True)
    mirror = MirroredFolder(local, storage)
    _MIRRORS[local] = mirror
    try:
        yield local
    finally:
        del _MIRRORS[local]
        mirror.push()


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
        scratch = scratch_root() / "units" / uuid.uuid4().hex / Path(folder).name
        scratch.mkdir(parents=True)
        try:
            self.mirror.storage.download(relative, scratch)
            yield scratch
            if write:
                self.mirror.storage.upload(scratch, relative, only_changed=True)
        finally:
            shutil.rmtree(scratch.parent, ignore_errors=True)

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
