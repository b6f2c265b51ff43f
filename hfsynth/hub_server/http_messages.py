"""Requests and responses of the loopback Hub: the raw ASGI request parsed into a HubRequest, a body read at most
once (and drained after an error), checks on JSON payloads, and errors as the Hub's headers carry them."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import unquote

import anyio.to_thread
from starlette.datastructures import URL, Headers, QueryParams
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope

from hfsynth.hub_server.api_errors import HubError, bad_request
from hfsynth.hub_server.tokens import HubToken

JSON_BODY_LIMIT = 16 * 1024 * 1024

T = TypeVar("T")


class ClientGone(Exception):
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
                raise ClientGone
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
        return parse_json(await self.read(JSON_BODY_LIMIT), "Malformed JSON body")

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
        except ClientGone:
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


def parse_request(scope: Scope, body: RequestBody, authenticate: Callable[[str | None], HubToken | None]) -> HubRequest:
    """The request from its raw path (Starlette's decoded path has lost the difference between "/" and "%2F")."""
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
        user=authenticate(headers.get("authorization")),
    )


async def in_thread(handler: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Storage work blocks on the file system: keep it off the event loop."""
    return await anyio.to_thread.run_sync(partial(handler, *args, **kwargs))


def parse_json(raw: bytes, error_message: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise bad_request(error_message) from None


def expect_dict(payload: Any, what: str = "body") -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise bad_request(f"The {what} must be a JSON object")
    return payload


def optional(payload: dict[str, Any], name: str, kind: type[T]) -> T | None:
    value = payload.get(name)
    # bool is an int in Python, but not a valid size or count on the wire.
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise bad_request(f"'{name}' must be of type {kind.__name__}")
    return value


def is_true(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def decode_base64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise bad_request(f"{what} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{what} is not valid base64") from None


def header_safe(text: str) -> str:
    """Header values must be single-line latin-1; keep them short too."""
    return re.sub(r"[\r\n]+", " ", text).encode("ascii", "replace").decode()[:500]


def error_response(error: HubError, **body: Any) -> Response:
    headers = {"X-Error-Code": error.code, "X-Error-Message": header_safe(error.message), **error.headers}
    return JSONResponse({"error": error.message, **body}, status_code=error.status, headers=headers)
