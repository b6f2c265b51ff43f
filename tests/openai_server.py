"""A small real HTTP server on loopback that answers like an OpenAI-compatible LLM, in microseconds and
deterministically, and can be made to hold its answers (a slow or hung server) to interrupt a run at an exact point.

A chat request with ``max_tokens`` above the classification budget gets a numbered list of pseudo-sentences derived from
its messages and its ``seed`` (a sampling LLM: the same request gives the same texts, another seed others), or, when it
names a JSON schema in ``response_format``, a JSON object holding as many of them as the schema asks for (a server that
constrains decoding) unless the server ignores ``response_format``; a classification request gets one of ``labels``,
derived from its messages; each answer reports its ``usage`` (in words). Every request is counted when it arrives, with
its headers (names in lower case), so a test sees exactly what was paid for and which key came with it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hfsynth.teachers.remote import CLASSIFY_MAX_TOKENS

WORDS = ("amber basil cedar dune ember fjord grove harbor islet juniper kelp lagoon meadow nectar orchid pebble quartz "
         "reef saffron tundra umber valley willow xylem yarrow zephyr").split()


class OpenAIServer:
    """``hold_after``: requests arriving after that many are held until :meth:`release` (or the server closes);
    ``structured``: whether ``response_format`` is honoured."""

    def __init__(self, labels: list[str], hold_after: int | None = None, structured: bool = True) -> None:
        self.labels = labels
        self.hold_after = hold_after
        self.structured = structured
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.answered = 0
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def received(self) -> int:
        with self._lock:
            return len(self.bodies)

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, condition: Callable[[OpenAIServer], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server saw {self.received} requests, answered {self.answered}")
            time.sleep(0.05)

    def answer_text(self, body: dict[str, Any]) -> str:
        digest = hashlib.sha256(json.dumps([body.get("messages"), body.get("seed")]).encode()).digest()
        if (body.get("max_tokens") or 0) <= CLASSIFY_MAX_TOKENS:
            return self.labels[digest[0] % len(self.labels)]
        response_format = body.get("response_format") or {}
        # OpenAI's form, or TGI's (what huggingface_hub sends an Inference Endpoint).
        schema = response_format.get("json_schema", {}).get("schema") or response_format.get("value")
        count = schema["properties"]["samples"]["maxItems"] if self.structured and schema else 4
        while len(digest) < count * 6:  # more texts than one digest spells
            digest += hashlib.sha256(digest).digest()
        lines = [" ".join(WORDS[byte % len(WORDS)] for byte in digest[row * 6 : row * 6 + 6]) for row in range(count)]
        if self.structured and schema:
            return json.dumps({"samples": [f"{line}." for line in lines]})
        return "\n".join(f"{number}. {line}." for number, line in enumerate(lines, 1))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with owner._lock:
                    owner.bodies.append(body)
                    owner.headers.append({name.lower(): value for name, value in self.headers.items()})
                    held = owner.hold_after is not None and len(owner.bodies) > owner.hold_after
                if held:
                    owner._released.wait()
                text = owner.answer_text(body)
                answer = json.dumps({
                    "id": "answer", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": usage(body, text),
                }).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client is gone (killed): not answered
                with owner._lock:
                    owner.answered += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def usage(body: dict[str, Any], text: str) -> dict[str, int]:
    """A server's token counts, here words: the messages' for the prompt, the answer's for the completion."""
    prompt = sum(len(str(message.get("content", "")).split()) for message in body.get("messages") or [])
    completion = len(text.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@contextmanager
def openai_server(labels: list[str], hold_after: int | None = None, structured: bool = True
                  ) -> Iterator[OpenAIServer]:
    server = OpenAIServer(labels, hold_after, structured)
    try:
        yield server
    finally:
        server.close()
