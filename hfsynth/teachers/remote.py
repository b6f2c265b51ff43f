"""A teacher behind an HTTP API: a Hub model on an Inference Provider, or any OpenAI-compatible server.

``base_url`` names a server speaking the OpenAI API (TGI, vLLM, ``transformers serve``, an Inference Endpoint);
without it, ``model`` is a Hub id served by ``provider`` (default: the Hugging Face router's "auto"). An
instruction-tuned model gets chat requests (``/v1/chat/completions``); a base model (``prompt_format: completion``)
gets its few-shot document as a legacy completion request (``/v1/completions``, which needs a ``base_url``), cut
where its next item would begin, as the local teacher does. A chat prompt with a JSON schema
(``generation.structured: json``) asks for it with OpenAI's ``response_format``.

A ``base_url`` server gets both kinds of request from the teacher's own pooled HTTP client (httpx2, what
huggingface_hub uses), posted to ``/v1/chat/completions`` or ``/v1/completions``: it is the recipe's own server, not
the Hub, so ``HF_HUB_OFFLINE=1`` (which makes huggingface_hub's session refuse every request) does not stop it, and a
local llama-server or ``transformers serve`` works offline. Only an Inference Provider (no ``base_url``), or a
``base_url`` on a Hugging Face host (an Inference Endpoint), goes through ``huggingface_hub.InferenceClient``, which
offline mode refuses, with one line saying so. Requests run from a small pool of daemon threads
(:mod:`hfsynth.teachers.calls`: answers handed over as they arrive, also when the call ends early) rather than
``AsyncInferenceClient``: the Teacher interface is synchronous, so threads need no event loop of their own (and still
work when the caller already runs one, as Gradio or Jupyter do), and the pooled session reuses connections from one
batch to the next. Requests are I/O-bound and few at a time, so threads cost nothing.

Credentials (:func:`teacher_credential`): the Hub token (``HF_TOKEN``, a stored login) goes to Hugging Face hosts
only (an Inference Provider through the router, an Inference Endpoint, the ``HF_ENDPOINT`` Hub); any other server gets
the key in the environment variable ``teacher.api_key_env`` names, or no key at all: a recipe (perhaps someone else's,
from the Hub) never decides where the user's token goes. A key is never logged: httpx2 logs only the request line,
httpcore2 (DEBUG) the request object without headers, and huggingface_hub (DEBUG, provider requests) whether a request
is authenticated, replacing the header by ``<TOKEN>`` even with ``HF_DEBUG``.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse, urlunparse

import httpx2
from huggingface_hub import (
    ChatCompletionInputJSONSchema,
    ChatCompletionInputResponseFormatJSONSchema,
    ChatCompletionOutput,
    InferenceClient,
    constants,
    get_token,
)
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, OfflineModeIsEnabled
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

from hfsynth.errors import TeacherError
from hfsynth.prompting import COMPLETION_STOPS, Answer, LabelScores, Prompt, Usage, cut_completion, label_scores
from hfsynth.recipe.schema import SamplingParams, TeacherConfig
from hfsynth.teachers.base import Teacher
from hfsynth.teachers.calls import DaemonPool, Stopped, run_calls

logger = logging.getLogger(__name__)

# Enough for a label, or a short sentence around it ("The sentiment is positive.").
CLASSIFY_MAX_TOKENS = 16
_BACKOFF_CAP_SECONDS = 30.0
# A server asking for a longer pause (a daily quota) will not be helped by waiting inside one run.
_RETRY_AFTER_CAP_SECONDS = 300.0
_DETAIL_CHARS = 200
# Hosts of Hugging Face's own inference (Inference Endpoints): offline mode applies to them as to the Hub.
_HUGGING_FACE_HOSTS = ("huggingface.co", "hf.co", "huggingface.cloud", "hf.space")


class RemoteTeacher(Teacher):
    """One request per prompt, ``config.max_concurrency`` in flight (generation and classification alike), each
    retried on overload, network trouble or a malformed answer.

    ``backoff_base`` is the first retry's delay in seconds (doubling, with jitter, up to 30 s); tests make it small.
    """

    def __init__(self, config: TeacherConfig, *, backoff_base: float = 1.0) -> None:
        super().__init__()
        if config.base_url and config.provider:
            raise TeacherError("teacher: give either base_url (an OpenAI-compatible server) or provider, not both")
        if config.base_url and not config.base_url.startswith(("http://", "https://")):
            raise TeacherError(f"teacher.base_url must start with http:// or https://, got {config.base_url!r}")
        if config.prompt_format == "completion" and not config.base_url:
            raise TeacherError("teacher prompt_format 'completion' needs a base_url: an OpenAI-compatible server "
                               "with /v1/completions (Inference Providers take chat requests)")
        self.config = config
        self.model_id = config.model
        # "auto" means chat: whether a remote model has a chat template cannot be asked of the server.
        self.uses_chat = config.prompt_format != "completion"
        self._backoff_base = backoff_base
        self._target = config.base_url or f"provider {config.provider or 'auto'}"
        self._token = teacher_credential(config)
        self._client = InferenceClient(
            base_url=config.base_url,
            provider=config.provider,
            token=self._token,
            timeout=config.timeout,
        )
        # The recipe's own server: our own pooled client, which offline mode does not block (see the docstring).
        self._own_server = bool(config.base_url) and not _is_hugging_face_host(config.base_url)
        self._session = httpx2.Client(follow_redirects=True, timeout=config.timeout) if self._own_server else None
        route = "chat/completions" if self.uses_chat else "completions"
        self._url = _openai_url(config.base_url, route) if config.base_url else ""
        self._pool = DaemonPool(config.max_concurrency, "remote-teacher")
        self._stats_lock = threading.Lock()
        self._running: set[threading.Event] = set()  # the stop flags of the calls in progress (interrupt sets them)
        # A private generator: jitter drawn from worker threads must not disturb a seeded global `random`.
        self._jitter = random.Random()

    @property
    def batch_size(self) -> int:
        # Twice the concurrency: requests stay in flight while the slowest of a batch finishes.
        return self.config.max_concurrency * 2

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: SamplingParams,
        seed: int,
        on_answer: Callable[[int, str], None] | None = None,
        positions: Sequence[int] | None = None,
    ) -> list[str]:
        parameters: dict[str, Any] = {
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            # 1.0 means "off", and some servers (TGI) reject it.
            "top_p": sampling.top_p if sampling.top_p < 1.0 else None,
            # The OpenAI schema has no repetition_penalty and strict servers reject unknown fields; `transformers
            # serve` turns frequency_penalty back into repetition_penalty = 1 + frequency_penalty.
            "frequency_penalty": sampling.repetition_penalty - 1.0 if sampling.repetition_penalty != 1.0 else None,
        }
        # Each request's seed comes from the prompt's place in its batch, so re-asking part of a batch (a resumed
        # run) sends exactly the requests an uninterrupted run sent.
        places = list(positions) if positions is not None else list(range(len(prompts)))
        return self._run_all(
            [self._request(prompt, {**parameters, "seed": request_seed(seed, place)})
             for place, prompt in zip(places, prompts, strict=True)],
            on_answer,
        )

    def classify(self, prompts: Sequence[Prompt], labels: Sequence[str],
                 on_answer: Callable[[int, LabelScores], None] | None = None) -> list[LabelScores]:
        # Greedy and short: the answer is a label, read from the text (OpenAI-compatible servers differ too much in
        # logprobs support to rely on them; `transformers serve` ignores the field).
        forward = None if on_answer is None else (lambda index, answer: on_answer(index, label_scores(answer, labels)))
        answers = self._run_all(
            [self._request(prompt, {"temperature": 0.0, "max_tokens": CLASSIFY_MAX_TOKENS}) for prompt in prompts],
            forward,
        )
        return [label_scores(answer, labels) for answer in answers]

    def classify_streaming(self, prompts: Sequence[Prompt], labels: Sequence[str],
                           on_answer: Callable[[int, LabelScores], None] | None = None) -> list[LabelScores]:
        return self.classify(prompts, labels, on_answer)

    def interrupt(self) -> None:
        for stop in list(self._running):
            stop.set()

    def close(self) -> None:
        # Never waits for a request still running (a hung server): its daemon thread ends with its timeout.
        self._pool.shutdown()
        if self._session is not None:
            self._session.close()

    # --- requests ---------------------------------------------------------------------------------------------------

    def _request(self, prompt: Prompt, parameters: dict[str, Any]) -> dict[str, Any]:
        if self.uses_chat:
            request = {**parameters, "messages": prompt.as_openai_messages()}
            if prompt.response_schema is not None:
                # huggingface_hub takes its typed form, which each provider's helper rewrites into the provider's own.
                request["response_format"] = (response_format(prompt.response_schema) if self._session is not None
                                              else _typed_response_format(prompt.response_schema))
            return request
        return {**parameters, "prompt": prompt.completion, "stop": list(COMPLETION_STOPS)}

    def _run_all(self, requests: list[dict[str, Any]],
                 on_answer: Callable[[int, str], None] | None = None) -> list[str]:
        """Answers in request order, each handed to ``on_answer`` (in this thread) as it arrives, also those of
        requests in flight when the call ends early (:func:`hfsynth.teachers.calls.run_calls`)."""
        stop = threading.Event()
        self._running.add(stop)
        try:
            return run_calls(self._pool, [functools.partial(self._complete, request, stop) for request in requests],
                             stop, on_answer)
        finally:
            self._running.discard(stop)

    def _complete(self, request: dict[str, Any], stop: threading.Event) -> Answer:
        """One request with retries; its answer, with the tokens the server says it cost."""
        attempt = 0
        while True:
            if stop.is_set():
                raise Stopped
            try:
                text, usage = self._send(request)
                break
            except (HfHubHTTPError, httpx2.HTTPError, OfflineModeIsEnabled, ValueError, _MalformedAnswer) as error:
                failure = self._failure(error)
            attempts = f"; gave up after {attempt + 1} attempts" if attempt else ""
            if not failure.retryable or attempt >= self.config.max_retries:
                message = self._redact(f"remote teacher {self.config.model!r} at {self._target}: "
                                       f"{failure.message}{attempts}")
                with self._stats_lock:
                    self.stats.failures.append(message)
                stop.set()
                raise TeacherError(message)
            delay = self._retry_delay(attempt, failure.retry_after)
            with self._stats_lock:
                self.stats.retries += 1
            logger.info("%s: %s; retry %d of %d in %.1f s", self._target, self._redact(failure.message), attempt + 1,
                        self.config.max_retries, delay)
            if stop.wait(delay):
                raise Stopped
            attempt += 1
        reported = _usage(usage)
        with self._stats_lock:
            self.stats.calls += 1
            if reported is not None:
                self.stats.prompt_tokens += reported.prompt_tokens
                self.stats.completion_tokens += reported.completion_tokens
        return Answer(text, reported)

    def _send(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """One attempt: the answer text and the token usage the server reports."""
        if self._session is None:  # a provider or a Hugging Face endpoint: through huggingface_hub
            output = self._client.chat_completion(model=self.config.model, **request)
            return _chat_text(output), dict(output.usage or {})
        payload = {"model": self.config.model, **{key: value for key, value in request.items() if value is not None}}
        # token=False: no key means none sent (None would make huggingface_hub add the stored Hub token).
        response = self._session.post(self._url, json=payload, headers=build_hf_headers(token=self._token or False))
        hf_raise_for_status(response)
        if not self.uses_chat:
            return _completion_text(response)
        output = ChatCompletionOutput.parse_obj_as_instance(response.content)
        return _chat_text(output), dict(output.usage or {})

    def _failure(self, error: Exception) -> _Failure:
        if isinstance(error, OfflineModeIsEnabled):
            # Only Hugging Face's own inference gets here (a base_url server has its own client).
            return _Failure("HF_HUB_OFFLINE=1 blocks requests to Hugging Face; unset it for this teacher, or serve "
                            "the model yourself and give its base_url", retryable=False)
        if isinstance(error, HfHubHTTPError):
            response = error.response
            status = response.status_code
            detail = _server_detail(response)
            return _Failure(
                f"HTTP {status} {response.reason_phrase}" + (f": {detail}" if detail else ""),
                retryable=status in (408, 429) or (500 <= status < 600 and status != 501),
                retry_after=_retry_after_seconds(response.headers.get("retry-after")),
            )
        if isinstance(error, (InferenceTimeoutError, httpx2.TimeoutException)):
            return _Failure(f"no answer within the {self.config.timeout:g} s timeout", retryable=True)
        if isinstance(error, httpx2.HTTPError):
            return _Failure(f"request failed ({type(error).__name__}: {_one_line(str(error))})", retryable=True)
        if isinstance(error, (_MalformedAnswer, json.JSONDecodeError, UnicodeDecodeError)):
            # A 200 that is not an answer (a proxy's page, a cut-off body, no choices): as passing as a 502.
            return _Failure(f"malformed answer ({_one_line(str(error))})", retryable=True)
        # Any other ValueError: the client refusing the configuration (unknown provider, no token).
        return _Failure(f"{type(error).__name__}: {_one_line(str(error))}", retryable=False)

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float:
        # Exponential backoff with jitter, so that clients failing together do not retry together.
        backoff = min(_BACKOFF_CAP_SECONDS, self._backoff_base * 2**attempt) * self._jitter.uniform(0.5, 1.0)
        if retry_after is None:
            return backoff
        return max(backoff, min(retry_after, _RETRY_AFTER_CAP_SECONDS))

    def _redact(self, text: str) -> str:
        # Belt and braces: a server echoing the request headers back must not put the token into our messages.
        return text.replace(self._token, "<token>") if self._token else text


@dataclass(frozen=True)
class _Failure:
    message: str
    retryable: bool
    retry_after: float | None = None


class _MalformedAnswer(Exception):
    """A successful HTTP answer without what an OpenAI-compatible server sends."""


def teacher_credential(config: TeacherConfig) -> str | None:
    """The key a remote teacher sends: the variable ``api_key_env`` names; else the Hub token, when every server
    is a Hugging Face host (no ``base_url`` means the router); else none. A named variable that is unset is an
    error (the server would answer 401 to every request)."""
    if config.api_key_env:
        key = os.environ.get(config.api_key_env, "").strip()
        if not key:
            raise TeacherError(f"teacher.api_key_env: the environment variable {config.api_key_env} is not set: "
                               f"export it with the API key of {config.base_url or 'the provider'}")
        return key
    urls = config.base_url if isinstance(config.base_url, list) else [config.base_url] if config.base_url else []
    return get_token() if all(is_hugging_face_url(url) for url in urls) else None


def is_hugging_face_url(url: str) -> bool:
    """A Hugging Face host (the Hub, its router, Inference Endpoints, Spaces) or the Hub ``HF_ENDPOINT`` names: the
    only servers the Hub token goes to."""
    parsed, hub = urlparse(url), urlparse(constants.ENDPOINT)
    if (parsed.scheme, parsed.netloc.lower()) == (hub.scheme, hub.netloc.lower()):
        return True
    return _is_hugging_face_host(url)


def request_seed(batch_seed: int, index: int) -> int:
    """The seed of the ``index``-th request of a batch: reproducible, distinct per prompt, fits every server's int."""
    digest = hashlib.sha256(f"{batch_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's structured-output request for an answer following ``schema`` (vLLM, TGI, llama.cpp's server and
    OpenAI constrain decoding to it; a server that ignores it answers as the prompt asks)."""
    return {"type": "json_schema", "json_schema": {"name": "samples", "strict": True, "schema": schema}}


def _typed_response_format(schema: dict[str, Any]) -> ChatCompletionInputResponseFormatJSONSchema:
    """:func:`response_format` as ``InferenceClient.chat_completion`` types it."""
    openai = response_format(schema)["json_schema"]
    return ChatCompletionInputResponseFormatJSONSchema(type="json_schema", json_schema=ChatCompletionInputJSONSchema(
        name=openai["name"], schema=openai["schema"], strict=openai["strict"]))


def _chat_text(output: ChatCompletionOutput) -> str:
    if not output.choices or output.choices[0].message is None:
        raise _MalformedAnswer("the answer has no choices")
    return output.choices[0].message.content or ""


def _completion_text(response: httpx2.Response) -> tuple[str, dict[str, Any]]:
    """The text of a ``/v1/completions`` answer, cut where the next few-shot item would begin, and its usage."""
    body = response.json()  # json.JSONDecodeError on a body that is not JSON
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("text"), str):
        raise _MalformedAnswer("the answer has no choices with a text")
    usage = body.get("usage")
    return cut_completion(choices[0]["text"]), usage if isinstance(usage, dict) else {}


def _openai_url(base_url: str, route: str) -> str:
    """``base_url`` + ``/v1/<route>``, as huggingface_hub builds it for chat (a base_url that already ends in ``/v1``
    gets ``/<route>`` only; one that ends in the route is kept)."""
    parsed = urlparse(base_url)
    path = parsed.path.rstrip("/")
    if not path.endswith("/" + route):
        path += f"/{route}" if path.endswith("/v1") else f"/v1/{route}"
    return urlunparse(parsed._replace(path=path))


def _is_hugging_face_host(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower()
    return any(host == name or host.endswith("." + name) for name in _HUGGING_FACE_HOSTS)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_CHARS else text[:_DETAIL_CHARS] + "..."


def _server_detail(response: httpx2.Response) -> str:
    """The server's own error message (OpenAI, FastAPI or TGI style), on one short line; never an HTML page."""
    try:
        body: Any = response.json()
    except (ValueError, httpx2.ResponseNotRead):
        try:
            body = "" if "html" in response.headers.get("content-type", "") else response.text
        except httpx2.ResponseNotRead:
            body = ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        body = error or body.get("detail") or body.get("message") or ""
    return _one_line(str(body))


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: either a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _usage(usage: dict[str, Any]) -> Usage | None:
    """The server's ``usage`` as token counts; ``None`` when it reports none (the call is then counted, not priced)."""
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt, completion)
