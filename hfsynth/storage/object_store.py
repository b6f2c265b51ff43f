"""Talking to the object store of a run folder on storage (:mod:`hfsynth.storage.mirror`): which ``--out`` values name
storage, the client's checksum settings, the check, before any teacher call, that ``--out`` can be written, and
:class:`RunStorage`, which sends a run folder's files up and brings them down, every object checked.

**Checksums.** pyarrow's S3 client (the AWS C++ SDK) sends bodies in AWS's chunked framing with a checksum trailer by
default; stores that predate it (s3rver, older MinIO and Ceph RGW) keep the framing as the object. hfsynth sets
``AWS_REQUEST_CHECKSUM_CALCULATION`` and ``AWS_RESPONSE_CHECKSUM_VALIDATION`` to ``WHEN_REQUIRED`` (plain bodies, as
every S3-compatible store understands) unless the user set them, and forwards them to Ray workers.

**Verification.** After each object goes up, its size and (where the store gives the content's MD5 as ETag) its
ETag are compared with what was sent, and a record of its size and MD5 goes beside it, under ``.hfsynth/digests/``
of the run's prefix; whatever comes down is compared with that record. A mismatch either way is one line naming the
object and the store. Objects without a record (a kill between the object and its record) are taken as they are.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfsynth.cache import SIDE_SUFFIXES
from hfsynth.errors import HfsynthError
from hfsynth.runs.folder import RUN_FOLDER_LOCK, RunFolder

if TYPE_CHECKING:
    import pyarrow.fs

#: The schemes of ``pyarrow.fs.FileSystem.from_uri`` that name remote storage.
STORAGE_SCHEMES = ("s3", "gs", "gcs", "hdfs", "abfs", "abfss")
#: Hadoop's names for S3, which pyarrow does not take.
HADOOP_SCHEMES = ("s3a", "s3n")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: The AWS SDK's checksum settings hfsynth chooses (see the module docstring); a value the user set wins.
CHECKSUM_SETTINGS = {"AWS_REQUEST_CHECKSUM_CALCULATION": "WHEN_REQUIRED",
                     "AWS_RESPONSE_CHECKSUM_VALIDATION": "WHEN_REQUIRED"}
#: hfsynth's own objects under a run's prefix (digest records, the write probe): never part of the run folder.
HFSYNTH_PREFIX = ".hfsynth"
DIGESTS_PREFIX = f"{HFSYNTH_PREFIX}/digests"
#: Files that mark their folder finished, uploaded after the rest of it (a student's meta, a checkpoint's state).
FINISHING_FILES = ("hfsynth_student.json", "trainer_state.json")
#: The call cache's file name: it goes up as it grows (:mod:`hfsynth.storage.cache_sync`), and whole at every push.
CACHE_NAME = RunFolder(Path()).cache.name
#: In a driver's copy of a run folder: its last push failed (hfsynth.storage.mirror).
UNSENT_FILE = ".hfsynth-unsent"
#: Never sent up: the run folder's lock (held by the command working in this copy, meaningless elsewhere) and the
#: call cache's SQLite side files (the cache goes up as one consistent file).
NEVER_SYNCED = (RUN_FOLDER_LOCK, UNSENT_FILE, *(f"{CACHE_NAME}{suffix}" for suffix in SIDE_SUFFIXES))


class StorageError(HfsynthError):
    """The object store cannot be used, or holds something other than what hfsynth wrote."""


def storage_uri(location: str) -> str | None:
    """The URI of ``--out location`` in one spelling (``s3://b/p/``, ``s3://b//p`` and ``S3://b/p`` are one
    location), or None when ``location`` is a folder; one line for a scheme hfsynth cannot use."""
    match = _SCHEME.match(location)
    if match is None:
        return None
    scheme, rest = match.group(1).lower(), location[match.end():]
    if scheme in HADOOP_SCHEMES:
        raise StorageError(f"--out {location_name(location)}: {scheme}:// is Hadoop's name for S3; write "
                           f"s3://{rest.split('?', 1)[0]}")
    if scheme not in STORAGE_SCHEMES:
        raise StorageError(f"--out {location_name(location)}: hfsynth cannot store a run at {scheme}://; give a "
                           f"folder, or object storage: {', '.join(f'{name}://' for name in STORAGE_SCHEMES)}")
    path, _, query = rest.partition("?")
    path = "/".join(part for part in path.split("/") if part)
    options = sorted(urllib.parse.parse_qsl(query, keep_blank_values=True))
    return f"{scheme}://{path}" + (f"?{urllib.parse.urlencode(options, safe=':/')}" if options else "")


def location_name(uri: str) -> str:
    """The URI without its query (which may hold an endpoint or options): for messages."""
    return uri.split("?", 1)[0]


def store_name(uri: str) -> str:
    """The store a URI points at, for messages: its endpoint when the query names one."""
    query = dict(urllib.parse.parse_qsl(uri.partition("?")[2]))
    endpoint = query.get("endpoint_override")
    return f"the store at {endpoint}" if endpoint else f"{uri.split('://', 1)[0]}:// storage"


def apply_checksum_settings() -> None:
    """Plain request bodies for every S3-compatible store (see the module docstring), unless the user chose."""
    for name, value in CHECKSUM_SETTINGS.items():
        os.environ.setdefault(name, value)


@functools.lru_cache(maxsize=8)
def open_store(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The file system of ``uri`` and the run's root path in it."""
    import pyarrow.fs

    apply_checksum_settings()
    try:
        filesystem, root = pyarrow.fs.FileSystem.from_uri(uri)
    except (pyarrow.ArrowInvalid, OSError) as error:
        raise StorageError(f"--out {location_name(uri)}: cannot open that storage: {_first_line(error)}") from None
    if not root.strip("/"):
        raise StorageError(f"--out {location_name(uri)}: name a bucket and a prefix for the run, e.g. "
                           "s3://BUCKET/runs/NAME")
    return filesystem, root.rstrip("/")


