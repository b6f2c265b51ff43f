"""``generation.structured: json``: a chat teacher is asked for a JSON object holding exactly ``samples_per_call``
strings and a remote one gets its schema as OpenAI's ``response_format``; JSON answers become samples, and a server that
ignores ``response_format`` still yields samples (its answers are read as lines). Unstructured prompts keep the cache
keys they always had. The generation stage runs against a real OpenAI-compatible server on loopback
(:mod:`tests.openai_server`).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import constants

from hfsynth.generation.curation import ChatterCheck, instruction_texts
from hfsynth.generation.parsing import parse_answer
from hfsynth.generation.prompts import GenerationRequest, generation_prompt, samples_schema
from hfsynth.generation.stage import generate_samples
from hfsynth.prompting import prompt_fingerprint
from hfsynth.recipe.schema import Recipe
from hfsynth.recipes.files import parse_recipe
from hfsynth.teachers import remote
from hfsynth.teachers.remote import RemoteTeacher
from tests.openai_server import OpenAIServer, openai_server

LABELS = ["sports", "health", "travel"]
PER_CALL = 3
SCHEMA = {"type": "object", "required": ["samples"], "additionalProperties": False, "properties": {
    "samples": {"type": "array", "items": {"type": "string"}, "minItems": PER_CALL, "maxItems": PER_CALL}}}
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
    """Every text the server wrote, JSON object or numbered list."""
    texts = set()
    for body in server.bodies:
        answer = server.answer_text(body)
        lines = json.loads(answer)["samples"] if answer.startswith("{") else [line.split(". ", 1)[1] for line in
                                                                                answer.splitlines()]
        texts.update(lines)
    return texts


def test_the_request_carries_the_schema_exactly_when_structured(tmp_path: Path) -> None:
    with openai_server(LABELS) as server:
        run_generation(server, tmp_path, "json")
    assert len(server.bodies) == 6  # 3 labels x 2 calls of 3
    assert all(body["response_format"] == RESPONSE_FORMAT for body in server.bodies)
    assert all(f"whose list holds exactly {PER_CALL} strings" in body["messages"][-1]["content"]
               for body in server.bodies)

    with openai_server(LABELS) as server:
        run_generation(server, tmp_path, "none")
    assert len(server.bodies) == 6
    assert not any("response_format" in body for body in server.bodies)
    assert all(f"numbered 1 to {PER_CALL}" in body["messages"][-1]["content"] for body in server.bodies)


def test_json_answers_become_samples(tmp_path: Path) -> None:
    with openai_server(LABELS) as server:
        result = run_generation(server, tmp_path, "json")
    assert all(server.answer_text(body).startswith('{"samples": [') for body in server.bodies)
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


def test_a_hugging_face_teacher_sends_the_schema_through_huggingface_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Inference Endpoint or provider goes through ``InferenceClient.chat_completion``, which turns the typed
    ``response_format`` into the server's own form (TGI's): the real client, against the real loopback server, which
    hfsynth here takes for a Hugging Face host."""
    monkeypatch.setattr(remote, "_HUGGING_FACE_HOSTS", ("127.0.0.1",))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with openai_server(LABELS) as server:
        recipe = make_recipe(server.base_url, "json")
        prompt = generation_prompt(recipe, GenerationRequest("sports", "en", PER_CALL, 0), structured=True)
        with RemoteTeacher(recipe.teacher) as teacher:
            assert teacher._session is None  # the huggingface_hub client, not hfsynth's own
            [answer] = teacher.generate([prompt], recipe.teacher.sampling, seed=0)
    assert server.bodies[0]["response_format"] == {"type": "json_object", "value": SCHEMA}
    assert len(parse_answer(answer, chat=True, structured=True)) == PER_CALL
