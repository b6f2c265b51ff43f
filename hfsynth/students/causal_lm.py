"""What the causal-LM students share with the local teacher: the same classification prompt, rendered with the chat
template when the tokenizer has one (else as a completion document), answered by scoring each label
(:mod:`hfsynth.scoring`), so predictions are always one of the labels and never parsed from free text."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from hfsynth.scoring import label_continuations, score_continuations
from hfsynth.teachers.base import Prompt


def load_causal_lm(
    path: str | Path, device: torch.device, dtype: torch.dtype
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    return model, tokenizer


def uses_chat(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Instruction-tuned models get chat messages; base models (no template) a document to continue."""
    return bool(tokenizer.chat_template)


def render_prompt(tokenizer: PreTrainedTokenizerBase, prompt: Prompt) -> str:
    if not uses_chat(tokenizer):
        return prompt.completion
    return tokenizer.apply_chat_template(prompt.as_openai_messages(), tokenize=False, add_generation_prompt=True)


def label_probabilities(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    labels: Sequence[str],
    batch_size: int,
) -> np.ndarray:
    """Softmax over the labels' log-likelihoods as answers to each prompt: ``(len(prompts), len(labels))``."""
    chat = uses_chat(tokenizer)
    scores = score_continuations(
        model,
        tokenizer,
        [render_prompt(tokenizer, prompt) for prompt in prompts],
        label_continuations(tokenizer, labels, chat=chat),
        add_special_tokens=not chat,  # a chat template writes its own BOS
        batch_size=batch_size,
    )
    if not scores:
        return np.zeros((0, len(labels)), dtype=np.float32)
    return torch.tensor(scores).softmax(dim=-1).numpy()
