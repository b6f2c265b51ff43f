"""Prompts carry what the papers put in them: label, language, length, diversity, seeds; both forms agree."""

from __future__ import annotations

import pytest

from hfsynth.generation.prompts import DIVERSITY_INSTRUCTIONS, GenerationRequest, generation_prompt
from hfsynth.prompting import ITEM_MARKER, classification_prompt, prompt_fingerprint
from hfsynth.recipes.files import parse_recipe


@pytest.fixture
def recipe():  # noqa: ANN201
    return parse_recipe({
        "name": "t",
        "task": {"name": "topic", "description": "Classify the topic of a sentence.", "domain": "news sentences"},
        "labels": [{"name": "sports", "description": "matches and athletes"}, {"name": "health"}],
        "languages": ["en", "sw"],
        "teacher": {"model": "smollm2-135m-instruct"},
        "generation": {"context": "You are a journalist.", "diversity_every": 2, "min_words": 5, "max_words": 20},
        "dataset": {"repo_id": "me/t"},
    })


def test_generation_prompt_names_label_language_length_and_count(recipe) -> None:  # noqa: ANN001
    prompt = generation_prompt(recipe, GenerationRequest("sports", "sw", 4, 0))
    text = prompt.messages[-1][1]
    assert "You are a journalist." in text
    assert "sports (matches and athletes)" in text
    assert "Swahili" in text and "4 different news sentences" in text and "5 to 20 words" in text
    assert not any(instruction in text for instruction in DIVERSITY_INSTRUCTIONS)
    # Base-model form: a document that ends where the model writes the next item.
    assert prompt.completion.endswith(ITEM_MARKER) and "Swahili" in prompt.completion


def test_diversity_instruction_every_nth_call_and_rotating(recipe) -> None:  # noqa: ANN001
    texts = [generation_prompt(recipe, GenerationRequest("sports", "en", 3, i)).messages[-1][1] for i in range(4)]
    assert DIVERSITY_INSTRUCTIONS[0] in texts[1] and DIVERSITY_INSTRUCTIONS[1] in texts[3]
    assert not any(d in texts[0] or d in texts[2] for d in DIVERSITY_INSTRUCTIONS)


def test_few_shot_seeds_are_shown_with_imitate_not_copy(recipe) -> None:  # noqa: ANN001
    request = GenerationRequest("health", "en", 2, 0, seed_examples=("A real example.", "Another one."))
    prompt = generation_prompt(recipe, request)
    assert "do not copy" in prompt.messages[-1][1] and "- A real example." in prompt.messages[-1][1]
    assert f"{ITEM_MARKER} Another one." in prompt.completion
    assert request.prompt_id == "en/health/0"


def test_classification_prompt_lists_labels_and_examples(recipe) -> None:  # noqa: ANN001
    prompt = classification_prompt(recipe, "The match ended 2-1.", "en", [("Flu cases rise.", "health")])
    roles = [role for role, _ in prompt.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert "- sports (matches and athletes)" in prompt.messages[0][1] and "- health" in prompt.messages[0][1]
    assert prompt.messages[2] == ("assistant", "health")
    assert prompt.completion.endswith(f"{ITEM_MARKER} The match ended 2-1.\nLabel:")


def test_fingerprint_changes_with_content(recipe) -> None:  # noqa: ANN001
    first = generation_prompt(recipe, GenerationRequest("sports", "en", 3, 0))
    same = generation_prompt(recipe, GenerationRequest("sports", "en", 3, 0))
    other = generation_prompt(recipe, GenerationRequest("health", "en", 3, 0))
    assert prompt_fingerprint(first) == prompt_fingerprint(same)
    assert prompt_fingerprint(first) != prompt_fingerprint(other)


def test_a_structured_prompt_asks_for_a_json_array_and_carries_its_schema(recipe) -> None:  # noqa: ANN001
    request = GenerationRequest("sports", "en", 3, 0)
    plain, structured = generation_prompt(recipe, request), generation_prompt(recipe, request, structured=True)
    assert 'a JSON object {"samples": [...]} whose list holds exactly 3 strings' in structured.messages[-1][1]
    assert "numbered" not in structured.messages[-1][1] and "numbered 1 to 3" in plain.messages[-1][1]
    assert structured.response_schema == {
        "type": "object", "required": ["samples"], "additionalProperties": False,
        "properties": {"samples": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3}}}
    assert plain.response_schema is None and structured.completion == plain.completion
