"""Curation filters: each drop is recorded with its reason; what survives is what a researcher would keep."""

from __future__ import annotations

from hfsynth.curation import (
    Sample,
    apply_self_check,
    curate,
    identify_language,
    jaccard_matrix,
    normalize,
    word_count,
)
from hfsynth.recipe import CurationConfig


def sample(text: str, label: str = "sports", language: str = "en") -> Sample:
    return Sample(text, label, language, f"{language}/{label}/0")


def reasons(result) -> dict[str, str]:  # noqa: ANN001
    return {record.text: record.reason for record in result.dropped}


def test_length_bounds() -> None:
    config = CurationConfig(min_words=3, max_words=8, language_id=False)
    result = curate([sample("Too short."), sample("A goal in the last minute won it."),
                     sample("This sentence about the football match goes on and on for far too many words.")], config)
    assert [s.text for s in result.kept] == ["A goal in the last minute won it."]
    assert sorted(reasons(result).values()) == ["too_long", "too_short"]


def test_exact_duplicates_ignore_case_punctuation_and_space() -> None:
    config = CurationConfig(min_words=1, language_id=False)
    result = curate([sample("The team won the cup."), sample("the team  WON the cup!"),
                     sample("The team won the cup", label="health")], config)
    assert len(result.kept) == 1
    details = sorted(record.detail for record in result.dropped)
    assert details == ["same text", "same text, other label"]


def test_near_duplicates_keep_the_first_of_a_cluster() -> None:
    config = CurationConfig(min_words=1, language_id=False, near_duplicate_threshold=0.7)
    texts = ["The national team won the championship final on Sunday.",
             "The national team won the championship finals on Sunday.",
             "A new hospital opened in the north of the city."]
    result = curate([sample(t) for t in texts], config)
    assert [s.text for s in result.kept] == [texts[0], texts[2]]
    assert reasons(result) == {texts[1]: "near_duplicate"}


def test_seed_copies_are_removed() -> None:
    config = CurationConfig(min_words=1, language_id=False)
    seed = "Mutation adds new genetic variation, and selection removes it from the pool."
    result = curate([sample(seed.upper()), sample("Scientists found a new kind of frog in the rainforest.")],
                    config, seed_texts=[seed])
    assert reasons(result) == {seed.upper(): "seed_copy"}


def test_language_identification_drops_confident_other_language() -> None:
    config = CurationConfig(min_words=1)
    german = "Die Mannschaft hat das Spiel gestern Abend in der letzten Minute gewonnen."
    english = "The team won the game last night in the very last minute."
    result = curate([sample(german), sample(english)], config)
    assert [s.text for s in result.kept] == [english]
    assert reasons(result) == {german: "wrong_language"}
    # The same German text is right for a German recipe (ISO 639-3 codes work too).
    assert curate([sample(german, language="deu")], config).kept


def test_language_without_identifier_support_is_kept() -> None:
    config = CurationConfig(min_words=1)
    # Acehnese is not among py3langid's languages: the check cannot judge it, so it does not drop it.
    assert curate([sample("Lon jak u pasai ban keunong uroe.", language="ace")], config).kept


def test_self_check() -> None:
    samples = [sample("a b c"), sample("d e f"), sample("g h i")]
    result = apply_self_check(samples, ["sports", "health", None])
    assert [s.text for s in result.kept] == ["a b c", "g h i"]
    assert result.dropped[0].reason == "self_check" and "health" in result.dropped[0].detail


def test_helpers() -> None:
    assert normalize("  Hello,   WORLD! ") == "hello world"
    assert word_count("one two three") == 3
    assert word_count("\u0e27\u0e31\u0e19\u0e19\u0e35\u0e49\u0e2d\u0e32\u0e01\u0e32\u0e28\u0e14\u0e35\u0e21\u0e32\u0e01" * 3) >= 3  # Thai, no spaces
    similarity = jaccard_matrix(["abcdef", "xyz uvw"], ["abcdef"])
    assert similarity[0, 0] == 1.0 and similarity[1, 0] == 0.0
    assert identify_language("Der Hund bellt sehr laut im Garten.")[0] == "de"
