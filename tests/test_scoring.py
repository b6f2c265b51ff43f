"""Label scoring with real embedded causal LMs, checked against the plain one-sequence-at-a-time computation."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from hfsynth.embedded import resolve_model
from hfsynth.scoring import device_and_dtype, label_continuations, score_continuations

# Token counts differ: one token up to several, and "science" is a prefix of "science/technology".
LABELS = ["sports", "science/technology", "politics and government", "science"]


def _load(name: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    path = resolve_model(name)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def smollm2() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    return _load("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def gemma() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    return _load("gemma-3-270m")


@torch.inference_mode()
def _reference(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str, continuation: str,
               add_special_tokens: bool) -> float:
    """Sum of the continuation's token log-probs from one unpadded forward pass over prompt + continuation."""
    prompt_ids = tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"]
    continuation_ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    logits = model(torch.tensor([prompt_ids + continuation_ids])).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return sum(float(logprobs[len(prompt_ids) - 1 + i, token]) for i, token in enumerate(continuation_ids))


def test_label_continuations_end_the_answer(smollm2: tuple, gemma: tuple) -> None:
    assert label_continuations(smollm2[1], ["sports"], chat=True) == ["sports<|im_end|>"]
    assert label_continuations(gemma[1], ["sports"], chat=False) == [" sports\n"]


def test_chat_scores_equal_unbatched_reference(smollm2: tuple) -> None:
    model, tokenizer = smollm2
    questions = ["Topic of: The team won the cup.", "Topic of this longer sentence about a new quantum computer chip?"]
    prompts = [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in questions
    ]
    continuations = label_continuations(tokenizer, LABELS, chat=True)
    # Prompts of different lengths in one batch (left padding); max_label_rows=2 forces several label passes.
    scores = score_continuations(
        model, tokenizer, prompts, continuations, add_special_tokens=False, batch_size=2, max_label_rows=2
    )
    for prompt, row in zip(prompts, scores):
        for continuation, score in zip(continuations, row):
            assert score == pytest.approx(_reference(model, tokenizer, prompt, continuation, False), abs=1e-3)


def test_completion_scores_equal_unbatched_reference(gemma: tuple) -> None:
    model, tokenizer = gemma
    prompts = [
        "Text: The team won the cup.\nLabel:",
        "Topic classification.\n\nText: Researchers unveiled a new quantum computer chip yesterday.\nLabel:",
        "Text: Parliament passed the bill.\nLabel:",
    ]
    continuations = label_continuations(tokenizer, LABELS, chat=False)
    assert len({len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in continuations}) > 1
    scores = score_continuations(model, tokenizer, prompts, continuations, add_special_tokens=True, batch_size=2)
    for prompt, row in zip(prompts, scores):
        for continuation, score in zip(continuations, row):
            assert score == pytest.approx(_reference(model, tokenizer, prompt, continuation, True), abs=1e-3)


def test_device_and_dtype() -> None:
    assert device_and_dtype("cpu", "float32") == (torch.device("cpu"), torch.float32)
    assert device_and_dtype("cpu", "bfloat16") == (torch.device("cpu"), torch.bfloat16)
    device, dtype = device_and_dtype("cpu", "auto")
    native_bf16 = any(torch.cpu.get_capabilities().get(flag) for flag in ("avx512_bf16", "amx_bf16"))
    assert dtype == (torch.bfloat16 if native_bf16 else torch.float32)
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert device_and_dtype("auto", "auto") == (torch.device("cpu"), dtype)
