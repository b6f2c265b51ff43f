"""Typed contents of the run's JSON files: what ``generation.json``, ``hfsynth_student.json``, ``quality.json``,
``human_reference.json`` and ``run_stats.json`` hold (``results.json``: :mod:`hfsynth.evaluation.results`).

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
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from hfsynth.errors import HfsynthError
from hfsynth.formatting import format_number, format_percent, pair_text

RecordT = TypeVar("RecordT", bound="Record")
#: A student's training data: the teacher's synthetic data, real human-labelled reference data, or a subsample of
#: the synthetic data as large as the human data (where the human pool is the smaller: what human data is compared
#: with).
DataSource = Literal["synthetic", "human", "synthetic-at-human-size"]
#: A paired comparison's outcome: "better" or "worse" only where the interval of the difference excludes zero.
Verdict = Literal["better", "worse", "no clear difference"]


class Record(BaseModel):
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


class TeacherTokens(Record):
    """The teacher tokens a stage used (:mod:`hfsynth.teachers.spending`): paid for now, and found in the call cache
    (paid by an earlier run of this folder, not again). Costs at the recipe's ``teacher.pricing``, when it has one."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_calls: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    #: Answers whose backend reported no token counts: counted as calls, not as tokens.
    uncounted_calls: int = 0
    currency: str | None = None
    cost: float | None = None
    cached_cost: float | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cached_tokens(self) -> int:
        return self.cached_prompt_tokens + self.cached_completion_tokens

    def made_with(self) -> str:
        """What the stage's output took, in any run (paid now or earlier): ``12,345 teacher tokens (9,000 prompt,
        3,345 completion; 0.0123 USD)``."""
        prompt = self.prompt_tokens + self.cached_prompt_tokens
        completion = self.completion_tokens + self.cached_completion_tokens
        priced = (f"; {format_cost((self.cost or 0) + (self.cached_cost or 0), self.currency)}"
                  if self.cost is not None else "")
        uncounted = f", and {self.uncounted_calls:,} calls without token counts" if self.uncounted_calls else ""
        split = f"{prompt:,} prompt, {completion:,} completion{priced}"
        return f"{prompt + completion:,} teacher tokens ({split}){uncounted}"

    def describe(self) -> str:
        """One line: ``12,345 teacher tokens (0.0123 USD), 1,000 more cached``."""
        text = f"{self.tokens:,} teacher tokens" + (f" ({format_cost(self.cost, self.currency)})"
                                                    if self.cost is not None else "")
        if self.cached_calls:
            text += f", {self.cached_tokens:,} more cached"
        if self.uncounted_calls:
            text += f", {self.uncounted_calls:,} calls without token counts"
        return text


def format_cost(cost: float, currency: str | None) -> str:
    return f"{cost:,.4f} {currency or ''}".rstrip()


class GenerationStats(Record):
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
    #: What the teacher's calls cost, the curation self-check's included (``None``: written before tokens were kept).
    teacher_tokens: TeacherTokens | None = None


class TeacherShown(Record):
    """``teacher_shown.json``: the real texts the teacher may have been shown while it wrote the dataset (few-shot
    seeds), which the human-data reference must never train on. Travels with the dataset, to the Hub too."""

    seed_texts: list[str]


class FeedbackChoice(Record):
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


class FeedbackRound(Record):
    round: int  # 1, 2, ...: the first pass is round 0
    asked: int
    kept: int
    choices: list[FeedbackChoice]


class FeedbackReport(Record):
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


class TrainingRecord(Record):
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


class StudentMeta(Record):
    """A saved student's kind, labels, base model and settings; written last, so its presence marks a finished one."""

    kind: str
    labels: list[str]
    #: The base model as the recipe names it: an embedded short name, a local folder or a Hub id.
    model: str
    #: Its Hub id (for cards and the Space).
    base_model: str
    #: The kind's params, as ``hfsynth.recipe.student_params`` validated them.
    params: dict[str, Any]
    training: TrainingRecord


# --- human_reference.json -------------------------------------------------------------------------------------------


