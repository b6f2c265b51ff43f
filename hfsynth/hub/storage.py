"""On-disk repository store behind the loopback Hub server: content-addressed blobs and immutable commits.

Layout under the data directory (one server process per directory):

    blobs/ab/ab12...       file contents, named by their sha256 (regular and LFS files alike, deduplicated)
    tmp/                   half-written files, moved into place with os.replace
    trash/                 deleted repos on their way out
    repos/{models|datasets|spaces}/{namespace}/{name}/
        repo.json          visibility, creation date, space SDK
        refs.json          branches, tags and pull-request refs -> commit oid (replaced atomically)
        commits/{oid}.json immutable snapshots: parents, message, author, date and the full path -> file map
        lfs/{sha256}       empty markers: LFS objects uploaded through this repo (the only ones its commits may use)

Readers take no lock: refs.json is swapped with os.replace and commit files never change once written, so a
reader sees either the old or the new head. Writers of one repo serialize on a per-repo lock, and a commit is
validated completely before its ref moves, so a failed commit leaves the repo as it was.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

RepoType = Literal["model", "dataset", "space"]
REPO_TYPES: tuple[RepoType, ...] = ("model", "dataset", "space")
# "models/..." in API routes and folder names; "" / "datasets/" / "spaces/" in web and git URLs.
PLURAL_TO_REPO_TYPE: dict[str, RepoType] = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES: dict[RepoType, str] = {"model": "", "dataset": "datasets/", "space": "spaces/"}

# The real Hub sends files over 10 MB to large-file storage whatever their extension.
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024

# Same character set as huggingface_hub's repo-id validator; "--" and ".." are reserved there too.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}", re.ASCII)
# First URL segments that would make a model repo URL ambiguous with other routes.
_RESERVED_NAMESPACES = frozenset({"api", "datasets", "spaces", "models"})
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_COMMIT_OID_RE = re.compile(r"[0-9a-f]{40}")
_BRANCH_RE = re.compile(r"[A-Za-z0-9_.\-/]{1,200}", re.ASCII)
_PR_REF_RE = re.compile(r"refs/pr/([1-9][0-9]{0,8})")

# What a new repo starts with: the Hub's default .gitattributes, which is also where preupload reads LFS patterns.
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gguf", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
        "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle",
        "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite",
        "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
        "*.mp3", "*.ogg", "*.wav", "*.flac", "*.jpg", "*.jpeg", "*.png", "*.webp", "*.gif", "*.mp4",
    )
)  # fmt: skip


class HubError(Exception):
    """A failure the server reports to the client as `status` with the Hub's `X-Error-Code` / `X-Error-Message`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> HubError:
    return HubError(400, "BadRequest", message)


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


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old or the new content, never a half-written file."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # only left over when the write failed


def _write_json(path: Path, data: Any) -> None:
    _write_atomically(path, json.dumps(data, indent=1, sort_keys=True).encode())


def _read_json(path: Path) -> Any:
    with open(path, "rb") as handle:
        return json.load(handle)


def _lfs_patterns(gitattributes: str) -> list[str]:
    patterns = []
    for line in gitattributes.splitlines():
        pattern, *attributes = line.split() or [""]
        if not pattern.startswith("#") and "filter=lfs" in attributes:
            patterns.append(pattern)
    return patterns


def _matches_gitattributes(pattern: str, path: str) -> bool:
    # gitattributes: a pattern without a slash matches the file name at any depth, one with a slash the whole path.
    if "/" in pattern:
        return fnmatch.fnmatchcase(path, pattern.lstrip("/"))
    return fnmatch.fnmatchcase(PurePosixPath(path).name, pattern)


def choose_upload_mode(path: str, size: int, sample: bytes, lfs_patterns: list[str]) -> Literal["lfs", "regular"]:
    """How the real Hub stores a new file: LFS when big, binary (a NUL byte in its first 512 bytes) or listed in
    .gitattributes; empty files always travel as regular files."""
    if size == 0:
        return "regular"
    if size > LFS_SIZE_THRESHOLD or b"\0" in sample:
        return "lfs"
    return "lfs" if any(_matches_gitattributes(pattern, path) for pattern in lfs_patterns) else "regular"


def _directory_oid(files: list[tuple[str, FileEntry]]) -> str:
    """A stable id for a folder, derived from what it holds (git's real tree hashing is not needed by clients)."""
    digest = hashlib.sha1()
    for path, entry in sorted(files, key=lambda item: item[0]):
        digest.update(f"{path}\0{entry.git_oid}\n".encode())
    return digest.hexdigest()


