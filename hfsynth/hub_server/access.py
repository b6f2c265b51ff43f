"""Who may read and write what on the loopback Hub, mirroring the Hub's rules.

A user may write (with a write token) to their own namespace and to the organisations listed in their token spec;
nobody else may. Public repos are readable by anyone, private ones only by those who may write to their namespace
(with any of their tokens). Private and missing repos look the same from outside.
"""

from __future__ import annotations

from collections.abc import Sequence

from hfsynth.hub_server.api_errors import HubError
from hfsynth.hub_server.repo_model import RepoKey, RepoMeta
from hfsynth.hub_server.storage import HubStore
from hfsynth.hub_server.tokens import HubToken

# huggingface_hub maps a 401 to RepositoryNotFoundError unless it carries exactly this message.
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


class AccessControl:
    def __init__(self, store: HubStore, tokens: Sequence[HubToken]) -> None:
        self._store = store
        self._tokens = {token.token: token for token in tokens}

    def authenticate(self, authorization: str | None) -> HubToken | None:
        """The caller behind an `Authorization` header: None when anonymous, 401 for an unknown token."""
        if authorization is None:
            return None
        scheme, _, credential = authorization.partition(" ")
        user = self._tokens.get(credential.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise HubError(401, "Unauthorized", INVALID_CREDENTIALS)
        return user

    @staticmethod
    def repo_not_found(user: HubToken | None, repo: str) -> HubError:
        """Private and missing repos look the same from outside: 401 for anonymous callers, 404 for signed-in ones,
        both RepoNotFound (which the client turns into RepositoryNotFoundError)."""
        return HubError(401 if user is None else 404, "RepoNotFound", f"Repository not found: {repo}")

    def readable(self, user: HubToken | None, key: RepoKey) -> RepoMeta:
        """The repo's metadata if `user` may read it."""
        hidden = self.repo_not_found(user, key.url_path)
        try:
            meta = self._store.repo_meta(key)
        except HubError as error:
            if error.code == "RepoNotFound":
                raise hidden from None
            raise
        if meta.private and not (user is not None and user.owns(key.namespace)):
            raise hidden
        return meta

    @staticmethod
    def require_writer(user: HubToken | None, namespace: str) -> HubToken:
        if user is None:
            raise HubError(401, "Unauthorized", "Authentication required: send a write token")
        if user.role != "write":
            raise HubError(403, "Forbidden", "This token is read-only: a write token is needed")
        if not user.owns(namespace):
            raise HubError(403, "Forbidden", f"You don't have the rights to write to the namespace '{namespace}'")
        return user

    def writable(self, user: HubToken | None, key: RepoKey) -> HubToken:
        """`user` if they may write to the existing repo `key`."""
        writer = self.require_writer(user, key.namespace)
        self._store.repo_meta(key)  # 404 RepoNotFound if missing
        return writer
