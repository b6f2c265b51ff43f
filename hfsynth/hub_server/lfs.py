"""Large-file routes of the loopback Hub: the git-LFS batch API with the basic transfer (signed upload URLs), the
upload itself, and verify."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.responses import JSONResponse, Response

from hfsynth.hub_server.access import AccessControl
from hfsynth.hub_server.api_errors import HubError, bad_request
from hfsynth.hub_server.http_messages import HubRequest, expect_dict, in_thread, optional
from hfsynth.hub_server.repo_model import RepoKey, is_sha256
from hfsynth.hub_server.storage import HubStore

UPLOAD_URL_LIFETIME_SECONDS = 3600


@dataclass(frozen=True)
class LargeFiles:
    store: HubStore
    access: AccessControl
    # Signs upload URLs: the client PUTs to them without credentials, like to a presigned storage URL.
    _upload_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), init=False, repr=False)

    def _sign_upload(self, key: RepoKey, oid: str, size: int, expires: int) -> str:
        message = f"{key.url_path}\n{oid}\n{size}\n{expires}".encode()
        return hmac.new(self._upload_secret, message, hashlib.sha256).hexdigest()

    def batch(self, request: HubRequest, key: RepoKey, payload: Any) -> Response:
        self.access.writable(request.user, key)
        payload = expect_dict(payload)
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
            item = expect_dict(item, "objects item")
            oid, size = item.get("oid"), optional(item, "size", int)
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

    async def upload(self, request: HubRequest, key: RepoKey, oid: str) -> Response:
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
        await in_thread(self.store.repo_meta, key)
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
            await in_thread(self.store.adopt_lfs_upload, key, temporary, oid)
        finally:
            temporary.unlink(missing_ok=True)  # already moved into the blob store on success
        return Response(status_code=200)

    def verify(self, request: HubRequest, key: RepoKey, payload: Any) -> Response:
        self.access.writable(request.user, key)
        payload = expect_dict(payload)
        oid, size = payload.get("oid"), optional(payload, "size", int)
        if not is_sha256(oid) or size is None:
            raise bad_request("Verify needs a sha256 'oid' and an integer 'size'")
        if not self.store.has_lfs_object(key, oid, size):  # type: ignore[arg-type]
            raise HubError(404, "EntryNotFound", f"LFS object {oid} of size {size} was not uploaded to this repo")
        return JSONResponse({"oid": oid, "size": size})
