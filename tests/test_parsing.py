"""Teacher answers come in many shapes; each must become clean, separate samples."""

from __future__ import annotations

import pytest

from hfsynth.parsing import clean_sample, parse_completion_answer, parse_list_answer


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
    answer = "- Text 1: A new vaccine was approved.\n* \u201cDoctors warn about the flu season.\u201d\n\u2022 Sample: Eat more fibre."
    assert parse_list_answer(answer) == [
        "A new vaccine was approved.",
        "Doctors warn about the flu season.",
        "Eat more fibre.",
    ]


def test_headings_and_label_lines_are_not_samples() -> None:
    answer = "Here they are:\nLabel: sports\nThe team lost again.\nTopic: sports\n"
    assert parse_list_answer(answer) == ["The team lost again."]


def test_completion_continuation_splits_on_item_marker() -> None:
    continuation = " The museum reopened after renovation.\n\nText: Fans queued for the concert tickets.\nLabel: x\n\nText:"
    assert parse_completion_answer(continuation) == [
        "The museum reopened after renovation.",
        "Fans queued for the concert tickets.",
    ]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("  12. 'Quoted'  ", "Quoted"), ("(3) spaced   out  text", "spaced out text"), ("### Heading text", "Heading text"),
     ("\u00abGuillemets\u00bb", "Guillemets"), ("2024 was a good year for films.", "2024 was a good year for films.")],
)
def test_clean_sample(raw: str, clean: str) -> None:
    assert clean_sample(raw) == clean
