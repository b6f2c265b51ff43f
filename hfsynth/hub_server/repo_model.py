"""The loopback Hub's data model: repo keys, commits and their file snapshots, refs, commit operations, and the
name and path rules that keep URL and payload values from escaping the repos folder."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from hfsynth.hub_server.api_errors import bad_request

RepoType = Literal["model", "dataset", "space"]
REPO_TYPES: tuple[RepoType, ...] = ("model", "dataset", "space")
# "models/..." in API routes and folder names; "" / "datasets/" / "spaces/" in web and git URLs.
# The server's own copy of the Hub's spelling: it never imports huggingface_hub, whose settings (HF_ENDPOINT) are
# read on import and must be the clients' (the client side uses huggingface_hub.constants).
PLURAL_TO_REPO_TYPE: dict[str, RepoType] = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES: dict[RepoType, str] = {"model": "", "dataset": "datasets/", "space": "spaces/"}

# Same character set as huggingface_hub's repo-id validator; "--" and ".." are reserved there too.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}", re.ASCII)
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def now_iso() -> str:
    """UTC timestamp with milliseconds, the format huggingface_hub's `parse_datetime` expects."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob: what the Hub reports as `oid` / `blobId` / `ETag` for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The pointer file git stores in place of an LFS object; its git oid is the LFS file's `oid` on the Hub."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and _SHA256_RE.fullmatch(value) is not None


def validate_repo_path(path: object) -> str:
    """A file path inside a repo, as the client sends it: relative, no empty, '.', '..' or '.git' segments."""
    if not isinstance(path, str) or not path or len(path) > 1024:
        raise bad_request(f"Invalid path in repo: {path!r}")
    parts = path.split("/")
    if path.startswith("/") or any(part in ("", ".", "..", ".git") for part in parts):
        raise bad_request(f"Invalid path in repo: {path!r}")
    if any(ord(char) < 32 or char in "\\\x7f" for char in path):
        raise bad_request(f"Invalid character in path: {path!r}")
    return path


def validate_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value) or "--" in value or ".." in value:
        raise bad_request(f"Invalid {what}: {value!r} (letters, digits, '-', '_', '.'; at most 96 characters)")
    if value.endswith(".git"):
        raise bad_request(f"Invalid {what}: {value!r} cannot end with '.git'")
    return value


@dataclass(frozen=True)
class RepoKey:
    repo_type: RepoType
    namespace: str
    name: str

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def url_path(self) -> str:
        """`{prefix}{namespace}/{name}`: the repo's path in web, resolve and git URLs."""
        return URL_PREFIXES[self.repo_type] + self.repo_id

    @classmethod
    def parse(cls, repo_type: RepoType, namespace: str, name: str) -> RepoKey:
        """A key from URL or payload values, refusing anything that could escape the repos folder."""
        return cls(repo_type, validate_name(namespace, "namespace"), validate_name(name, "repo name"))


@dataclass(frozen=True)
class FileEntry:
    """One file of a commit snapshot. `git_oid` is the blob's git sha1 (of the pointer file for LFS)."""

    sha256: str
    size: int
    git_oid: str
    lfs: bool

    @classmethod
    def regular(cls, content: bytes) -> FileEntry:
        return cls(hashlib.sha256(content).hexdigest(), len(content), git_blob_oid(content), lfs=False)

    @classmethod
    def large(cls, sha256: str, size: int) -> FileEntry:
        return cls(sha256, size, git_blob_oid(lfs_pointer(sha256, size)), lfs=True)

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size))

    @property
    def etag(self) -> str:
        """What the Hub puts in `ETag` and the client compares: the sha256 for LFS files, the git oid otherwise."""
        return self.sha256 if self.lfs else self.git_oid

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "gitOid": self.git_oid, "lfs": self.lfs}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileEntry:
        return cls(data["sha256"], data["size"], data["gitOid"], data["lfs"])


@dataclass(frozen=True)
class Commit:
    oid: str
    parents: tuple[str, ...]
    title: str
    message: str
    author: str
    date: str
    files: dict[str, FileEntry] = field(repr=False)

    @classmethod
    def create(
        cls, parents: tuple[str, ...], title: str, message: str, author: str, files: dict[str, FileEntry]
    ) -> Commit:
        """A new commit dated now, with a content-derived id: parents, snapshot, message, author and date (ms) ->
        40 hex digits, like a git sha1."""
        date = now_iso()
        manifest = json.dumps(
            [parents, title, message, author, date, sorted((p, e.git_oid) for p, e in files.items())]
        ).encode()
        return cls(hashlib.sha1(manifest).hexdigest(), parents, title, message, author, date, files)

    def to_json(self) -> dict[str, Any]:
        return {
            "oid": self.oid,
            "parents": list(self.parents),
            "title": self.title,
            "message": self.message,
            "author": self.author,
            "date": self.date,
            "files": {path: entry.to_json() for path, entry in sorted(self.files.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Commit:
        files = {path: FileEntry.from_json(entry) for path, entry in data["files"].items()}
        return cls(
            data["oid"], tuple(data["parents"]), data["title"], data["message"], data["author"], data["date"], files
        )


@dataclass(frozen=True)
class RepoMeta:
    private: bool
    created_at: str
    sdk: str | None = None


@dataclass
class Refs:
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pull_requests: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "branches": self.branches,
            "tags": self.tags,
            "pullRequests": {str(number): oid for number, oid in self.pull_requests.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Refs:
        pull_requests = {int(number): oid for number, oid in data["pullRequests"].items()}
        return cls(dict(data["branches"]), dict(data["tags"]), pull_requests)


@dataclass(frozen=True)
class AddFile:
    path: str
    entry: FileEntry


@dataclass(frozen=True)
class AddLfsFile:
    """An LFS file named by oid: valid only if that object was uploaded to this repo (and, if given, has `size`)."""

    path: str
    sha256: str
    size: int | None


@dataclass(frozen=True)
class DeleteFile:
    path: str


@dataclass(frozen=True)
class DeleteFolder:
    path: str


CommitOperation = AddFile | AddLfsFile | DeleteFile | DeleteFolder


@dataclass(frozen=True)
class TreeEntry:
    """A file or directory as the tree and paths-info routes list it."""

    path: str
    file: FileEntry | None  # None for a directory
    directory_oid: str = ""
