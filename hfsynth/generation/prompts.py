"""The generation prompt, rendered both as chat messages and as a plain few-shot document (the classification
prompt, shared with the students, is :mod:`hfsynth.prompting`).

Generation follows Li et al. (2023): a context prompt sets the scene, a generation prompt fixes label, language,
style and length, and every few calls a diversity instruction asks for something unlike what came before. Few-shot
generation adds real labelled examples with the instruction to imitate but not copy them. Base models get the same
request as a document to continue, with examples in the target language (chat-style instructions mean nothing to
them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hfsynth.languages import language_name
from hfsynth.prompting import ITEM_MARKER, Prompt, label_line, recipe_label
from hfsynth.recipe.schema import Recipe

# Rotated through so that consecutive calls ask for different things (Li et al.'s diversity prompt).
DIVERSITY_INSTRUCTIONS = (
    "Make them clearly different from typical examples: vary the topic details, the people and places mentioned.",
    "Vary sentence structure and length; avoid starting two texts the same way.",
    "Use a different register than usual: some formal, some casual.",
    "Cover less common situations that still clearly belong to this label.",
)

@dataclass(frozen=True)
class GenerationRequest:
    """What one teacher call should produce: ``count`` texts for ``label`` in ``language``."""

    label: str
    language: str
    count: int
    call_index: int  # position of this call among the calls for (label, language); drives diversity rotation
    seed_examples: tuple[str, ...] = ()  # real texts of this label (few-shot), shown to be imitated, not copied
    #: Error-driven generation (hfsynth.generation.feedback): the round (0: the first pass), the real validation texts
    #: of this label a student mistook (with the label each was taken for: S3), synthetic demonstrations (ProGen).
    feedback_round: int = 0
    errors: tuple[tuple[str, str], ...] = ()
    demonstrations: tuple[str, ...] = ()

    @property
    def prompt_id(self) -> str:
        """Stable id recorded with every sample made from this request (provenance)."""
        round_tag = f"feedback{self.feedback_round}/" if self.feedback_round else ""
        return f"{round_tag}{self.language}/{self.label}/{self.call_index}"

    @property
    def examples(self) -> tuple[str, ...]:
        """Every text the prompt shows the teacher, as items of a completion document too."""
        return self.seed_examples + tuple(text for text, _ in self.errors) + self.demonstrations


def samples_schema(count: int) -> dict[str, Any]:
    """The JSON schema of a structured generation answer: an object whose one field, ``samples``, is an array of
    exactly ``count`` texts (OpenAI's strict mode wants an object at the root; vLLM, TGI and llama.cpp take it too)."""
    texts = {"type": "array", "items": {"type": "string"}, "minItems": count, "maxItems": count}
    return {"type": "object", "properties": {"samples": texts}, "required": ["samples"], "additionalProperties": False}


def generation_prompt(recipe: Recipe, request: GenerationRequest, structured: bool = False) -> Prompt:
    """The request in both forms. ``structured`` (``generation.structured: json`` for a chat teacher): the chat form
    asks for a JSON object holding the texts and carries its schema; the base model's document is the same either
    way."""
    task, config = recipe.task, recipe.generation
    label = recipe_label(recipe, request.label)
    language = language_name(request.language)
    domain = task.domain or "texts"

    diversity = ""
    if config.diversity_every and request.call_index % config.diversity_every == config.diversity_every - 1:
        diversity = DIVERSITY_INSTRUCTIONS[(request.call_index // config.diversity_every) % len(DIVERSITY_INSTRUCTIONS)]

    lines = [config.context] if config.context else []
    lines.append(f"Task: {task.description}")
    lines.append(f"Write {request.count} different {domain} in {language} with the label: {label_line(label)}.")
    lines.append(f"Each text should be {config.min_words} to {config.max_words} words long.")
    if config.style:
        lines.append(f"Style: {config.style}")
    if request.seed_examples:
        lines.append("Here are real examples with this label. Imitate their kind and tone, but do not copy them:")
        lines.extend(f"- {example}" for example in request.seed_examples)
    if request.errors:  # S3's extrapolation: new texts like those a small model got wrong
        lines.append("A classifier took these real texts with this label for another label. Write new, different "
                     "texts like them, whose label is unmistakable; do not copy them:")
        lines.extend(f"- {text} (taken for: {taken_for})" for text, taken_for in request.errors)
    if request.demonstrations:  # ProGen: the synthetic examples that helped a small model most
        lines.append("Here are good examples with this label. Write new, different texts like them; do not copy "
                     "them:")
        lines.extend(f"- {example}" for example in request.demonstrations)
    if diversity:
        lines.append(diversity)
    if structured:
        lines.append(f'Answer with only a JSON object {{"samples": [...]}} whose list holds exactly {request.count} '
                     f"strings, one text per string, all in "
                     f"{language}.")
    else:
        lines.append(f"Write only the texts, one per line, numbered 1 to {request.count}, all in {language}.")
    messages = (("user", "\n".join(lines)),)

    # Base model: a document of labelled items it continues with one more item of the requested label.
    header = f"{task.description} Language: {language}. Label: {label.name}."
    document = [header, ""]
    for example in request.examples:
        document += [f"{ITEM_MARKER} {example}", ""]
    document.append(ITEM_MARKER)
    return Prompt(messages=messages, completion="\n".join(document),
                  response_schema=samples_schema(request.count) if structured else None)
