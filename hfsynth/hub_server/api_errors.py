"""The one exception the loopback Hub's layers raise for a failure the client should see."""

from __future__ import annotations


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
