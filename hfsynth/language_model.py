"""One home for causal language models: loading, prompt rendering and label scoring.

The local teacher and the students that are causal LMs load, prompt and score through this module, so every model is
asked the same way and only ever answers a classification with one of the labels (no free-text parsing).

Prompts: an instruction-tuned model (its tokenizer has a chat template) gets ``Prompt.messages`` through the
template; a base model gets ``Prompt.completion``, a document it continues.

Label scoring: how likely is each label as the answer to a prompt? A label scores the SUM of its tokens'
log-probabilities, i.e. the log-probability of the whole answer string. No per-token averaging: once a multi-token
label such as "science/technology" is under way its later tokens are near certain, so averaging would inflate it over
a one-token label such as "sports". Each label is scored together with what ends the answer (the chat template's end
of turn, or the newline of a completion document), so a label that is a prefix of another ("science" vs
"science/technology") is not favoured.

How it is computed:

1. The shared prefix. Classification prompts differ only in their last part, the text: task, label list,
   descriptions and demonstrations come first and are the same for every text. Their longest common token prefix is
   run through the model once and its KV cache kept (:class:`PrefixCache`); a teacher keeps it across calls, so a
   whole evaluation reads its instructions once. A call whose prompts share another prefix reads that one from
   scratch: cutting a kept cache back and extending it would give slightly different numbers (other matrix shapes),
   and a batch's scores must depend on the batch alone, never on the calls before it (the Ray engine spreads
   batches over replicas; a re-run may find some answers cached).
2. One packed pass per batch. Each prompt's own tokens (its suffix), each followed by every label but the label's
   last token, are laid out in a single row on top of the prefix cache, with a 4D attention mask and position ids
   that make every segment see exactly what it would see alone (see :func:`_score_packed`). The logits at the end of
   a suffix give each label's first token, those inside a label its next ones. Nothing is repeated per prompt or per
   label: padding, copies of a long KV cache and attention over them made the label pass the slowest part before.

Without a prefix (``prefix=None``) whole prompts are scored the way they were before prefix reuse: left-padded in a
batch, their cache repeated once per label for the labels' later tokens (:func:`_score_whole`). It is kept for
comparison (``benchmarks/teacher_classification.py``) and for models where a packed row would not compute the same
(flash attention, which takes no 4D mask; prompts longer than a sliding attention window).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from hfsynth.embedded import resolve_model
from hfsynth.errors import HfsynthError
from hfsynth.prompting import Prompt

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


@dataclass
class LanguageModel:
    """A causal LM, its tokenizer, and how it is prompted: through its chat template or with a completion document."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    chat: bool

    @classmethod
    def load(
        cls, name: str | Path, device: torch.device, dtype: torch.dtype, prompt_format: str = "auto"
    ) -> LanguageModel:
        """An embedded short name, a folder or a Hub id. ``prompt_format``: "auto" (chat when the tokenizer has a
        template), "chat" or "completion". Problems are one-line :class:`HfsynthError` messages naming the model."""
        path = resolve_model(str(name))
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            has_template = bool(tokenizer.chat_template)
            # Checked before the (slow) weights load.
            if prompt_format == "chat" and not has_template:
                raise HfsynthError(f"model {str(name)!r} has no chat template: use prompt_format: completion")
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
        except (OSError, ValueError) as exc:  # missing files, or files transformers cannot make sense of
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise HfsynthError(f"model {str(name)!r} cannot be loaded: {reason}") from None
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(model, tokenizer, has_template if prompt_format == "auto" else prompt_format == "chat")

    @classmethod
    def wrap(cls, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> LanguageModel:
        """A model loaded elsewhere (a student's trained weights), prompted as its tokenizer suggests."""
        return cls(model, tokenizer, bool(tokenizer.chat_template))

    def render(self, prompt: Prompt) -> str:
        if not self.chat:
            return prompt.completion
        return self.tokenizer.apply_chat_template(prompt.as_openai_messages(), tokenize=False,
                                                  add_generation_prompt=True)

    def encode(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        """Token ids of the rendered prompts. A chat template writes its own BOS; a plain document needs the
        tokenizer's (a base model such as Gemma expects it)."""
        rendered = [self.render(prompt) for prompt in prompts]
        return self.tokenizer(rendered, add_special_tokens=not self.chat)["input_ids"] if rendered else []

    def label_continuations(self, labels: Sequence[str]) -> list[str]:
        """The exact text of an answer that is just ``label``, for each label.

        Chat: the label followed by the template's end of turn (e.g. ``sports<|im_end|>``), found by rendering an
        assistant turn. Completion: the documents of :mod:`hfsynth.prompting` end in ``Label:`` and put each answer on
        its own line, so `` sports\\n``.
        """
        if not self.chat:
            return [f" {label}\n" for label in labels]
        rendered = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": "?"}, {"role": "assistant", "content": _ANSWER_MARK}], tokenize=False
        )
        end_of_turn = rendered.split(_ANSWER_MARK, 1)[1].rstrip() if _ANSWER_MARK in rendered else ""
        return [label + end_of_turn for label in labels]

    @property
    def stop_token_ids(self) -> list[int]:
        """Every token that ends a generated text: EOS and all other special tokens. A chat model opening a new turn,
        or a base model writing ``<start_of_image>``, is done with its text; its generation config names only EOS."""
        special = {index for index, token in self.tokenizer.added_tokens_decoder.items() if token.special}
        return sorted(special | set(self.tokenizer.all_special_ids))

    def label_log_likelihoods(
        self, prompts: Sequence[Prompt], labels: Sequence[str], batch_size: int, prefix: PrefixCache | None
    ) -> list[list[float]]:
        """``scores[i][j]``: log-probability that ``labels[j]`` (with its end of answer) answers ``prompts[i]``.

        ``prefix``: where the shared prompt prefix is kept (a fresh one to share it within this call only); ``None``
        reads every prompt whole.
        """
        continuation_ids = [self.tokenizer(text, add_special_tokens=False)["input_ids"]
                            for text in self.label_continuations(labels)]
        return score_continuations(self.model, self.encode(prompts), continuation_ids, batch_size=batch_size,
                                   prefix=prefix)

    def label_probabilities(self, prompts: Sequence[Prompt], labels: Sequence[str], batch_size: int) -> np.ndarray:
        """Softmax over the labels' log-likelihoods: ``(len(prompts), len(labels))``. The prompts' shared prefix is
        read once per call (never kept: a student's weights may change between calls)."""
        scores = self.label_log_likelihoods(prompts, labels, batch_size, PrefixCache())
        if not scores:
            return np.zeros((0, len(labels)), dtype=np.float32)
        return torch.tensor(scores).softmax(dim=-1).numpy()


@dataclass
class PrefixCache:
    """The KV cache of the last shared prompt prefix a model read, for the next prompts that start the same way.

    Valid for one model whose weights do not change (the teacher's): a prefix read before a training step would be
    stale after it.
    """

    ids: list[int] = field(default_factory=list)
    cache: DynamicCache | None = None
    #: Prefix tokens run through the model so far (what reuse saves shows here).
    tokens_read: int = 0

    def read(self, model: PreTrainedModel, ids: list[int]) -> DynamicCache:
        """The cache of exactly ``ids`` (batch of one): the kept one when it holds these ids, else read anew."""
        if self.cache is None or self.ids != ids:
            self.cache = DynamicCache(config=model.config)
            if ids:  # prompts that share no token: an empty cache
                # Positions follow from the cache's length; only the cache is wanted from this pass.
                model(input_ids=torch.tensor([ids], device=model.device), use_cache=True, logits_to_keep=1,
                      **{_cache_argument(model): self.cache})
            self.tokens_read += len(ids)
            self.ids = list(ids)
        return self.cache


@torch.inference_mode()
def score_continuations(
    model: PreTrainedModel,
    prompt_ids: Sequence[list[int]],
    continuation_ids: Sequence[list[int]],
    *,
    batch_size: int = 8,
    max_label_rows: int = 64,
    prefix: PrefixCache | None = None,
) -> list[list[float]]:
    """``scores[i][j]``: log-probability that ``prompt_ids[i]`` continues with ``continuation_ids[j]`` (summed over
    tokens).

    ``batch_size`` prompts share a forward pass. ``prefix``: see :meth:`LanguageModel.label_log_likelihoods`.
    ``max_label_rows`` (prompts x continuations) bounds the memory of the repeated KV cache in the label pass of
    whole prompts.
    """
    if not all(continuation_ids):
        raise ValueError("every continuation must have at least one token")
    if not prompt_ids:
        return []
    if prefix is None or not _can_pack(model, max(map(len, prompt_ids)) + max(map(len, continuation_ids))):
        return [row for start in range(0, len(prompt_ids), batch_size)
                for row in _score_whole(model, prompt_ids[start : start + batch_size], continuation_ids,
                                        max_label_rows).tolist()]
    # Every prompt keeps at least one token of its own: the logits after it give the labels' first tokens.
    shared = list(prompt_ids[0][: _common_prefix_length(prompt_ids, cap=min(map(len, prompt_ids)) - 1)])
    prefix_cache = prefix.read(model, shared)
    return [row for start in range(0, len(prompt_ids), batch_size)
            for row in _score_packed(model, prefix_cache, len(shared),
                                     [ids[len(shared) :] for ids in prompt_ids[start : start + batch_size]],
                                     continuation_ids).tolist()]


def _score_packed(
    model: PreTrainedModel,
    prefix_cache: DynamicCache,
    prefix_length: int,
    suffixes: list[list[int]],
    continuation_ids: Sequence[list[int]],
) -> torch.Tensor:
    """Scores of a batch on top of the shared prefix's cache, in one forward pass of one packed row.

    The row holds, per prompt, its suffix and then each continuation but its last token: ``suffix_0, cont_0_0,
    cont_0_1, ..., suffix_1, ...``. A 4D attention mask lets a suffix token see the prefix and its suffix so far,
    and a continuation token the prefix, its prompt's suffix and its continuation so far; position ids restart for
    each continuation after its suffix. So no KV cache is repeated per prompt or per label, and no padding is
    computed.
    """
    device = model.device
    tokens: list[int] = []
    positions: list[int] = []
    owners: list[int] = []  # the prompt a token belongs to
    segments: list[int] = []  # 0: the prompt's suffix; j + 1: its continuation j
    # (packed index whose logits predict the target, target token, prompt, continuation)
    predictions: list[tuple[int, int, int, int]] = []
    for prompt, suffix in enumerate(suffixes):
        tokens += suffix
        positions += range(prefix_length, prefix_length + len(suffix))
        owners += [prompt] * len(suffix)
        segments += [0] * len(suffix)
        last_of_suffix = len(tokens) - 1
        for label, ids in enumerate(continuation_ids):
            predictions.append((last_of_suffix, ids[0], prompt, label))
            predictions += [(len(tokens) + offset, ids[offset + 1], prompt, label) for offset in range(len(ids) - 1)]
            tokens += ids[:-1]
            positions += range(prefix_length + len(suffix), prefix_length + len(suffix) + len(ids) - 1)
            owners += [prompt] * (len(ids) - 1)
            segments += [label + 1] * (len(ids) - 1)

    owner, segment = torch.tensor(owners, device=device), torch.tensor(segments, device=device)
    index = torch.arange(len(tokens), device=device)
    visible = ((owner[:, None] == owner[None, :]) & (index[None, :] <= index[:, None])
               & ((segment[None, :] == 0) | (segment[None, :] == segment[:, None])))
    visible = torch.cat([torch.ones(len(tokens), prefix_length, dtype=torch.bool, device=device), visible], dim=-1)
    # Additive form, which both the "sdpa" and the "eager" attention take (a 4D mask is used as given).
    mask = torch.zeros(visible.shape, dtype=model.dtype, device=device).masked_fill(~visible,
                                                                                      torch.finfo(model.dtype).min)
    kept = sorted({position for position, *_ in predictions})
    row_of = {position: row for row, position in enumerate(kept)}
    logits = model(
        input_ids=torch.tensor([tokens], device=device),
        attention_mask=mask[None, None],
        position_ids=torch.tensor([positions], device=device),
        use_cache=True,
        logits_to_keep=torch.tensor(kept, device=device),  # only where a label token is predicted
        # A copy: this pass extends the cache in place, and the prefix serves the next batches too.
        **{_cache_argument(model): copy.deepcopy(prefix_cache)},
    ).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    rows, targets, prompts, labels = zip(*predictions)
    scores = torch.zeros(len(suffixes), len(continuation_ids), device=device)
    scores.index_put_((torch.tensor(prompts, device=device), torch.tensor(labels, device=device)),
                      logprobs[[row_of[row] for row in rows], list(targets)], accumulate=True)
    return scores.cpu()


def _score_whole(
    model: PreTrainedModel,
    prompt_ids: Sequence[list[int]],
    continuation_ids: Sequence[list[int]],
    max_label_rows: int,
) -> torch.Tensor:
    """Scores of a batch of whole prompts: left-padded, run once keeping their KV cache; the first token of every
    continuation is read off the last logits, the rest go through one more pass on that cache repeated per
    continuation."""
    device = model.device
    rows, width = len(prompt_ids), max(map(len, prompt_ids))
    # Left padding: the last position is every row's last real token. The ids under padding are never seen.
    input_ids = torch.zeros(rows, width, dtype=torch.long)
    prompt_mask = torch.zeros(rows, width, dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        prompt_mask[row, width - len(ids) :] = 1
    input_ids, prompt_mask = input_ids.to(device), prompt_mask.to(device)
    # Positions count real tokens only, as when the prompt runs alone.
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    output = model(
        input_ids=input_ids,
        attention_mask=prompt_mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,  # only the next-token distribution: full logits of a long prompt cost gigabytes
        **{_cache_argument(model): cache},
    )
    first_logprobs = torch.log_softmax(output.logits[:, -1].float(), dim=-1)
    first_tokens = torch.tensor([ids[0] for ids in continuation_ids], device=device)
    scores = first_logprobs[:, first_tokens]  # [prompts, continuations]

    # The remaining tokens of multi-token continuations, on top of the prompts' cache.
    longer = [index for index, ids in enumerate(continuation_ids) if len(ids) > 1]
    per_pass = max(1, max_label_rows // rows)
    for chunk_start in range(0, len(longer), per_pass):
        chunk = longer[chunk_start : chunk_start + per_pass]
        scores[:, chunk] += _score_rest(model, cache, prompt_mask, prompt_mask.sum(-1),
                                        [continuation_ids[i] for i in chunk])
    return scores.cpu()


def _score_rest(
    model: PreTrainedModel,
    prompt_cache: DynamicCache,
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
        input_ids=inputs,
        attention_mask=attention_mask,
        position_ids=positions,
        use_cache=True,
        **{_cache_argument(model): cache},
    ).logits
    logprobs = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (logprobs * target_mask).sum(-1).view(n_prompts, n_continuations)


def _common_prefix_length(sequences: Sequence[Sequence[int]], cap: int | None = None) -> int:
    first = sequences[0]
    length = min(map(len, sequences)) if cap is None else cap
    for index in range(max(length, 0)):
        if any(sequence[index] != first[index] for sequence in sequences):
            return index
    return max(length, 0)


def _can_pack(model: PreTrainedModel, longest: int) -> bool:
    """Whether a packed row with a 4D mask computes what separate sequences of up to ``longest`` tokens would.

    The mask is given as an additive tensor, which the "sdpa" and "eager" attention implementations take (flash
    attention takes none). A sliding-window layer (Gemma 3: 512 tokens) would apply its window by position in the
    packed row, which our mask replaces: fine as long as no sequence is longer than the window.
    """
    config = model.config.get_text_config()
    if config._attn_implementation not in ("sdpa", "eager"):
        return False
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    has_window = bool(window) and (layer_types is None or "sliding_attention" in layer_types)
    return not has_window or longest <= window


def _cache_argument(model: PreTrainedModel) -> str:
    # transformers 5.2x renamed `past_key_values` to `cache` (the old name is deprecated); earlier 5.x know only it.
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