class HubStore:
    """Repos, refs, commits and blobs under one directory. Thread-safe within one process."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for folder in ("blobs", "tmp", "trash", "repos"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self._locks: dict[RepoKey, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ---- blobs -------------------------------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def store_bytes(self, content: bytes) -> FileEntry:
        """Store a regular file's content (idempotent: identical content is stored once)."""
        entry = FileEntry.regular(content)
        target = self.blob_path(entry.sha256)
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            _write_atomically(target, content)
        return entry

    def open_temporary(self) -> tuple[Path, IO[bytes]]:
        """A scratch file on the blob store's file system, so a finished upload moves into place atomically."""
        path = self.root / "tmp" / uuid.uuid4().hex
        return path, open(path, "wb")

    def adopt_lfs_upload(self, key: RepoKey, temporary: Path, sha256: str) -> None:
        """Move a verified upload into the blob store and make the object usable by `key`'s commits."""
        target = self.blob_path(sha256)
        target.parent.mkdir(exist_ok=True)
        if target.exists():
            temporary.unlink()
        else:
            os.replace(temporary, target)
        marker = self._repo_dir(key) / "lfs" / sha256
        try:
            marker.touch()
        except FileNotFoundError:
            raise self._repo_not_found(key) from None  # the repo was deleted while the upload ran

    def has_lfs_object(self, key: RepoKey, sha256: str, size: int | None = None) -> bool:
        if not (self._repo_dir(key) / "lfs" / sha256).exists():
            return False
        blob = self.blob_path(sha256)
        return blob.exists() and (size is None or blob.stat().st_size == size)

    # ---- repos -------------------------------------------------------------------------------------------------

    def create_repo(self, key: RepoKey, *, private: bool, author: str, sdk: str | None = None) -> Commit:
        """Create a repo with the Hub's initial commit (a .gitattributes), or raise 409 if it exists."""
        if key.namespace in _RESERVED_NAMESPACES:
            raise bad_request(f"'{key.namespace}' is a reserved name")
        gitattributes = self.store_bytes(DEFAULT_GITATTRIBUTES.encode())
        initial = self._new_commit((), "initial commit", "", author, {".gitattributes": gitattributes})
        with self._lock(key):
            final = self._repo_dir(key)
            if final.exists():
                raise HubError(409, "RepoExists", f"You already created this {key.repo_type} repo: {key.repo_id}")
            # Build the repo in tmp/ and rename it into place so it appears complete or not at all.
            staging = self.root / "tmp" / uuid.uuid4().hex
            (staging / "commits").mkdir(parents=True)
            (staging / "lfs").mkdir()
            _write_json(staging / "repo.json", {"private": private, "createdAt": initial.date, "sdk": sdk})
            _write_json(staging / "commits" / f"{initial.oid}.json", initial.to_json())
            _write_json(staging / "refs.json", Refs(branches={"main": initial.oid}).to_json())
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, final)
        return initial

    def delete_repo(self, key: RepoKey) -> None:
        with self._lock(key):
            trash = self.root / "trash" / uuid.uuid4().hex
            try:
                os.rename(self._repo_dir(key), trash)
            except FileNotFoundError:
                raise self._repo_not_found(key) from None
        # Blobs stay: they are shared by content with other repos (no garbage collection).
        shutil.rmtree(trash, ignore_errors=True)

    def repo_meta(self, key: RepoKey) -> RepoMeta:
        data = self._read_repo_json(key, "repo.json")
        return RepoMeta(private=data["private"], created_at=data["createdAt"], sdk=data.get("sdk"))

    def refs(self, key: RepoKey) -> Refs:
        return Refs.from_json(self._read_repo_json(key, "refs.json"))

    def commit(self, key: RepoKey, oid: str) -> Commit:
        path = self._repo_dir(key) / "commits" / f"{oid}.json"
        try:
            return Commit.from_json(_read_json(path))
        except FileNotFoundError:
            self.repo_meta(key)  # raises RepoNotFound if the repo itself is gone
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {oid}") from None

    def resolve(self, key: RepoKey, revision: str) -> Commit:
        """A branch, tag, `refs/heads|tags|pr/...` ref or full commit oid -> its commit."""
        oid = self._lookup_ref(self.refs(key), revision)
        if oid is None and _COMMIT_OID_RE.fullmatch(revision):
            oid = revision
        if oid is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return self.commit(key, oid)

    def history(self, key: RepoKey, start: Commit) -> Iterator[Commit]:
        """`start` and its first-parent ancestors, newest first."""
        commit: Commit | None = start
        while commit is not None:
            yield commit
            commit = self.commit(key, commit.parents[0]) if commit.parents else None

    # ---- writes ------------------------------------------------------------------------------------------------

    def create_commit(
        self,
        key: RepoKey,
        revision: str,
        operations: Sequence[CommitOperation],
        *,
        title: str,
        message: str,
        author: str,
        parent_commit: str | None,
        create_pr: bool,
    ) -> tuple[Commit, int | None]:
        """Apply `operations` on top of `revision` and move the ref, or raise and change nothing.

        With `create_pr`, the commit goes to a new `refs/pr/N` ref based on `parent_commit` (or the head of
        `revision`) and N is returned. Otherwise `revision` must be a branch and, if `parent_commit` is given,
        still point to it (412 when another commit landed first).
        """
        for operation in operations:
            if isinstance(operation, AddLfsFile) and not self.has_lfs_object(key, operation.sha256, operation.size):
                raise bad_request(
                    f"LFS object {operation.sha256} for '{operation.path}' was not uploaded to this repo"
                    + ("" if operation.size is None else f" with size {operation.size}")
                )
        with self._lock(key):
            refs = self.refs(key)
            pr_number: int | None = None
            if create_pr:
                base = self.resolve(key, parent_commit) if parent_commit else self.resolve(key, revision)
                pr_number = max(refs.pull_requests, default=0) + 1
            else:
                base = self._branch_head(key, refs, revision)
                if parent_commit is not None and not base.oid.startswith(parent_commit.lower()):
                    raise HubError(
                        412,
                        "PreconditionFailed",
                        f"A commit has happened since {parent_commit}: '{revision}' now points to {base.oid}.",
                    )
            files = self._apply(base.files, operations)
            commit = self._new_commit((base.oid,), title, message, author, files)
            _write_json(self._repo_dir(key) / "commits" / f"{commit.oid}.json", commit.to_json())
            if pr_number is not None:
                refs.pull_requests[pr_number] = commit.oid
            else:
                refs.branches[self._branch_name(revision)] = commit.oid
            _write_json(self._repo_dir(key) / "refs.json", refs.to_json())
        return commit, pr_number

    def create_branch(self, key: RepoKey, branch: str, starting_point: str | None) -> None:
        if not _BRANCH_RE.fullmatch(branch) or branch.startswith(("refs/", "/")) or ".." in branch:
            raise bad_request(f"Invalid branch name: {branch!r}")
        with self._lock(key):
            refs = self.refs(key)
            if branch in refs.branches:
                raise HubError(409, "Conflict", f"Branch '{branch}' already exists")
            refs.branches[branch] = self.resolve(key, starting_point or "main").oid
            _write_json(self._repo_dir(key) / "refs.json", refs.to_json())

    def delete_branch(self, key: RepoKey, branch: str) -> None:
        with self._lock(key):
            refs = self.refs(key)
            if branch == "main":
                raise HubError(403, "Forbidden", "The main branch cannot be deleted")
            if refs.branches.pop(branch, None) is None:
                raise HubError(404, "RevisionNotFound", f"Branch '{branch}' not found")
            _write_json(self._repo_dir(key) / "refs.json", refs.to_json())

    def create_tag(self, key: RepoKey, tag: str, revision: str) -> None:
        if not _BRANCH_RE.fullmatch(tag) or tag.startswith(("refs/", "/")) or ".." in tag:
            raise bad_request(f"Invalid tag name: {tag!r}")
        with self._lock(key):
            refs = self.refs(key)
            if tag in refs.tags:
                raise HubError(409, "Conflict", f"Tag '{tag}' already exists")
            refs.tags[tag] = self.resolve(key, revision).oid
            _write_json(self._repo_dir(key) / "refs.json", refs.to_json())

    def delete_tag(self, key: RepoKey, tag: str) -> None:
        with self._lock(key):
            refs = self.refs(key)
            if refs.tags.pop(tag, None) is None:
                raise HubError(404, "RevisionNotFound", f"Tag '{tag}' not found")
            _write_json(self._repo_dir(key) / "refs.json", refs.to_json())

    # ---- reading snapshots -------------------------------------------------------------------------------------

    def read_blob(self, entry: FileEntry, limit: int | None = None) -> bytes:
        with open(self.blob_path(entry.sha256), "rb") as handle:
            return handle.read(-1 if limit is None else limit)

    def lfs_patterns(self, commit: Commit) -> list[str]:
        """The `filter=lfs` patterns of the snapshot's .gitattributes."""
        gitattributes = commit.files.get(".gitattributes")
        if gitattributes is None:
            return []
        return _lfs_patterns(self.read_blob(gitattributes, limit=1_000_000).decode(errors="replace"))

    @staticmethod
    def list_tree(commit: Commit, directory: str, *, recursive: bool) -> list[TreeEntry]:
        """Entries under `directory` ("" for the root); 404 EntryNotFound if it is not a folder of the snapshot."""
        prefix = f"{directory.strip('/')}/" if directory.strip("/") else ""
        below = [(path, entry) for path, entry in commit.files.items() if path.startswith(prefix)]
        if prefix and not below:
            raise HubError(404, "EntryNotFound", f"Folder '{directory}' does not exist in this revision")
        folders: dict[str, list[tuple[str, FileEntry]]] = {}
        entries: list[TreeEntry] = []
        for path, entry in below:
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                folders.setdefault(prefix + "/".join(parts[:depth]), []).append((path, entry))
            if recursive or len(parts) == 1:
                entries.append(TreeEntry(path, entry))
        entries += [TreeEntry(folder, None, _directory_oid(content)) for folder, content in folders.items()]
        return sorted(entries, key=lambda item: (item.file is not None, item.path))

    @staticmethod
    def path_info(commit: Commit, path: str) -> TreeEntry | None:
        """The file or folder at `path`, or None."""
        path = path.strip("/")
        if path in commit.files:
            return TreeEntry(path, commit.files[path])
        below = [(name, entry) for name, entry in commit.files.items() if name.startswith(f"{path}/")]
        return TreeEntry(path, None, _directory_oid(below)) if below and path else None

    # ---- internals ---------------------------------------------------------------------------------------------

    def _repo_dir(self, key: RepoKey) -> Path:
        plural = f"{key.repo_type}s"
        return self.root / "repos" / plural / key.namespace / key.name

    def _lock(self, key: RepoKey) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    @staticmethod
    def _repo_not_found(key: RepoKey) -> HubError:
        return HubError(404, "RepoNotFound", f"Repository not found: {key.url_path}")

    def _read_repo_json(self, key: RepoKey, name: str) -> Any:
        try:
            return _read_json(self._repo_dir(key) / name)
        except FileNotFoundError:
            raise self._repo_not_found(key) from None

    @staticmethod
    def _lookup_ref(refs: Refs, revision: str) -> str | None:
        if match := _PR_REF_RE.fullmatch(revision):
            return refs.pull_requests.get(int(match[1]))
        if revision.startswith("refs/heads/"):
            return refs.branches.get(revision.removeprefix("refs/heads/"))
        if revision.startswith("refs/tags/"):
            return refs.tags.get(revision.removeprefix("refs/tags/"))
        return refs.branches.get(revision) or refs.tags.get(revision)

    @staticmethod
    def _branch_name(revision: str) -> str:
        return revision.removeprefix("refs/heads/")

    def _branch_head(self, key: RepoKey, refs: Refs, revision: str) -> Commit:
        oid = refs.branches.get(self._branch_name(revision))
        if oid is None:
            if self._lookup_ref(refs, revision) is not None or _COMMIT_OID_RE.fullmatch(revision):
                raise bad_request(f"Cannot commit to '{revision}': commits go to a branch")
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return self.commit(key, oid)

    def _apply(self, base: dict[str, FileEntry], operations: Sequence[CommitOperation]) -> dict[str, FileEntry]:
        files = dict(base)
        for operation in operations:
            if isinstance(operation, AddFile):
                self._check_no_folder_clash(files, operation.path)
                files[operation.path] = operation.entry
            elif isinstance(operation, AddLfsFile):
                self._check_no_folder_clash(files, operation.path)
                size = operation.size if operation.size is not None else self.blob_path(operation.sha256).stat().st_size
                files[operation.path] = FileEntry.large(operation.sha256, size)
            elif isinstance(operation, DeleteFile):
                if files.pop(operation.path, None) is None:
                    raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {operation.path}")
            else:
                inside = [path for path in files if path.startswith(f"{operation.path}/")]
                if not inside:
                    raise HubError(404, "EntryNotFound", f"A folder with this name doesn't exist: {operation.path}")
                for path in inside:
                    del files[path]
        return files

    @staticmethod
    def _check_no_folder_clash(files: dict[str, FileEntry], path: str) -> None:
        """A path cannot be both a file and a folder (git could not store that snapshot)."""
        parents = [str(parent) for parent in PurePosixPath(path).parents if str(parent) != "."]
        if any(parent in files for parent in parents) or any(name.startswith(f"{path}/") for name in files):
            raise bad_request(f"'{path}' clashes with an existing file or folder of the same name")

    @staticmethod
    def _new_commit(
        parents: tuple[str, ...], title: str, message: str, author: str, files: dict[str, FileEntry]
    ) -> Commit:
        date = now_iso()
        # Content-derived id: parents, snapshot, message, author and date (ms) -> 40 hex digits, like a git sha1.
        manifest = json.dumps(
            [parents, title, message, author, date, sorted((p, e.git_oid) for p, e in files.items())]
        ).encode()
        return Commit(hashlib.sha1(manifest).hexdigest(), parents, title, message, author, date, files)