def _first_line(error: BaseException) -> str:
    return " ".join(str(error).split())


@dataclass(frozen=True)
class Digest:
    """What a file holds: its size and MD5 (hex)."""

    size: int
    md5: str

    def record(self) -> bytes:
        return f"{self.size} {self.md5}\n".encode()

    @staticmethod
    def parse(record: bytes) -> Digest | None:
        parts = record.decode(errors="replace").split()
        return Digest(int(parts[0]), parts[1]) if len(parts) == 2 and parts[0].isdigit() else None


def digest_of(path: Path) -> Digest:
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            md5.update(block)
    return Digest(path.stat().st_size, md5.hexdigest())


def digest_of_bytes(data: bytes) -> Digest:
    return Digest(len(data), hashlib.md5(data, usedforsecurity=False).hexdigest())


def etag_matches(etag: str, sent: Digest) -> bool | None:
    """Whether the store's ETag is that of the content ``sent``; None when it does not say (an upload of several
    parts, a store's own ETag)."""
    if re.fullmatch(r"[0-9a-f]{32}", etag):  # a single PUT: the content's MD5
        return etag == sent.md5
    if re.fullmatch(r"[0-9a-f]{32}-1", etag):  # a multipart upload of one part: the MD5 of the part's MD5
        return etag[:32] == hashlib.md5(bytes.fromhex(sent.md5), usedforsecurity=False).hexdigest()
    return None


def check_sent(filesystem: pyarrow.fs.FileSystem, path: str, sent: Digest, name: str, store: str) -> None:
    """Raise one line naming the object ``name`` and ``store`` when what the store holds at ``path`` is not
    ``sent``."""
    try:
        with filesystem.open_input_file(path) as stream:
            size, metadata = stream.size(), stream.metadata()
    except OSError as error:
        raise StorageError(f"{name}: {store} did not keep the object just written ({_first_line(error)})") from None
    etag = (metadata.get("ETag") or b"").decode(errors="replace").strip('"').lower()
    if size != sent.size or etag_matches(etag, sent) is False:
        hint = ("; the store may keep AWS's checksum framing as the body: set AWS_REQUEST_CHECKSUM_CALCULATION="
                "WHEN_REQUIRED" if size > sent.size and os.environ.get("AWS_REQUEST_CHECKSUM_CALCULATION") !=
                "WHEN_REQUIRED" else "")
        raise StorageError(f"{name}: {store} holds {size} bytes (ETag {etag or 'none'}) where hfsynth sent "
                           f"{sent.size} bytes (MD5 {sent.md5}); the folder is not marked finished{hint}")


