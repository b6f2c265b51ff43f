"""Typed contents of ``results.json``: every model's scores on the real test sets, the summary over seeds with
intervals and verdicts, and the comparisons cards, report, Space and benchmarks read (written by
:mod:`hfsynth.evaluation.summary`). Records behave as every run file's do (:class:`hfsynth.runs.records.Record`)."""

from __future__ import annotations

from collections import Counter
from typing import ClassVar, Literal

from hfsynth.formatting import format_number, interval_text
from hfsynth.runs.records import (
    DataSource,
    FeedbackReport,
    HumanReference,
    QualityReport,
    Record,
    TeacherTokens,
    Verdict,
)


class LabelReport(Record):
    precision: float
    recall: float
    f1: float
    support: int


class ConfusionMatrix(Record):
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


class ResultRow(_CompletionRate, Record):
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



class Comparison(Record):
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


class SummaryEntry(_CompletionRate, Record):
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


class SyntheticVsHuman(Record):
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
    #: Where the human pool was smaller, the synthetic side above is a subsample of the human size; the student on
    #: all its synthetic data is this separate line.
    full_synthetic_macro_f1: float | None = None
    full_synthetic_macro_f1_ci: list[float] | None = None
    full_synthetic_examples_per_label: float | None = None

    def equal_size_text(self) -> str:
        """``human data at equal size (...): synthetic 0.512, human 0.455; synthetic data reaches 113% [..] of it
        (no clear difference)``."""
        return (f"human data at equal size ({self.sizes_text()}): synthetic {self.synthetic_macro_f1:.3f}, human "
                f"{self.human_macro_f1:.3f}; synthetic data reaches {self.comparison.ratio_text()} of it "
                f"({self.comparison.statement})")

    def sizes_text(self) -> str:
        """``20.0 examples per label each``, or with the larger synthetic run beside it."""
        text = f"{format_number(self.human_examples_per_label, 1)} examples per label each"
        if self.full_synthetic_macro_f1 is None:
            return text
        times = (self.full_synthetic_examples_per_label or 0) / (self.human_examples_per_label or 1)
        return (f"{text}; with all its synthetic data ({times:.1f}x the examples) the student scores "
                f"{self.full_synthetic_macro_f1:.3f} {interval_text(self.full_synthetic_macro_f1_ci)}")


class BootstrapSettings(Record):
    resamples: int
    confidence: float
    seed: int


class TeacherInfo(Record):
    model: str  # the Hub id (or the remote endpoint's model name) that answered
    mode: str  # zero-shot | few-shot
    demonstrations_per_label: int


class EvaluationResults(Record):
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
    #: What became of the human-data reference's pool, when the recipe has one.
    reference_pool: HumanReference | None = None
    #: What the teacher's classification of the test sets cost (paid now, or cached from an earlier run).
    teacher_tokens: TeacherTokens | None = None

    @property
    def headline(self) -> list[SummaryEntry]:
        """The teacher and each student trained on all the synthetic data: what cards, tables and the Space show."""
        return [entry for entry in self.summary if entry.data in (None, "synthetic")]

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

    def human_comparison(self, model: str, language: str) -> SyntheticVsHuman | None:
        return next((row for row in self.synthetic_vs_human if (row.student, row.language) == (model, language)), None)

    def pool_text(self, language: str) -> str:
        """What became of the human-data pool in ``language`` ("" without a reference)."""
        return self.reference_pool.pool_text(language) if self.reference_pool is not None else ""

    def across_languages(self, model: str) -> str:
        """The papers' question for one student in one line: in how many languages it beats, ties or trails the
        teacher and human data of its size (the per-language verdicts are behind it)."""
        against = {
            "the teacher": [entry.vs_teacher.verdict for entry in self.headline
                            if entry.role == "student" and entry.model == model and entry.vs_teacher is not None],
            "human data (same size)": [row.comparison.verdict for row in self.synthetic_vs_human
                                       if row.student == model],
        }
        parts = []
        for other, verdicts in against.items():
            if verdicts:
                counts = Counter(verdicts)
                parts.append(f"vs {other}: better in {counts['better']} of {len(verdicts)} languages, "
                             f"no clear difference in {counts['no clear difference']}, worse in {counts['worse']}")
        return "; ".join(parts)

    def teacher_by_language(self) -> dict[str, SummaryEntry]:
        return {entry.language: entry for entry in self.headline if entry.role == "teacher"}
