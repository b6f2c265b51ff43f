"""Curation filters: each drop is recorded with its reason; what survives is what a researcher would keep."""

from __future__ import annotations

import json
from pathlib import Path

from hfsynth.generation.curation import (
    ChatterCheck,
    Curator,
    TestOverlap,
    apply_self_check,
    count_test_overlap,
    curate,
    identify_language,
    instruction_texts,
    word_count,
)
from hfsynth.generation.near_duplicates import jaccard, shingle_sets
from hfsynth.generation.samples import Sample
from hfsynth.recipe.schema import CurationConfig
from hfsynth.text_measures import normalize
from tests.student_helpers import make_recipe

DATA = Path(__file__).resolve().parent.parent / "data"


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


def test_near_duplicates_are_compared_within_a_language() -> None:
    config = CurationConfig(min_words=1, language_id=False)
    text = "Paris Saint-Germain won the final 2-1 in Munich on Sunday."
    result = curate([sample(text), sample(text.replace("Sunday", "Sunday night"), language="fr"), sample(text.replace("2-1", "3-1"))], config)
    assert [s.language for s in result.kept] == ["en", "fr"]
    assert [record.reason for record in result.dropped] == ["near_duplicate"]


def sib200_with_near_copies(count: int) -> list[Sample]:
    """Real English sentences, every third one followed by a copy with one word changed or dropped."""
    rows = [json.loads(line) for line in (DATA / "sib200/eng_Latn/train.jsonl").read_text().splitlines()][:count]
    samples = []
    for index, row in enumerate(rows):
        samples.append(sample(row["text"], label=row["label"]))
        words = row["text"].split()
        if index % 3 == 0 and len(words) > 6:
            changed = words[:index % 5] + words[index % 5 + 1:] if index % 2 else [*words[:-1], "today."]
            samples.append(sample(" ".join(changed), label=row["label"]))
    return samples


def greedy_all_pairs(samples: list[Sample], threshold: float) -> list[str]:
    """What the dense all-pairs curation dropped: each text against every text kept before it."""
    kept: list = []
    dropped = []
    for sample_, shingles in zip(samples, shingle_sets([normalize(s.text) for s in samples]), strict=True):
        if max((jaccard(shingles, other) for other in kept), default=0.0) >= threshold:
            dropped.append(sample_.text)
        else:
            kept.append(shingles)
    return dropped


def test_minhash_lsh_drops_what_all_pairs_drops_on_real_sentences() -> None:
    samples = sib200_with_near_copies(450)
    config = CurationConfig(min_words=1, language_id=False, dedup=True)
    exact = {normalize(s.text) for s in samples}
    assert len(exact) == len(samples)  # no exact duplicate: every drop below is a near duplicate
    result = curate(samples, config)
    expected = greedy_all_pairs(samples, config.near_duplicate_threshold)
    assert len(expected) > 50
    assert [record.text for record in result.dropped] == expected
    assert all(float(r.detail.split()[-1]) >= 0.8 for r in result.dropped)


def test_curating_round_after_round_equals_curating_everything_at_once() -> None:
    samples = sib200_with_near_copies(120)
    samples += [sample("Too short."), sample(samples[3].text.upper()), *samples[:5]]
    config = CurationConfig(min_words=3, language_id=False)
    seed = samples[10].text
    whole = curate(samples, config, seed_texts=[seed])
    curator = Curator(config, seed_texts=[seed])
    for start in range(0, len(samples), 37):
        rounds = curator.add(samples[start : start + 37])
    assert rounds == whole and curator.seen == len(samples)
    assert {"too_short", "duplicate", "seed_copy", "near_duplicate"} <= set(whole.drop_counts())


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
    same, other, empty = shingle_sets(["abcdef", "xyz uvw", ""])
    assert jaccard(same, same) == 1.0 and jaccard(same, other) == 0.0 and jaccard(empty, empty) == 0.0
    assert jaccard(*shingle_sets(["abcd", "abce"])) == 1 / 3  # {abc, bcd} and {abc, bce}
    assert identify_language("Der Hund bellt sehr laut im Garten.")[0] == "de"


# --- teacher chatter and test-set overlap --------------------------------------------------------------------------

