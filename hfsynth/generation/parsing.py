"""Reading a teacher's generation answers: each becomes individual samples (a classification answer's label is read
by :mod:`hfsynth.prompting`).

Teachers answer with numbered or bulleted lists, quoted lines, a chatty preamble ("Sure! Here are 5 ..."),
or, for base models, a document continuation with item markers. The paper strips quotes and numbering; so do we.
Asked for JSON (``generation.structured: json``), a chat teacher answers with an array of strings, which needs no
guessing where a text ends or whether a line is chatter.
"""

from __future__ import annotations

import json
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
# Structured answers: a fenced block (its closing fence may be cut off), where JSON starts (at a line's start), and a
# complete JSON string literal.
_FENCE = re.compile(r"```(?:json)?[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
_JSON_START = re.compile(r"^[ \t]*[\[{]", re.MULTILINE)
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')


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


def parse_json_answer(answer: str) -> list[str] | None:
    """Samples from a structured answer: an object's one list of strings (what the schema asks for) or a bare JSON
    array, possibly in a code fence or after a preamble line; an array cut short (the token budget) keeps its complete
    strings. ``None`` when the answer holds no such strings ("[1] A text." is a numbered line), so that it can be read
    as lines."""
    fenced = _FENCE.search(answer)
    text = fenced.group(1) if fenced else answer
    start = _JSON_START.search(text)
    if start is None:
        return None
    text = text[start.end() - 1 :]
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError:
        # Cut short by the token budget: the complete strings of its list (after its "[", past an object's key).
        opening = text.find("[")
        value = [json.loads(literal) for literal in _STRING_LITERAL.findall(text[opening:])] if opening >= 0 else None
    if isinstance(value, dict):
        lists = [item for item in value.values() if isinstance(item, list)]
        value = lists[0] if len(lists) == 1 else None
    strings = [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
    if not strings:
        return None
    return [sample for sample in map(clean_sample, strings) if sample]


def parse_answer(answer: str, chat: bool, structured: bool = False) -> list[str]:
    """The samples of one generation answer; ``structured`` (a chat teacher asked for JSON) reads JSON first and
    falls back to lines, for a server that ignored ``response_format`` and a model that ignored the instruction."""
    if not chat:
        return parse_completion_answer(answer)
    if structured:
        samples = parse_json_answer(answer)
        if samples is not None:
            return samples
    return parse_list_answer(answer)
