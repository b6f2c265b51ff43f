"""A run folder on object storage (``--out s3://BUCKET/PREFIX``), for clusters whose nodes share no disk.

As Ray Tune's ``storage_path``, through ``pyarrow.fs`` (S3 and S3-compatible servers, GCS, HDFS, Azure; the URI's
query sets the endpoint, e.g. ``s3://runs/q?endpoint_override=127.0.0.1:9000&scheme=http``; credentials come from
the usual variables, ``AWS_ACCESS_KEY_ID`` and so on):

- the driver works in a **local copy** of the run folder (under ``HFSYNTH_SCRATCH``, by default the temporary folder,
  named after the URI, one per location however it is spelled): :func:`run_folder_on` checks that storage can be
  written (before any teacher call), makes the copy what storage holds (a resume; storage is the truth), and every
  stage sends its changes up when it ends, also when it fails or is interrupted by Ctrl-C or SIGTERM
  (:func:`push_if_mirrored`); the call cache also goes up as it grows (:mod:`hfsynth.cache_sync`);
- a **unit on a cluster node** (a student run, an evaluation) works in node-local scratch: it brings down the folder
  it needs (:meth:`StagedFolders.staged`), and a training sends each checkpoint up as the trainer saves it and the
  finished student when it is done; the driver then brings that student into its copy (:meth:`StagedFolders.collect`).
  A unit retried on another node resumes from the last checkpoint that reached storage.

Object stores have no folder renames, so the file that marks a folder finished (a student's meta file, a
checkpoint's trainer state) is uploaded after every other file of its folder: a folder cut short in transfer never
passes as finished. Every object is checked once it is written, and against hfsynth's record of it when it comes
down (:mod:`hfsynth.object_store`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfsynth.cache import SIDE_SUFFIXES
from hfsynth.folder_lock import FolderLockedError, locked_folder
from hfsynth.object_store import (
    DIGESTS_PREFIX,
    HFSYNTH_PREFIX,
    Digest,
    StorageError,
    check_received,
    check_sent,
    check_writable,
    describe_failure,
    digest_of,
    digest_of_bytes,
    location_name,
    open_store,
    storage_uri,
    store_name,
)
from hfsynth.run_folder import RUN_FOLDER_LOCK, RunFolder

if TYPE_CHECKING:
    import pyarrow.fs

    from hfsynth.execution import Engine

#: Where the driver's copies of storage run folders and the units' scratch folders go (default: the temp folder).
SCRATCH_VARIABLE = "HFSYNTH_SCRATCH"
#: Files that mark their folder finished, uploaded after the rest of it (a student's meta, a checkpoint's state).
FINISHING_FILES = ("hfsynth_student.json", "trainer_state.json")
#: The call cache's file name: it goes up as it grows (:mod:`hfsynth.cache_sync`), and whole at every push.
CACHE_NAME = RunFolder(Path()).cache.name
#: Never sent up: the run folder's lock (held by the command working in this copy, meaningless elsewhere) and the
#: call cache's SQLite side files (the cache goes up as one consistent file).
NEVER_SYNCED = (RUN_FOLDER_LOCK, *(f"{CACHE_NAME}{suffix}" for suffix in SIDE_SUFFIXES))


def is_storage_uri(location: str) -> bool:
    """Whether ``--out location`` names object storage (one line for a URI hfsynth cannot use)."""
    return storage_uri(location) is not None


def scratch_root() -> Path:
    return Path(os.environ.get(SCRATCH_VARIABLE) or Path(tempfile.gettempdir()) / "hfsynth-scratch")


@dataclass(frozen=True)
class RunStorage:
    """A run folder's home on storage: ``uri`` (picklable: each process opens its own file system from it)."""

    uri: str

    @property
    def name(self) -> str:
        """The URI without its query (which may hold an endpoint or options): for messages."""
        return location_name(self.uri)

    @property
    def store(self) -> str:
        return store_name(self.uri)

    def _path(self, relative: str) -> tuple[pyarrow.fs.FileSystem, str]:
        filesystem, root = open_store(self.uri)
        return filesystem, f"{root}/{relative}".rstrip("/")

    def _files(self, relative: str) -> dict[str, pyarrow.fs.FileInfo]:
        """Every file of the run folder under ``relative``, by its path relative to it (hfsynth's records aside)."""
        import pyarrow.fs

        filesystem, path = self._path(relative)
        try:
            infos = filesystem.get_file_info(pyarrow.fs.FileSelector(path, recursive=True, allow_not_found=True))
        except OSError as error:
            raise StorageError(f"--out {self.name}: cannot read the run folder there: {error}") from None
        _, root = self._path("")
        return {info.path[len(path) + 1:]: info for info in infos if info.type == pyarrow.fs.FileType.File
                and not info.path[len(root) + 1:].startswith(f"{HFSYNTH_PREFIX}/")}

    def exists(self, relative: str) -> bool:
        """Whether storage has the file ``relative``, or files under the folder ``relative``."""
        import pyarrow.fs

        filesystem, path = self._path(relative)
        if filesystem.get_file_info(path).type == pyarrow.fs.FileType.File:
            return True
        return bool(self._files(relative))

    def object_name(self, relative: str) -> str:
        """The object's URI, for messages."""
        return f"{self.name}/{relative}"

    def put_file(self, local: Path, relative: str, keep_local_time: bool = False) -> None:
        """Send the file ``local`` to ``relative``, check that the store holds what was sent, and record its digest
        beside it; the local file then gets storage's time (unless ``keep_local_time``), so that it is known
        unchanged."""
        filesystem, target = self._path(relative)
        _, record = self._path(f"{DIGESTS_PREFIX}/{relative}")
        sent = digest_of(local)
        try:
            self._delete_if_present(record)  # a kill before the new record leaves no stale one
            filesystem.create_dir(target.rsplit("/", 1)[0], recursive=True)
            _copy(str(local), target, _local_filesystem(), filesystem)
            check_sent(filesystem, target, sent, self.object_name(relative), self.store)
            with filesystem.open_output_stream(record) as stream:
                stream.write(sent.record())
            check_sent(filesystem, record, digest_of_bytes(sent.record()),
                       self.object_name(f"{DIGESTS_PREFIX}/{relative}"), self.store)
            stored_time = filesystem.get_file_info(target).mtime
        except OSError as error:
            raise StorageError(f"{self.object_name(relative)}: cannot write it: "
                               f"{describe_failure(self.uri, error)}") from None
        if stored_time is not None and not keep_local_time:
            os.utime(local, (stored_time.timestamp(), stored_time.timestamp()))

    def _delete_if_present(self, path: str) -> None:
        import pyarrow.fs

        filesystem, _ = open_store(self.uri)
        if filesystem.get_file_info(path).type == pyarrow.fs.FileType.File:
            filesystem.delete_file(path)

    def recorded(self, relative: str) -> Digest | None:
        """The digest hfsynth recorded when it wrote ``relative`` (None: no record)."""
        filesystem, record = self._path(f"{DIGESTS_PREFIX}/{relative}")
        try:
            with filesystem.open_input_stream(record) as stream:
                return Digest.parse(stream.read())
        except (FileNotFoundError, OSError):
            return None

    def delete(self, relative: str) -> None:
        filesystem, target = self._path(relative)
        filesystem.delete_file(target)
        self._delete_if_present(self._path(f"{DIGESTS_PREFIX}/{relative}")[1])

    def upload(self, local: Path, relative: str, only_changed: bool = False, delete_missing: bool = True,
               always: tuple[str, ...] = ()) -> None:
        """Make ``relative`` on storage hold what the local folder ``local`` holds: its files (with
        ``only_changed``, those newer or of another size than storage's, and those named in ``always``), each
        checked once it is there, the finishing files last, then (with ``delete_missing``) storage's files that are
        not in ``local`` any more are deleted."""
        remote = self._files(relative)
        local_files = {path.relative_to(local).as_posix(): path for path in sorted(local.rglob("*"))
                       if path.is_file() and path.name not in NEVER_SYNCED}
        order = sorted(local_files, key=lambda name: (Path(name).name in FINISHING_FILES, name))
        for name in order:
            path, known = local_files[name], remote.get(name)
            if only_changed and known is not None and Path(name).name not in always \
                    and known.size == path.stat().st_size \
                    and known.mtime is not None and known.mtime.timestamp() >= path.stat().st_mtime:
                continue
            self.put_file(path, f"{relative}/{name}".strip("/"))
        for name in sorted(set(remote) - set(local_files)) if delete_missing else ():
            self.delete(f"{relative}/{name}".strip("/"))

    def download(self, relative: str, local: Path, only_changed: bool = False, mirror: bool = False) -> bool:
        """Bring ``relative`` down into ``local``, each file checked against the digest hfsynth recorded writing
        it; False when storage has nothing there. With ``only_changed``, only files newer on storage than here, or
        missing here; with ``mirror``, ``local`` is made what storage holds (storage is the truth): files of
        another size or time come down, files storage does not have go. Each file gets storage's time, so that an
        unchanged file is not sent back up."""
        remote = self._files(relative)
        for name, info in sorted(remote.items()):
            target = local / name
            remote_time = info.mtime.timestamp() if info.mtime is not None else None
            if target.is_file() and _unchanged(target, info.size, remote_time, newer_is_enough=only_changed,
                                               same_is_enough=mirror):
                continue
            self._fetch(f"{relative}/{name}".strip("/"), target, remote_time)
        if mirror:
            _remove_extra(local, set(remote))
        return bool(remote)

    def _fetch(self, relative: str, target: Path, remote_time: float | None) -> None:
        filesystem, source = self._path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            _copy(source, str(partial), filesystem, _local_filesystem())
            check_received(digest_of(partial), self.recorded(relative), self.object_name(relative), self.store)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise StorageError(f"{self.object_name(relative)}: cannot read it: "
                               f"{describe_failure(self.uri, error)}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if remote_time is not None:
            os.utime(partial, (remote_time, remote_time))
        partial.replace(target)


def _local_filesystem() -> pyarrow.fs.FileSystem:
    import pyarrow.fs

    return pyarrow.fs.LocalFileSystem()


def _copy(source: str, target: str, source_filesystem: Any, target_filesystem: Any) -> None:
    import pyarrow.fs

    pyarrow.fs.copy_files(source, target, source_filesystem=source_filesystem,
                          destination_filesystem=target_filesystem)


def _unchanged(target: Path, size: int, remote_time: float | None, newer_is_enough: bool,
               same_is_enough: bool) -> bool:
    """Whether the local file ``target`` need not come down again."""
    local = target.stat()
    if newer_is_enough:
        return remote_time is None or local.st_mtime >= remote_time
    return same_is_enough and local.st_size == size and remote_time is not None \
        and abs(local.st_mtime - remote_time) < 1e-3


def _remove_extra(local: Path, keep: set[str]) -> None:
    """Delete the files of ``local`` that are not in ``keep`` (relative names), but for its locks."""
    for path in sorted(local.rglob("*"), reverse=True):
        name = path.relative_to(local).as_posix()
        if path.is_file() and name not in keep and path.name != RUN_FOLDER_LOCK:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


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
        # snapshots sent while it grew (hfsynth.cache_sync) may have storage's time without all its answers.
        with sending(self.storage):
            self.storage.upload(self.local, "", only_changed=True, delete_missing=False, always=(CACHE_NAME,))

    def shown(self, path: Path) -> str:
        """``path`` of this copy as the user named it: its URI on storage."""
        return self.storage.object_name(self.relative(path)).rstrip("/")


#: The run folders of this process that are copies of storage (set by :func:`run_folder_on`).
_MIRRORS: dict[Path, MirroredFolder] = {}
#: One sender at a time per storage location in this process (a stage's push, the call cache's snapshots).
_SENDING: dict[str, threading.Lock] = {}


@contextlib.contextmanager
def sending(storage: RunStorage) -> Iterator[None]:
    with _SENDING.setdefault(storage.uri, threading.Lock()):
        yield


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
    from hfsynth.cache_sync import CacheSync

    storage = RunStorage(uri)
    check_writable(uri)
    local = (scratch_root() / "runs" / hashlib.sha256(uri.encode()).hexdigest()[:16]).absolute()
    with _held_by_this_command(local, storage), _terminate_as_interrupt():
        storage.download("", local, mirror=True)
        mirror = MirroredFolder(local, storage)
        _MIRRORS[local] = mirror
        try:
            with CacheSync(mirror):
                yield local
        finally:
            del _MIRRORS[local]
            mirror.push()


@contextlib.contextmanager
def _held_by_this_command(local: Path, storage: RunStorage) -> Iterator[None]:
    try:
        with locked_folder(local, RUN_FOLDER_LOCK, "run folder"):
            yield
    except FolderLockedError as error:
        raise StorageError(f"--out {storage.name}: the run folder is in use by {error.holder}: wait for it to "
                           "finish, or give this command another --out") from None


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (how Kubernetes and job schedulers stop a process) ends the block like Ctrl-C: what was done goes up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
