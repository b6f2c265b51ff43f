"""Teacher answers come in many shapes; each must become clean, separate samples."""

from __future__ import annotations

import pytest

from hfsynth.generation.parsing import (
    clean_sample,
    parse_answer,
    parse_completion_answer,
    parse_json_answer,
    parse_list_answer,
)
from hfsynth.prompting import cut_completion, label_scores, parse_label

SENTIMENT = ["positive", "negative"]


def test_numbered_list_with_preamble_and_signoff() -> None:
    answer = (
        "Sure! Here are 3 sentences about sports:\n\n"
        "1. The striker scored twice in the final minutes.\n"
        '2) "Serena Williams won her first match in two years."\n'
        "3. **The marathon was cancelled because of the heat.**\n\n"
        "I hope these help!"
    )
    assert parse_list_answer(answer) == [
        "The striker scored twice in the final minutes.",
        "Serena Williams won her first match in two years.",
        "The marathon was cancelled because of the heat.",
    ]


def test_bullets_and_text_prefixes() -> None:
    answer = ("- Text 1: A new vaccine was approved.\n* \u201cDoctors warn about the flu season.\u201d\n"
              "\u2022 Sample: Eat more fibre.")
    assert parse_list_answer(answer) == [
        "A new vaccine was approved.",
        "Doctors warn about the flu season.",
        "Eat more fibre.",
    ]


def test_headings_and_label_lines_are_not_samples() -> None:
    answer = "Here they are:\nLabel: sports\nThe team lost again.\nTopic: sports\n"
    assert parse_list_answer(answer) == ["The team lost again."]


def test_completion_continuation_splits_on_item_marker() -> None:
    continuation = (" The museum reopened after renovation.\n\nText: Fans queued for the concert tickets.\nLabel: x"
                    "\n\nText:")
    assert parse_completion_answer(continuation) == [
        "The museum reopened after renovation.",
        "Fans queued for the concert tickets.",
    ]


@pytest.mark.parametrize(
    ("answer", "samples"),
    [
        ('["The striker scored twice.", "Fans queued for tickets."]',
         ["The striker scored twice.", "Fans queued for tickets."]),
        ('```json\n[\n  "A new vaccine was approved.",\n  "Eat more fibre."\n]\n```',
         ["A new vaccine was approved.", "Eat more fibre."]),
        ('Here is the JSON array:\n["1. Numbered inside.", " Spaced   out. "]', ["Numbered inside.", "Spaced out."]),
        ('{"texts": ["Wrapped in an object."], "count": 1}', ["Wrapped in an object."]),
        ('["Complete before the cut.", "Cut sho', ["Complete before the cut."]),  # the token budget ran out
        ('{"samples": ["What the schema asks for.", "Two texts."]}', ["What the schema asks for.", "Two texts."]),
        ('{"samples": ["Whole.", "Cut sho', ["Whole."]),  # an object cut short: its list's complete strings
        ('["A text.", 3, {"text": "not a string"}]', ["A text."]),
    ],
)
def test_json_answers(answer: str, samples: list[str]) -> None:
    assert parse_json_answer(answer) == samples
    assert parse_answer(answer, chat=True, structured=True) == samples


@pytest.mark.parametrize(
    "answer",
    ["1. The UN [United Nations] met.\n2. Rain fell.", "[1] A bracketed number.\n[2] Another.", '{"a": [1], "b": [2]}',
     '"just a string"', '["cut before its first string ended', "no JSON at all"],
)
def test_answers_that_are_not_json_arrays_are_read_as_lines(answer: str) -> None:
    assert parse_json_answer(answer) is None
    assert parse_answer(answer, chat=True, structured=True) == parse_list_answer(answer)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("  12. 'Quoted'  ", "Quoted"), ("(3) spaced   out  text", "spaced out text"),
     ("### Heading text", "Heading text"), ("\u00abGuillemets\u00bb", "Guillemets"),
     ("2024 was a good year for films.", "2024 was a good year for films.")],
)
def test_clean_sample(raw: str, clean: str) -> None:
    assert clean_sample(raw) == clean


def test_cut_completion_ends_where_the_next_item_begins() -> None:
    assert cut_completion(" The museum reopened.\n\nText: Another one.") == "The museum reopened."
    assert cut_completion(" sports\nText: The next text\nLabel: travel") == "sports"
    assert cut_completion(" no stop at all ") == "no stop at all"


# --- classification answers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "labels", "expected"),
    [
        ("positive", SENTIMENT, "positive"),
        ("  Positive.\n", SENTIMENT, "positive"),
        ('"NEGATIVE"', SENTIMENT, "negative"),
        ("**negative**", SENTIMENT, "negative"),
        ("Negative. The reviewer is unhappy, not positive at all.", SENTIMENT, "negative"),
        ("The sentiment of this review is negative.", SENTIMENT, "negative"),
        ("Label: positive", SENTIMENT, "positive"),
        ("pos", SENTIMENT, "positive"),
        ("It is positive or negative, hard to say.", SENTIMENT, None),
        ("I am not sure.", SENTIMENT, None),
        ("", SENTIMENT, None),
        ("Sci/Tech", ["sci-tech", "sports"], "sci-tech"),
        ("This one is non-toxic.", ["toxic", "non-toxic"], "non-toxic"),
        ("This one is toxic.", ["toxic", "non-toxic"], "toxic"),
        ("very positive!", ["positive", "very positive"], "very positive"),
        ("s", ["sports", "science"], None),
    ],
)
def test_parse_label(answer: str, labels: list[str], expected: str | None) -> None:
    assert parse_label(answer, labels) == expected


def test_label_scores_are_one_hot_or_none_and_keep_the_answer() -> None:
    found = label_scores("The sentiment is negative.", SENTIMENT)
    assert (found.label, found.probabilities, found.raw) == (
        "negative", {"positive": 0.0, "negative": 1.0}, "The sentiment is negative.")
    missing = label_scores("no idea", SENTIMENT)
    assert (missing.label, missing.probabilities, missing.raw) == (None, None, "no idea")
