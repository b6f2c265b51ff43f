"""Typed contents of the run's JSON files: what ``generation.json``, ``hfsynth_student.json`` and ``results.json`` hold.

Every reader and writer of those files goes through these models (``load``/``save``), so a field is named once and
a misspelt key fails loudly instead of reading as missing. The records accept fields they do not declare
(``extra="allow"``) and write them back: a newer hfsynth may add keys that an older reader must not drop or reject.
Optional fields that a row does not have are left out of the file rather than written as null (``exclude_unset``),
which keeps ``results.json``'s shape: teacher rows have no ``base_model``, student rows no ``unparseable``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from hfsynth.errors import HfsynthError

RecordT = TypeVar("RecordT", bound="_Record")


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")

    def to_json(self) -> dict[str, Any]:
        """The file's JSON value: declared fields in order, undeclared ones kept, unset optional ones left out."""
        return self.model_dump(mode="json", exclude_unset=True)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls: type[RecordT], path: Path) -> RecordT:
        try:
            return cls.model_validate_json(Path(path).read_bytes())
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
            raise HfsynthError(f"{path}: not a valid {cls.__name__} file: {where}: {problem['msg']}") from None

    @classmethod
    def load_if_present(cls: type[RecordT], path: Path) -> RecordT | None:
        return cls.load(path) if Path(path).is_file() else None


# --- generation.json ------------------------------------------------------------------------------------------------


class DiversityStats(_Record):
    """Character 3-gram Jaccard measures of one language's synthetic texts (Li et al. 2023)."""

    mean_pairwise_distance: float
    nearest_real_similarity: float | None
    real_examples: int


class GenerationStats(_Record):
    """What the generation stage did; the dataset card is built from it."""

    teacher: str
    strategy: str
    calls: int
    cached_calls: int
    rounds: int
    parsed_samples: int
    kept_samples: int
    dropped_samples: int
    drop_reasons: dict[str, int]
    #: language -> label -> kept samples
    per_language_label: dict[str, dict[str, int]]
    target_per_label: int
    splits: dict[str, int]
    diversity: dict[str, DiversityStats]


# --- hfsynth_student.json -------------------------------------------------------------------------------------------


class TrainingRecord(_Record):
    """What one student was trained on and how long it took; the fingerprint decides whether a re-run retrains."""

    train_size: int | None  # per label and language; None: all the synthetic training data
    train_rows: int
    languages: list[str]
    seed: int
    repeat: int
    seconds: float
    fingerprint: str
    hfsynth_version: str


class StudentMeta(_Record):
    """A saved student's kind, labels, base model and settings; written last, so its presence marks a finished one."""

    kind: str
    labels: list[str]
    #: The base model as the recipe names it: an embedded short name, a local folder or a Hub id.
    model: str
    #: Its Hub id (for cards and the Space).
    base_model: str
    #: The kind's params, as ``hfsynth.students.params`` validated them.
    params: dict[str, Any]
    training: TrainingRecord


# --- results.json ---------------------------------------------------------------------------------------------------


class LabelReport(_Record):
    precision: float
    recall: float
    f1: float
    support: int


class ConfusionMatrix(_Record):
    labels: list[str]  # rows: gold, columns: predicted (may end with hfsynth.metrics.UNPARSEABLE)
    matrix: list[list[int]]


class ResultRow(_Record):
    """One model (one training run of a student, or the teacher) on one language's test set."""

    model: str  # the teacher's Hub id, or the recipe student's name
    role: Literal["teacher", "student"]
    kind: str  # the teacher's mode (zero-shot, few-shot), or the student's kind
    demonstrations_per_label: int | None = None  # teacher only
    base_model: str | None = None  # student only
    language: str
    train_size: int | None  # per label and language; None: all the synthetic data (and always for the teacher)
    # Student only: examples per label and language it saw, on average (the learning curve's x).
    train_examples_per_label: float | None = None
    seed: int | None
    n: int
    macro_f1: float
    accuracy: float
    unparseable: float | None = None  # teacher only: the share of answers that named no label
    per_label: dict[str, LabelReport]
    confusion_matrix: ConfusionMatrix
    texts_per_s: float | None
    latency_ms: float | None


class SummaryEntry(_Record):
    """Mean (and standard deviation) over the seed repeats of one model, language and training size."""

    model: str
    role: Literal["teacher", "student"]
    kind: str
    language: str
    train_size: int | None
    n: int
    repeats: int
    macro_f1: float
    macro_f1_std: float
    accuracy: float
    accuracy_std: float
    train_examples_per_label: float | None = None  # students only
    unparseable: float | None = None  # teacher only
    texts_per_s: float | None = None
    latency_ms: float | None = None
    per_label_f1: dict[str, float]
    confusion_matrix: ConfusionMatrix  # the first repeat's

    @property
    def display_name(self) -> str:
        return f"{self.model} (teacher)" if self.role == "teacher" else self.model


class TeacherInfo(_Record):
    model: str  # the Hub id (or the remote endpoint's model name) that answered
    mode: str  # zero-shot | few-shot
    demonstrations_per_label: int


class EvaluationResults(_Record):
    """``results.json``: the teacher and every student run on the real test sets."""

    recipe: str
    labels: list[str]
    languages: list[str]
    teacher: TeacherInfo
    rows: list[ResultRow]
    #: The headline comparison: the teacher and each student trained on all the synthetic data (mean over seeds).
    summary: list[SummaryEntry]
    #: Every student training size (all the data included), mean over seeds; sorted by model, language, size.
    learning_curve: list[SummaryEntry]

    @property
    def headline(self) -> list[SummaryEntry]:
        """The teacher and each student trained on all the synthetic data: what cards, tables and the Space show."""
        return self.summary

    def headline_models(self) -> list[tuple[str, str, str]]:
        """(role, model, kind) of each headline model, in results order (the teacher first)."""
        return list(dict.fromkeys((entry.role, entry.model, entry.kind) for entry in self.summary))

    def headline_entry(self, role: str, model: str, language: str) -> SummaryEntry | None:
        return next((entry for entry in self.summary
                     if (entry.role, entry.model, entry.language) == (role, model, language)), None)

    def teacher_by_language(self) -> dict[str, SummaryEntry]:
        return {entry.language: entry for entry in self.summary if entry.role == "teacher"}
