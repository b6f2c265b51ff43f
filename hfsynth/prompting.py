"""How any model is asked about the task, and how its answer is read back: the classification prompt (the teacher
as a classifier, the in-context and SFT students), the label a free-text answer names, and where a base model's
completion ends. Generation's own prompt and list parsing build on it (:mod:`hfsynth.generation.prompts`).

A remote teacher answers in words ("The sentiment is positive."); :func:`parse_label` finds the one label it names. (A
local teacher never needs this: it scores the labels, see :mod:`hfsynth.language_model`.)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hfsynth.languages import language_name
from hfsynth.recipe.schema import Label, Recipe


@dataclass(frozen=True)
class Prompt:
    """One request, in both forms a teacher may need.

    ``messages`` (role, content) pairs go through the chat template of an instruction-tuned model; ``completion`` is
    the same request as a plain-text few-shot prompt for a base model (which continues it). A backend uses one.
    ``response_schema``: the JSON schema the chat answer must follow (``generation.structured: json``), sent by a
    remote teacher as ``response_format``; left out of the hash (a dict is not hashable; equal prompts still hash
    alike).
    """

    messages: tuple[tuple[str, str], ...]
    completion: str
    response_schema: dict[str, Any] | None = field(default=None, hash=False)

    def as_openai_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass(frozen=True)
class Usage:
    """The tokens one call cost: a server's reported ``usage``, or the local tokenizer's count."""

    prompt_tokens: int
    completion_tokens: int


class Answer(str):
    """A teacher's answer: its text (a ``str`` wherever text is expected) and the tokens it cost (``usage``, ``None``
    when the backend reports none). Only the teacher makes them; anything derived from the text is a plain ``str``."""

    usage: Usage | None

    def __new__(cls, text: str, usage: Usage | None = None) -> Answer:
        answer = super().__new__(cls, text)
        answer.usage = usage
        return answer

    def __reduce__(self) -> tuple[type[Answer], tuple[str, Usage | None]]:  # pickled with its usage (Ray)
        return Answer, (str(self), self.usage)


def usage_of(answer: str) -> Usage | None:
    return answer.usage if isinstance(answer, Answer) else None


@dataclass(frozen=True)
class LabelScores:
    """A teacher's classification of one text: a probability per label, or ``None`` where no label could be read."""

    probabilities: dict[str, float] | None
    raw: str = ""  # the teacher's answer as text (remote backends); kept for the unparseable-answer report
    usage: Usage | None = None  # the tokens the answer cost

    @property
    def label(self) -> str | None:
        if not self.probabilities:
            return None
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @classmethod
    def from_logprobs(cls, logprobs: dict[str, float], raw: str = "", usage: Usage | None = None) -> LabelScores:
        """Softmax over per-label log-likelihoods."""
        top = max(logprobs.values())
        exps = {label: math.exp(value - top) for label, value in logprobs.items()}
        total = sum(exps.values())
        return cls({label: value / total for label, value in exps.items()}, raw, usage)


#: Completion-style documents separate items with this marker, so a base model's continuation can be cut there.
ITEM_MARKER = "Text:"
# A base model continuing a few-shot document writes one item, then starts the next: its answer ends there.
COMPLETION_STOPS = ("\n\n", f"\n{ITEM_MARKER}")


def recipe_label(recipe: Recipe, name: str) -> Label:
    return next(label for label in recipe.labels if label.name == name)


def label_line(label: Label) -> str:
    return f"{label.name} ({label.description})" if label.description else label.name


