"""Reading a teacher's free-text answers: generation answers become individual samples, classification answers a
label.

Generation: teachers answer with numbered or bulleted lists, quoted lines, a chatty preamble ("Sure! Here are 5 ..."),
or, for base models, a document continuation with item markers. The paper strips quotes and numbering; so do we.

Classification: a remote teacher answers in words ("The sentiment is positive."); :func:`parse_label` finds the one
label it names. (A local teacher never needs this: it scores the labels, see :mod:`hfsynth.language_model`.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hfsynth.prompts import ITEM_MARKER
from hfsynth.teachers.base import LabelScores

# A base model continuing a few-shot document writes one item, then starts the next: its answer ends there.
COMPLETION_STOPS = ("\n\n", f"\n{ITEM_MARKER}")

_LIST_PREFIX = re.compile(r"^\s*(?:\(?\d{1,3}[.):\]]|[-*\u2022\u2013]|#{1,6})\s*")
_TEXT_PREFIX = re.compile(r"^\s*(?:text|sample|example|review|sentence)\s*\d*\s*[:\-]\s*", re.IGNORECASE)
_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e`"
# A line that talks about the answer rather than being part of it.
_PREAMBLE = re.compile(
    r"^\s*(?:sure|certainly|of course|here (?:are|is)|okay|ok[,!.]|below are|i hope|note:|these texts|let me)",
    re.IGNORECASE,
)
_LABEL_LINE = re.compile(r"^\s*(?:label|labels|language|topic)\s*:", re.IGNORECASE)


def clean_sample(line: str) -> str:
    """Strip list numbering, bullets, "Text 3:" prefixes, wrapping quotes and stray whitespace."""
    text = _LIST_PREFIX.sub("", line, count=1)
    text = _TEXT_PREFIX.sub("", text, count=1)
    text = text.strip()
    text = re.sub(r"^\*\*(.+)\*\*$", r"\1", text)  # markdown bold around the whole text
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return " ".join(text.split())


def parse_list_answer(answer: str) -> list[str]:
    """Samples from a chat answer: one per non-empty line, preamble and sign-off lines dropped."""
    samples = []
    for line in answer.splitlines():
        if not line.strip() or _PREAMBLE.match(line) or _LABEL_LINE.match(line):
            continue
        if line.rstrip().endswith(":") and not _LIST_PREFIX.match(line):
            continue  # "Here they are:" style headings
        text = clean_sample(line)
        if text:
            samples.append(text)
    return samples


def parse_completion_answer(answer: str) -> list[str]:
    """Samples from a base model's continuation of a ``Text:`` document: one per item, label lines ignored."""
    samples = []
    for chunk in answer.split(ITEM_MARKER):
        # An item ends at its first blank line; anything after it (headers, labels) is not part of the text.
        item = chunk.strip().split("\n\n", 1)[0]
        text = clean_sample(" ".join(line for line in item.splitlines() if not _LABEL_LINE.match(line)))
        if text:
            samples.append(text)
    return samples


def parse_answer(answer: str, chat: bool) -> list[str]:
    return parse_list_answer(answer) if chat else parse_completion_answer(answer)


def cut_completion(text: str) -> str:
    """A base model's continuation up to where its next few-shot item would begin (servers may run past a stop
    string or return it), stripped."""
    for stop in COMPLETION_STOPS:
        text = text.split(stop, 1)[0]
    return text.strip()


# --- a label out of a classification answer -------------------------------------------------------------------------


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
    label = parse_label(answer, labels)
    if label is None:
        return LabelScores(None, raw=answer)
    return LabelScores({name: float(name == label) for name in labels}, raw=answer)