def check_received(received: Digest, recorded: Digest | None, name: str, store: str) -> None:
    """Raise one line naming the object when what came down is not what hfsynth recorded writing."""
    if recorded is not None and received != recorded:
        raise StorageError(f"{name}: {store} holds {received.size} bytes (MD5 {received.md5}), not the "
                           f"{recorded.size} bytes (MD5 {recorded.md5}) hfsynth wrote there: it was changed or "
                           "damaged on the store; restore it, or delete it there to have it made again")


def describe_failure(uri: str, error: OSError) -> str:
    """One line for why the store at ``uri`` cannot be used, from the client's error."""
    text, where = _first_line(error), f"--out {location_name(uri)}"
    bucket = location_name(uri).split("://", 1)[1].split("/", 1)[0]
    if "NO_SUCH_BUCKET" in text or ("does not exist" in text.lower() and "bucket" in text.lower()):
        return f"{where}: the bucket {bucket} does not exist on {store_name(uri)}: create it first"
    if any(code in text for code in ("INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "InvalidAccessKeyId",
                                     "SignatureDoesNotMatch", "INVALID_CLIENT_TOKEN", "EXPIRED_TOKEN")):
        return (f"{where}: {store_name(uri)} refused the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): "
                f"{_short(text)}")
    if "ACCESS_DENIED" in text or "AccessDenied" in text or "Forbidden" in text:
        return (f"{where}: {store_name(uri)} refused these credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) "
                f"access to {location_name(uri)}: wrong keys, or keys without the right to write there: "
                f"{_short(text)}")
    if any(sign in text for sign in ("NETWORK_CONNECTION", "Couldn't connect", "curlCode", "connect to server",
                                     "Connection refused")):
        return f"{where}: nobody answers at {store_name(uri)}: is the store running and the endpoint right?"
    return f"{where}: cannot use {store_name(uri)}: {_short(text)}"


def _short(text: str) -> str:
    return text if len(text) <= 300 else text[:297] + "..."


def check_writable(uri: str) -> None:
    """Before any teacher call: the bucket exists and a probe object can be written under the run's prefix, read
    back equal and deleted; otherwise one line (:class:`StorageError`)."""
    import pyarrow.fs

    filesystem, root = open_store(uri)
    probe = f"{root}/{HFSYNTH_PREFIX}/probe-{uuid.uuid4().hex}"
    body = f"hfsynth write probe {uuid.uuid4().hex}\n".encode() * 8
    try:
        bucket = root.split("/", 1)[0]
        if filesystem.get_file_info(bucket).type == pyarrow.fs.FileType.NotFound:
            raise OSError("NO_SUCH_BUCKET")
        with filesystem.open_output_stream(probe) as stream:
            stream.write(body)
        with filesystem.open_input_stream(probe) as stream:
            back = stream.read()
        filesystem.delete_file(probe)
    except OSError as error:
        raise StorageError(describe_failure(uri, error)) from None
    if back != body:
        raise StorageError(f"--out {location_name(uri)}: {store_name(uri)} gave back {len(back)} bytes for a "
                           f"{len(body)}-byte probe object: it does not keep what it is sent"
                           + ("" if os.environ.get("AWS_REQUEST_CHECKSUM_CALCULATION") == "WHEN_REQUIRED" else
                              " (AWS's checksum framing? set AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED)"))


# --- a run folder's objects ---------------------------------------------------------------------------------------


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
            raise StorageError(describe_failure(self.uri, error)) from None
        _, root = self._path("")
        return {info.path[len(path) + 1:]: info for info in infos if info.type == pyarrow.fs.FileType.File
                and not info.path[len(root) + 1:].startswith(f"{HFSYNTH_PREFIX}/")}

    def exists(self, relative: str) -> bool:
        """Whether storage has the file ``relative``, or files under the folder ``relative``."""
        import pyarrow.fs

        filesystem, path = self._path(relative)
        try:
            is_file = filesystem.get_file_info(path).type == pyarrow.fs.FileType.File
        except OSError as error:
            raise StorageError(describe_failure(self.uri, error)) from None
        return is_file or bool(self._files(relative))

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
    from pyarrow.fs import copy_files

    copy_files(source, target, source_filesystem=source_filesystem, destination_filesystem=target_filesystem)


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


#: One sender at a time per storage location in this process (a stage's push, the call cache's snapshots).
_SENDING: dict[str, threading.Lock] = {}


@contextlib.contextmanager
def sending(storage: RunStorage) -> Iterator[None]:
    with _SENDING.setdefault(storage.uri, threading.Lock()):
        yield