def classification_prompt(
    recipe: Recipe, text: str, language: str, examples: Sequence[tuple[str, str]] = ()
) -> Prompt:
    """Ask for the label of ``text``; the answer (the assistant turn, or the document's continuation) is the label.

    ``examples`` are (text, label) demonstrations: real ones for a few-shot teacher, synthetic ones for the
    in-context student. The same prompt is used to fine-tune the SFT student, so train and test prompts agree.
    """
    task = recipe.task
    label_lines = "\n".join(f"- {label_line(label)}" for label in recipe.labels)
    instruction = (
        f"{task.description}\nLanguage: {language_name(language)}.\n"
        f"Answer with exactly one label from this list:\n{label_lines}"
    )
    messages: list[tuple[str, str]] = [("system", instruction)]
    for example_text, example_label in examples:
        messages += [("user", example_text), ("assistant", example_label)]
    messages.append(("user", text))

    names = ", ".join(recipe.label_names)
    document = [f"{task.description} Labels: {names}.", ""]
    for example_text, example_label in examples:
        document += [f"{ITEM_MARKER} {example_text}", f"Label: {example_label}", ""]
    document += [f"{ITEM_MARKER} {text}", "Label:"]
    return Prompt(messages=tuple(messages), completion="\n".join(document))


def prompt_text(prompt: Prompt, chat: bool) -> str:
    """What a backend reads of ``prompt``: its messages' contents (chat), or the document (completion)."""
    return "\n".join(content for _, content in prompt.messages) if chat else prompt.completion


def prompt_fingerprint(prompt: Prompt) -> str:
    """The prompt's identity in cache keys: a prompt without a schema keeps the fingerprint it had before schemas
    existed, so the answers already paid for stay in the cache."""
    content: tuple[Any, ...] = (prompt.messages, prompt.completion)
    if prompt.response_schema is not None:
        content += (json.dumps(prompt.response_schema, sort_keys=True),)
    return hashlib.sha256(repr(content).encode()).hexdigest()


def cut_completion(text: str) -> str:
    """A base model's continuation up to where its next few-shot item would begin (servers may run past a stop
    string or return it), stripped."""
    for stop in COMPLETION_STOPS:
        text = text.split(stop, 1)[0]
    return text.strip()



# --- the label a classification answer names -------------------------------------------------------------------------


def _normalize(text: str) -> str:
    """Case-folded words: punctuation, quotes, markdown and separators ("sci/tech", "sci-tech") become single spaces."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def parse_label(answer: str, labels: Sequence[str]) -> str | None:
    """The label a free-text answer names, or ``None`` when it names none or several.

    Tried in order: the exact label; the same words ignoring case, punctuation and quotes ("'Positive.'"); an answer
    that starts with a label ("Positive. The review praises..."); exactly one label among the answer's words ("The
    sentiment is positive"); an answer that is the start of exactly one label (cut short: "pos").
    """
    if answer.strip() in labels:
        return answer.strip()
    text = _normalize(answer)
    if not text:
        return None
    words = {label: _normalize(label) for label in labels}
    same = [label for label, normalized in words.items() if normalized == text]
    if same:
        return same[0] if len(same) == 1 else None

    leading = [label for label, normalized in words.items() if normalized and text.startswith(normalized + " ")]
    if leading:
        longest = max(len(words[label]) for label in leading)
        leading = [label for label in leading if len(words[label]) == longest]
        return leading[0] if len(leading) == 1 else None

    spans = {
        label: [match.span() for match in re.finditer(rf"(?<!\S){re.escape(normalized)}(?!\S)", text)]
        for label, normalized in words.items()
        if normalized
    }
    spans = {label: found for label, found in spans.items() if found}
    # "non toxic" also contains "toxic": a label seen only inside another label's occurrences does not count.
    mentioned = [
        label
        for label, found in spans.items()
        if any(
            not any(other != label and start_o <= start and end <= end_o
                    for other, other_found in spans.items() for start_o, end_o in other_found)
            for start, end in found
        )
    ]
    if mentioned:
        return mentioned[0] if len(mentioned) == 1 else None

    prefixed = [label for label, normalized in words.items() if normalized.startswith(text)]
    return prefixed[0] if len(prefixed) == 1 else None


def label_scores(answer: str, labels: Sequence[str]) -> LabelScores:
    """The parsed label as certain (one-hot over ``labels``), or no label, keeping the answer for the report."""
    label, usage = parse_label(answer, labels), usage_of(answer)
    if label is None:
        return LabelScores(None, raw=str(answer), usage=usage)
    return LabelScores({name: float(name == label) for name in labels}, raw=str(answer), usage=usage)
