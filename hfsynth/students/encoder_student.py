"""A pretrained encoder with a classification head, fully fine-tuned with the transformers ``Trainer`` (the paper's
XLM-RoBERTa student). Any encoder folder loads, a sentence-transformers one included (its root holds the encoder)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from hfsynth.embedded import resolve_model
from hfsynth.language_model import device_and_dtype
from hfsynth.logs import quiet_trainer
from hfsynth.recipe.student_params import EncoderParams
from hfsynth.students.base import Student
from hfsynth.students.training_args import last_complete_checkpoint, trainer_arguments


class EncoderStudent(Student):
    kind = "encoder"
    params: EncoderParams

    def train(
        self, train_data: datasets.Dataset, checkpoint_dir: Path, callbacks: Sequence[TrainerCallback] = ()
    ) -> None:
        params = self.params
        device, dtype = device_and_dtype(params.device, params.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model(self.model_name))
        self.model = AutoModelForSequenceClassification.from_pretrained(
            resolve_model(self.model_name),
            num_labels=len(self.labels),
            id2label=dict(enumerate(self.labels)),
            label2id={label: index for index, label in enumerate(self.labels)},
        )
        tokenized = train_data.select_columns(["text", "label"]).map(
            lambda batch: self.tokenizer(batch["text"], truncation=True, max_length=params.max_length),
            batched=True,
            remove_columns=["text"],
        )
        args = TrainingArguments(
            per_device_train_batch_size=params.batch_size,
            num_train_epochs=params.num_epochs,
            max_steps=params.max_steps,
            learning_rate=params.learning_rate,
            weight_decay=params.weight_decay,
            warmup_steps=params.warmup_ratio,  # transformers 5: a float below 1 is a fraction of the steps
            **trainer_arguments(params, checkpoint_dir, device, dtype),  # mixed precision: weights stay float32
        )
        trainer = Trainer(
            model=self.model,
            args=args,
            train_dataset=tokenized,
            data_collator=DataCollatorWithPadding(self.tokenizer),
            callbacks=list(callbacks),
        )
        quiet_trainer(trainer)  # no stdout log dicts or bars unless -v (hfsynth.logs)
        trainer.train(resume_from_checkpoint=last_complete_checkpoint(checkpoint_dir))
        self.model.eval()

    @torch.inference_mode()
    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), self.params.batch_size):
            inputs = self.tokenizer(list(texts[start : start + self.params.batch_size]), truncation=True,
                                    max_length=self.params.max_length, padding=True, return_tensors="pt")
            logits = self.model(**inputs.to(self.model.device)).logits
            rows.append(logits.float().softmax(dim=-1).cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, len(self.labels)), dtype=np.float32)

    def save_model(self, directory: Path) -> None:
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    def load_model(self, directory: Path) -> None:
        device, _ = device_and_dtype(self.params.device, self.params.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.model = AutoModelForSequenceClassification.from_pretrained(directory).to(device).eval()
