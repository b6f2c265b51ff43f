"""A teacher that runs in this process with transformers: an embedded model, a local folder or a Hub id."""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence

import torch

from hfsynth.embedded import base_model_id
from hfsynth.errors import HfsynthError, TeacherError
from hfsynth.language_model import LanguageModel, PrefixCache, device_and_dtype
from hfsynth.prompting import COMPLETION_STOPS, Answer, LabelScores, Prompt, Usage, cut_completion
from hfsynth.recipe.schema import SamplingParams, TeacherConfig
from hfsynth.reproducibility import pin_threads
from hfsynth.teachers.base import Teacher


class LocalTeacher(Teacher):
    """A prompt's ``response_schema`` is not enforced (no constrained decoding): the model is asked for JSON in
    words only, and the generation stage reads an answer that is not JSON as lines."""

    def __init__(self, config: TeacherConfig) -> None:
        super().__init__()
        # Its texts and scores depend on torch's thread count: hfsynth's fixed one, also when used outside a stage.
        pin_threads()
        self.config = config
        self.model_id = base_model_id(config.model)
        device, dtype = device_and_dtype(config.device, config.dtype)
        try:
            self.lm = LanguageModel.load(config.model, device, dtype, config.prompt_format)
        except HfsynthError as error:
            raise TeacherError(f"teacher {error}") from None
        self.lm.model.eval()
        self.uses_chat = self.lm.chat
        self.answers_need_their_batch = True
        # The teacher's weights never change, so the instructions and demonstrations its classification prompts
        # share are read once and kept from one classify call to the next.
        self.prefix = PrefixCache()

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: SamplingParams,
        seed: int,
        on_answer: Callable[[int, str], None] | None = None,
        positions: Sequence[int] | None = None,
    ) -> list[str]:
        # A batch is generated, paid and stored whole (its on_answer calls come together), so it is never asked in
        # part and ``positions`` has nothing to place: the seed is the batch's.
        texts: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = self._generate_batch(prompts[start : start + self.batch_size], sampling, seed)
            if on_answer is not None:
                for offset, text in enumerate(batch):
                    on_answer(start + offset, text)
            texts += batch
        return texts

    def _generate_batch(self, prompts: Sequence[Prompt], sampling: SamplingParams, seed: int) -> list[str]:
        tokenizer = self.lm.tokenizer
        # Left padding: every prompt ends at the same position, where generation starts.
        encoded = tokenizer(
            [self.lm.render(prompt) for prompt in prompts],
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=not self.uses_chat,  # a chat template writes its own BOS
        ).to(self.lm.model.device)
        options: dict[str, object] = {
            "max_new_tokens": sampling.max_new_tokens,
            "repetition_penalty": sampling.repetition_penalty,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": self.lm.stop_token_ids,
        }
        if sampling.temperature > 0:
            # top_k=0: only temperature and top_p shape the distribution, as on an OpenAI-compatible server
            # (transformers would otherwise add its default top_k=50).
            options |= {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}
        else:
            options["do_sample"] = False
        if not self.uses_chat:
            options |= {"stop_strings": list(COMPLETION_STOPS), "tokenizer": tokenizer}

        torch.manual_seed(seed)  # the same seed and batch give the same samples
        output = self.lm.model.generate(**encoded, **options)
        new_tokens = output[:, encoded["input_ids"].shape[1] :]

        prompt_tokens = encoded["attention_mask"].sum(dim=1).tolist()
        completion_tokens = (new_tokens != tokenizer.pad_token_id).sum(dim=1).tolist()
        self.stats.calls += len(prompts)
        self.stats.prompt_tokens += sum(prompt_tokens)
        self.stats.completion_tokens += sum(completion_tokens)
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        # A chat model stops at its end of turn; a base model's text ends where its next few-shot item would begin.
        return [Answer(text.strip() if self.uses_chat else cut_completion(text), Usage(int(used), int(written)))
                for text, used, written in zip(texts, prompt_tokens, completion_tokens, strict=True)]

    def prompt_tokens(self, prompts: Sequence[Prompt]) -> list[int]:
        return list(map(len, self.lm.encode(prompts)))

    def classify(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[LabelScores]:
        scores = self.lm.label_log_likelihoods(prompts, labels, self.batch_size, self.prefix)
        lengths = list(map(len, self.lm.encode(prompts)))
        self.stats.calls += len(prompts)
        self.stats.prompt_tokens += sum(lengths)
        # The labels are scored, not written: a classification costs its prompt's tokens.
        return [LabelScores.from_logprobs(dict(zip(labels, row)), usage=Usage(length, 0))
                for row, length in zip(scores, lengths, strict=True)]

    def close(self) -> None:
        if getattr(self, "lm", None) is None:
            return
        on_gpu = self.lm.model.device.type == "cuda"
        self.lm = self.prefix = None
        gc.collect()
        if on_gpu:
            torch.cuda.empty_cache()
