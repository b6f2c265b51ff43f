"""``generation.structured: json``: a chat teacher is asked for a JSON array of exactly ``samples_per_call`` strings and
a remote one gets its schema as OpenAI's ``response_format``; JSON answers become samples, and a server that ignores
``response_format`` still yields samples (its answers are read as lines). Unstructured prompts keep the cache keys
they always had. The generation stage runs against a real OpenAI-compatible server on loopback
(:mod:`tests.openai_server`).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import ChatCompletionInputResponseFormatJSONSchema, InferenceClient, constants

from hfsynth.generation.curation import ChatterCheck, instruction_texts
from hfsynth.generation.prompts import GenerationRequest, generation_prompt, samples_schema
from hfsynth.generation.stage import generate_samples
from hfsynth.prompting import prompt_fingerprint
from hfsynth.recipe.schema import Recipe
from hfsynth.recipes.files import parse_recipe
from hfsynth.teachers.remote import RemoteTeacher
from tests.openai_server import OpenAIServer, openai_server

LABELS = ["sports", "health", "travel"]
PER_CALL = 3
SCHEMA = {"type": "array", "items": {"type": "string"}, "minItems": PER_CALL, "maxItems": PER_CALL}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "samples", "strict": True, "schema": SCHEMA}}


def make_recipe(base_url: str, structured: str = "none", prompt_format: str = "chat") -> Recipe:
    return parse_recipe({
        "name": "structured",
        "task": {"name": "topic", "description": "Classify the topic of a sentence."},
        "labels": [{"name": label} for label in LABELS],
        "languages": ["en"],
        "teacher": {"backend": "remote", "model": "test-org/teacher", "base_url": base_url, "max_retries": 0,
                    "prompt_format": prompt_format, "sampling": {"max_new_tokens": 64}},
        "generation": {"samples_per_label": 6, "samples_per_call": PER_CALL, "top_up_rounds": 0, "min_words": 3,
                       "max_words": 30, "structured": structured},
        "curation": {"min_words": 3, "language_id": False},
        "dataset": {"repo_id": "me/structured"},
    })


def run_generation(server: OpenAIServer, tmp_path: Path, structured: str) -> Any:
    recipe = make_recipe(server.base_url, structured)
    with RemoteTeacher(recipe.teacher, backoff_base=0.01) as teacher:
        return generate_samples(recipe, teacher, tmp_path / f"{structured}.sqlite")


def answered_texts(server: OpenAIServer) -> set[str]:
    """Every text the server wrote, JSON array or numbered list."""
    texts = set()
    for body in server.bodies:
        answer = server.answer_text(body)
        lines = json.loads(answer) if answer.startswith("[") else [line.split(". ", 1)[1] for line in
                                                                      answer.splitlines()]
        texts.update(lines)
    return texts


def test_the_request_carries_the_schema_exactly_when_structured(tmp_path: Path) -> None:
    with openai_server(LABELS) as server:
        run_generation(server, tmp_path, "json")
    assert len(server.bodies) == 6  # 3 labels x 2 calls of 3
    assert all(body["response_format"] == RESPONSE_FORMAT for body in server.bodies)
    assert all(f"a JSON array of exactly {PER_CALL} strings" in body["messages"][-1]["content"]
               for body in server.bodies)

    with openai_server(LABELS) as server:
        run_generation(server, tmp_path, "none")
    assert len(server.bodies) == 6
    assert not any("response_format" in body for body in server.bodies)
    assert all(f"numbered 1 to {PER_CALL}" in body["messages"][-1]["content"] for body in server.bodies)


def test_json_answers_become_samples(tmp_path: Path) -> None:
    with openai_server(LABELS) as server:
        result = run_generation(server, tmp_path, "json")
    assert all(server.answer_text(body).startswith("[") for body in server.bodies)
    assert result.parsed == 18 and len(result.samples) == 18
    assert {sample.text for sample in result.samples} == answered_texts(server)


def test_a_server_that_ignores_response_format_still_yields_samples(tmp_path: Path) -> None:
    with openai_server(LABELS, structured=False) as server:
        result = run_generation(server, tmp_path, "json")
    assert all(body["response_format"] == RESPONSE_FORMAT for body in server.bodies)
    # Numbered lists of 4, read as lines and cut to the 3 texts each call asked for.
    assert all(server.answer_text(body).startswith("1. ") for body in server.bodies)
    assert result.parsed == 18 and len(result.samples) == 18
    assert {sample.text for sample in result.samples} <= answered_texts(server)


def test_an_echoed_json_instruction_is_chatter() -> None:
    def chatter(structured: str) -> ChatterCheck:
        recipe = make_recipe("http://127.0.0.1:9/v1", structured)
        return ChatterCheck.for_task(recipe.label_names, instruction_texts(recipe),
                                     recipe.curation.instruction_echo_share)

    echo = "Answer with only a JSON array of exactly three strings, one text per string."
    assert chatter("none").why(echo) is None
    assert chatter("json").why(echo).startswith("echoes the instructions")


def test_a_completion_teacher_is_never_asked_for_json(tmp_path: Path) -> None:
    """Structured output is for chat teachers: a base model gets the same document, hence the same cache keys."""
    recipe = make_recipe("http://127.0.0.1:9/v1", "json", prompt_format="completion")
    with RemoteTeacher(recipe.teacher) as teacher:
        request = teacher._request(generation_prompt(recipe, GenerationRequest("sports", "en", PER_CALL, 0)), {})
    assert "response_format" not in request and "prompt" in request


def test_unstructured_prompts_keep_their_fingerprint() -> None:
    recipe = make_recipe("http://127.0.0.1:9/v1")
    request = GenerationRequest("sports", "en", PER_CALL, 0)
    plain, structured = generation_prompt(recipe, request), generation_prompt(recipe, request, structured=True)
    assert plain.response_schema is None and structured.response_schema == SCHEMA == samples_schema(PER_CALL)
    # The fingerprint every cache key was made of before prompts had a schema.
    assert prompt_fingerprint(plain) == hashlib.sha256(repr((plain.messages, plain.completion)).encode()).hexdigest()
    assert prompt_fingerprint(structured) != prompt_fingerprint(plain)
    assert structured.completion == plain.completion
    # Prompts cross process boundaries (Ray) and are hashed with the units that carry them.
    assert pickle.loads(pickle.dumps(structured)) == structured
    assert hash(structured) == hash(pickle.loads(pickle.dumps(structured)))


def test_a_provider_teacher_passes_the_schema_to_huggingface_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Inference Endpoint goes through ``InferenceClient.chat_completion``: the typed ``response_format``, which
    its provider helper turns into the server's own form (TGI's grammar)."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    sent: list[Any] = []
    passed: list[Any] = []
    chat_completion = InferenceClient.chat_completion

    def record_arguments(client: InferenceClient, *args: Any, **kwargs: Any) -> Any:
        passed.append(kwargs.get("response_format"))
        return chat_completion(client, *args, **kwargs)

    def answer(client: InferenceClient, request_parameters: Any, *, stream: bool = False) -> bytes:
        sent.append(request_parameters.json)
        return json.dumps({"id": "a", "object": "chat.completion", "created": 0, "model": "m",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": '["a b c"]'}}]}).encode()

    monkeypatch.setattr(InferenceClient, "chat_completion", record_arguments)
    monkeypatch.setattr(InferenceClient, "_inner_post", answer)
    recipe = make_recipe("https://my-teacher.endpoints.huggingface.cloud", "json")
    prompt = generation_prompt(recipe, GenerationRequest("sports", "en", PER_CALL, 0), structured=True)
    with RemoteTeacher(recipe.teacher) as teacher:
        assert teacher.generate([prompt], recipe.teacher.sampling, seed=0) == ['["a b c"]']
    assert isinstance(passed[0], ChatCompletionInputResponseFormatJSONSchema)
    assert passed[0].json_schema.schema == SCHEMA and passed[0].json_schema.strict
    assert sent[0]["response_format"] == {"type": "json_object", "value": SCHEMA}
