"""A loopback Hub-compatible HTTP server that the unmodified huggingface_hub, datasets and transformers talk to.

Point the clients at it with `HF_ENDPOINT=<url>` and `HF_HUB_DISABLE_XET=1` (there is no Xet CAS here: LFS files
travel through the plain git-LFS batch API), both set before huggingface_hub is imported.

Routes, payloads and error headers follow the Hub API as the clients call it (see the project's hub-api notes):
repos create/delete, repo info, tree, paths-info, preupload, NDJSON commits, the LFS batch API with basic transfer,
resolve (HEAD/GET with ranges), refs, commits, branches, tags, whoami and YAML validation.

Access control mirrors the Hub. Tokens are `USER:TOKEN:read|write[:ORG1,ORG2]`: a user may write (with a write
token) to their own namespace and to the organisations listed in their token spec; nobody else may. Public repos
are readable by anyone, private ones only by those who may write to their namespace (with any of their tokens).

This module must not import huggingface_hub: the test fixtures import it to learn the server URL before the
clients read HF_ENDPOINT.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import html
import json
import logging
import mimetypes
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, unquote, urlencode

import anyio.to_thread
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.datastructures import URL, Headers, QueryParams
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from hfsynth.hub.storage import (
    PLURAL_TO_REPO_TYPE,
    REPO_TYPES,
    AddFile,
    AddLfsFile,
    Commit,
    CommitOperation,
    DeleteFile,
    DeleteFolder,
    HubError,
    HubStore,
    RepoKey,
    RepoMeta,
    RepoType,
    TreeEntry,
    bad_request,
    choose_upload_mode,
    is_sha256,
    validate_name,
    validate_repo_path,
)

logger = logging.getLogger(__name__)

# huggingface_hub maps a 401 to RepositoryNotFoundError unless it carries exactly this message.
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
JSON_BODY_LIMIT = 16 * 1024 * 1024
NDJSON_LINE_LIMIT = 64 * 1024 * 1024  # one base64 regular file per line; the client sends LFS above 10 MB
DRAIN_LIMIT = 64 * 1024 * 1024  # past this, an unread error body is dropped with the connection
UPLOAD_URL_LIFETIME_SECONDS = 3600
DOWNLOAD_CHUNK_SIZE = 1024 * 1024
SPACE_SDKS = ("gradio", "streamlit", "docker", "static")
# huggingface_hub's own front-matter pattern (repocard.REGEX_YAML_BLOCK).
_YAML_BLOCK = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")
_PARENT_COMMIT_RE = re.compile(r"[0-9a-fA-F]{5,40}")
_RANGE_RE = re.compile(r"bytes=(\d{0,20})-(\d{0,20})")

T = TypeVar("T")


@dataclass(frozen=True)
class HubToken:
    """A credential the server accepts. `token` is kept out of `repr` so it cannot leak into logs."""

    user: str
    token: str = field(repr=False)
    role: Literal["read", "write"] = "write"
    orgs: tuple[str, ...] = ()

    def owns(self, namespace: str) -> bool:
        """The user's own namespace or one of their organisations."""
        return namespace == self.user or namespace in self.orgs


def parse_token_spec(spec: str) -> HubToken:
    """`USER:TOKEN:read|write` with an optional `:ORG1,ORG2` listing the organisations USER may write to."""
    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise ValueError("A token spec is USER:TOKEN:read|write[:ORG1,ORG2]")
    user, token, role = parts[:3]
    orgs = tuple(org for org in parts[3].split(",") if org) if len(parts) == 4 else ()
    if role not in ("read", "write"):
        raise ValueError(f"Token role must be 'read' or 'write', not {role!r}")
    if not token or any(char.isspace() for char in token):
        raise ValueError("Token must be non-empty and contain no whitespace")
    try:
        for name in (user, *orgs):
            validate_name(name, "user or organisation name")
    except HubError as error:
        raise ValueError(error.message) from None
    return HubToken(user=user, token=token, role=role, orgs=orgs)  # type: ignore[arg-type]


class _ClientGone(Exception):
    """The client disconnected before sending its whole request."""


