"""On-disk repository store behind the loopback Hub server: content-addressed blobs and immutable commits.

Layout under the data directory (one server process per directory, enforced by `data_dir.claimed_data_dir`):

    hub-server.lock        flock-ed by the server that owns the directory; holds its pid
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

import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any

from hfsynth.hub_server.api_errors import HubError, bad_request
from hfsynth.hub_server.lfs_rules import DEFAULT_GITATTRIBUTES, lfs_patterns
from hfsynth.hub_server.repo_model import (
    AddFile,
    AddLfsFile,
    Commit,
    CommitOperation,
    DeleteFile,
    FileEntry,
    Refs,
    RepoKey,
    RepoMeta,
)

# First URL segments that would make a model repo URL ambiguous with other routes.
_RESERVED_NAMESPACES = frozenset({"api", "datasets", "spaces", "models"})
_COMMIT_OID_RE = re.compile(r"[0-9a-f]{40}")
_BRANCH_RE = re.compile(r"[A-Za-z0-9_.\-/]{1,200}", re.ASCII)
_PR_REF_RE = re.compile(r"refs/pr/([1-9][0-9]{0,8})")


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
        initial = Commit.create((), "initial commit", "", author, {".gitattributes": gitattributes})
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
            commit = Commit.create((base.oid,), title, message, author, files)
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
        return lfs_patterns(self.read_blob(gitattributes, limit=1_000_000).decode(errors="replace"))

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
