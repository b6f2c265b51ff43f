"""Typed contents of the run's JSON files: what ``generation.json``, ``hfsynth_student.json`` and ``results.json`` hold.

Every reader and writer of those files goes through these models (``load``/``save``), so a field is named once and
a misspelt key fails loudly instead of reading as missing. The records accept fields they do not declare
(``extra="allow"``) and write them back: a newer hfsynth may add keys that an older reader must not drop or reject.
Optional fields that a row does not have are left out of the file rather than written as null (``exclude_unset``),
which keeps ``results.json``'s shape: teacher rows have no ``base_model``, student rows no ``unparseable``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from hfsynth.errors import HfsynthError
from hfsynth.formatting import format_number, format_percent, interval_text, pair_text

RecordT = TypeVar("RecordT", bound="_Record")
#: A student's training data: the teacher's synthetic data, or real human-labelled reference data.
DataSource = Literal["synthetic", "human"]
#: A paired comparison's outcome: "better" or "worse" only where the interval of the difference excludes zero.
Verdict = Literal["better", "worse", "no clear difference"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")

    def to_json(self) -> dict[str, Any]:
        """The file's JSON value: declared fields in order, undeclared ones kept, unset optional ones left out."""
        return self.model_dump(mode="json", exclude_unset=True)

    def save(self, path: Path) -> None:
        """Written whole or not at all: a kill mid-write leaves the previous file (or none), never half a file,
        which matters most for a student's meta file, whose presence marks the student as finished."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(partial, path)  # atomic on POSIX file systems

    @classmethod
    def load(cls: type[RecordT], path: Path) -> RecordT:
        try:
            return cls.model_validate_json(Path(path).read_bytes())
        except FileNotFoundError:
            # A record a stage writes was never written (a stage that did not run, or a folder copied in part).
            raise HfsynthError(f"{path}: missing: the run folder is incomplete; run the stage that writes it "
                               "(hfsynth generate, train or evaluate) again") from None
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
            raise HfsynthError(f"{path}: not a valid {cls.__name__} file: {where}: {problem['msg']}") from None

    @classmethod
    def load_if_present(cls: type[RecordT], path: Path) -> RecordT | None:
        return cls.load(path) if Path(path).is_file() else None


# --- generation.json ------------------------------------------------------------------------------------------------


class GenerationStats(_Record):
    """What the generation stage did; the dataset card is built from it."""

    teacher: str
    strategy: str
    calls: int
    cached_calls: int
    rounds: int
    #: Samples asked of the teacher over every round (first pass, top-ups, feedback): the equal-cost measure.
    asked_samples: int | None = None
    parsed_samples: int
    kept_samples: int
    dropped_samples: int
    drop_reasons: dict[str, int]
    #: language -> label -> kept samples
    per_language_label: dict[str, dict[str, int]]
    target_per_label: int
    splits: dict[str, int]


class TeacherShown(_Record):
    """``teacher_shown.json``: the real texts the teacher may have been shown while it wrote the dataset (few-shot
    seeds), which the human-data reference must never train on. Travels with the dataset, to the Hub too."""

    seed_texts: list[str]


class FeedbackChoice(_Record):
    """Where one feedback round spent samples: one (language, label) cell, and why."""

    language: str
    label: str
    f1: float  # the steering student's F1 on the cell's validation texts, which chose it
    confused_with: str | None = None  # the label its validation errors were most often taken for
    asked: int
    kept: int
    #: What the prompts showed: misclassified real validation texts (errors) and synthetic examples (demonstrations).
    shown_errors: list[str] = []
    shown_demonstrations: list[str] = []


class FeedbackRound(_Record):
    round: int  # 1, 2, ...: the first pass is round 0
    asked: int
    kept: int
    choices: list[FeedbackChoice]


class FeedbackReport(_Record):
    """``dataset/feedback.json``: error-driven generation's rounds and learning curve (the card, report and Space
    read it)."""

    signal: str
    student: str  # the steering student's base model, trained head-only
    validation_texts: int
    first_pass_asked: int
    budget: int  # extra samples asked over all rounds
    #: The steering student's validation macro-F1 trained on the first pass, then after each round's samples.
    learning_curve: list[float]
    rounds: list[FeedbackRound]


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
    #: What it was trained on: the synthetic data, or the real reference data (the human-data reference run).
    data: DataSource = "synthetic"


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


# --- quality.json ---------------------------------------------------------------------------------------------------


class LexicalMeasures(_Record):
    distinct_1: float | None
    distinct_2: float | None
    compression_ratio: float | None  # raw / zlib size: higher is more repetitive


class SidedLexical(_Record):
    synthetic: LexicalMeasures
    real: LexicalMeasures | None  # the equal-size real sample (None: no real text to compare with)


class SidedMeasure(_Record):
    synthetic: float | None
    real: float | None


class LabelQuality(_Record):
    """One language and label (or a whole language): synthetic texts against an equal-size real sample."""

    synthetic_texts: int
    real_texts: int
    test_texts: int
    lexical: SidedLexical
    #: Mean cosine distance between the sentence embeddings of two texts of the same label.
    pairwise_distance: SidedMeasure
    #: The share of real test texts whose nearest synthetic (or real-sample) text lies within the coverage distance.
    coverage: SidedMeasure
    #: The share of texts whose label the fidelity classifier agrees with.
    fidelity: float | None


class LanguageQuality(LabelQuality):
    coverage_distance: float | None
    coverage_calibration: str
    mean_nearest_synthetic_distance: float | None
    labels: dict[str, LabelQuality]


class FidelityInfo(_Record):
    method: str  # reference classifier | teacher | off | none
    classifier: str | None = None
    agreement: float | None = None
    judged_texts: int = 0
    #: The reference classifier's own accuracy on the real test texts: how far its verdicts can be trusted.
    classifier_test_accuracy: dict[str, float] | None = None


class TestOverlapInfo(_Record):
    __test__ = False  # not a pytest class

    ngram: int
    dropped: int  # by curation (drop reason test_overlap)
    kept: int  # still in the data (curation told to keep them, or a dataset made without the filter)


class ChatterInfo(_Record):
    dropped: int  # by curation (drop reason teacher_chatter)
    kept: int


class QualityReport(_Record):
    """``quality.json``: what the synthetic data is like, next to real data (``hfsynth.quality``)."""

    format: int
    embedding_model: str
    distance: str
    real_sample: str
    languages: dict[str, LanguageQuality]
    fidelity: FidelityInfo
    test_overlap: TestOverlapInfo
    teacher_chatter: ChatterInfo
    plot: str | None = None
    #: What the report was computed from; a re-run recomputes it when this changes.
    fingerprint: str | None = None

    def table_lines(self) -> list[dict[str, str]]:
        """One line per language, each measure as ``synthetic / real`` text: what the report, the dataset card and
        the Space show."""
        lines = []
        for language, section in self.languages.items():
            synthetic, real = section.lexical.synthetic, section.lexical.real
            lines.append({
                "language": language,
                "texts": f"{section.synthetic_texts} / {section.real_texts}",
                "distinct_1": pair_text(synthetic.distinct_1, real.distinct_1 if real else None),
                "distinct_2": pair_text(synthetic.distinct_2, real.distinct_2 if real else None),
                "compression": pair_text(synthetic.compression_ratio, real.compression_ratio if real else None, 2),
                "pairwise": pair_text(section.pairwise_distance.synthetic, section.pairwise_distance.real),
                "coverage": f"{format_percent(section.coverage.synthetic)} / {format_percent(section.coverage.real)}",
                "distance": format_number(section.coverage_distance),
                "calibration": section.coverage_calibration,
                "fidelity": format_percent(section.fidelity),
            })
        return lines


# --- results.json ---------------------------------------------------------------------------------------------------


class LabelReport(_Record):
    precision: float
    recall: float
    f1: float
    support: int


class ConfusionMatrix(_Record):
    labels: list[str]  # rows: gold, columns: predicted (may end with hfsynth.metrics.UNPARSEABLE)
    matrix: list[list[int]]


class _CompletionRate:
    """For records with ``unparseable`` (the teacher's share of answers that named no label): its complement, stored
    nowhere."""

    @property
    def completion_rate(self) -> float | None:
        """Teacher only: the share of test texts answered with a valid label (for a summary, the mean over repeats)."""
        unparseable = self.unparseable  # type: ignore[attr-defined]
        return None if unparseable is None else 1.0 - unparseable


class ResultRow(_CompletionRate, _Record):
    """One model (one training run of a student, or the teacher) on one language's test set."""

    model: str  # the teacher's Hub id, or the recipe student's name
    role: Literal["teacher", "student"]
    kind: str  # the teacher's mode (zero-shot, few-shot), or the student's kind
    demonstrations_per_label: int | None = None  # teacher only
    base_model: str | None = None  # student only
    data: DataSource | None = None  # student only: what it was trained on
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



class Comparison(_Record):
    """A paired bootstrap of (this model - another) on the same test texts, and what it allows one to say."""

    against: str  # "teacher" or "human data"
    #: The other model's macro-F1 and its interval.
    against_macro_f1: float
    against_macro_f1_ci: list[float] | None = None
    #: This macro-F1 / the other's, and its interval ("synthetic data reaches 92% of human data"); None when the other
    #: scored 0 (or did in too many resamples).
    ratio: float | None = None
    ratio_ci: list[float] | None = None
    macro_f1_difference: float
    macro_f1_difference_ci: list[float]
    accuracy_difference: float
    accuracy_difference_ci: list[float]
    #: From the macro-F1 interval: "better" or "worse" only where it excludes zero.
    verdict: Verdict
    #: The verdict in words, as cards, report and Space print it ("beats the teacher", "no clear difference").
    statement: str

    def difference_text(self) -> str:
        """The macro-F1 difference and its interval: ``+0.052 [+0.010, +0.090]``."""
        return f"{self.macro_f1_difference:+.3f} {interval_text(self.macro_f1_difference_ci, signed=True)}"

    def ratio_text(self) -> str:
        """``92% [81%, 104%]``: how much of the other's macro-F1 this one reaches."""
        if self.ratio is None:
            return f"n/a ({self.against} scored 0)"
        interval = interval_text(self.ratio_ci, percent=True)
        return f"{self.ratio:.0%} {interval}" if interval else f"{self.ratio:.0%}"


class SummaryEntry(_CompletionRate, _Record):
    """Mean (and standard deviation) over the seed repeats of one model, language and training size."""

    model: str
    role: Literal["teacher", "student"]
    kind: str
    data: DataSource | None = None  # students only
    language: str
    train_size: int | None
    n: int
    repeats: int
    macro_f1: float
    macro_f1_std: float
    accuracy: float
    accuracy_std: float
    #: Bootstrap confidence intervals over the test texts (of the mean over the seeds).
    macro_f1_ci: list[float] | None = None
    accuracy_ci: list[float] | None = None
    train_examples_per_label: float | None = None  # students only
    unparseable: float | None = None  # teacher only
    texts_per_s: float | None = None
    latency_ms: float | None = None
    per_label_f1: dict[str, float]
    confusion_matrix: ConfusionMatrix  # the first repeat's
    #: Students on all the synthetic data: against the teacher, and against the same student on human data.
    vs_teacher: Comparison | None = None
    vs_human: Comparison | None = None

    #: The scalar fields a results table shows (the Space's), in order; intervals and verdicts as text there.
    TABLE_FIELDS: ClassVar[tuple[str, ...]] = (
        "model", "role", "kind", "data", "language", "macro_f1", "macro_f1_ci", "macro_f1_std", "accuracy",
        "accuracy_ci", "accuracy_std", "n", "repeats", "completion_rate", "vs_teacher", "vs_human", "texts_per_s",
        "latency_ms")


    def score_text(self, metric: str) -> str:
        """``0.712 [0.640, 0.780]``; with seed repeats ``0.712 ± 0.010 [0.640, 0.780]`` (± the std over seeds)."""
        text = f"{getattr(self, metric):.3f}"
        if self.repeats > 1:
            text += f" ± {getattr(self, f'{metric}_std'):.3f}"
        interval = interval_text(getattr(self, f"{metric}_ci"))
        return f"{text} {interval}" if interval else text

    @property
    def display_name(self) -> str:
        if self.role == "teacher":
            return f"{self.model} (teacher)"
        return f"{self.model} (human data)" if self.data == "human" else self.model


class SyntheticVsHuman(_Record):
    """One student and language: trained on synthetic data against trained on as much real data (Pecher et al.)."""

    student: str
    kind: str
    language: str
    synthetic_macro_f1: float
    synthetic_macro_f1_ci: list[float]
    human_macro_f1: float
    human_macro_f1_ci: list[float]
    synthetic_examples_per_label: float | None
    human_examples_per_label: float | None
    #: The paired bootstrap of synthetic - human, with the ratio synthetic / human ("synthetic reaches X% of human").
    comparison: Comparison


class BootstrapSettings(_Record):
    resamples: int
    confidence: float
    seed: int


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
    bootstrap: BootstrapSettings | None = None
    #: Per student and language, when the recipe has real reference training data.
    synthetic_vs_human: list[SyntheticVsHuman] = []
    #: The synthetic dataset's quality report (``dataset/quality.json``) at evaluation time.
    quality: QualityReport | None = None
    #: Error-driven generation's rounds (``dataset/feedback.json``), when the recipe turned it on.
    feedback: FeedbackReport | None = None

    @property
    def headline(self) -> list[SummaryEntry]:
        """The teacher and each student trained on all the synthetic data: what cards, tables and the Space show."""
        return [entry for entry in self.summary if entry.data != "human"]

    @property
    def human_reference(self) -> list[SummaryEntry]:
        """Each reference student trained on real data as large as its synthetic data."""
        return [entry for entry in self.summary if entry.data == "human"]

    def headline_models(self) -> list[tuple[str, str, str]]:
        """(role, model, kind) of each headline model, in results order (the teacher first)."""
        return list(dict.fromkeys((entry.role, entry.model, entry.kind) for entry in self.headline))

    def headline_entry(self, role: str, model: str, language: str) -> SummaryEntry | None:
        return next((entry for entry in self.headline
                     if (entry.role, entry.model, entry.language) == (role, model, language)), None)

    def teacher_by_language(self) -> dict[str, SummaryEntry]:
        return {entry.language: entry for entry in self.headline if entry.role == "teacher"}


# --- run_stats.json -------------------------------------------------------------------------------------------------


class StageStats(_Record):
    """One stage's last run in this folder (:mod:`hfsynth.stage_stats`)."""

    seconds: float
    #: The largest resident set of this process during the stage (with the Ray engine: the driver's alone).
    peak_rss_mib: float
    #: "stage": the peak was reset when the stage began; "process": the kernel offers no reset, so this is the
    #: process's peak since it started (an upper bound for the stage).
    peak_scope: Literal["stage", "process"]
    engine: str


class RunStats(_Record):
    """What each stage cost: wall time and peak memory, per stage name (generate, train, evaluate)."""

    stages: dict[str, StageStats] = {}

