"""Write routes of the loopback Hub: preupload, NDJSON commits, branches, tags and README front-matter validation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from starlette.responses import JSONResponse, Response

from hfsynth.hub_server.access import AccessControl
from hfsynth.hub_server.api_errors import HubError, bad_request
from hfsynth.hub_server.front_matter import load_front_matter
from hfsynth.hub_server.http_messages import (
    HubRequest,
    decode_base64,
    error_response,
    expect_dict,
    in_thread,
    is_true,
    optional,
    parse_json,
)
from hfsynth.hub_server.lfs_rules import choose_upload_mode
from hfsynth.hub_server.repo_model import (
    AddFile,
    AddLfsFile,
    CommitOperation,
    DeleteFile,
    DeleteFolder,
    RepoKey,
    is_sha256,
    validate_repo_path,
)
from hfsynth.hub_server.storage import HubStore

NDJSON_LINE_LIMIT = 64 * 1024 * 1024  # one base64 regular file per line; the client sends LFS above 10 MB
_PARENT_COMMIT_RE = re.compile(r"[0-9a-fA-F]{5,40}")


def _parse_lfs_file(value: dict[str, Any]) -> AddLfsFile:
    path = validate_repo_path(value.get("path"))
    oid, size = value.get("oid"), optional(value, "size", int)
    if value.get("algo", "sha256") != "sha256" or not is_sha256(oid):
        raise bad_request(f"'{path}' needs a lowercase hex sha256 'oid'")
    if size is not None and size < 0:
        raise bad_request(f"Negative size for '{path}'")
    return AddLfsFile(path, oid, size)  # type: ignore[arg-type]


def _deleted_folder(value: dict[str, Any]) -> DeleteFolder:
    folder = value.get("path")
    return DeleteFolder(validate_repo_path(folder.rstrip("/") if isinstance(folder, str) else folder))


@dataclass(frozen=True)
class Writing:
    store: HubStore
    access: AccessControl

    def preupload(self, request: HubRequest, key: RepoKey, revision: str, payload: Any) -> Response:
        self.access.writable(request.user, key)
        files = expect_dict(payload).get("files")
        if not isinstance(files, list):
            raise bad_request("'files' must be a list")
        commit = self.store.resolve(key, revision)
        lfs_patterns = self.store.lfs_patterns(commit)
        answers = []
        for item in files:
            item = expect_dict(item, "files item")
            path = validate_repo_path(item.get("path"))
            size = optional(item, "size", int)
            if size is None or size < 0:
                raise bad_request(f"'size' of '{path}' must be a non-negative integer")
            sample = decode_base64(item.get("sample", ""), f"'sample' of '{path}'")
            existing = commit.files.get(path)
            answers.append(
                {
                    "path": path,
                    "uploadMode": choose_upload_mode(path, size, sample, lfs_patterns),
                    "shouldIgnore": False,  # .gitignore rules are not applied here
                    # What the client compares with its local oid to skip unchanged files.
                    "oid": existing.etag if existing is not None else None,
                }
            )
        return JSONResponse({"files": answers, "commitOid": commit.oid})

    async def commit(self, request: HubRequest, key: RepoKey, revision: str) -> Response:
        user = await in_thread(self.access.writable, request.user, key)
        if "application/x-ndjson" not in request.headers.get("content-type", "").lower():
            raise HubError(415, "UnsupportedMediaType", "A commit is sent as application/x-ndjson")
        header: dict[str, Any] | None = None
        operations: list[CommitOperation] = []
        line_number = 0
        async for line in request.body.lines(NDJSON_LINE_LIMIT):
            line_number += 1
            item = expect_dict(parse_json(line, f"Malformed NDJSON line {line_number}"), "NDJSON line")
            kind = item.get("key")
            value = expect_dict(item.get("value"), f"'value' of a {kind!r} line")
            if (header is None) != (kind == "header"):
                raise bad_request("The commit payload must start with exactly one 'header' line")
            if kind == "header":
                header = value
            elif kind == "file":
                operations.append(await in_thread(self._store_regular_file, value))
            elif kind == "lfsFile":
                operations.append(_parse_lfs_file(value))
            elif kind == "deletedFile":
                operations.append(DeleteFile(validate_repo_path(value.get("path"))))
            elif kind == "deletedFolder":
                operations.append(_deleted_folder(value))
            else:
                raise bad_request(f"Unknown commit line key: {kind!r}")
        if header is None:
            raise bad_request("Empty commit payload")
        title = optional(header, "summary", str)
        if not title or not title.strip():
            raise bad_request("The commit summary must be a non-empty string")
        parent_commit = optional(header, "parentCommit", str)
        if parent_commit is not None and not _PARENT_COMMIT_RE.fullmatch(parent_commit):
            raise bad_request(f"Invalid parentCommit: {parent_commit!r}")
        commit, pr_number = await in_thread(
            self.store.create_commit,
            key,
            revision,
            operations,
            title=title.strip(),
            message=optional(header, "description", str) or "",
            author=user.user,
            parent_commit=parent_commit,
            create_pr=is_true(request.query.get("create_pr")),
        )
        repo_url = f"{request.base_url}/{key.url_path}"
        return JSONResponse(
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{repo_url}/commit/{commit.oid}",
                "pullRequestUrl": f"{repo_url}/discussions/{pr_number}" if pr_number is not None else None,
            }
        )

    def _store_regular_file(self, value: dict[str, Any]) -> AddFile:
        path = validate_repo_path(value.get("path"))
        if value.get("encoding", "base64") != "base64":
            raise bad_request(f"Unsupported encoding for '{path}': only base64")
        # Stored now (content-addressed, harmless if the commit fails) so memory holds one file at a time.
        return AddFile(path, self.store.store_bytes(decode_base64(value.get("content"), f"Content of '{path}'")))

    def create_branch(self, request: HubRequest, key: RepoKey, branch: str, payload: Any) -> Response:
        self.access.writable(request.user, key)
        starting_point = optional(expect_dict(payload), "startingPoint", str)
        self.store.create_branch(key, branch, starting_point)
        return JSONResponse({})

    def delete_branch(self, request: HubRequest, key: RepoKey, branch: str) -> Response:
        self.access.writable(request.user, key)
        self.store.delete_branch(key, branch)
        return JSONResponse({})

    def create_tag(self, request: HubRequest, key: RepoKey, revision: str, payload: Any) -> Response:
        self.access.writable(request.user, key)
        tag = optional(expect_dict(payload), "tag", str)
        if not tag:
            raise bad_request("'tag' is required")
        self.store.create_tag(key, tag, revision)
        return JSONResponse({})

    def delete_tag(self, request: HubRequest, key: RepoKey, tag: str) -> Response:
        self.access.writable(request.user, key)
        self.store.delete_tag(key, tag)
        return JSONResponse({})

    @staticmethod
    def validate_yaml(request: HubRequest, payload: Any) -> Response:  # noqa: ARG004 - the JSON handlers' signature
        content = expect_dict(payload).get("content")
        if not isinstance(content, str):
            raise bad_request("'content' must be a string")
        try:
            metadata = load_front_matter(content)
            problem = None if metadata is None or isinstance(metadata, dict) else "the metadata must be a YAML mapping"
        except yaml.YAMLError as error:
            problem = f"invalid YAML: {str(error).splitlines()[0]}"
        if problem is None:
            return JSONResponse({"errors": [], "warnings": []})
        # The client reads `errors[].message` from a JSON body, then raises ValueError("Invalid metadata ...").
        message = f"README.md front matter: {problem}"
        return error_response(bad_request(message), errors=[{"message": message}])
