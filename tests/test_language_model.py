"""The language-model module with the real embedded models: loading, rendering, and label scoring checked against the
plain one-sequence-at-a-time computation, with and without the shared prefix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hfsynth.errors import HfsynthError
from hfsynth.language_model import LanguageModel, PrefixCache, device_and_dtype, score_continuations
from hfsynth.prompting import Prompt, classification_prompt
from hfsynth.recipe.schema import Recipe
from hfsynth.recipes.files import load_recipe

ROOT = Path(__file__).resolve().parents[1]
# Token counts differ: one token up to several, and "science" is a prefix of "science/technology".
LABELS = ["sports", "science/technology", "politics and government", "science"]
TEXTS = [
    "The team won the cup.",
    "Researchers unveiled a new quantum computer chip yesterday, years ahead of plan.",
    "Parliament passed the bill.",
]


def _load(name: str) -> LanguageModel:
    return LanguageModel.load(name, torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def smollm2() -> LanguageModel:
    return _load("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def gemma() -> LanguageModel:
    return _load("gemma-3-270m")


@pytest.fixture(scope="module")
def recipe() -> Recipe:
    return load_recipe(ROOT / "recipes" / "quickstart.yaml")


def sib200_prompts(recipe: Recipe, texts: list[str], per_label: int = 1) -> list[Prompt]:
    """Recipe-style classification prompts with real SIB-200 demonstrations: a long shared prefix."""
    train = [json.loads(line) for line in (ROOT / "data/sib200/eng_Latn/train.jsonl").open()]
    demonstrations = [(row["text"], label) for label in recipe.label_names
                      for row in [row for row in train if row["label"] == label][:per_label]]
    return [classification_prompt(recipe, text, "en", demonstrations) for text in texts]


@torch.inference_mode()
def reference_scores(lm: LanguageModel, prompts: list[Prompt], labels: list[str]) -> list[list[float]]:
    """Sum of each label's token log-probs from one unpadded forward pass over prompt + label, per pair."""
    scores = []
    for prompt_ids in lm.encode(prompts):
        row = []
        for continuation in lm.label_continuations(labels):
            continuation_ids = lm.tokenizer(continuation, add_special_tokens=False)["input_ids"]
            logits = lm.model(torch.tensor([prompt_ids + continuation_ids])).logits[0]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            row.append(sum(float(logprobs[len(prompt_ids) - 1 + i, token]) for i, token in enumerate(continuation_ids)))
        scores.append(row)
    return scores


def assert_scores_close(actual: list[list[float]], expected: list[list[float]]) -> None:
    actual_tensor, expected_tensor = torch.tensor(actual), torch.tensor(expected)
    torch.testing.assert_close(actual_tensor, expected_tensor, atol=1e-3, rtol=0)
    assert torch.equal(actual_tensor.argmax(-1), expected_tensor.argmax(-1))


def test_load_and_render(smollm2: LanguageModel, gemma: LanguageModel) -> None:
    assert smollm2.chat and not gemma.chat
    prompt = Prompt(messages=(("user", "Hello?"),), completion="Text: Hello?\nLabel:")
    assert smollm2.render(prompt).endswith("<|im_start|>user\nHello?<|im_end|>\n<|im_start|>assistant\n")
    assert gemma.render(prompt) == "Text: Hello?\nLabel:"
    # A chat template writes its own special tokens; a plain document gets the tokenizer's BOS.
    rendered = smollm2.render(prompt)
    assert smollm2.encode([prompt])[0] == smollm2.tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert gemma.encode([prompt])[0][0] == gemma.tokenizer.bos_token_id


def test_load_reports_one_line_errors(tmp_path: Path) -> None:
    no_template = "^model 'gemma-3-270m' has no chat template: use prompt_format: completion$"
    with pytest.raises(HfsynthError, match=no_template):
        LanguageModel.load("gemma-3-270m", torch.device("cpu"), torch.float32, prompt_format="chat")
    with pytest.raises(HfsynthError, match=r"^model '.*' cannot be loaded: [^\n]*$"):
        LanguageModel.load(str(tmp_path), torch.device("cpu"), torch.float32)


def test_label_continuations_end_the_answer(smollm2: LanguageModel, gemma: LanguageModel) -> None:
    assert smollm2.label_continuations(["sports"]) == ["sports<|im_end|>"]
    assert gemma.label_continuations(["sports"]) == [" sports\n"]


@pytest.mark.parametrize("prefix", [None, PrefixCache()], ids=["whole-prompts", "shared-prefix"])
def test_chat_scores_equal_unbatched_reference(smollm2: LanguageModel, recipe: Recipe,
                                               prefix: PrefixCache | None) -> None:
    prompts = sib200_prompts(recipe, TEXTS)
    # Prompts of different lengths in one batch; max_label_rows=2 forces several label passes on whole prompts.
    continuations = [smollm2.tokenizer(text, add_special_tokens=False)["input_ids"]
                     for text in smollm2.label_continuations(LABELS)]
    scores = score_continuations(smollm2.model, smollm2.encode(prompts), continuations, batch_size=2,
                                 max_label_rows=2, prefix=prefix)
    assert_scores_close(scores, reference_scores(smollm2, prompts, LABELS))
    if prefix is not None:  # the instructions and demonstrations, up to where the texts differ, were read once
        assert 300 < len(prefix.ids) == prefix.tokens_read < min(map(len, smollm2.encode(prompts)))


