"""The local teacher on the real embedded models: SmolLM2 (chat) and Gemma-3-270M (base, completion prompts)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hfsynth.errors import TeacherError
from hfsynth.language_model import PrefixCache
from hfsynth.prompting import COMPLETION_STOPS, LabelScores, Prompt
from hfsynth.recipe.schema import SamplingParams, TeacherConfig
from hfsynth.teachers.local import LocalTeacher

# Prompts of different lengths, so that a batch is left-padded.
GENERATION_PROMPTS = [
    Prompt(
        messages=(("user", "Write one short positive review of a pizza restaurant."),),
        completion="Restaurant reviews.\n\nText: The pasta was cold and the waiter rude.\n\n"
        "Text: Lovely little place, great pizza and friendly staff.\n\nText:",
    ),
    Prompt(
        messages=(("user", "Write one sentence of sports news."),),
        completion="Sports news.\n\nText: The Lakers beat the Celtics 102-99 on Sunday night.\n\nText:",
    ),
    Prompt(
        messages=(("system", "You are a news editor."), ("user", "Write a headline about a new smartphone.")),
        completion="Technology headlines, one per item.\n\nText: Apple unveils a faster laptop chip.\n\n"
        "Text: Startup raises $20 million to build AI chips for phones.\n\nText: Samsung shows a foldable tablet."
        "\n\nText:",
    ),
]
GREEDY = SamplingParams(max_new_tokens=16, temperature=0.0)
SAMPLED = SamplingParams(max_new_tokens=8, temperature=1.0, top_p=0.95)

LABELS = ["sports", "politics", "science/technology", "business"]
SHOTS = [
    ("The striker scored twice in the final minutes of the match.", "sports"),
    ("Scientists discovered a new exoplanet with the James Webb telescope.", "science/technology"),
]
CLEAR_CASES = [
    ("The parliament passed the new election law after a long debate.", "politics"),
    ("The tennis champion won the tournament in straight sets.", "sports"),
    ("Shares of the bank rose 5% after strong quarterly profits.", "business"),
    ("Researchers built a faster quantum computer chip.", "science/technology"),
]


def classification_prompt(text: str) -> Prompt:
    """Two labelled examples, then the text: as a chat and as a few-shot document ending in 'Label:'."""
    instruction = "Classify the news sentence by topic. Answer with exactly one label from this list:\n" + "\n".join(
        f"- {label}" for label in LABELS
    )
    messages = [("system", instruction)]
    document = [f"Classify the news sentence by topic. Labels: {', '.join(LABELS)}.", ""]
    for example, label in SHOTS:
        messages += [("user", example), ("assistant", label)]
        document += [f"Text: {example}", f"Label: {label}", ""]
    messages.append(("user", text))
    document += [f"Text: {text}", "Label:"]
    return Prompt(messages=tuple(messages), completion="\n".join(document))


def _teacher(model: str) -> Iterator[LocalTeacher]:
    # float32: greedy results are then identical batched or alone (see hfsynth.language_model.device_and_dtype).
    teacher = LocalTeacher(TeacherConfig(model=model, dtype="float32", batch_size=3))
    yield teacher
    teacher.close()


@pytest.fixture(scope="module")
def smollm2() -> Iterator[LocalTeacher]:
    yield from _teacher("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def gemma() -> Iterator[LocalTeacher]:
    yield from _teacher("gemma-3-270m")


def test_prompt_format_and_provenance(smollm2: LocalTeacher, gemma: LocalTeacher) -> None:
    assert smollm2.uses_chat and not gemma.uses_chat
    assert smollm2.model_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert gemma.model_id == "google/gemma-3-270m"
    assert smollm2.batch_size == 3


def test_chat_format_needs_a_chat_template() -> None:
    with pytest.raises(TeacherError, match="^teacher model 'gemma-3-270m' has no chat template"):
        LocalTeacher(TeacherConfig(model="gemma-3-270m", prompt_format="chat"))


def test_answers_are_handed_over_after_each_internal_batch(smollm2: LocalTeacher) -> None:
    prompts = [*GENERATION_PROMPTS, GENERATION_PROMPTS[0]]  # batch size 3: two internal batches
    calls_before = smollm2.stats.calls
    arrived: list[tuple[int, str, int]] = []
    answers = smollm2.generate(prompts, SamplingParams(max_new_tokens=4, temperature=0.0), seed=0,
                               on_answer=lambda index, text: arrived.append((index, text,
                                                                             smollm2.stats.calls - calls_before)))
    # The first batch's answers arrived before the second batch ran (3 prompts done), the last after it.
    assert arrived == [(index, answer, 3 if index < 3 else 4) for index, answer in enumerate(answers)]


def test_generation_ends_at_special_tokens(gemma: LocalTeacher) -> None:
    """Asked about a picture, the text-only Gemma writes <start_of_image> and, without stopping there, little else."""
    prompts = [Prompt(messages=(), completion="Here is a picture of my cat:"),
               Prompt(messages=(), completion="Photo captions.\n\nText: A dog runs on the beach.<start_of_image>\n\n"
                                              "Text: A cat sleeps on a sofa.<start_of_image>\n\nText:")]
    tokens_before = gemma.stats.completion_tokens
    picture, caption = gemma.generate(prompts, SamplingParams(max_new_tokens=12, temperature=0.0), seed=0)
    assert picture == "" and caption.startswith("A dog") and "<start_of_image>" not in caption
    # Both stopped at the marker: fewer tokens together than the picture's alone had it been written 12 times.
    assert gemma.stats.completion_tokens - tokens_before < 12
    # Each answer carries its own tokens: together, what the batch cost.
    assert picture.usage is not None and caption.usage is not None
    assert picture.usage.completion_tokens + caption.usage.completion_tokens == \
        gemma.stats.completion_tokens - tokens_before
    assert picture.usage.prompt_tokens < caption.usage.prompt_tokens  # its own prompt, not the padded batch's


@pytest.mark.slow
@pytest.mark.parametrize("teacher_name", ["smollm2", "gemma"])
def test_batched_greedy_equals_one_by_one(teacher_name: str, request: pytest.FixtureRequest) -> None:
    teacher: LocalTeacher = request.getfixturevalue(teacher_name)
    batched = teacher.generate(GENERATION_PROMPTS, GREEDY, seed=0)
    assert len(batched) == 3 and all(batched)
    assert teacher.stats.prompt_tokens > 0 and teacher.stats.completion_tokens > 0
    if not teacher.uses_chat:  # the base model wrote one item and was cut before the next
        assert not any(stop in text for text in batched for stop in COMPLETION_STOPS)
    alone = [teacher.generate([prompt], GREEDY, seed=0)[0] for prompt in GENERATION_PROMPTS]
    assert batched == alone


@pytest.mark.slow
def test_same_seed_same_samples(smollm2: LocalTeacher) -> None:
    prompts = GENERATION_PROMPTS[:2]
    first = smollm2.generate(prompts, SAMPLED, seed=7)
    assert smollm2.generate(prompts, SAMPLED, seed=7) == first
    assert smollm2.generate(prompts, SAMPLED, seed=8) != first


@pytest.mark.parametrize("teacher_name", ["smollm2", "gemma"])
def test_classification_picks_the_obvious_label(teacher_name: str, request: pytest.FixtureRequest) -> None:
    teacher: LocalTeacher = request.getfixturevalue(teacher_name)
    results = teacher.classify([classification_prompt(text) for text, _ in CLEAR_CASES], LABELS)
    assert [result.label for result in results] == [label for _, label in CLEAR_CASES]
    for result in results:
        assert result.probabilities is not None and set(result.probabilities) == set(LABELS)
        assert sum(result.probabilities.values()) == pytest.approx(1.0)


def test_classification_reads_the_shared_prefix_once_and_scores_as_whole_prompts(smollm2: LocalTeacher) -> None:
    # Pairs whose texts start differently ("The parliament...", "Shares..."): both share exactly the instructions.
    prompts = [classification_prompt(CLEAR_CASES[index][0]) for index in (0, 2, 1, 3)]
    smollm2.prefix = PrefixCache()  # nothing kept from the module's other tests
    # In two calls, as the evaluation sends them: the second reuses the instructions and demonstrations the first read.
    results = smollm2.classify(prompts[:2], LABELS) + smollm2.classify(prompts[2:], LABELS)
    prompt_lengths = [len(ids) for ids in smollm2.lm.encode(prompts)]
    assert 0 < smollm2.prefix.tokens_read == len(smollm2.prefix.ids) < prompt_lengths[0]
    whole = smollm2.lm.label_log_likelihoods(prompts, LABELS, batch_size=3, prefix=None)
    for result, scores in zip(results, whole, strict=True):
        expected = LabelScores.from_logprobs(dict(zip(LABELS, scores)))
        assert result.label == expected.label
        assert result.probabilities == pytest.approx(expected.probabilities, abs=1e-3)


def test_classification_with_the_default_dtype() -> None:
    """dtype "auto" is bfloat16 on CPUs with native bfloat16: the answers must not change."""
    with LocalTeacher(TeacherConfig(model="smollm2-135m-instruct")) as teacher:
        results = teacher.classify([classification_prompt(text) for text, _ in CLEAR_CASES], LABELS)
    assert [result.label for result in results] == [label for _, label in CLEAR_CASES]
