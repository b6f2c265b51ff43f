"""SetFit: contrastive fine-tuning of a sentence-transformers body on pairs of synthetic texts, then a logistic
regression head on its embeddings. Cheap on CPU and strong with few examples per label.

``body_training`` chooses what the contrastive phase updates (:class:`~hfsynth.recipe.student_params.SetFitParams`): a
frozen parameter is left out of the optimizer (transformers' Trainer builds its groups from parameters that require
gradients), so it costs neither gradient nor optimizer memory.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
from setfit import SetFitModel, Trainer, TrainingArguments
from transformers import TrainerCallback

from hfsynth.embedded import resolve_model
from hfsynth.embeddings import Embedder, EmbeddingSpec
from hfsynth.language_model import device_and_dtype
from hfsynth.logs import quiet_trainer
from hfsynth.recipe.student_params import SetFitParams, StudentParams
from hfsynth.students.base import Student
from hfsynth.students.training_args import checkpoint_arguments, last_complete_checkpoint


class SetFitStudent(Student):
    kind = "setfit"
    params: SetFitParams

    @classmethod
    def embedding_spec(cls, model: str, params: StudentParams) -> EmbeddingSpec | None:
        # Only a body that is not trained embeds as the pretrained model does.
        assert isinstance(params, SetFitParams)
        return EmbeddingSpec(model, params.max_length) if params.body_training == "none" else None

    def _device(self) -> str:
        device, _ = device_and_dtype(self.params.device)
        return str(device)

    def pretrained_embedder(self, normalize: bool = False) -> Embedder:
        """The run's embeddings of its untrained body (``body_training: none``), computed with the body itself."""
        spec = self.embedding_spec(self.model_name, self.params)
        assert spec is not None, "only a head-only SetFit embeds as its pretrained body"
        return Embedder(spec, store=self.embedding_store, known=self.embedding_table, model=self.model.model_body,
                        normalize=normalize)

    def train(
        self, train_data: datasets.Dataset, checkpoint_dir: Path, callbacks: Sequence[TrainerCallback] = ()
    ) -> None:
        params = self.params
        self.model = SetFitModel.from_pretrained(resolve_model(self.model_name), labels=self.labels,
                                                 device=self._device())
        body = self.model.model_body
        body.max_seq_length = params.max_length  # setfit's own max_length only reaches a differentiable head
        if params.body_training == "none":
            # The pretrained body as a frozen encoder: only the head is fitted, on the run's shared embeddings (what
            # setfit's train_classifier does, with each text embedded once per run).
            embeddings = self.pretrained_embedder().encode(list(train_data["text"]))
            self.model.model_head.fit(embeddings, list(train_data["label"]))
            return
        args = TrainingArguments(
            batch_size=params.batch_size,
            num_epochs=params.num_epochs,
            num_iterations=params.num_iterations,
            body_learning_rate=params.body_learning_rate,
            head_learning_rate=params.head_learning_rate,
            max_steps=params.max_steps,
            **checkpoint_arguments(params, checkpoint_dir),
        )
        trainer = Trainer(model=self.model, args=args, train_dataset=train_data.select_columns(["text", "label"]),
                          callbacks=list(callbacks))
        quiet_trainer(trainer.st_trainer)  # no stdout log dicts or bars unless -v (hfsynth.logs)
        if params.body_training == "frozen-embeddings":
            body[0].auto_model.get_input_embeddings().weight.requires_grad_(False)
        if body.default_prompt_name:
            # The body prefixes its default prompt (e5: "query: ") when encoding, but sentence-transformers' trainer
            # only when told: train on the same inputs the head and predictions will see.
            trainer.st_trainer.data_collator.prompts = body.prompts[body.default_prompt_name]
        last_checkpoint = last_complete_checkpoint(checkpoint_dir)
        if last_checkpoint:
            # setfit's train() has no resume argument; its embedding phase is a sentence-transformers Trainer that has.
            trainer.st_trainer.train = functools.partial(trainer.st_trainer.train,
                                                         resume_from_checkpoint=last_checkpoint)
        trainer.train()

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> np.ndarray:
        if self.params.body_training == "none":
            probabilities = self.model.model_head.predict_proba(self.pretrained_embedder().encode(list(texts)))
        else:
            probabilities = self.model.predict_proba(list(texts), as_numpy=True)
        # The head only knows the labels it saw in training; put its columns where the recipe's labels are.
        full = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        full[:, self.model.model_head.classes_] = probabilities
        return full

    def save_model(self, directory: Path) -> None:
        self.model.save_pretrained(str(directory))

    def load_model(self, directory: Path) -> None:
        self.model = SetFitModel.from_pretrained(str(directory), device=self._device())
