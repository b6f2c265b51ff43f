"""The loopback Hub's ASGI application: parses the raw path (percent-encoded slashes matter), authenticates, and
dispatches each route to its handler; any failure becomes an error response with the Hub's headers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from hfsynth.hub_server.access import AccessControl
from hfsynth.hub_server.api_errors import HubError
from hfsynth.hub_server.browsing import Browsing
from hfsynth.hub_server.http_messages import (
    ClientGone,
    HubRequest,
    RequestBody,
    error_response,
    in_thread,
    parse_request,
)
from hfsynth.hub_server.lfs import LargeFiles
from hfsynth.hub_server.repo_api import RepoApi
from hfsynth.hub_server.repo_model import PLURAL_TO_REPO_TYPE, RepoKey, RepoType, is_sha256
from hfsynth.hub_server.storage import HubStore
from hfsynth.hub_server.tokens import HubToken
from hfsynth.hub_server.writing import Writing

logger = logging.getLogger(__name__)

DRAIN_LIMIT = 64 * 1024 * 1024  # past this, an unread error body is dropped with the connection


def _allow(request: HubRequest, *methods: str) -> None:
    if request.method not in methods:
        raise HubError(405, "MethodNotAllowed", f"{request.method} not allowed here", {"Allow": ", ".join(methods)})


async def _with_json(handler: Callable[..., Response], request: HubRequest, *args: Any) -> Response:
    """Read the JSON body, then run `handler(request, *args, payload)` off the event loop."""
    payload = await request.body.read_json(request.headers)
    return await in_thread(handler, request, *args, payload)


def _split_revision(segments: list[str]) -> tuple[str, list[str]]:
    """The revision at the start of `segments` and what follows it. Clients quote revisions ("refs%2Fpr%2F1" is one
    segment); an unquoted `refs/pr/1`, `refs/heads/x` or `refs/tags/x` is accepted too."""
    if not segments:
        raise HubError(404, "RevisionNotFound", "No revision in URL")
    if segments[0] == "refs" and len(segments) >= 3 and segments[1] in ("pr", "heads", "tags"):
        return "/".join(segments[:3]), segments[3:]
    return segments[0], segments[1:]


class HubApp:
    """The ASGI application."""

    def __init__(self, store: HubStore, tokens: Sequence[HubToken]) -> None:
        self.store = store
        self.access = AccessControl(store, tokens)
        self.repos = RepoApi(store, self.access)
        self.browsing = Browsing(store, self.access)
        self.writing = Writing(store, self.access)
        self.large_files = LargeFiles(store, self.access)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = RequestBody(receive)
        try:
            request = parse_request(scope, body, self.access.authenticate)
            response = await self._route(request)
        except HubError as error:
            response = error_response(error)
        except ClientGone:
            return
        except Exception:  # a bug here must still answer cleanly; the path is logged, never headers or query
            logger.exception("Unexpected error on %s %s", scope.get("method"), scope.get("path"))
            response = error_response(HubError(500, "InternalError", "Internal server error"))
        # An unread body would be parsed as the next request on this keep-alive connection.
        if response.status_code >= 400 and not body.complete and not await body.drain(DRAIN_LIMIT):
            response.headers["Connection"] = "close"
        await response(scope, receive, send)

    def _route(self, request: HubRequest) -> Awaitable[Response]:
        match request.segments:
            case ["api", "whoami-v2"]:
                _allow(request, "GET")
                return in_thread(self.repos.whoami, request)
            case ["api", "repos", "create"]:
                _allow(request, "POST")
                return _with_json(self.repos.create_repo, request)
            case ["api", "repos", "delete"]:
                _allow(request, "DELETE")
                return _with_json(self.repos.delete_repo, request)
            case ["api", "validate-yaml"]:
                _allow(request, "POST")
                return _with_json(self.writing.validate_yaml, request)
            case ["api", plural, namespace, name, *rest] if plural in PLURAL_TO_REPO_TYPE:
                key = RepoKey.parse(PLURAL_TO_REPO_TYPE[plural], namespace, name)
                return self._route_repo_api(request, key, rest)
            case ["api", plural, name] if plural in PLURAL_TO_REPO_TYPE:
                # Canonical ids like "gpt2": every repo here has a namespace.
                raise self.access.repo_not_found(request.user, name)
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
                _allow(request, "GET")
                return in_thread(self.repos.repo_info, request, key, None)
            case ["revision", *revision] if revision:
                _allow(request, "GET")
                return in_thread(self.repos.repo_info, request, key, "/".join(revision))
            case ["tree", *revision_and_path]:
                _allow(request, "GET")
                revision, path = _split_revision(revision_and_path)
                return in_thread(self.browsing.tree, request, key, revision, "/".join(path))
            case ["paths-info", *revision] if revision:
                _allow(request, "POST")
                return self.browsing.paths_info(request, key, "/".join(revision))
            case ["preupload", *revision] if revision:
                _allow(request, "POST")
                return _with_json(self.writing.preupload, request, key, "/".join(revision))
            case ["commit", *revision] if revision:
                _allow(request, "POST")
                return self.writing.commit(request, key, "/".join(revision))
            case ["commits", *revision] if revision:
                _allow(request, "GET")
                return in_thread(self.browsing.commits, request, key, "/".join(revision))
            case ["refs"]:
                _allow(request, "GET")
                return in_thread(self.browsing.refs, request, key)
            case ["branch", *branch] if branch:
                _allow(request, "POST", "DELETE")
                if request.method == "DELETE":
                    return in_thread(self.writing.delete_branch, request, key, "/".join(branch))
                return _with_json(self.writing.create_branch, request, key, "/".join(branch))
            case ["tag", *name] if name:
                _allow(request, "POST", "DELETE")
                if request.method == "DELETE":
                    return in_thread(self.writing.delete_tag, request, key, "/".join(name))
                return _with_json(self.writing.create_tag, request, key, "/".join(name))
        raise HubError(404, "NotFound", "No such repo API route")

    def _route_repo_web(
        self, request: HubRequest, repo_type: RepoType, namespace: str, name: str, rest: list[str]
    ) -> Awaitable[Response]:
        match [name, *rest]:
            case [git_name, "info", "lfs", "objects", action] if git_name.endswith(".git"):
                key = RepoKey.parse(repo_type, namespace, git_name.removesuffix(".git"))
                if action == "batch":
                    _allow(request, "POST")
                    return _with_json(self.large_files.batch, request, key)
                if action == "verify":
                    _allow(request, "POST")
                    return _with_json(self.large_files.verify, request, key)
                if is_sha256(action):
                    _allow(request, "PUT")
                    return self.large_files.upload(request, key, action)
            case [_, "resolve", *revision_and_path]:
                _allow(request, "GET", "HEAD")
                key = RepoKey.parse(repo_type, namespace, name)
                revision, path = _split_revision(revision_and_path)
                return in_thread(self.browsing.resolve, request, key, revision, "/".join(path))
            case ["resolve", *_]:
                # "/gpt2/resolve/...": a repo id without namespace.
                raise self.access.repo_not_found(request.user, namespace)
        raise HubError(404, "NotFound", "No such route")


def create_app(data_dir: Path, tokens: Sequence[HubToken]) -> Starlette:
    """The Hub-compatible ASGI app, persisting repos under `data_dir` and accepting `tokens`."""
    hub = HubApp(HubStore(Path(data_dir)), tokens)
    # One catch-all route: the hub parses the raw path itself, since Starlette decodes "%2F" before routing.
    return Starlette(routes=[Route("/{path:path}", endpoint=hub)])
