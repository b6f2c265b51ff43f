"""A teacher that runs in this process with transformers: an embedded model, a local folder or a Hub id."""

from __future__ import annotations

import gc
from collections.abc import Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hfsynth.embedded import base_model_id, resolve_model
from hfsynth.errors import TeacherError
from hfsynth.prompts import ITEM_MARKER
from hfsynth.recipe import SamplingParams, TeacherConfig
from hfsynth.scoring import device_and_dtype, label_continuations, score_continuations
from hfsynth.teachers.base import LabelScores, Prompt, Teacher

# A base model continuing a few-shot document writes one item, then starts the next: cut it there.
COMPLETION_STOPS = ("\n\n", f"\n{ITEM_MARKER}")


class LocalTeacher(Teacher):
    def __init__(self, config: TeacherConfig) -> None:
        super().__init__()
        self.config = config
        self.model_id = base_model_id(config.model)
        self.device, self.dtype = device_and_dtype(config.device, config.dtype)
        path = resolve_model(config.model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            # Checked before the (slow) weights load.
            has_template = bool(self.tokenizer.chat_template)
            if config.prompt_format == "chat" and not has_template:
                raise TeacherError(
                    f"teacher model {config.model!r} has no chat template: use prompt_format: completion"
                )
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        except OSError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TeacherError(f"cannot load teacher model {config.model!r}: {reason}") from None
        self.uses_chat = has_template if config.prompt_format == "auto" else config.prompt_format == "chat"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    def _render(self, prompt: Prompt) -> str:
        if not self.uses_chat:
            return prompt.completion
        return self.tokenizer.apply_chat_template(
            prompt.as_openai_messages(), tokenize=False, add_generation_prompt=True
        )

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Prompt], sampling: SamplingParams, seed: int) -> list[str]:
        texts: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            texts += self._generate_batch(prompts[start : start + self.batch_size], sampling, seed)
        return texts

    def _generate_batch(self, prompts: Sequence[Prompt], sampling: SamplingParams, seed: int) -> list[str]:
        # Left padding: every prompt ends at the same position, where generation starts.
        encoded = self.tokenizer(
            [self._render(prompt) for prompt in prompts],
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=not self.uses_chat,  # a chat template writes its own BOS
        ).to(self.device)
        options: dict[str, object] = {
            "max_new_tokens": sampling.max_new_tokens,
            "repetition_penalty": sampling.repetition_penalty,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sampling.temperature > 0:
            # top_k=0: only temperature and top_p shape the distribution, as on an OpenAI-compatible server
            # (transformers would otherwise add its default top_k=50).
            options |= {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}
        else:
            options["do_sample"] = False
        if not self.uses_chat:
            options |= {"stop_strings": list(COMPLETION_STOPS), "tokenizer": self.tokenizer}

        torch.manual_seed(seed)  # the same seed and batch give the same samples
        output = self.model.generate(**encoded, **options)
        new_tokens = output[:, encoded["input_ids"].shape[1] :]

        self.stats.calls += len(prompts)
        self.stats.prompt_tokens += int(encoded["attention_mask"].sum())
        self.stats.completion_tokens += int((new_tokens != self.tokenizer.pad_token_id).sum())
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [self._cut(text).strip() for text in texts]

    def _cut(self, text: str) -> str:
        """A chat model stops at EOS; a base model's text ends where its next few-shot item would begin."""
        if self.uses_chat:
            return text
        for stop in COMPLETION_STOPS:
            text = text.split(stop, 1)[0]
        return text

    def classify(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[LabelScores]:
        texts = [self._render(prompt) for prompt in prompts]
        add_special_tokens = not self.uses_chat
        scores = score_continuations(
            self.model,
            self.tokenizer,
            texts,
            label_continuations(self.tokenizer, labels, chat=self.uses_chat),
            add_special_tokens=add_special_tokens,
            batch_size=self.batch_size,
        )
        self.stats.calls += len(prompts)
        encoded = self.tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]
        self.stats.prompt_tokens += sum(len(ids) for ids in encoded)
        return [LabelScores.from_logprobs(dict(zip(labels, row))) for row in scores]

    def close(self) -> None:
        if getattr(self, "model", None) is None:
            return
        self.model = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