#: Texts a small teacher really wrote instead of a sample (the first reached the quickstart dataset).
CHATTER = [
    "The list of two paragraphs adhering to the task challenges is here.",
    "Here are two sentences about sports for the news website.",
    "The first text is a casual greeting, while the second text is an enthusiastic endorsement.",
    "The mood is positive: happy, praising. Sentences: Santa Maria has a great breakfast.",
    "sentence from the user's diary Sentence 1: I am happier than ever before.",
    "I hope this helps with your task of classifying the topic.",
    "As requested, a short text on politics in English follows now.",
    "This text continues the pattern as discussed earlier in the answer.",
]
TEXTS = [
    "The following day the national team won the cup in front of its fans.",
    "The second sentence of the law was struck out by the senate on Monday.",
    "Okay, I have sent the tickets to your email, enjoy the flight!",
    "Scientists found a new kind of frog in the rainforest of Borneo.",
]


def chatter_check() -> ChatterCheck:
    recipe = make_recipe()  # labels science/technology, travel, politics
    return ChatterCheck.for_task(recipe.label_names, instruction_texts(recipe), echo_share=0.5)


def test_teacher_chatter_is_dropped_with_its_own_reason_and_texts_are_kept() -> None:
    config = CurationConfig(min_words=1, language_id=False)
    result = curate([sample(text) for text in CHATTER + TEXTS], config, chatter=chatter_check())
    assert [s.text for s in result.kept] == TEXTS
    assert set(reasons(result)) == set(CHATTER) and set(reasons(result).values()) == {"teacher_chatter"}


def test_a_label_name_alone_and_echoed_instructions_are_chatter() -> None:
    check = chatter_check()
    assert check.why("Science/Technology.") == "a label name only"
    assert check.why("Label: travel") == "a label name only"
    # Copied from the generation prompt: "Classify the topic of a sentence from a travel guide or the news."
    echo = check.why("Classify the topic of a sentence from a travel guide or the news")
    assert echo is not None and echo.startswith("echoes the instructions (100%")
    assert check.why("Travel guides of the city sold out before the summer.") is None
    assert CurationConfig().drop_teacher_chatter  # on by default
    assert curate([sample("travel", label="travel")], CurationConfig(min_words=1, language_id=False,
                                                                    drop_teacher_chatter=False)).kept


def test_no_real_english_text_counts_as_chatter() -> None:
    check = chatter_check()
    texts = [json.loads(line)["text"] for path in [*(DATA / "sib200" / "eng_Latn").glob("*.jsonl"),
                                                   *(DATA / "nusax_senti" / "english").glob("*.jsonl")]
             for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(texts) > 2000
    assert [text for text in texts if check.why(text)] == []


TEST_TEXT = "The minister said on Tuesday that the new railway line will open in the spring of next year."


def test_a_text_sharing_an_eight_word_ngram_with_a_test_text_is_dropped_as_test_overlap() -> None:
    config = CurationConfig(min_words=1, language_id=False)
    leaked = "Reports say THE NEW RAILWAY LINE, will open in the spring of 2030."  # 8 words shared, case/punct
    seven = "Everyone hopes that new railway line will open in the summer."  # 7 words shared only
    result = curate([sample(leaked), sample(seven), sample(TEST_TEXT.upper())], config, test_texts=[TEST_TEXT])
    assert [s.text for s in result.kept] == [seven]
    assert reasons(result) == {leaked: "test_overlap", TEST_TEXT.upper(): "test_overlap"}
    assert result.dropped[0].detail == "shares 'the new railway line will open in the' with a test text"
    # Counted, not dropped, when the recipe keeps them; a shorter n-gram catches the 7-word overlap too.
    keep = CurationConfig(min_words=1, language_id=False, drop_test_overlap=False)
    assert len(curate([sample(leaked)], keep, test_texts=[TEST_TEXT]).kept) == 1
    assert count_test_overlap([leaked, seven, "Nothing in common here at all."], [TEST_TEXT], 8) == 1
    assert count_test_overlap([leaked, seven], [TEST_TEXT], 7) == 2
    assert TestOverlap([TEST_TEXT], 8).shared("A short text.") is None
