"""A small LLM fine-tuned with LoRA (peft) on the synthetic data as prompt/completion pairs (TRL ``SFTTrainer``).

The training prompt is the very classification prompt the teacher and the other LLM students answer
(:func:`hfsynth.prompting.classification_prompt`), and the completion is the label, so train and test prompts agree.
Predictions score each label as the answer (:mod:`hfsynth.language_model`), never parse generated text.

A trained student is saved as its LoRA adapter alone in ``adapter/`` (``PeftModel.from_pretrained(base, folder,
subfolder="adapter")``) and the tokenizer: megabytes where the merged model takes the base model's size (536 MB for a
135M model, 16 GB for an 8B one, times every learning-curve run and seed of a grid). Loading merges the adapter into
the base model in float32, as training saw it, so the scores are those of a merged model. Publishing
(:meth:`SFTStudent.release`) adds the merged model at the repo's root, which loads with
``AutoModelForCausalLM.from_pretrained`` and needs no peft.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from peft import LoraConfig, PeftConfig, PeftModel
from transformers import AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer

from hfsynth.embedded import base_model_id
from hfsynth.language_model import LanguageModel, device_and_dtype
from hfsynth.logs import quiet_trainer
from hfsynth.prompting import classification_prompt
from hfsynth.recipe.student_params import SFTParams
from hfsynth.runs.folder import StudentFolder
from hfsynth.students.base import Student
from hfsynth.students.training_args import last_complete_checkpoint, trainer_arguments


class SFTStudent(Student):
    kind = "sft"
    params: SFTParams

    def _training_examples(self, train_data: datasets.Dataset) -> datasets.Dataset:
        """Prompt/completion rows: chat messages for a chat model (TRL applies its template and end of turn), plain
        text for a base model (completion-style document, answer on the ``Label:`` line)."""
        lm = LanguageModel.wrap(self.model, self.tokenizer)
        label_names = train_data.features["label"].names
        rows: dict[str, list[Any]] = {"prompt": [], "completion": []}
        for text, label_id, language in zip(train_data["text"], train_data["label"], train_data["language"],
                                            strict=True):
            label = label_names[label_id]
            prompt = classification_prompt(self.recipe, text, language)
            if lm.chat:
                rows["prompt"].append(prompt.as_openai_messages())
                rows["completion"].append([{"role": "assistant", "content": label}])
            else:
                rows["prompt"].append(prompt.completion)
                rows["completion"].append(lm.label_continuations([label])[0])
        return datasets.Dataset.from_dict(rows)

    def train(
        self, train_data: datasets.Dataset, checkpoint_dir: Path, callbacks: Sequence[TrainerCallback] = ()
    ) -> None:
        params = self.params
        device, dtype = device_and_dtype(params.device, params.dtype)
        # Weights in float32 on CPU (bf16 only as autocast, so merged weights keep full precision); on a GPU in its
        # bf16/fp16, with mixed precision for the adapter's updates.
        weights_dtype = torch.float32 if device.type == "cpu" else dtype
        self._load(self.model_name, device, weights_dtype)
        args = SFTConfig(
            max_steps=params.max_steps,
            per_device_train_batch_size=params.batch_size,
            gradient_accumulation_steps=params.gradient_accumulation_steps,
            learning_rate=params.learning_rate,
            max_length=params.max_length,
            activation_checkpointing=params.gradient_checkpointing,  # transformers 5's name for it
            **trainer_arguments(params, checkpoint_dir, device, dtype),
        )
        lora = LoraConfig(
            r=params.r,
            lora_alpha=params.alpha,
            lora_dropout=params.dropout,
            target_modules=params.target_modules,
            task_type="CAUSAL_LM",
        )
        trainer = SFTTrainer(
            model=self.model,
            args=args,
            train_dataset=self._training_examples(train_data),
            processing_class=self.tokenizer,
            peft_config=lora,
            callbacks=list(callbacks),
        )
        quiet_trainer(trainer)  # no stdout log dicts or bars unless -v (hfsynth.logs)
        trainer.train(resume_from_checkpoint=last_complete_checkpoint(checkpoint_dir))
        self.peft_model = trainer.model

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> np.ndarray:
        prompts = [classification_prompt(self.recipe, text, language)
                   for text, language in zip(texts, languages, strict=True)]
        self.model.eval()
        lm = LanguageModel.wrap(self.model, self.tokenizer)
        return lm.label_probabilities(prompts, self.labels, self.params.batch_size)

    def save_model(self, directory: Path) -> None:
        adapter_dir = StudentFolder(directory).sft_adapter
        # Saved while its config still names the local base folder (else peft looks the base up on the Hub), then
        # renamed to the base's Hub id, so that the published adapter loads anywhere.
        self.peft_model.save_pretrained(adapter_dir)
        config = PeftConfig.from_pretrained(adapter_dir)
        config.base_model_name_or_path = base_model_id(self.model_name)
        config.save_pretrained(adapter_dir)
        self.tokenizer.save_pretrained(directory)
        self.model = self.peft_model.merge_and_unload()  # this object predicts with the merged model from now on

    def load_model(self, directory: Path) -> None:
        device, dtype = device_and_dtype(self.params.device, self.params.dtype)
        if (directory / "config.json").is_file():  # a merged model (published, or saved by hfsynth before 0.x)
            self._load(directory, device, dtype)
            return
        # Merged in float32, then the weights cast as from_pretrained(dtype=...) casts them: buffers such as the
        # rotary frequencies stay float32 (Module.to(dtype) would round them too, and move the scores).
        merged = self._merged_float32(directory)
        for parameter in merged.parameters():
            parameter.data = parameter.data.to(dtype)
        merged.config.dtype = dtype
        self.model = merged.to(device)

    @classmethod
    def release(cls, directory: Path, target: Path) -> None:
        """The published repo also holds the merged model (float32) at its root: no peft needed to use it."""
        super().release(directory, target)
        if not (directory / "config.json").is_file():
            student = Student.load(directory)
            assert isinstance(student, SFTStudent)
            student._merged_float32(directory).save_pretrained(target)

    def _merged_float32(self, directory: Path) -> torch.nn.Module:
        """The base model in float32 with the saved adapter merged into it, and the tokenizer as training left it."""
        self._load(self.model_name, torch.device("cpu"), torch.float32)
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        return PeftModel.from_pretrained(self.model, StudentFolder(directory).sft_adapter).merge_and_unload()

    def _load(self, name: str | Path, device: torch.device, dtype: torch.dtype) -> None:
        lm = LanguageModel.load(name, device, dtype)
        # Kept apart (not as a LanguageModel): the trainer wraps and peft merges the model in place of these.
        self.model, self.tokenizer = lm.model, lm.tokenizer