class ReferenceCell(Record):
    """One language and label of the human-data reference's pool."""

    existed: int  # distinct real training texts (test texts left out)
    shown: int  # of them, texts the teacher may have seen (few-shot seeds, classification demonstrations)
    left: int  # what the pool kept: existed - shown with pool "strict", existed with "all"
    human: int  # drawn for the human training set: as many as the synthetic data has, or all that were left
    synthetic: int  # synthetic training examples


class HumanReference(Record):
    """What became of the human-data reference's pool, per language and label (:mod:`hfsynth.human_reference`)."""

    pool: Literal["strict", "all"]
    cells: dict[str, dict[str, ReferenceCell]]

    @property
    def smaller_than_synthetic(self) -> bool:
        """The pool could not match the synthetic data somewhere: the verdict then needs a synthetic run at the
        human size."""
        return any(cell.human < cell.synthetic for labels in self.cells.values() for cell in labels.values())

    def per_label(self, language: str) -> dict[str, float]:
        """Each count's mean over the language's labels."""
        cells = list(self.cells.get(language, {}).values())
        return {name: sum(getattr(cell, name) for cell in cells) / len(cells) if cells else 0.0
                for name in ReferenceCell.model_fields}

    def pool_text(self, language: str) -> str:
        """``per label: 100.0 real texts, 80.0 possibly seen by the teacher, 20.0 left (pool: strict)``."""
        counts = self.per_label(language)
        seen = (f"{counts['shown']:.1f} possibly seen by the teacher, {counts['left']:.1f} left"
                if self.pool == "strict" else f"{counts['shown']:.1f} of them possibly seen by the teacher, all used")
        return f"per label: {counts['existed']:.1f} real texts, {seen} (pool: {self.pool})"


# --- quality.json ---------------------------------------------------------------------------------------------------


class LexicalMeasures(Record):
    distinct_1: float | None
    distinct_2: float | None
    compression_ratio: float | None  # raw / zlib size: higher is more repetitive


class SidedLexical(Record):
    synthetic: LexicalMeasures
    real: LexicalMeasures | None  # the equal-size real sample (None: no real text to compare with)


class SidedMeasure(Record):
    synthetic: float | None
    real: float | None


class LabelQuality(Record):
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


class FidelityInfo(Record):
    method: str  # reference classifier | teacher | off | none
    classifier: str | None = None
    agreement: float | None = None
    judged_texts: int = 0
    #: The reference classifier's own accuracy on the real test texts: how far its verdicts can be trusted.
    classifier_test_accuracy: dict[str, float] | None = None


class TestOverlapInfo(Record):
    __test__ = False  # not a pytest class

    ngram: int
    dropped: int  # by curation (drop reason test_overlap)
    kept: int  # still in the data (curation told to keep them, or a dataset made without the filter)


class ChatterInfo(Record):
    dropped: int  # by curation (drop reason teacher_chatter)
    kept: int


class QualityReport(Record):
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


# --- run_stats.json -------------------------------------------------------------------------------------------------


class EmbeddedTexts(Record):
    """Texts a stage's driver embedded with pretrained sentence models (:mod:`hfsynth.embeddings`)."""

    #: Embedded now (each a forward pass).
    computed: int
    #: Found already embedded by an earlier stage or run (the run's store), or earlier in the stage.
    reused: int


class StageStats(Record):
    """One stage's last run in this folder (:mod:`hfsynth.stage_stats`)."""

    seconds: float
    #: The largest resident set of this process during the stage (with the Ray engine: the driver's alone).
    peak_rss_mib: float
    #: "stage": the peak was reset when the stage began; "process": the kernel offers no reset, so this is the
    #: process's peak since it started (an upper bound for the stage).
    peak_scope: Literal["stage", "process"]
    engine: str
    #: The stage's teacher calls, when it made any (generation, the teacher's evaluation).
    teacher_tokens: TeacherTokens | None = None
    #: Its sentence embeddings, when it used any (the quality report, head-only SetFit, nearest examples).
    embedded_texts: EmbeddedTexts | None = None


class RunStats(Record):
    """What each stage cost: wall time and peak memory, per stage name (generate, train, evaluate)."""

    stages: dict[str, StageStats] = {}

