"""RemoteTeacher against a real ``transformers serve``, and against loopback stand-ins for overloaded, slow or dead
servers.

A stand-in is a tiny HTTP server: each POST gets the next scripted reply, which may relay the request to the real
server (optionally swapping the answer text inside the real response), so retries, concurrency and the request bodies
can be observed while the answers still come from the model.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from huggingface_hub import constants

from hfsynth.errors import TeacherError
from hfsynth.prompting import COMPLETION_STOPS, Prompt
from hfsynth.recipe.schema import SamplingParams, TeacherConfig
from hfsynth.teachers.remote import (
    CLASSIFY_MAX_TOKENS,
    RemoteTeacher,
    _openai_url,
    _retry_after_seconds,
    request_seed,
    teacher_credential,
)

if TYPE_CHECKING:
    from tests.serve_fixtures import ServedModel

FAKE_TOKEN = "hf_FakeTokenForRemoteTeacherTests0123456789"
FAKE_KEY = "sk-FakeKeyOfTheRecipesOwnServer0123456789"
SENTIMENT = ["positive", "negative"]


@pytest.fixture(autouse=True)
def client_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    # The suite may run with HF_HUB_OFFLINE=1; offline mode has its own tests below.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # No telemetry request to huggingface.co from the client's first request.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    """Everything the HTTP stack logs, at its most talkative (HF_DEBUG also logs each request as a curl command)."""
    monkeypatch.setattr(constants, "HF_DEBUG", True)
    for name in (None, "huggingface_hub", "httpx2", "httpcore2", "hfsynth"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def make_teacher(base_url: str, model: str = "HuggingFaceTB/SmolLM2-135M-Instruct", **settings: Any) -> RemoteTeacher:
    # Requests to the real server wait behind each other on 2 shared cores: a generous default timeout.
    config = TeacherConfig(backend="remote", model=model, base_url=base_url, **{"timeout": 120, **settings})
    return RemoteTeacher(config, backoff_base=0.01)


def chat(text: str) -> Prompt:
    return Prompt(messages=(("user", text),), completion=text)


def sentiment_prompt(review: str) -> Prompt:
    return chat(f"Is the sentiment of this review positive or negative? Answer with one word.\nReview: {review}")


# A base model's few-shot document (prompt_format: completion): it writes one more item.
SPORTS_DOCUMENT = Prompt(
    messages=(),
    completion="Sports news, one sentence per item.\n\nText: The Lakers beat the Celtics 102-99 on Sunday night.\n\n"
    "Text: Serena Williams won her first match in two years.\n\nText:",
)


def answer(text: str, prompt_format: str = "chat") -> Reply:
    """A well-formed OpenAI-style answer, chat or legacy completion."""
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
    choice |= {"message": {"role": "assistant", "content": text}} if prompt_format == "chat" else {"text": text}
    return Reply(body={"id": "answer", "object": "chat.completion" if prompt_format == "chat" else "text_completion",
                       "created": 0, "model": "m", "choices": [choice],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})


def assert_token_not_leaked(logs: pytest.LogCaptureFixture, *texts: str) -> None:
    # The HTTP stack's debug logging really was captured (by logger name: the text's format depends on who set up
    # logging first, Ray's format names no logger).
    assert any(record.name.startswith("httpcore2") for record in logs.records)
    for text in (logs.text, *texts):
        assert FAKE_TOKEN not in text


# --- a scripted loopback server ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    #: Sent instead of ``body`` as JSON: a garbled answer.
    raw: bytes | None = None
    delay: float = 0.0
    #: Relay the request to the upstream server and answer with its response ...
    forward: bool = False
    #: ... with the answer text replaced by this.
    content: str | None = None


FORWARD = Reply(forward=True)


class StandIn:
    """A loopback HTTP server answering the n-th POST with ``replies[n]`` (the last one repeats); records requests."""

    def __init__(self, replies: list[Reply], upstream: str | None = None) -> None:
        self.replies = replies
        self.upstream = upstream
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.authorizations: list[str | None] = []
        self.headers: list[dict[str, str]] = []
        self.arrivals: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def serve(self) -> None:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._closing.set()  # wakes delayed replies
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with owner._lock:
                    reply = owner.replies[min(len(owner.bodies), len(owner.replies) - 1)]
                    owner.bodies.append(json.loads(raw))
                    owner.paths.append(self.path)
                    owner.authorizations.append(self.headers.get("Authorization"))
                    owner.headers.append(dict(self.headers.items()))
                    owner.arrivals.append(time.monotonic())
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                try:
                    status, headers, body = owner._answer(reply, self.path, raw)
                finally:
                    # Done before the answer goes out: the client may send its next request as soon as it has it.
                    with owner._lock:
                        owner.in_flight -= 1
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _answer(self, reply: Reply, path: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        if reply.delay:
            self._closing.wait(reply.delay)
        if not reply.forward:
            return reply.status, reply.headers, reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        assert self.upstream is not None
        request = urllib.request.Request(self.upstream + path, data=raw, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        if reply.content is not None:
            answer = json.loads(body)
            choice = answer["choices"][0]
            if "message" in choice:
                choice["message"]["content"] = reply.content
            else:  # /v1/completions
                choice["text"] = reply.content
            body = json.dumps(answer).encode()
        return status, {}, body


@contextmanager
def stand_in(replies: list[Reply], upstream: str | None = None) -> Iterator[StandIn]:
    server = StandIn(replies, upstream)
    server.serve()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def closed_port_url() -> Iterator[str]:
    # Bound but not listening: connections are refused, and no other process can take the port meanwhile.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- against the real server ---------------------------------------------------------------------------------------


def test_generate_returns_one_answer_per_prompt_in_order(transformers_server: ServedModel) -> None:
    countries = ["France", "Germany", "Italy"]
    with make_teacher(transformers_server.base_url, transformers_server.model, max_concurrency=3) as teacher:
        # Greedy, so each answer names its own country and the order can be checked.
        answers = teacher.generate([chat(f"What is the capital of {country}?") for country in countries],
                                   SamplingParams(max_new_tokens=8, temperature=0.0), seed=0)
    assert [country in answer for country, answer in zip(countries, answers, strict=True)] == [True] * 3
    assert teacher.stats.calls == 3
    assert teacher.stats.prompt_tokens > 0 and teacher.stats.completion_tokens > 0
    assert teacher.stats.retries == 0 and teacher.stats.failures == []


def test_concurrency_is_bounded_and_each_request_carries_its_seed(transformers_server: ServedModel) -> None:
    prompts = [chat(f"Name a colour. ({index})") for index in range(4)]
    sampling = SamplingParams(max_new_tokens=2, temperature=0.7, top_p=0.9, repetition_penalty=1.2)
    with (
        stand_in([FORWARD], upstream=transformers_server.base_url) as fake,
        make_teacher(fake.base_url, transformers_server.model, max_concurrency=2) as teacher,
    ):
        assert teacher.batch_size == 4
        answers = teacher.generate(prompts, sampling, seed=7)
    assert len(answers) == 4 and all(answers)
    # The real server works on one request at a time, so requests pile up at the stand-in: as many as allowed.
    assert fake.max_in_flight == 2
    seeds = {body["messages"][0]["content"]: body["seed"] for body in fake.bodies}
    assert seeds == {prompt.messages[0][1]: request_seed(7, index) for index, prompt in enumerate(prompts)}
    body = fake.bodies[0]
    assert (body["model"], body["max_tokens"], body["temperature"], body["top_p"]) == (
        transformers_server.model, 2, 0.7, 0.9)
    assert body["frequency_penalty"] == pytest.approx(0.2)  # the server maps it back to repetition_penalty 1.2
    assert fake.authorizations == [None] * 4  # the Hub token is for Hugging Face hosts only


def test_the_same_seed_reproduces_sampled_answers(transformers_server: ServedModel) -> None:
    prompts = [chat("Write a short product review."), chat("Write a short movie review.")]
    sampling = SamplingParams(max_new_tokens=6, temperature=1.0)
    # One request at a time: `transformers serve` seeds torch when it reads a request, not when it generates it,
    # so concurrent requests would share (and reorder) the random stream.
    with make_teacher(transformers_server.base_url, transformers_server.model, max_concurrency=1) as teacher:
        first = teacher.generate(prompts, sampling, seed=3)
        again = teacher.generate(prompts, sampling, seed=3)
        other = teacher.generate(prompts, sampling, seed=4)
    assert first == again
    assert other != first  # the seed does reach the sampler (the server is not decoding greedily)


def test_classify_reads_labels_of_clear_inputs(transformers_server: ServedModel) -> None:
    reviews = ["I love this phone, it is fantastic and works perfectly!",
               "Terrible. It broke after one day and support never answered."]
    with make_teacher(transformers_server.base_url, transformers_server.model) as teacher:
        scores = teacher.classify([sentiment_prompt(review) for review in reviews], SENTIMENT)
    assert [score.label for score in scores] == SENTIMENT, [score.raw for score in scores]
    assert all(score.raw for score in scores)


def test_classify_reports_an_unparseable_answer_as_no_label(transformers_server: ServedModel) -> None:
    garbage = "\u00af\\_(\u30c4)_/\u00af who knows"
    with (
        stand_in([Reply(forward=True, content=garbage)], upstream=transformers_server.base_url) as fake,
        make_teacher(fake.base_url, transformers_server.model) as teacher,
    ):
        [score] = teacher.classify([sentiment_prompt("Great value for the price.")], SENTIMENT)
    assert score.label is None and score.probabilities is None
    assert score.raw == garbage
    assert (fake.bodies[0]["temperature"], fake.bodies[0]["max_tokens"]) == (0.0, CLASSIFY_MAX_TOKENS)


def test_completion_prompts_are_sent_to_v1_completions(transformers_server: ServedModel,
                                                      debug_logs: pytest.LogCaptureFixture) -> None:
    sampling = SamplingParams(max_new_tokens=24, temperature=0.0, top_p=0.9, repetition_penalty=1.1)
    with (
        stand_in([FORWARD], upstream=transformers_server.base_url) as fake,
        make_teacher(fake.base_url, transformers_server.model, prompt_format="completion") as teacher,
    ):
        assert not teacher.uses_chat
        [text] = teacher.generate([SPORTS_DOCUMENT], sampling, seed=5)
    assert fake.paths == ["/v1/completions"] and fake.authorizations == [None]
    body = fake.bodies[0]
    assert (body["model"], body["prompt"], body["stop"]) == (
        transformers_server.model, SPORTS_DOCUMENT.completion, list(COMPLETION_STOPS))
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (24, 0.0, 0.9, request_seed(5, 0))
    assert body["frequency_penalty"] == pytest.approx(0.1) and "messages" not in body
    # One item, cut where the next would begin, as the local teacher cuts a base model's continuation.
    assert len(text.split()) >= 3 and "\n\n" not in text and "Text:" not in text
    assert teacher.stats.calls == 1 and teacher.stats.completion_tokens > 0
    assert_token_not_leaked(debug_logs)


def test_completion_classification_reads_the_label_line(transformers_server: ServedModel) -> None:
    document = Prompt(messages=(), completion="Sentiment of reviews. Labels: positive, negative.\n\n"
                                              "Text: I love this phone!\nLabel:")
    with (
        # The real server's answer, its text swapped for a base model's typical run-on.
        stand_in([Reply(forward=True, content=" negative\n\nText: Another review")],
                 upstream=transformers_server.base_url) as fake,
        make_teacher(fake.base_url, transformers_server.model, prompt_format="completion") as teacher,
    ):
        [score] = teacher.classify([document], SENTIMENT)
    assert (score.label, score.raw) == ("negative", "negative")
    assert fake.paths == ["/v1/completions"]
    assert (fake.bodies[0]["temperature"], fake.bodies[0]["max_tokens"]) == (0.0, CLASSIFY_MAX_TOKENS)


def test_retries_through_503s_then_succeeds(transformers_server: ServedModel,
                                            debug_logs: pytest.LogCaptureFixture) -> None:
    unavailable = Reply(status=503, body={"error": "loading"})
    with (
        stand_in([unavailable, unavailable, FORWARD], upstream=transformers_server.base_url) as fake,
        make_teacher(fake.base_url, transformers_server.model, max_retries=3) as teacher,
    ):
        [answer] = teacher.generate([chat("Say hello.")], SamplingParams(max_new_tokens=3), seed=0)
    assert answer
    assert len(fake.bodies) == 3
    assert (teacher.stats.retries, teacher.stats.calls, teacher.stats.failures) == (2, 1, [])
    assert_token_not_leaked(debug_logs)


def test_honours_retry_after_on_429(transformers_server: ServedModel) -> None:
    too_many = Reply(status=429, headers={"Retry-After": "1"}, body={"error": "rate limited"})
    with (
        stand_in([too_many, FORWARD], upstream=transformers_server.base_url) as fake,
        make_teacher(fake.base_url, transformers_server.model, max_retries=1) as teacher,
    ):
        [answer] = teacher.generate([chat("Say hello.")], SamplingParams(max_new_tokens=3), seed=0)
    assert answer
    # The backoff is 10 ms: only Retry-After explains a one-second pause.
    assert fake.arrivals[1] - fake.arrivals[0] >= 0.95
    assert teacher.stats.retries == 1


# --- failing servers (no model needed) -----------------------------------------------------------------------------


def test_a_server_that_is_down_fails_fast_after_retries(closed_port_url: str,
                                                        debug_logs: pytest.LogCaptureFixture) -> None:
    started = time.monotonic()
    with make_teacher(closed_port_url, timeout=2, max_retries=2) as teacher, pytest.raises(TeacherError) as raised:
        teacher.generate([chat("hello")], SamplingParams(), seed=0)
    message = str(raised.value)
    assert time.monotonic() - started < 5
    assert closed_port_url in message and "HuggingFaceTB/SmolLM2-135M-Instruct" in message
    assert "ConnectError" in message and "gave up after 3 attempts" in message and "\n" not in message
    assert (teacher.stats.retries, teacher.stats.calls, teacher.stats.failures) == (2, 0, [message])
    assert_token_not_leaked(debug_logs, message)


def test_a_request_that_fails_for_good_stops_the_rest_of_its_batch() -> None:
    with (
        stand_in([Reply(status=404, body={"detail": "Not Found"})]) as fake,
        make_teacher(fake.base_url, max_concurrency=1) as teacher,
        pytest.raises(TeacherError, match="HTTP 404 Not Found: Not Found"),
    ):
        teacher.generate([chat(f"prompt {index}") for index in range(5)], SamplingParams(), seed=0)
    assert len(fake.bodies) == 1


def test_a_server_slower_than_the_timeout_is_retried_then_reported(debug_logs: pytest.LogCaptureFixture) -> None:
    started = time.monotonic()
    with (
        stand_in([Reply(delay=30)]) as fake,
        make_teacher(fake.base_url, timeout=0.5, max_retries=1) as teacher,
        pytest.raises(TeacherError) as raised,
    ):
        teacher.generate([chat("hello")], SamplingParams(), seed=0)
    assert time.monotonic() - started < 10
    assert len(fake.bodies) == 2
    message = str(raised.value)
    assert fake.base_url in message and "0.5 s timeout" in message and "gave up after 2 attempts" in message
    assert teacher.stats.retries == 1
    assert_token_not_leaked(debug_logs, message)


def test_a_client_error_is_not_retried_and_an_echoed_key_is_redacted(debug_logs: pytest.LogCaptureFixture,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # A server that quotes the request's Authorization header back in its error message.
    monkeypatch.setenv("SERVER_KEY", FAKE_KEY)
    echo = Reply(status=400, body={"error": {"message": f"bad request (Authorization: Bearer {FAKE_KEY})"}})
    with (
        stand_in([echo]) as fake,
        make_teacher(fake.base_url, max_retries=3, api_key_env="SERVER_KEY") as teacher,
        pytest.raises(TeacherError) as raised,
    ):
        teacher.classify([sentiment_prompt("fine")], SENTIMENT)
    message = str(raised.value)
    assert len(fake.bodies) == 1 and teacher.stats.retries == 0
    assert fake.authorizations == [f"Bearer {FAKE_KEY}"]  # the key was sent, and is in no message or log line
    assert "HTTP 400 Bad Request: bad request (Authorization: Bearer <token>)" in message
    assert_token_not_leaked(debug_logs, message)
    assert FAKE_KEY not in debug_logs.text


# --- whose key goes where -------------------------------------------------------------------------------------------


def test_a_recipes_own_server_never_receives_the_hub_token() -> None:
    with stand_in([answer("positive")]) as fake, make_teacher(fake.base_url, max_concurrency=2) as teacher:
        teacher.generate([chat("Say hello."), chat("Say hi.")], SamplingParams(max_new_tokens=3), seed=0)
        teacher.classify([sentiment_prompt("fine")], SENTIMENT)
    assert len(fake.bodies) == 3
    assert fake.authorizations == [None] * 3
    assert not any(FAKE_TOKEN in value for headers in fake.headers for value in headers.values())


def test_api_key_env_sends_that_key_and_never_the_hub_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVER_KEY", FAKE_KEY)
    with (
        stand_in([answer("positive")]) as fake,
        make_teacher(fake.base_url, api_key_env="MY_SERVER_KEY") as teacher,
    ):
        teacher.classify([sentiment_prompt("fine"), sentiment_prompt("bad")], SENTIMENT)
    assert fake.authorizations == [f"Bearer {FAKE_KEY}"] * 2
    assert not any(FAKE_TOKEN in value for headers in fake.headers for value in headers.values())


def test_an_unset_api_key_env_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VARIABLE", raising=False)
    with stand_in([answer("positive")]) as fake, pytest.raises(TeacherError) as raised:
        make_teacher(fake.base_url, api_key_env="NO_SUCH_KEY_VARIABLE")
    assert str(raised.value) == ("teacher.api_key_env: the environment variable NO_SUCH_KEY_VARIABLE is not set: "
                                 f"export it with the API key of {fake.base_url}")
    assert fake.bodies == []


def test_the_hub_token_goes_to_hugging_face_hosts_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def config(**settings: Any) -> TeacherConfig:
        return TeacherConfig(backend="remote", model="org/model", **settings)

    assert teacher_credential(config()) == FAKE_TOKEN  # an Inference Provider, through the router
    assert teacher_credential(config(base_url="https://x.us-east-1.aws.endpoints.huggingface.cloud/v1")) == FAKE_TOKEN
    assert teacher_credential(config(base_url=constants.ENDPOINT + "/v1")) == FAKE_TOKEN
    for elsewhere in ("http://127.0.0.1:9/v1", "https://huggingface.co.evil.example/v1", "https://evilhuggingface.co",
                      "http://localhost:8000/v1"):
        assert teacher_credential(config(base_url=elsewhere)) is None, elsewhere
    assert teacher_credential(config(base_url=["https://a.hf.space/v1", "http://127.0.0.1:9/v1"])) is None
    monkeypatch.setenv("OTHER_KEY", FAKE_KEY)
    assert teacher_credential(config(base_url="http://127.0.0.1:9/v1", api_key_env="OTHER_KEY")) == FAKE_KEY


@pytest.mark.parametrize("prompt_format", ["chat", "completion"])
@pytest.mark.parametrize(
    "malformed",
    [
        Reply(raw=b'{"id": "cut off mid-w'),  # not JSON: a truncated body
        Reply(raw=b"<html><body>upstream hiccup</body></html>"),  # a proxy's page, with a 200
        Reply(body={"id": "x", "object": "chat.completion", "created": 0}),  # no choices
        Reply(body={"choices": []}),
    ],
    ids=["truncated-json", "html-page", "no-choices", "empty-choices"],
)
def test_a_malformed_answer_is_retried_like_a_5xx(prompt_format: str, malformed: Reply,
                                                  debug_logs: pytest.LogCaptureFixture) -> None:
    with (
        stand_in([malformed, answer("Hello there.", prompt_format)]) as fake,
        make_teacher(fake.base_url, prompt_format=prompt_format, max_retries=2) as teacher,
    ):
        [text] = teacher.generate([chat("Say hello.")], SamplingParams(max_new_tokens=3), seed=0)
    assert text == "Hello there."
    assert len(fake.bodies) == 2 and fake.bodies[0] == fake.bodies[1]
    assert (teacher.stats.retries, teacher.stats.calls, teacher.stats.failures) == (1, 1, [])
    assert "malformed answer" in debug_logs.text
    assert_token_not_leaked(debug_logs)


def test_malformed_answers_use_the_retry_budget_then_fail(debug_logs: pytest.LogCaptureFixture) -> None:
    with (
        stand_in([Reply(raw=b"{not json")]) as fake,
        make_teacher(fake.base_url, max_retries=2) as teacher,
        pytest.raises(TeacherError) as raised,
    ):
        teacher.classify([sentiment_prompt("fine")], SENTIMENT)
    message = str(raised.value)
    assert len(fake.bodies) == 3 and teacher.stats.retries == 2
    assert fake.base_url in message and "malformed answer" in message and "gave up after 3 attempts" in message
    assert "\n" not in message
    assert_token_not_leaked(debug_logs, message)


def test_answers_are_handed_over_as_their_requests_complete() -> None:
    # The first request to arrive is answered last.
    with (
        stand_in([replace(answer("slow"), delay=1.0), answer("fast")]) as fake,
        make_teacher(fake.base_url, max_concurrency=3) as teacher,
    ):
        arrived: list[tuple[int, str, threading.Thread]] = []
        answers = teacher.generate(
            [chat(f"prompt {index}") for index in range(3)], SamplingParams(), seed=0,
            on_answer=lambda index, text: arrived.append((index, text, threading.current_thread())),
        )
    assert sorted(answers) == ["fast", "fast", "slow"]
    assert [text for _, text, _ in arrived] == ["fast", "fast", "slow"]
    assert all(answers[index] == text for index, text, _ in arrived)  # indices into the prompts, results in order
    assert sorted(index for index, _, _ in arrived) == [0, 1, 2]
    assert {thread for _, _, thread in arrived} == {threading.main_thread()}  # the caller's thread, never a worker


def test_answers_that_arrived_before_a_failure_were_handed_over() -> None:
    with (
        stand_in([answer("first"), Reply(status=404, body={"detail": "Not Found"})]) as fake,
        make_teacher(fake.base_url, max_concurrency=1) as teacher,
    ):
        arrived: list[tuple[int, str]] = []
        with pytest.raises(TeacherError, match="HTTP 404"):
            teacher.generate([chat(f"prompt {index}") for index in range(3)], SamplingParams(), seed=0,
                             on_answer=lambda index, text: arrived.append((index, text)))
    assert arrived == [(0, "first")] and len(fake.bodies) == 2


def test_answers_in_flight_when_a_request_fails_are_handed_over_too() -> None:
    # Two requests at once: the first to arrive is answered after 1 s, the other fails for good at once. The slow one
    # was paid for: it is waited for (no new request goes out meanwhile) and handed over before the error is raised.
    with (
        stand_in([replace(answer("positive"), delay=1.0), Reply(status=404, body={"detail": "Not Found"})]) as fake,
        make_teacher(fake.base_url, max_concurrency=2) as teacher,
    ):
        arrived: list[tuple[int, str | None]] = []
        with pytest.raises(TeacherError, match="HTTP 404"):
            teacher.classify([sentiment_prompt(f"review {index}") for index in range(4)], SENTIMENT,
                             on_answer=lambda index, scores: arrived.append((index, scores.label)))
    assert [label for _, label in arrived] == ["positive"] and len(fake.bodies) == 2


def test_classification_requests_run_with_bounded_concurrency() -> None:
    with (
        stand_in([replace(answer("Positive."), delay=0.3)]) as fake,
        make_teacher(fake.base_url, max_concurrency=3) as teacher,
    ):
        scores = teacher.classify([sentiment_prompt(f"review {index}") for index in range(7)], SENTIMENT)
    assert [score.label for score in scores] == ["positive"] * 7
    assert fake.max_in_flight == 3 and len(fake.bodies) == 7


def test_offline_mode_does_not_stop_a_server_of_ones_own(monkeypatch: pytest.MonkeyPatch,
                                                          transformers_server: ServedModel) -> None:
    # HF_HUB_OFFLINE=1 is about the Hub: a base_url server (here loopback) is reached all the same, chat and completion.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with make_teacher(transformers_server.base_url, model=transformers_server.model) as teacher:
        answers = teacher.generate([chat("Say hello.")], SamplingParams(max_new_tokens=8, temperature=0.0), seed=0)
    with make_teacher(transformers_server.base_url, model=transformers_server.model,
                      prompt_format="completion") as teacher:
        completions = teacher.generate([chat("The capital of France is")],
                                       SamplingParams(max_new_tokens=4, temperature=0.0), seed=0)
    assert answers[0].strip() and completions[0].strip() and teacher.stats.retries == 0


def test_offline_mode_refuses_a_provider_teacher_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    config = TeacherConfig(backend="remote", model="HuggingFaceTB/SmolLM2-135M-Instruct", provider="hf-inference",
                           max_retries=3)
    with RemoteTeacher(config, backoff_base=0.01) as teacher, pytest.raises(TeacherError, match="HF_HUB_OFFLINE=1"):
        teacher.generate([chat("hello")], SamplingParams(), seed=0)
    assert teacher.stats.retries == 0


def test_configuration_mistakes_are_teacher_errors() -> None:
    # base_url with provider, or without a scheme, is refused when the recipe's teacher section is validated.
    with pytest.raises((TeacherError, ValueError), match="not both|provider"):
        make_teacher("http://127.0.0.1:8000", provider="together")
    with pytest.raises((TeacherError, ValueError), match="http:// or https://"):
        make_teacher("127.0.0.1:8000")
    with pytest.raises(TeacherError, match="prompt_format 'completion' needs a base_url"):
        RemoteTeacher(TeacherConfig(backend="remote", model="org/base-model", prompt_format="completion"))


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/completions"),
     ("https://host/v1/", "https://host/v1/completions"),
     ("https://host/endpoint", "https://host/endpoint/v1/completions"),
     ("http://host:1/v1/completions?key=1", "http://host:1/v1/completions?key=1")],
)
def test_completions_url(base_url: str, expected: str) -> None:
    assert _openai_url(base_url, "completions") == expected
    assert _openai_url(base_url.replace("/v1/completions", "/v1/chat/completions"), "chat/completions") == \
        expected.replace("/v1/completions", "/v1/chat/completions")


# --- pure helpers --------------------------------------------------------------------------------------------------


def test_request_seeds_are_reproducible_and_distinct() -> None:
    seeds = [request_seed(42, index) for index in range(100)]
    assert seeds == [request_seed(42, index) for index in range(100)]
    assert len(set(seeds)) == 100 and request_seed(43, 0) != seeds[0]
    assert all(0 <= seed < 2**31 for seed in seeds)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert _retry_after_seconds("2.5") == 2.5
    in_a_minute = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 55 <= _retry_after_seconds(in_a_minute) <= 61
    assert _retry_after_seconds("soon") is None and _retry_after_seconds(None) is None


def test_answers_paid_before_a_failure_are_in_the_cache_and_not_paid_again(tmp_path: Path) -> None:
    # A batch of 8 calls against a faulty server: 7 answered, then one fails for good (4xx: no retry).
    from hfsynth.cache import CallCache
    from hfsynth.teachers.cached import CachedTeacher
    from tests.student_helpers import make_recipe

    recipe = make_recipe()
    prompts = [chat(f"prompt {index}") for index in range(8)]
    ids = [f"call-{index}" for index in range(8)]
    cache_path = tmp_path / "teacher_calls.sqlite"
    replies = [answer(f"text {index}") for index in range(7)] + [Reply(status=404, body={"detail": "Not Found"})]
    with (
        stand_in(replies) as fake,
        make_teacher(fake.base_url, max_concurrency=1) as teacher,
        CallCache(cache_path) as cache,
        pytest.raises(TeacherError, match="HTTP 404"),
    ):
        CachedTeacher(teacher, cache).generate(prompts, ids, recipe.teacher.sampling)
    assert len(fake.bodies) == 8
    with CallCache(cache_path) as cache:
        assert len(cache) == 7  # every answer stored as it arrived, not only whole batches

    with (
        stand_in([answer("the last one")]) as fake,
        make_teacher(fake.base_url, max_concurrency=1) as teacher,
        CallCache(cache_path) as cache,
    ):
        answers, cached = CachedTeacher(teacher, cache).generate(prompts, ids, recipe.teacher.sampling)
    assert len(fake.bodies) == 1 and cached == 7  # only the unanswered call is paid for
    assert answers == [f"text {index}" for index in range(7)] + ["the last one"]
