"""Talking to the object store of a run folder on storage (:mod:`hfsynth.storage`): which ``--out`` values name
storage, the client's checksum settings, every object checked against what was sent, and the check, before any
teacher call, that ``--out`` can be written.

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

import functools
import hashlib
import os
import re
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hfsynth.errors import HfsynthError

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


def stored_digest(filesystem: pyarrow.fs.FileSystem, path: str) -> tuple[int, str | None]:
    """The size the store holds at ``path`` and its ETag when that is the content's MD5 (single-part uploads;
    a multipart ETag is not)."""
    with filesystem.open_input_file(path) as stream:
        size, metadata = stream.size(), stream.metadata()
    etag = (metadata.get("ETag") or b"").decode(errors="replace").strip('"').lower()
    return size, etag if re.fullmatch(r"[0-9a-f]{32}", etag) else None


def check_sent(filesystem: pyarrow.fs.FileSystem, path: str, sent: Digest, name: str, store: str) -> None:
    """Raise one line naming the object ``name`` and ``store`` when what the store holds at ``path`` is not
    ``sent``."""
    try:
        size, md5 = stored_digest(filesystem, path)
    except OSError as error:
        raise StorageError(f"{name}: {store} did not keep the object just written ({_first_line(error)})") from None
    if size != sent.size or (md5 is not None and md5 != sent.md5):
        hint = ("; the store may keep AWS's checksum framing as the body: set AWS_REQUEST_CHECKSUM_CALCULATION="
                "WHEN_REQUIRED" if size > sent.size and os.environ.get("AWS_REQUEST_CHECKSUM_CALCULATION") !=
                "WHEN_REQUIRED" else "")
        raise StorageError(f"{name}: {store} holds {size} bytes{f' (MD5 {md5})' if md5 else ''} where hfsynth sent "
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
