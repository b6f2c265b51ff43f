"""Reading a teacher's generation answers: each becomes individual samples (a classification answer's label is read
by :mod:`hfsynth.prompting`).

Teachers answer with numbered or bulleted lists, quoted lines, a chatty preamble ("Sure! Here are 5 ..."),
or, for base models, a document continuation with item markers. The paper strips quotes and numbering; so do we.

"""

from __future__ import annotations

import re

from hfsynth.prompting import ITEM_MARKER

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
