"""The small interface every student kind implements: train on synthetic data, give label probabilities, save, load.

A saved student is a folder (``hfsynth.runs.folder.StudentFolder``): the model files (``save_pretrained`` of the kind's
library), the meta file (``hfsynth.runs.records.StudentMeta``: kind, labels, base model, training settings, training
data size and fingerprint) and the recipe whose task and labels its prompts are built from. The meta file is written
last, so its presence means the student finished.
"""

from __future__ import annotations

import importlib
import shutil
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import yaml

from hfsynth.embedded import base_model_id
from hfsynth.embeddings import EmbeddingSpec, EmbeddingTable
from hfsynth.errors import HfsynthError
from hfsynth.recipe.schema import Recipe
from hfsynth.recipe.student_kinds import StudentKind, student_kind
from hfsynth.recipe.student_params import StudentParams
from hfsynth.runs.folder import CHECKPOINTS_DIR, StudentFolder
from hfsynth.runs.records import StudentMeta, TrainingRecord

if TYPE_CHECKING:
    import datasets
    from transformers import TrainerCallback


class DamagedStudentError(HfsynthError):
    """A finished student (its meta file is there) whose files do not load."""


class Student(ABC):
    """A small classifier distilled from the teacher's synthetic data."""

    kind: ClassVar[str]

    def __init__(self, recipe: Recipe, model: str, params: StudentParams) -> None:
        self.recipe = recipe
        #: The base model as the recipe names it: an embedded short name, a local folder or a Hub id.
        self.model_name = model
        self.params = params
        #: What it was trained on (size, seed, data fingerprint); written into the meta file. None until trained.
        self.training: TrainingRecord | None = None
        #: For a kind that embeds texts with a pretrained model (:meth:`embedding_spec`): the embeddings the run
        #: computed beforehand (the stage's table for its spec), then the run's store; the rest is computed.
        self.embedding_table: EmbeddingTable | None = None
        self.embedding_store: Path | None = None

    @classmethod
    def embedding_spec(cls, model: str, params: StudentParams) -> EmbeddingSpec | None:
        """The pretrained model a student of these settings embeds texts with, if any: the stages embed its
        training and test texts once (:mod:`hfsynth.embeddings`)."""
        return None

    @property
    def labels(self) -> list[str]:
        return self.recipe.label_names

    @abstractmethod
    def train(
        self, train_data: datasets.Dataset, checkpoint_dir: Path, callbacks: Sequence[TrainerCallback] = ()
    ) -> None:
        """Fit on ``train_data`` (the synthetic schema: ``text``, ClassLabel ``label``, ``language``).

        Trainer checkpoints go to ``checkpoint_dir``; training resumes from the last one found there.
        """

    @abstractmethod
    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> np.ndarray:
        """Probabilities of shape ``(len(texts), len(labels))``, columns in the recipe's label order."""

    def predict(self, texts: Sequence[str], languages: Sequence[str]) -> list[str]:
        return [self.labels[index] for index in self.predict_proba(texts, languages).argmax(axis=1)]

    @abstractmethod
    def save_model(self, directory: Path) -> None:
        """Write the kind's model files (``save_pretrained``) into ``directory``."""

    @abstractmethod
    def load_model(self, directory: Path) -> None:
        """Read back what :meth:`save_model` wrote."""

    def meta(self) -> StudentMeta:
        if self.training is None:
            raise ValueError("a student is saved after training: its training record is missing")
        return StudentMeta(
            kind=self.kind,
            labels=self.labels,
            model=self.model_name,
            base_model=base_model_id(self.model_name),
            params=self.params.model_dump(mode="json"),
            training=self.training,
        )

    def save(self, directory: Path) -> None:
        folder = StudentFolder(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.save_model(directory)
        folder.recipe.write_text(self.recipe.source_text, encoding="utf-8")
        self.meta().save(folder.meta)  # last: its presence marks a finished student

    @classmethod
    def release(cls, directory: Path, target: Path) -> None:
        """Write into ``target`` what the published repo of the student saved in ``directory`` holds: its folder
        without checkpoints; a kind may add files (the SFT student its merged model)."""
        shutil.copytree(directory, target, ignore=shutil.ignore_patterns(CHECKPOINTS_DIR), dirs_exist_ok=True)

    @staticmethod
    def release_any(directory: Path, target: Path) -> None:
        """:meth:`release` of whatever kind the meta file names (nothing is loaded unless the kind needs it)."""
        student_class(student_kind(_finished_meta(directory).kind)).release(directory, target)

    @classmethod
    def load(cls, directory: Path) -> Student:
        """Any saved student, whatever its kind (the meta file names it)."""
        folder = StudentFolder(directory)
        meta = _finished_meta(directory)
        try:
            # Validated, but its model names and file paths not checked: only its task and labels matter here.
            recipe = Recipe.model_validate(yaml.safe_load(folder.recipe.read_text(encoding="utf-8")))
            kind = student_kind(meta.kind)
            student = student_class(kind)(recipe, meta.model, kind.parse_params(meta.params))
            student.training = meta.training
            student.load_model(directory)
        except (ImportError, MemoryError):
            raise  # a missing library or too little memory: the files are not at fault
        except Exception as error:
            # The meta file says the student finished, so a file that does not load was damaged after the fact (a
            # full disk, a copy cut short, an edit): each library fails its own way (SafetensorError, a KeyError
            # from a garbage pickle...), so any failure here names the folder and the fix.
            reason = str(error).splitlines()[0][:200] if str(error) else ""
            # The fix before the reason: a shortened message (the Space's column) still says what to do.
            raise DamagedStudentError(
                f"student folder {directory} is damaged: delete the folder and run `hfsynth train` again to retrain "
                f"it ({type(error).__name__}: {reason})") from error
        return student


def _finished_meta(directory: Path) -> StudentMeta:
    meta = read_meta(directory)
    if meta is None:
        raise FileNotFoundError(f"{directory}: no finished student ({StudentFolder(directory).meta.name} is missing)")
    return meta


def read_meta(directory: Path) -> StudentMeta | None:
    """The meta file of a finished student; None when the folder holds no finished student."""
    return StudentMeta.load_if_present(StudentFolder(directory).meta)


def student_class(kind: StudentKind) -> type[Student]:
    """The kind's class, imported on first use (setfit, trl and peft take seconds to import)."""
    module, name = kind.class_path.split(":")
    return getattr(importlib.import_module(module), name)
