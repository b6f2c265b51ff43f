"""A compact LLM that is not trained at all: each prompt shows it ``examples_per_label`` synthetic examples of every
label (the paper's in-context setting), picked at random or as the ones nearest to the text by embedding, from the
text's own language when the synthetic data has it.

"Training" builds the example pool (and its embeddings); the saved student is that pool plus the meta file, and the
base model is loaded by name (an embedded model, a folder or a Hub id): copying its weights would add nothing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
from transformers import TrainerCallback

from hfsynth.embeddings import Embedder, EmbeddingSpec
from hfsynth.language_model import LanguageModel, device_and_dtype
from hfsynth.prompting import classification_prompt
from hfsynth.recipe.student_params import InContextParams, StudentParams
from hfsynth.runs.folder import StudentFolder
from hfsynth.students.base import Student


class InContextStudent(Student):
    kind = "in-context"
    params: InContextParams
    _embedder: Embedder | None = None

    @classmethod
    def embedding_spec(cls, model: str, params: StudentParams) -> EmbeddingSpec | None:
        assert isinstance(params, InContextParams)
        return EmbeddingSpec(params.embedding_model) if params.selection == "nearest" else None

    def train(
        self, train_data: datasets.Dataset, checkpoint_dir: Path, callbacks: Sequence[TrainerCallback] = ()
    ) -> None:
        label_names = train_data.features["label"].names
        self.examples = [
            {"text": text, "label": label_names[label], "language": language}
            for text, label, language in zip(train_data["text"], train_data["label"], train_data["language"],
                                             strict=True)
        ]
        self._load_models()
        self.example_vectors = (self._embed([example["text"] for example in self.examples])
                                if self.params.selection == "nearest" else None)

    def _load_models(self) -> None:
        device, dtype = device_and_dtype(self.params.device, self.params.dtype)
        self.lm = LanguageModel.load(self.model_name, device, dtype)
        self.lm.model.eval()

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        spec = self.embedding_spec(self.model_name, self.params)
        assert spec is not None, "only nearest-example selection embeds"
        embedder = self._embedder
        if embedder is None or embedder.known is not self.embedding_table:  # a stage may give a table after loading
            embedder = self._embedder = Embedder(spec, store=self.embedding_store, known=self.embedding_table,
                                                 normalize=True)
        return embedder.encode(texts)

    def _demonstrations(self, text: str, language: str, query: np.ndarray | None) -> list[tuple[str, str]]:
        """``examples_per_label`` (text, label) pairs per label, in a shuffled order (no label always comes last).

        The random choices depend on the seed and the text only, so a text gets the same prompt in any batch.
        """
        rng = random.Random(f"{self.params.seed}/{text}")
        pool = [i for i, example in enumerate(self.examples) if example["language"] == language]
        pool = pool or list(range(len(self.examples)))
        chosen: list[int] = []
        for label in self.labels:
            candidates = [i for i in pool if self.examples[i]["label"] == label]
            if query is not None:
                similarity = self.example_vectors[candidates] @ query
                chosen += [candidates[i] for i in np.argsort(-similarity)[: self.params.examples_per_label]]
            else:
                chosen += rng.sample(candidates, min(self.params.examples_per_label, len(candidates)))
        rng.shuffle(chosen)
        return [(self.examples[i]["text"], self.examples[i]["label"]) for i in chosen]

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> np.ndarray:
        queries = self._embed(texts) if self.params.selection == "nearest" else [None] * len(texts)
        prompts = [
            classification_prompt(self.recipe, text, language, self._demonstrations(text, language, query))
            for text, language, query in zip(texts, languages, queries, strict=True)
        ]
        return self.lm.label_probabilities(prompts, self.labels, self.params.batch_size)

    def save_model(self, directory: Path) -> None:
        with StudentFolder(directory).in_context_examples.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(example, ensure_ascii=False) + "\n" for example in self.examples)
        if self.example_vectors is not None:
            np.save(StudentFolder(directory).in_context_embeddings, self.example_vectors)

    def load_model(self, directory: Path) -> None:
        with StudentFolder(directory).in_context_examples.open(encoding="utf-8") as handle:
            self.examples = [json.loads(line) for line in handle]
        embeddings = StudentFolder(directory).in_context_embeddings
        self.example_vectors = np.load(embeddings) if self.params.selection == "nearest" else None
        self._load_models()
