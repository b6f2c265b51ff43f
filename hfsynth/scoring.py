"""Label scoring with a causal LM: how likely is each label as the answer to a prompt?

Used by the local teacher's ``classify`` and by the students that are causal LMs, so that every model is asked the
same way and only ever answers with one of the labels (no free-text parsing).

How: each batch of prompts is run once, left-padded, keeping its KV cache; the first token of every label is read
off the prompt's last logits, and the rest of all labels go through one more short forward pass on top of a copy of
that cache repeated once per label. The prompt, by far the longest part, is thus encoded once per prompt instead of
once per (prompt, label) pair, which on CPU is several times faster than scoring prompt+label sequences.

Length: a label scores the SUM of its tokens' log-probabilities, i.e. the log-probability of the whole answer
string. No per-token averaging: once a multi-token label such as "science/technology" is under way its later tokens
are near certain, so averaging would inflate it over a one-token label such as "sports". Each label is scored
together with what ends the answer (the chat template's end of turn, or the newline of a completion document), so
a label that is a prefix of another ("science" vs "science/technology") is not favoured.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

_ANSWER_MARK = "\u2063LABEL\u2063"  # unlikely to occur in any chat template


def device_and_dtype(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """The torch device and inference dtype for a recipe's ``device``/``dtype`` settings.

    "auto" device: CUDA, else Apple MPS, else CPU. "auto" dtype: bfloat16 on a CUDA GPU that supports it and on a
    CPU with native bfloat16 instructions (AVX512-BF16 or AMX), float32 everywhere else. Measured on a 2-core
    AVX512-BF16 CPU: bfloat16 runs prompts about 2.2x and generation 1.2-1.9x faster than float32, greedy texts stay
    as good and label probabilities move by under 0.07; but a prompt's greedy text then depends slightly on what it
    is batched with (float32 gives identical results batched or alone). CPUs without those instructions emulate
    bfloat16, slower than float32. float16 is never picked automatically (Gemma models are known to overflow in it).

    For training, load the weights in float32 and use the returned dtype only for mixed precision
    (``TrainingArguments(bf16=...)``): updates applied to bfloat16 weights are mostly rounded away.
    """
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    resolved = torch.device(device)
    if dtype != "auto":
        return resolved, getattr(torch, dtype)
    if resolved.type == "cuda":
        return resolved, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if resolved.type == "cpu" and _cpu_has_native_bf16():
        return resolved, torch.bfloat16
    return resolved, torch.float32


def _cpu_has_native_bf16() -> bool:
    # torch.cpu.get_capabilities is recent (torch >= 2.4 is supported): without it, stay with float32.
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    capabilities = get_capabilities() if get_capabilities else {}
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def label_continuations(tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], chat: bool) -> list[str]:
    """The exact text of an answer that is just ``label``, for each label.

    Chat: the label followed by the template's end of turn (e.g. ``sports<|im_end|>``), found by rendering an
    assistant turn. Completion: the documents of :mod:`hfsynth.prompts` end in ``Label:`` and put each answer on its
    own line, so `` sports\\n``.
    """
    if not chat:
        return [f" {label}\n" for label in labels]
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "?"}, {"role": "assistant", "content": _ANSWER_MARK}], tokenize=False
    )
    end_of_turn = rendered.split(_ANSWER_MARK, 1)[1].rstrip() if _ANSWER_MARK in rendered else ""
    return [label + end_of_turn for label in labels]


@torch.inference_mode()
def score_continuations(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    add_special_tokens: bool,
    batch_size: int = 8,
    max_label_rows: int = 64,
) -> list[list[float]]:
    """``scores[i][j]``: log-probability that ``prompts[i]`` continues with ``continuations[j]`` (summed over tokens).

    ``add_special_tokens``: False for text rendered by a chat template (it writes its own special tokens), True for
    plain text (a base model such as Gemma needs its BOS token). ``batch_size`` prompts share a forward pass;
    ``max_label_rows`` (prompts x continuations) bounds the memory of the repeated KV cache in the label pass.
    """
    continuation_ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in continuations]
    if not all(continuation_ids):
        raise ValueError("every continuation must have at least one token")
    scores: list[list[float]] = []
    for start in range(0, len(prompts), batch_size):
        batch = list(prompts[start : start + batch_size])
        scores += _score_batch(model, tokenizer, batch, continuation_ids, add_special_tokens, max_label_rows).tolist()
    return scores


def _score_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    continuation_ids: list[list[int]],
    add_special_tokens: bool,
    max_label_rows: int,
) -> torch.Tensor:
    device = model.device
    encoded = tokenizer(
        prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=add_special_tokens
    ).to(device)
    prompt_mask = encoded["attention_mask"]
    prompt_lengths = prompt_mask.sum(-1)
    # Left padding: positions count real tokens only, as when the prompt runs alone.
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    output = model(
        input_ids=encoded["input_ids"],
        attention_mask=prompt_mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,  # only the next-token distribution: full logits of a long prompt cost gigabytes
    )
    first_logprobs = torch.log_softmax(output.logits[:, -1].float(), dim=-1)
    first_tokens = torch.tensor([ids[0] for ids in continuation_ids], device=device)
    scores = first_logprobs[:, first_tokens]  # [prompts, continuations]

    # The remaining tokens of multi-token continuations, on top of the prompt's cache.
    longer = [index for index, ids in enumerate(continuation_ids) if len(ids) > 1]
    per_pass = max(1, max_label_rows // len(prompts))
    for chunk_start in range(0, len(longer), per_pass):
        chunk = longer[chunk_start : chunk_start + per_pass]
        scores[:, chunk] += _score_rest(
            model, output.past_key_values, prompt_mask, prompt_lengths, [continuation_ids[i] for i in chunk]
        )
    return scores.cpu()


def _score_rest(
    model: PreTrainedModel,
    prompt_cache: object,
    prompt_mask: torch.Tensor,
    prompt_lengths: torch.Tensor,
    continuation_ids: list[list[int]],
) -> torch.Tensor:
    """Log-probability of tokens 2.. of each continuation after each prompt: [prompts, continuations]."""
    device = prompt_mask.device
    n_prompts, n_continuations = prompt_mask.shape[0], len(continuation_ids)
    width = max(len(ids) for ids in continuation_ids) - 1
    # Input: all but the last token (right-padded); target: all but the first. Row r: prompt r // C, continuation r % C.
    inputs = torch.zeros(n_continuations, width, dtype=torch.long)
    targets = torch.zeros(n_continuations, width, dtype=torch.long)
    target_mask = torch.zeros(n_continuations, width)
    for row, ids in enumerate(continuation_ids):
        inputs[row, : len(ids) - 1] = torch.tensor(ids[:-1])
        targets[row, : len(ids) - 1] = torch.tensor(ids[1:])
        target_mask[row, : len(ids) - 1] = 1
    inputs, targets, target_mask = (t.to(device).repeat(n_prompts, 1) for t in (inputs, targets, target_mask))

    cache = copy.deepcopy(prompt_cache)  # the forward pass below extends it in place
    cache.batch_repeat_interleave(n_continuations)
    # Right padding inside the continuation needs no mask: a causal model's real tokens never attend to later ones.
    attention_mask = torch.cat(
        [prompt_mask.repeat_interleave(n_continuations, dim=0), torch.ones_like(inputs)], dim=-1
    )
    positions = prompt_lengths.repeat_interleave(n_continuations).unsqueeze(-1) + torch.arange(width, device=device)
    logits = model(
        input_ids=inputs, attention_mask=attention_mask, position_ids=positions, past_key_values=cache, use_cache=True
    ).logits
    logprobs = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (logprobs * target_mask).sum(-1).view(n_prompts, n_continuations)
