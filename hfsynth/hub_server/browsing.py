"""Read routes of the loopback Hub: tree, paths-info, resolve (downloads, with ranges), refs and commits."""

from __future__ import annotations

import html
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import JSONResponse, Response, StreamingResponse

from hfsynth.hub_server.access import AccessControl
from hfsynth.hub_server.api_errors import HubError, bad_request
from hfsynth.hub_server.http_messages import JSON_BODY_LIMIT, HubRequest, expect_dict, in_thread, is_true
from hfsynth.hub_server.repo_model import RepoKey, TreeEntry
from hfsynth.hub_server.storage import HubStore
from hfsynth.hub_server.tree_listing import list_tree, path_info

DOWNLOAD_CHUNK_SIZE = 1024 * 1024
_RANGE_RE = re.compile(r"bytes=(\d{0,20})-(\d{0,20})")


def _tree_entry_json(item: TreeEntry) -> dict[str, Any]:
    if item.file is None:
        return {"type": "directory", "oid": item.directory_oid, "size": 0, "path": item.path}
    entry = item.file
    payload: dict[str, Any] = {"type": "file", "oid": entry.git_oid, "size": entry.size, "path": item.path}
    if entry.lfs:
        payload["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    return payload


def _parse_range(header: str, size: int) -> tuple[int, int]:
    """One `bytes=a-b`, `bytes=a-` or `bytes=-n` range -> (first, last) byte, clamped to the file; else 416."""
    match = _RANGE_RE.fullmatch(header.strip())
    first, last = (match[1], match[2]) if match else ("", "")
    if first:
        start, end = int(first), (int(last) if last else size - 1)
    elif last and int(last) > 0:
        start, end = max(size - int(last), 0), size - 1  # suffix range: the last n bytes
    else:
        start, end = size, -1  # malformed: reported as unsatisfiable below
    if start >= size or end < start:
        raise HubError(
            416,
            "RangeNotSatisfiable",
            f"Range {header!r} not satisfiable",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, min(end, size - 1)


def _blob_chunks(path: Path, start: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(DOWNLOAD_CHUNK_SIZE, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


@dataclass(frozen=True)
class Browsing:
    store: HubStore
    access: AccessControl

    def tree(self, request: HubRequest, key: RepoKey, revision: str, path: str) -> Response:
        self.access.readable(request.user, key)
        commit = self.store.resolve(key, revision)
        entries = list_tree(commit, path, recursive=is_true(request.query.get("recursive")))
        return JSONResponse([_tree_entry_json(item) for item in entries])

    async def paths_info(self, request: HubRequest, key: RepoKey, revision: str) -> Response:
        content_type = request.headers.get("content-type", "").lower()
        if "json" in content_type:
            paths = expect_dict(await request.body.read_json(request.headers)).get("paths")
        elif "application/x-www-form-urlencoded" in content_type:
            raw = await request.body.read(JSON_BODY_LIMIT)
            try:
                paths = parse_qs(raw.decode(), keep_blank_values=True).get("paths", [])
            except (UnicodeDecodeError, ValueError):
                raise bad_request("Malformed form body") from None
        else:
            raise HubError(415, "UnsupportedMediaType", "Expected a form or JSON body with 'paths'")
        if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
            raise bad_request("'paths' must be a list of strings")
        return await in_thread(self._paths_info, request, key, revision, paths)

    def _paths_info(self, request: HubRequest, key: RepoKey, revision: str, paths: list[str]) -> Response:
        self.access.readable(request.user, key)
        commit = self.store.resolve(key, revision)
        found = [path_info(commit, path) for path in dict.fromkeys(paths)]
        return JSONResponse([_tree_entry_json(item) for item in found if item is not None])

    def resolve(self, request: HubRequest, key: RepoKey, revision: str, path: str) -> Response:
        self.access.readable(request.user, key)
        commit = self.store.resolve(key, revision)
        commit_header = {"X-Repo-Commit": commit.oid}
        entry = commit.files.get(path)
        if entry is None:
            raise HubError(404, "EntryNotFound", f"Entry not found: {path}", headers=commit_header)
        headers = {
            **commit_header,
            "ETag": f'"{entry.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": mimetypes.guess_type(path)[0] or "application/octet-stream",
        }
        if entry.lfs:
            headers |= {"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)}
        status, start, length = 200, 0, entry.size
        if "range" in request.headers:
            try:
                start, end = _parse_range(request.headers["range"], entry.size)
            except HubError as error:
                error.headers |= commit_header
                raise
            status, length = 206, end - start + 1
            headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        chunks = _blob_chunks(self.store.blob_path(entry.sha256), start, length)
        return StreamingResponse(chunks, status_code=status, headers=headers)

    def refs(self, request: HubRequest, key: RepoKey) -> Response:
        self.access.readable(request.user, key)
        refs = self.store.refs(key)

        def ref(name: str, full_name: str, oid: str) -> dict[str, str]:
            return {"name": name, "ref": full_name, "targetCommit": oid}

        payload: dict[str, Any] = {
            "branches": [ref(name, f"refs/heads/{name}", oid) for name, oid in sorted(refs.branches.items())],
            "tags": [ref(name, f"refs/tags/{name}", oid) for name, oid in sorted(refs.tags.items())],
            "converts": [],
        }
        if is_true(request.query.get("include_prs")):
            pull_requests = sorted(refs.pull_requests.items())
            payload["pullRequests"] = [ref(f"refs/pr/{n}", f"refs/pr/{n}", oid) for n, oid in pull_requests]
        return JSONResponse(payload)

    def commits(self, request: HubRequest, key: RepoKey, revision: str) -> Response:
        self.access.readable(request.user, key)
        formatted = request.query.get("expand[]") == "formatted"
        items = []
        for commit in self.store.history(key, self.store.resolve(key, revision)):
            item: dict[str, Any] = {
                "id": commit.oid,
                "title": commit.title,
                "message": commit.message,
                "authors": [{"user": commit.author}],
                "date": commit.date,
            }
            if formatted:
                item["formatted"] = {"title": html.escape(commit.title), "message": html.escape(commit.message)}
            items.append(item)
        return JSONResponse(items)