class RequestBody:
    """The request body as it arrives from the ASGI server, read at most once and drainable after an error."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self.complete:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            self.complete = not message.get("more_body", False)
            if chunk := message.get("body", b""):
                yield chunk

    async def read(self, limit: int) -> bytes:
        buffer = bytearray()
        async for chunk in self.chunks():
            buffer += chunk
            if len(buffer) > limit:
                raise HubError(413, "PayloadTooLarge", f"Request body over {limit} bytes")
        return bytes(buffer)

    async def read_json(self, headers: Headers) -> Any:
        if "json" not in headers.get("content-type", "").lower():
            raise HubError(415, "UnsupportedMediaType", "Expected a JSON body (Content-Type: application/json)")
        return _parse_json(await self.read(JSON_BODY_LIMIT), "Malformed JSON body")

    async def lines(self, limit: int) -> AsyncIterator[bytes]:
        """Non-empty lines of an NDJSON body, one at a time, so a large commit never sits whole in memory."""
        pending = bytearray()
        async for chunk in self.chunks():
            pending += chunk
            while (end := pending.find(b"\n")) >= 0:
                line = bytes(pending[:end]).strip()
                del pending[: end + 1]
                if line:
                    yield line
            if len(pending) > limit:
                raise HubError(413, "PayloadTooLarge", f"NDJSON line over {limit} bytes")
        if pending.strip():
            yield bytes(pending).strip()

    async def drain(self, limit: int) -> bool:
        """Read and discard the rest, so the connection can serve its next request. False if it had to give up."""
        discarded = 0
        try:
            async for chunk in self.chunks():
                discarded += len(chunk)
                if discarded > limit:
                    return False
        except _ClientGone:
            return False
        return True


@dataclass
class HubRequest:
    method: str
    segments: list[str]  # URL path split on "/" then percent-decoded, so "refs%2Fpr%2F1" stays one segment
    query: QueryParams
    headers: Headers
    base_url: str  # what the client called us, without a trailing slash: URLs we return point back here
    body: RequestBody
    user: HubToken | None


def _parse_json(raw: bytes, error_message: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise bad_request(error_message) from None


def _expect_dict(payload: Any, what: str = "body") -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise bad_request(f"The {what} must be a JSON object")
    return payload


def _optional(payload: dict[str, Any], name: str, kind: type[T]) -> T | None:
    value = payload.get(name)
    # bool is an int in Python, but not a valid size or count on the wire.
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise bad_request(f"'{name}' must be of type {kind.__name__}")
    return value


def _is_true(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _header_safe(text: str) -> str:
    """Header values must be single-line latin-1; keep them short too."""
    return re.sub(r"[\r\n]+", " ", text).encode("ascii", "replace").decode()[:500]


def _error_response(error: HubError, **body: Any) -> Response:
    headers = {"X-Error-Code": error.code, "X-Error-Message": _header_safe(error.message), **error.headers}
    return JSONResponse({"error": error.message, **body}, status_code=error.status, headers=headers)


def _decode_base64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise bad_request(f"{what} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{what} is not valid base64") from None


def _split_revision(segments: list[str]) -> tuple[str, list[str]]:
    """The revision at the start of `segments` and what follows it. Clients quote revisions ("refs%2Fpr%2F1" is one
    segment); an unquoted `refs/pr/1`, `refs/heads/x` or `refs/tags/x` is accepted too."""
    if not segments:
        raise HubError(404, "RevisionNotFound", "No revision in URL")
    if segments[0] == "refs" and len(segments) >= 3 and segments[1] in ("pr", "heads", "tags"):
        return "/".join(segments[:3]), segments[3:]
    return segments[0], segments[1:]


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


def _tree_entry_json(item: TreeEntry) -> dict[str, Any]:
    if item.file is None:
        return {"type": "directory", "oid": item.directory_oid, "size": 0, "path": item.path}
    entry = item.file
    payload: dict[str, Any] = {"type": "file", "oid": entry.git_oid, "size": entry.size, "path": item.path}
    if entry.lfs:
        payload["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    return payload


def _blob_chunks(path: Path, start: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(DOWNLOAD_CHUNK_SIZE, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


class HubApp:
    """The ASGI application: parses the raw path (percent-encoded slashes matter), authenticates, dispatches."""

    def __init__(self, store: HubStore, tokens: Sequence[HubToken]) -> None:
        self.store = store
        self._tokens = {token.token: token for token in tokens}
        # Signs LFS upload URLs: the client PUTs to them without credentials, like to a presigned storage URL.
        self._upload_secret = secrets.token_bytes(32)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = RequestBody(receive)
        try:
            request = self._parse_request(scope, body)
            response = await self._route(request)
        except HubError as error:
            response = _error_response(error)
        except _ClientGone:
            return
        except Exception:  # a bug here must still answer cleanly; the path is logged, never headers or query
            logger.exception("Unexpected error on %s %s", scope.get("method"), scope.get("path"))
            response = _error_response(HubError(500, "InternalError", "Internal server error"))
        # An unread body would be parsed as the next request on this keep-alive connection.
        if response.status_code >= 400 and not body.complete and not await body.drain(DRAIN_LIMIT):
            response.headers["Connection"] = "close"
        await response(scope, receive, send)

    # ---- request parsing and access control ------------------------------------------------------------------

    def _parse_request(self, scope: Scope, body: RequestBody) -> HubRequest:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        try:
            segments = [unquote(part, errors="strict") for part in raw_path.decode("ascii").split("/") if part]
        except UnicodeDecodeError:
            raise bad_request("Malformed URL path") from None
        headers = Headers(scope=scope)
        return HubRequest(
            method=scope["method"],
            segments=segments,
            query=QueryParams(scope["query_string"]),
            headers=headers,
            base_url=str(URL(scope=scope).replace(path="", query="", fragment="")).rstrip("/"),
            body=body,
            user=self._authenticate(headers.get("authorization")),
        )

    def _authenticate(self, authorization: str | None) -> HubToken | None:
        if authorization is None:
            return None
        scheme, _, credential = authorization.partition(" ")
        user = self._tokens.get(credential.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise HubError(401, "Unauthorized", INVALID_CREDENTIALS)
        return user

    @staticmethod
    def _repo_not_found(request: HubRequest, repo: str) -> HubError:
        """Private and missing repos look the same from outside: 401 for anonymous callers, 404 for signed-in ones,
        both RepoNotFound (which the client turns into RepositoryNotFoundError)."""
        return HubError(401 if request.user is None else 404, "RepoNotFound", f"Repository not found: {repo}")

    def _readable(self, request: HubRequest, key: RepoKey) -> RepoMeta:
        """The repo's metadata if the caller may read it."""
        hidden = self._repo_not_found(request, key.url_path)
        try:
            meta = self.store.repo_meta(key)
        except HubError as error:
            if error.code == "RepoNotFound":
                raise hidden from None
            raise
        if meta.private and not (request.user is not None and request.user.owns(key.namespace)):
            raise hidden
        return meta

    @staticmethod
    def _require_writer(request: HubRequest, namespace: str) -> HubToken:
        user = request.user
        if user is None:
            raise HubError(401, "Unauthorized", "Authentication required: send a write token")
        if user.role != "write":
            raise HubError(403, "Forbidden", "This token is read-only: a write token is needed")
        if not user.owns(namespace):
            raise HubError(403, "Forbidden", f"You don't have the rights to write to the namespace '{namespace}'")
        return user

    def _writable(self, request: HubRequest, key: RepoKey) -> HubToken:
        user = self._require_writer(request, key.namespace)
        self.store.repo_meta(key)  # 404 RepoNotFound if missing
        return user

    # ---- routing -----------------------------------------------------------------------------------------------

    @staticmethod
    def _allow(request: HubRequest, *methods: str) -> None:
        if request.method not in methods:
            raise HubError(405, "MethodNotAllowed", f"{request.method} not allowed here", {"Allow": ", ".join(methods)})

    @staticmethod
    async def _in_thread(handler: Callable[..., T], *args: Any) -> T:
        """Storage work blocks on the file system: keep it off the event loop."""
        return await anyio.to_thread.run_sync(partial(handler, *args))

    async def _with_json(self, handler: Callable[..., Response], request: HubRequest, *args: Any) -> Response:
        payload = await request.body.read_json(request.headers)
        return await self._in_thread(handler, request, *args, payload)

    def _route(self, request: HubRequest) -> Awaitable[Response]:
        match request.segments:
            case ["api", "whoami-v2"]:
                self._allow(request, "GET")
                return self._in_thread(self._whoami, request)
            case ["api", "repos", "create"]:
                self._allow(request, "POST")
                return self._with_json(self._create_repo, request)
            case ["api", "repos", "delete"]:
                self._allow(request, "DELETE")
                return self._with_json(self._delete_repo, request)
            case ["api", "validate-yaml"]:
                self._allow(request, "POST")
                return self._with_json(self._validate_yaml, request)
            case ["api", plural, namespace, name, *rest] if plural in PLURAL_TO_REPO_TYPE:
                key = RepoKey.parse(PLURAL_TO_REPO_TYPE[plural], namespace, name)
                return self._route_repo_api(request, key, rest)
            case ["api", plural, name] if plural in PLURAL_TO_REPO_TYPE:
                raise self._repo_not_found(request, name)  # canonical ids like "gpt2": every repo here has a namespace
            case ["api", *_]:
                raise HubError(404, "NotFound", "No such API route")
            case [("datasets" | "spaces") as plural, namespace, name, *rest] if rest:
                return self._route_repo_web(request, PLURAL_TO_REPO_TYPE[plural], namespace, name, rest)
            case [namespace, name, *rest] if rest:
                return self._route_repo_web(request, "model", namespace, name, rest)
        raise HubError(404, "NotFound", "No such route")

    def _route_repo_api(self, request: HubRequest, key: RepoKey, rest: list[str]) -> Awaitable[Response]:
        match rest:
            case []:
                self._allow(request, "GET")
                return self._in_thread(self._repo_info, request, key, None)
            case ["revision", *revision] if revision:
                self._allow(request, "GET")
                return self._in_thread(self._repo_info, request, key, "/".join(revision))
            case ["tree", *revision_and_path]:
                self._allow(request, "GET")
                revision, path = _split_revision(revision_and_path)
                return self._in_thread(self._tree, request, key, revision, "/".join(path))
            case ["paths-info", *revision] if revision:
                self._allow(request, "POST")
                return self._paths_info(request, key, "/".join(revision))
            case ["preupload", *revision] if revision:
                self._allow(request, "POST")
                return self._with_json(self._preupload, request, key, "/".join(revision))
            case ["commit", *revision] if revision:
                self._allow(request, "POST")
                return self._commit(request, key, "/".join(revision))
            case ["commits", *revision] if revision:
                self._allow(request, "GET")
                return self._in_thread(self._commits, request, key, "/".join(revision))
            case ["refs"]:
                self._allow(request, "GET")
                return self._in_thread(self._refs, request, key)
            case ["branch", *branch] if branch:
                self._allow(request, "POST", "DELETE")
                if request.method == "DELETE":
                    return self._in_thread(self._delete_branch, request, key, "/".join(branch))
                return self._with_json(self._create_branch, request, key, "/".join(branch))
            case ["tag", *name] if name:
                self._allow(request, "POST", "DELETE")
                if request.method == "DELETE":
                    return self._in_thread(self._delete_tag, request, key, "/".join(name))
                return self._with_json(self._create_tag, request, key, "/".join(name))
        raise HubError(404, "NotFound", "No such repo API route")

    def _route_repo_web(
        self, request: HubRequest, repo_type: RepoType, namespace: str, name: str, rest: list[str]
    ) -> Awaitable[Response]:
        match [name, *rest]:
            case [git_name, "info", "lfs", "objects", action] if git_name.endswith(".git"):
                key = RepoKey.parse(repo_type, namespace, git_name.removesuffix(".git"))
                if action == "batch":
                    self._allow(request, "POST")
                    return self._with_json(self._lfs_batch, request, key)
                if action == "verify":
                    self._allow(request, "POST")
                    return self._with_json(self._lfs_verify, request, key)
                if is_sha256(action):
                    self._allow(request, "PUT")
                    return self._lfs_upload(request, key, action)
            case [_, "resolve", *revision_and_path]:
                self._allow(request, "GET", "HEAD")
                key = RepoKey.parse(repo_type, namespace, name)
                revision, path = _split_revision(revision_and_path)
                return self._in_thread(self._resolve, request, key, revision, "/".join(path))
            case ["resolve", *_]:
                raise self._repo_not_found(request, namespace)  # "/gpt2/resolve/...": a repo id without namespace
        raise HubError(404, "NotFound", "No such route")

    # ---- account and repos -------------------------------------------------------------------------------------

    def _whoami(self, request: HubRequest) -> Response:
        user = request.user
        if user is None:
            raise HubError(401, "Unauthorized", "A token is required to call whoami")
        return JSONResponse(
            {
                "type": "user",
                "id": f"user-{user.user}",
                "name": user.user,
                "fullname": user.user,
                "orgs": [{"type": "org", "name": org} for org in user.orgs],
                "auth": {"type": "access_token", "accessToken": {"displayName": "hfsynth", "role": user.role}},
            }
        )

    @staticmethod
    def _repo_key_from_payload(request: HubRequest, payload: dict[str, Any]) -> RepoKey:
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise bad_request(f"Invalid repo type: {repo_type!r}")
        namespace = _optional(payload, "organization", str) or (request.user.user if request.user else None)
        if namespace is None:
            raise HubError(401, "Unauthorized", "Authentication required: send a write token")
        return RepoKey.parse(repo_type, namespace, payload.get("name"))  # type: ignore[arg-type]

    def _create_repo(self, request: HubRequest, payload: Any) -> Response:
        payload = _expect_dict(payload)
        key = self._repo_key_from_payload(request, payload)
        user = self._require_writer(request, key.namespace)
        visibility = _optional(payload, "visibility", str)
        if visibility not in (None, "public", "private", "protected"):
            raise bad_request(f"Invalid visibility: {visibility!r}")
        # "protected" Spaces hide their app but not their existence on the Hub; here, treat them as private.
        private = visibility in ("private", "protected") or bool(_optional(payload, "private", bool))
        sdk = _optional(payload, "sdk", str)
        if key.repo_type == "space" and sdk not in SPACE_SDKS:
            raise bad_request(f"A Space needs an sdk, one of {', '.join(SPACE_SDKS)}")
        url = f"{request.base_url}/{key.url_path}"
        try:
            self.store.create_repo(
                key, private=private, author=user.user, sdk=sdk if key.repo_type == "space" else None
            )
        except HubError as error:
            if error.status != 409:
                raise
            return _error_response(error, url=url)  # create_repo(exist_ok=True) reads the url from the 409
        logger.info("Created %s %s", key.repo_type, key.repo_id)
        return JSONResponse({"url": url, "name": key.repo_id, "id": key.repo_id})

    def _delete_repo(self, request: HubRequest, payload: Any) -> Response:
        key = self._repo_key_from_payload(request, _expect_dict(payload))
        self._require_writer(request, key.namespace)
        self.store.delete_repo(key)
        logger.info("Deleted %s %s", key.repo_type, key.repo_id)
        return JSONResponse({})

    def _card_data(self, commit: Commit) -> dict[str, Any] | None:
        """README.md front matter, as the Hub reports it in `cardData` (None if absent or not a mapping)."""
        readme = commit.files.get("README.md")
        if readme is None:
            return None
        match = _YAML_BLOCK.match(self.store.read_blob(readme, limit=1_000_000).decode(errors="replace"))
        try:
            data = yaml.safe_load(match[2]) if match else None
        except yaml.YAMLError:
            return None
        # YAML dates and the like are not JSON: round-trip them to strings.
        return json.loads(json.dumps(data, default=str)) if isinstance(data, dict) else None

    def _repo_info(self, request: HubRequest, key: RepoKey, revision: str | None) -> Response:
        meta = self._readable(request, key)
        commit = self.store.resolve(key, revision or "main")
        with_blobs = _is_true(request.query.get("blobs"))
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling |= {"size": entry.size, "blobId": entry.git_oid}
                if entry.lfs:
                    sibling["lfs"] = {"sha256": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
            siblings.append(sibling)
        card_data = self._card_data(commit)
        payload: dict[str, Any] = {
            "_id": hashlib.sha1(key.url_path.encode()).hexdigest()[:24],
            "id": key.repo_id,
            "author": key.namespace,
            "sha": commit.oid,
            "private": meta.private,
            "gated": False,
            "disabled": False,
            "lastModified": commit.date,
            "createdAt": meta.created_at,
            "downloads": 0,
            "likes": 0,
            "tags": list((card_data or {}).get("tags") or []),
            "siblings": siblings,
        }
        if card_data is not None:
            payload["cardData"] = card_data
        if key.repo_type == "space":
            payload["sdk"] = meta.sdk
        if with_blobs:
            payload["usedStorage"] = sum(entry.size for entry in commit.files.values())
        return JSONResponse(payload)

    # ---- browsing ----------------------------------------------------------------------------------------------

    def _tree(self, request: HubRequest, key: RepoKey, revision: str, path: str) -> Response:
        self._readable(request, key)
        commit = self.store.resolve(key, revision)
        entries = HubStore.list_tree(commit, path, recursive=_is_true(request.query.get("recursive")))
        return JSONResponse([_tree_entry_json(item) for item in entries])

    async def _paths_info(self, request: HubRequest, key: RepoKey, revision: str) -> Response:
        content_type = request.headers.get("content-type", "").lower()
        if "json" in content_type:
            paths = _expect_dict(await request.body.read_json(request.headers)).get("paths")
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
        return await self._in_thread(self._paths_info_sync, request, key, revision, paths)

    def _paths_info_sync(self, request: HubRequest, key: RepoKey, revision: str, paths: list[str]) -> Response:
        self._readable(request, key)
        commit = self.store.resolve(key, revision)
        found = [HubStore.path_info(commit, path) for path in dict.fromkeys(paths)]
        return JSONResponse([_tree_entry_json(item) for item in found if item is not None])

    def _resolve(self, request: HubRequest, key: RepoKey, revision: str, path: str) -> Response:
        self._readable(request, key)
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

    def _refs(self, request: HubRequest, key: RepoKey) -> Response:
        self._readable(request, key)
        refs = self.store.refs(key)

        def ref(name: str, full_name: str, oid: str) -> dict[str, str]:
            return {"name": name, "ref": full_name, "targetCommit": oid}

        payload: dict[str, Any] = {
            "branches": [ref(name, f"refs/heads/{name}", oid) for name, oid in sorted(refs.branches.items())],
            "tags": [ref(name, f"refs/tags/{name}", oid) for name, oid in sorted(refs.tags.items())],
            "converts": [],
        }
        if _is_true(request.query.get("include_prs")):
            pull_requests = sorted(refs.pull_requests.items())
            payload["pullRequests"] = [ref(f"refs/pr/{n}", f"refs/pr/{n}", oid) for n, oid in pull_requests]
        return JSONResponse(payload)

    def _commits(self, request: HubRequest, key: RepoKey, revision: str) -> Response:
        self._readable(request, key)
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

    # ---- writing -----------------------------------------------------------------------------------------------

    def _preupload(self, request: HubRequest, key: RepoKey, revision: str, payload: Any) -> Response:
        self._writable(request, key)
        files = _expect_dict(payload).get("files")
        if not isinstance(files, list):
            raise bad_request("'files' must be a list")
        commit = self.store.resolve(key, revision)
        lfs_patterns = self.store.lfs_patterns(commit)
        answers = []
        for item in files:
            item = _expect_dict(item, "files item")
            path = validate_repo_path(item.get("path"))
            size = _optional(item, "size", int)
            if size is None or size < 0:
                raise bad_request(f"'size' of '{path}' must be a non-negative integer")
            sample = _decode_base64(item.get("sample", ""), f"'sample' of '{path}'")
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

    async def _commit(self, request: HubRequest, key: RepoKey, revision: str) -> Response:
        user = await self._in_thread(self._writable, request, key)
        if "application/x-ndjson" not in request.headers.get("content-type", "").lower():
            raise HubError(415, "UnsupportedMediaType", "A commit is sent as application/x-ndjson")
        header: dict[str, Any] | None = None
        operations: list[CommitOperation] = []
        line_number = 0
        async for line in request.body.lines(NDJSON_LINE_LIMIT):
            line_number += 1
            item = _expect_dict(_parse_json(line, f"Malformed NDJSON line {line_number}"), "NDJSON line")
            kind = item.get("key")
            value = _expect_dict(item.get("value"), f"'value' of a {kind!r} line")
            if (header is None) != (kind == "header"):
                raise bad_request("The commit payload must start with exactly one 'header' line")
            if kind == "header":
                header = value
            elif kind == "file":
                operations.append(await self._in_thread(self._parse_regular_file, value))
            elif kind == "lfsFile":
                operations.append(self._parse_lfs_file(value))
            elif kind == "deletedFile":
                operations.append(DeleteFile(validate_repo_path(value.get("path"))))
            elif kind == "deletedFolder":
                folder = value.get("path")
                operations.append(
                    DeleteFolder(validate_repo_path(folder.rstrip("/") if isinstance(folder, str) else folder))
                )
            else:
                raise bad_request(f"Unknown commit line key: {kind!r}")
        if header is None:
            raise bad_request("Empty commit payload")
        title = _optional(header, "summary", str)
        if not title or not title.strip():
            raise bad_request("The commit summary must be a non-empty string")
        parent_commit = _optional(header, "parentCommit", str)
        if parent_commit is not None and not _PARENT_COMMIT_RE.fullmatch(parent_commit):
            raise bad_request(f"Invalid parentCommit: {parent_commit!r}")
        commit, pr_number = await anyio.to_thread.run_sync(
            partial(
                self.store.create_commit,
                key,
                revision,
                operations,
                title=title.strip(),
                message=_optional(header, "description", str) or "",
                author=user.user,
                parent_commit=parent_commit,
                create_pr=_is_true(request.query.get("create_pr")),
            )
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

    def _parse_regular_file(self, value: dict[str, Any]) -> AddFile:
        path = validate_repo_path(value.get("path"))
        if value.get("encoding", "base64") != "base64":
            raise bad_request(f"Unsupported encoding for '{path}': only base64")
        # Stored now (content-addressed, harmless if the commit fails) so memory holds one file at a time.
        return AddFile(path, self.store.store_bytes(_decode_base64(value.get("content"), f"Content of '{path}'")))

    @staticmethod
    def _parse_lfs_file(value: dict[str, Any]) -> AddLfsFile:
        path = validate_repo_path(value.get("path"))
        oid, size = value.get("oid"), _optional(value, "size", int)
        if value.get("algo", "sha256") != "sha256" or not is_sha256(oid):
            raise bad_request(f"'{path}' needs a lowercase hex sha256 'oid'")
        if size is not None and size < 0:
            raise bad_request(f"Negative size for '{path}'")
        return AddLfsFile(path, oid, size)  # type: ignore[arg-type]

    def _create_branch(self, request: HubRequest, key: RepoKey, branch: str, payload: Any) -> Response:
        self._writable(request, key)
        starting_point = _optional(_expect_dict(payload), "startingPoint", str)
        self.store.create_branch(key, branch, starting_point)
        return JSONResponse({})

    def _delete_branch(self, request: HubRequest, key: RepoKey, branch: str) -> Response:
        self._writable(request, key)
        self.store.delete_branch(key, branch)
        return JSONResponse({})

    def _create_tag(self, request: HubRequest, key: RepoKey, revision: str, payload: Any) -> Response:
        self._writable(request, key)
        tag = _optional(_expect_dict(payload), "tag", str)
        if not tag:
            raise bad_request("'tag' is required")
        self.store.create_tag(key, tag, revision)
        return JSONResponse({})

    def _delete_tag(self, request: HubRequest, key: RepoKey, tag: str) -> Response:
        self._writable(request, key)
        self.store.delete_tag(key, tag)
        return JSONResponse({})

    def _validate_yaml(self, request: HubRequest, payload: Any) -> Response:
        content = _expect_dict(payload).get("content")
        if not isinstance(content, str):
            raise bad_request("'content' must be a string")
        match = _YAML_BLOCK.match(content)
        try:
            metadata = yaml.safe_load(match[2]) if match else None
            problem = None if metadata is None or isinstance(metadata, dict) else "the metadata must be a YAML mapping"
        except yaml.YAMLError as error:
            problem = f"invalid YAML: {str(error).splitlines()[0]}"
        if problem is None:
            return JSONResponse({"errors": [], "warnings": []})
        # The client reads `errors[].message` from a JSON body, then raises ValueError("Invalid metadata ...").
        message = f"README.md front matter: {problem}"
        headers = {"X-Error-Code": "BadRequest", "X-Error-Message": _header_safe(message)}
        return JSONResponse({"error": message, "errors": [{"message": message}]}, status_code=400, headers=headers)

    # ---- large file storage ------------------------------------------------------------------------------------

    def _sign_upload(self, key: RepoKey, oid: str, size: int, expires: int) -> str:
        message = f"{key.url_path}\n{oid}\n{size}\n{expires}".encode()
        return hmac.new(self._upload_secret, message, hashlib.sha256).hexdigest()

    def _lfs_batch(self, request: HubRequest, key: RepoKey, payload: Any) -> Response:
        self._writable(request, key)
        payload = _expect_dict(payload)
        if payload.get("operation") != "upload":
            raise bad_request("Only the 'upload' operation is supported")
        transfers = payload.get("transfers", ["basic"])
        if not isinstance(transfers, list) or "basic" not in transfers:
            raise bad_request("Only the 'basic' transfer is supported")
        objects = payload.get("objects")
        if not isinstance(objects, list):
            raise bad_request("'objects' must be a list")
        expires = int(time.time()) + UPLOAD_URL_LIFETIME_SECONDS
        repo_git_url = f"{request.base_url}/{key.url_path}.git/info/lfs/objects"
        answers = []
        for item in objects:
            item = _expect_dict(item, "objects item")
            oid, size = item.get("oid"), _optional(item, "size", int)
            if not isinstance(oid, str) or size is None:
                raise bad_request("Each object needs a string 'oid' and an integer 'size'")
            if not is_sha256(oid) or size < 0:
                answers.append({"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid oid or size"}})
            elif self.store.has_lfs_object(key, oid, size):
                answers.append({"oid": oid, "size": size})  # already stored: no actions, the client skips it
            else:
                query = urlencode(
                    {"size": size, "expires": expires, "signature": self._sign_upload(key, oid, size, expires)}
                )
                actions = {
                    "upload": {"href": f"{repo_git_url}/{oid}?{query}", "expires_in": UPLOAD_URL_LIFETIME_SECONDS},
                    "verify": {"href": f"{repo_git_url}/verify", "expires_in": UPLOAD_URL_LIFETIME_SECONDS},
                }
                answers.append({"oid": oid, "size": size, "authenticated": True, "actions": actions})
        return JSONResponse(
            {"transfer": "basic", "objects": answers, "hash_algo": "sha256"}, media_type="application/vnd.git-lfs+json"
        )

    async def _lfs_upload(self, request: HubRequest, key: RepoKey, oid: str) -> Response:
        """PUT of one LFS object to the signed URL from the batch answer; streamed, checked against oid and size."""
        try:
            size, expires = int(request.query["size"]), int(request.query["expires"])
            signature = request.query["signature"]
        except (KeyError, ValueError):
            raise HubError(403, "Forbidden", "Invalid upload URL") from None
        expected = self._sign_upload(key, oid, size, expires)
        if not hmac.compare_digest(expected, signature) or expires < time.time():
            raise HubError(403, "Forbidden", "Invalid or expired upload URL")
        if request.headers.get("content-length", str(size)) != str(size):
            raise bad_request(f"Content-Length does not match the announced size {size}")
        await self._in_thread(self.store.repo_meta, key)
        temporary, handle = self.store.open_temporary()
        try:
            digest, received = hashlib.sha256(), 0
            with handle:
                async for chunk in request.body.chunks():
                    received += len(chunk)
                    if received > size:
                        raise bad_request(f"More than the announced {size} bytes")
                    digest.update(chunk)
                    handle.write(chunk)
            if received != size or digest.hexdigest() != oid:
                raise bad_request("The uploaded content does not match its oid and size")
            await self._in_thread(self.store.adopt_lfs_upload, key, temporary, oid)
        finally:
            temporary.unlink(missing_ok=True)  # already moved into the blob store on success
        return Response(status_code=200)

    def _lfs_verify(self, request: HubRequest, key: RepoKey, payload: Any) -> Response:
        self._writable(request, key)
        payload = _expect_dict(payload)
        oid, size = payload.get("oid"), _optional(payload, "size", int)
        if not is_sha256(oid) or size is None:
            raise bad_request("Verify needs a sha256 'oid' and an integer 'size'")
        if not self.store.has_lfs_object(key, oid, size):  # type: ignore[arg-type]
            raise HubError(404, "EntryNotFound", f"LFS object {oid} of size {size} was not uploaded to this repo")
        return JSONResponse({"oid": oid, "size": size})


def create_app(data_dir: Path, tokens: Sequence[HubToken]) -> Starlette:
    """The Hub-compatible ASGI app, persisting repos under `data_dir` and accepting `tokens`."""
    hub = HubApp(HubStore(Path(data_dir)), tokens)
    # One catch-all route: the hub parses the raw path itself, since Starlette decodes "%2F" before routing.
    return Starlette(routes=[Route("/{path:path}", endpoint=hub)])


def _uvicorn_config(app: Starlette, **options: Any) -> uvicorn.Config:
    # No access log: request lines carry signed upload URLs, and nothing here should ever print a header.
    return uvicorn.Config(app, access_log=False, timeout_graceful_shutdown=5, **options)


class HubServer:
    """The Hub app served by uvicorn on a background thread (tests, in-process use).

    The port is bound when the object is created, so `url` can go into HF_ENDPOINT before the clients are
    imported; requests are answered from `start()` on (before that, connections are refused).
    Without `data_dir`, repos live in a temporary folder removed by `stop()`.
    """

    def __init__(
        self, data_dir: Path | None = None, tokens: Sequence[HubToken] = (), host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._temporary_dir = Path(tempfile.mkdtemp(prefix="hfsynth-hub-")) if data_dir is None else None
        self.data_dir = Path(data_dir) if data_dir is not None else self._temporary_dir
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        bound_port = self._socket.getsockname()[1]
        self.url = f"http://[{host}]:{bound_port}" if family == socket.AF_INET6 else f"http://{host}:{bound_port}"
        # log_config=None: leave the host application's (or pytest's) logging configuration alone.
        config = _uvicorn_config(create_app(self.data_dir, tokens), log_config=None, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 15.0) -> HubServer:
        if self._thread is not None:
            raise RuntimeError("HubServer already started")
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="hfsynth-hub-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The Hub server on {self.url} did not start")
            time.sleep(0.01)
        logger.info("Hub server listening on %s", self.url)
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
        self._socket.close()
        if self._temporary_dir is not None:
            shutil.rmtree(self._temporary_dir, ignore_errors=True)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(host: str, port: int, data_dir: Path | None, tokens: Sequence[HubToken]) -> None:
    """Run the server in the foreground until interrupted (the CLI entry point)."""
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hfsynth-hub-")))
        logger.info("Serving the Hub API on http://%s:%d with data in %s", host, port, data_dir)
        uvicorn.Server(_uvicorn_config(create_app(data_dir, tokens), host=host, port=port)).run()