def test_a_batch_scores_the_same_whatever_was_scored_before(smollm2: LanguageModel, recipe: Recipe) -> None:
    prompts = sib200_prompts(recipe, [*TEXTS, "The team lost the final.", "The team trained in the rain."])
    ids = smollm2.encode(prompts)
    reference = reference_scores(smollm2, prompts, LABELS)

    def alone(batch: list[Prompt], batch_size: int = 2) -> list[list[float]]:  # with a prefix cache of its own
        return smollm2.label_log_likelihoods(batch, LABELS, batch_size=batch_size, prefix=PrefixCache())

    prefix = PrefixCache()
    everything = smollm2.label_log_likelihoods(prompts, LABELS, batch_size=2, prefix=prefix)
    common = list(prefix.ids)
    assert prefix.tokens_read == len(common) and all(prompt_ids[: len(common)] == common for prompt_ids in ids)
    # Texts that start alike ("The team") share a longer prefix: read anew, not extended from the kept one.
    pair = smollm2.label_log_likelihoods(prompts[3:5], LABELS, batch_size=2, prefix=prefix)
    assert len(prefix.ids) > len(common) and prefix.tokens_read == len(common) + len(prefix.ids)
    # One prompt alone: all but its last token, which it keeps to predict the label from.
    [single] = smollm2.label_log_likelihoods(prompts[3:4], LABELS, batch_size=2, prefix=prefix)
    assert prefix.ids == ids[3][:-1]
    again = smollm2.label_log_likelihoods(prompts, LABELS, batch_size=4, prefix=prefix)
    assert prefix.ids == common
    # The same shared prefix once more: the kept cache serves it, nothing is read.
    read_before = prefix.tokens_read
    once_more = smollm2.label_log_likelihoods(prompts, LABELS, batch_size=4, prefix=prefix)
    assert prefix.tokens_read == read_before

    # Bit for bit what each batch gives with nothing scored before it (the Ray engine's replicas rely on it).
    assert everything == alone(prompts) and again == once_more == alone(prompts, batch_size=4)
    assert pair == alone(prompts[3:5]) and [single] == alone(prompts[3:4])
    assert_scores_close(everything, reference)
    assert_scores_close(pair, reference[3:5])
    assert_scores_close([single], reference[3:4])


@pytest.mark.parametrize("prefix", [None, PrefixCache()], ids=["whole-prompts", "shared-prefix"])
def test_completion_scores_equal_unbatched_reference(gemma: LanguageModel, prefix: PrefixCache | None) -> None:
    prompts = [Prompt(messages=(), completion=f"Topic classification.\n\nText: {text}\nLabel:") for text in TEXTS]
    continuations = gemma.label_continuations(LABELS)
    assert len({len(gemma.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in continuations}) > 1
    scores = gemma.label_log_likelihoods(prompts, LABELS, batch_size=2, prefix=prefix)
    assert_scores_close(scores, reference_scores(gemma, prompts, LABELS))


def test_prompts_that_share_nothing_are_packed_without_a_prefix(smollm2: LanguageModel) -> None:
    # SmolLM2 prompted with plain documents: its tokenizer adds no BOS, so these share not even one token.
    plain = LanguageModel(smollm2.model, smollm2.tokenizer, chat=False)
    prompts = [Prompt(messages=(), completion=f"{topic}: {text}\nLabel:")
               for topic, text in (("Sports", TEXTS[0]), ("Politics", TEXTS[2]))]
    assert plain.encode(prompts[:1])[0][0] != plain.encode(prompts[1:])[0][0]
    prefix = PrefixCache()
    scores = plain.label_log_likelihoods(prompts, LABELS, batch_size=2, prefix=prefix)
    assert prefix.ids == [] and prefix.tokens_read == 0
    assert_scores_close(scores, reference_scores(plain, prompts, LABELS))


@pytest.mark.slow
def test_prompts_longer_than_a_sliding_window_are_read_whole(gemma: LanguageModel) -> None:
    """Gemma 3's sliding-window layers see 512 tokens: a packed row would not compute the same beyond that."""
    document = "Topic classification.\n\n" + "".join(f"Text: Match report number {n}.\nLabel: sports\n\n"
                                                     for n in range(40))
    prompts = [Prompt(messages=(), completion=f"{document}Text: {text}\nLabel:") for text in TEXTS[:2]]
    assert min(map(len, gemma.encode(prompts))) > 512
    prefix = PrefixCache()
    scores = gemma.label_log_likelihoods(prompts, LABELS[:2], batch_size=2, prefix=prefix)
    assert prefix.tokens_read == 0
    assert_scores_close(scores, reference_scores(gemma, prompts, LABELS[:2]))


def test_label_probabilities_are_a_softmax_over_the_labels(smollm2: LanguageModel, recipe: Recipe) -> None:
    prompts = sib200_prompts(recipe, TEXTS[:2])
    probabilities = smollm2.label_probabilities(prompts, LABELS, batch_size=8)
    expected = torch.tensor(reference_scores(smollm2, prompts, LABELS)).softmax(-1).numpy()
    assert probabilities.shape == (2, 4)
    assert abs(probabilities - expected).max() < 1e-3
    assert smollm2.label_probabilities([], LABELS, batch_size=8).shape == (0, 4)


def test_device_and_dtype() -> None:
    assert device_and_dtype("cpu", "float32") == (torch.device("cpu"), torch.float32)
    assert device_and_dtype("cpu", "bfloat16") == (torch.device("cpu"), torch.bfloat16)
    device, dtype = device_and_dtype("cpu", "auto")
    native_bf16 = any(torch.cpu.get_capabilities().get(flag) for flag in ("avx512_bf16", "amx_bf16"))
    assert dtype == (torch.bfloat16 if native_bf16 else torch.float32)
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert device_and_dtype("auto", "auto") == (torch.device("cpu"), dtype)
