"""Account and repo routes of the loopback Hub: whoami, create and delete a repo, repo info."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import yaml
from starlette.responses import JSONResponse, Response

from hfsynth.hub_server.access import AccessControl
from hfsynth.hub_server.api_errors import HubError, bad_request
from hfsynth.hub_server.front_matter import load_front_matter
from hfsynth.hub_server.http_messages import HubRequest, error_response, expect_dict, is_true, optional
from hfsynth.hub_server.repo_model import REPO_TYPES, Commit, RepoKey
from hfsynth.hub_server.storage import HubStore

logger = logging.getLogger(__name__)

SPACE_SDKS = ("gradio", "streamlit", "docker", "static")


@dataclass(frozen=True)
class RepoApi:
    store: HubStore
    access: AccessControl

    @staticmethod
    def whoami(request: HubRequest) -> Response:
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
        namespace = optional(payload, "organization", str) or (request.user.user if request.user else None)
        if namespace is None:
            raise HubError(401, "Unauthorized", "Authentication required: send a write token")
        return RepoKey.parse(repo_type, namespace, payload.get("name"))  # type: ignore[arg-type]

    def create_repo(self, request: HubRequest, payload: Any) -> Response:
        payload = expect_dict(payload)
        key = self._repo_key_from_payload(request, payload)
        user = self.access.require_writer(request.user, key.namespace)
        visibility = optional(payload, "visibility", str)
        if visibility not in (None, "public", "private", "protected"):
            raise bad_request(f"Invalid visibility: {visibility!r}")
        # "protected" Spaces hide their app but not their existence on the Hub; here, treat them as private.
        private = visibility in ("private", "protected") or bool(optional(payload, "private", bool))
        sdk = optional(payload, "sdk", str)
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
            return error_response(error, url=url)  # create_repo(exist_ok=True) reads the url from the 409
        logger.info("Created %s %s", key.repo_type, key.repo_id)
        return JSONResponse({"url": url, "name": key.repo_id, "id": key.repo_id})

    def delete_repo(self, request: HubRequest, payload: Any) -> Response:
        key = self._repo_key_from_payload(request, expect_dict(payload))
        self.access.require_writer(request.user, key.namespace)
        self.store.delete_repo(key)
        logger.info("Deleted %s %s", key.repo_type, key.repo_id)
        return JSONResponse({})

    def _card_data(self, commit: Commit) -> dict[str, Any] | None:
        """README.md front matter, as the Hub reports it in `cardData` (None if absent or not a mapping)."""
        readme = commit.files.get("README.md")
        if readme is None:
            return None
        try:
            data = load_front_matter(self.store.read_blob(readme, limit=1_000_000).decode(errors="replace"))
        except yaml.YAMLError:
            return None
        # YAML dates and the like are not JSON: round-trip them to strings.
        return json.loads(json.dumps(data, default=str)) if isinstance(data, dict) else None

    def repo_info(self, request: HubRequest, key: RepoKey, revision: str | None) -> Response:
        meta = self.access.readable(request.user, key)
        commit = self.store.resolve(key, revision or "main")
        with_blobs = is_true(request.query.get("blobs"))
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
