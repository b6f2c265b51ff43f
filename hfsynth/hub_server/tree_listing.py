"""Folders and files of a commit snapshot, as the tree and paths-info routes list them. Snapshots store only file
paths: folders are derived from them."""

from __future__ import annotations

import hashlib

from hfsynth.hub_server.api_errors import HubError
from hfsynth.hub_server.repo_model import Commit, FileEntry, TreeEntry


def _directory_oid(files: list[tuple[str, FileEntry]]) -> str:
    """A stable id for a folder, derived from what it holds (git's real tree hashing is not needed by clients)."""
    digest = hashlib.sha1()
    for path, entry in sorted(files, key=lambda item: item[0]):
        digest.update(f"{path}\0{entry.git_oid}\n".encode())
    return digest.hexdigest()


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


def path_info(commit: Commit, path: str) -> TreeEntry | None:
    """The file or folder at `path`, or None."""
    path = path.strip("/")
    if path in commit.files:
        return TreeEntry(path, commit.files[path])
    below = [(name, entry) for name, entry in commit.files.items() if name.startswith(f"{path}/")]
    return TreeEntry(path, None, _directory_oid(below)) if below and path else None
