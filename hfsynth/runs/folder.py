"""The run folder (``--out DIR``) and the folders inside it: every file and folder name hfsynth writes, in one place.

::

    DIR/
      cache/teacher_calls.sqlite        every teacher call of the generation stage (resumable)
      cache/embeddings.sqlite           every text a pretrained sentence model embedded (hfsynth.embeddings)
      dataset/                          DatasetFolder: the synthetic DatasetDict (save_to_disk) and its side files
      students/<name>/                  StudentFolder: each recipe student trained on all the data (the published one)
      student_runs/<name>/<size>-per-label-seed<k>/   StudentFolder: learning-curve subsets and seed repeats
      student_runs/<name>/human-<size>-per-label-seed<k>/   StudentFolder: the same, trained on real reference data
      eval/                             EvalFolder: results, report, plots, the teacher's cached answers
      space/                            SpaceFolder: the staged comparison Space of ``hfsynth space serve``

A dataset, student or Space folder also stands on its own (a ``--dataset`` folder, a student downloaded from the
Hub, a Space repo), so each has its own small class that takes the folder's path. Nothing here touches the disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hfsynth.errors import HfsynthError

if TYPE_CHECKING:
    from hfsynth.runs.records import DataSource

#: Every repo hfsynth writes (dataset, student, Space) carries its card under this name, as the Hub expects.
CARD_FILE = "README.md"
#: The name of a student's checkpoint folder (also an ignore pattern when a student folder is copied or pushed).
CHECKPOINTS_DIR = "checkpoints"
# A Space folder lays out its copies of students and evaluation files as the run folder does.
STUDENTS_DIR = "students"
_EVAL_DIR = "eval"
STUDENT_RUNS_DIR = "student_runs"
# The run's plot, and its copy in each student folder (the model card shows it).
_BARS_PLOT = "teacher_vs_students.png"
# The dataset's quality plot, and its copy in the eval folder (the report and the Space show it).
_QUALITY_PLOT = "quality_projection.png"
#: Held by the command working in the run folder (hfsynth.storage.folder_lock): one command at a time.
RUN_FOLDER_LOCK = "hfsynth.lock"
#: Named here for the Hub too: a dataset pushed with it lets a later ``train --dataset HUB_ID`` find it.
TEACHER_SHOWN_FILE = "teacher_shown.json"


@dataclass(frozen=True)
class DatasetFolder:
    """``save_to_disk`` files of the ``DatasetDict``, plus the card, the recipe, the drop record and the statistics."""

    root: Path

    @property
    def card(self) -> Path:
        return self.root / CARD_FILE

    @property
    def recipe(self) -> Path:
        """The recipe that made the dataset, as the user wrote it."""
        return self.root / "recipe.yaml"

    @property
    def dropped(self) -> Path:
        """Every sample curation dropped and why, one JSON line each."""
        return self.root / "dropped.jsonl"

    @property
    def stats(self) -> Path:
        """Generation statistics (``hfsynth.runs.records.GenerationStats``): what the dataset card is built from."""
        return self.root / "generation.json"

    @property
    def teacher_shown(self) -> Path:
        """The real texts the teacher may have been shown (``hfsynth.runs.records.TeacherShown``)."""
        return self.root / TEACHER_SHOWN_FILE

    @property
    def feedback(self) -> Path:
        """Error-driven generation's rounds and learning curve (``hfsynth.runs.records.FeedbackReport``)."""
        return self.root / "feedback.json"

    @property
    def quality(self) -> Path:
        """The quality report (``hfsynth.runs.records.QualityReport``): diversity, coverage, fidelity, leaks."""
        return self.root / "quality.json"

    @property
    def quality_plot(self) -> Path:
        """Synthetic vs real texts per label in two dimensions; shown in the dataset card."""
        return self.root / _QUALITY_PLOT

    @property
    def side_files(self) -> tuple[Path, ...]:
        """What is pushed to the Hub beside the dataset and its card (the quality files when they exist)."""
        return (self.recipe, self.dropped, self.stats, self.teacher_shown, self.quality, self.quality_plot)


@dataclass(frozen=True)
class StudentFolder:
    """A saved student: the model files of its kind's library, the meta file (written last: it marks a finished
    student), the recipe its prompts are built from, and while training, its checkpoints."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def meta(self) -> Path:
        """``hfsynth.runs.records.StudentMeta``: kind, labels, model, params, training record."""
        return self.root / "hfsynth_student.json"

    @property
    def recipe(self) -> Path:
        return self.root / "hfsynth_recipe.yaml"

    @property
    def card(self) -> Path:
        return self.root / CARD_FILE

    @property
    def comparison_plot(self) -> Path:
        """A copy of the run's teacher-vs-students plot, shown in the model card."""
        return self.root / _BARS_PLOT

    @property
    def checkpoints(self) -> Path:
        """Trainer checkpoints of an unfinished training; deleted when the student is saved, never published."""
        return self.root / CHECKPOINTS_DIR

    @property
    def run_marker(self) -> Path:
        """Inside ``checkpoints``: the fingerprint of the training the checkpoints belong to."""
        return self.checkpoints / "hfsynth_run.txt"

    # Model files of particular kinds, beside what their library's save_pretrained writes.

    @property
    def in_context_examples(self) -> Path:
        """The demonstrations an in-context student keeps (its whole "training")."""
        return self.root / "examples.jsonl"

    @property
    def in_context_embeddings(self) -> Path:
        """Embeddings of those demonstrations, for picking the nearest ones."""
        return self.root / "example_embeddings.npy"

    @property
    def sft_adapter(self) -> Path:
        """An SFT student's LoRA adapter (``peft``'s ``save_pretrained``)."""
        return self.root / "adapter"


@dataclass(frozen=True)
class EvalFolder:
    """Results of the evaluation on the real test sets."""

    root: Path

    @property
    def results(self) -> Path:
        """``hfsynth.runs.records.EvaluationResults``."""
        return self.root / "results.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def bars_plot(self) -> Path:
        return self.root / _BARS_PLOT

    @property
    def curve_plot(self) -> Path:
        return self.root / "learning_curve.png"

    @property
    def human_plot(self) -> Path:
        """Students trained on synthetic data against the same students trained on real data, per language."""
        return self.root / "synthetic_vs_human.png"

    @property
    def quality_plot(self) -> Path:
        """A copy of the dataset's quality plot, beside the report that shows it."""
        return self.root / _QUALITY_PLOT

    @property
    def feedback_plot(self) -> Path:
        """The steering student's validation macro-F1 per feedback round (error-driven generation)."""
        return self.root / "feedback_rounds.png"

    @property
    def plots(self) -> tuple[Path, ...]:
        return (self.bars_plot, self.curve_plot, self.human_plot, self.quality_plot, self.feedback_plot)

    @property
    def predictions(self) -> Path:
        """Every model's predictions on every test set, one JSON line per (model run, language): the bootstrap
        intervals in the results are recomputable from it."""
        return self.root / "predictions.jsonl"


@dataclass(frozen=True)
class SpaceFolder:
    """A staged comparison Space: the app's entry files, its card, its manifest and, for the Hub, copies of the
    students and evaluation files it shows (laid out as in the run folder)."""

    root: Path

    APP_FILE = "app.py"
    REQUIREMENTS_FILE = "requirements.txt"

    @property
    def manifest(self) -> Path:
        """``hfsynth.space.manifest.SpaceManifest``: everything the app needs that is not code."""
        return self.root / "hfsynth_space.json"

    @property
    def card(self) -> Path:
        return self.root / CARD_FILE

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def app(self) -> Path:
        return self.root / self.APP_FILE

    @property
    def requirements(self) -> Path:
        return self.root / self.REQUIREMENTS_FILE

    def student(self, name: str) -> StudentFolder:
        return StudentFolder(self.root / STUDENTS_DIR / name)

    @property
    def eval(self) -> EvalFolder:
        return EvalFolder(self.root / _EVAL_DIR)


@dataclass(frozen=True)
class RunFolder:
    """``hfsynth ... --out DIR``: one recipe's run, every stage's output."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def cache(self) -> Path:
        """The generation stage's teacher calls (``hfsynth.cache.CallCache``)."""
        return self.root / "cache" / "teacher_calls.sqlite"

    @property
    def embeddings(self) -> Path:
        """The run's sentence embeddings, each (model, text) once (``hfsynth.embeddings.EmbeddingStore``)."""
        return self.root / "cache" / "embeddings.sqlite"

    @property
    def dataset(self) -> DatasetFolder:
        return DatasetFolder(self.root / "dataset")

    @property
    def students(self) -> Path:
        """The folder of the published students (one per recipe student, trained on all the data)."""
        return self.root / STUDENTS_DIR

    def student(self, name: str) -> StudentFolder:
        """The recipe student ``name`` trained on all the synthetic data with its first seed: the published one."""
        return StudentFolder(self.students / name)

    def student_run(self, name: str, train_size: int | None, repeat: int, data: DataSource = "synthetic"
                    ) -> StudentFolder:
        """One training of student ``name``: ``train_size`` examples per label and language (None: all), seed repeat
        ``repeat``. The main run (all the data, repeat 0) is :meth:`student`. ``data`` "human": the same training on
        real reference data; "synthetic-at-human-size": on a synthetic subsample as large as that (never
        published)."""
        if train_size is None and repeat == 0 and data == "synthetic":
            return self.student(name)
        size = "all" if train_size is None else str(train_size)
        prefix = {"synthetic": "", "human": "human-", "synthetic-at-human-size": "synthetic-at-human-size-"}[data]
        return StudentFolder(self.root / STUDENT_RUNS_DIR / name / f"{prefix}{size}-per-label-seed{repeat}")

    @property
    def human_reference(self) -> Path:
        """What became of the human-data reference's pool (``hfsynth.runs.records.HumanReference``), written by the
        training stage."""
        return self.root / STUDENT_RUNS_DIR / "human_reference.json"

    @property
    def eval(self) -> EvalFolder:
        return EvalFolder(self.root / _EVAL_DIR)

    @property
    def space(self) -> SpaceFolder:
        """Where ``hfsynth space serve`` stages the Space."""
        return SpaceFolder(self.root / "space")

    @property
    def stats(self) -> Path:
        """Wall time and peak memory of each stage (``hfsynth.runs.records.RunStats``)."""
        return self.root / "run_stats.json"


def check_run_dir(out: Path, option: str = "--out") -> None:
    """``out`` must be a run folder some earlier command wrote (a dataset or students in it): the commands that only
    read a run (``publish``, ``space deploy``) would otherwise do nothing, or push an empty Space, and say nothing."""

    out = Path(out)
    if not out.exists():
        raise HfsynthError(f"{option} {out}: no such folder: give the run folder `hfsynth generate` and `train` wrote")
    if not out.is_dir():
        raise HfsynthError(f"{option} {out}: is a file, not a run folder")
    run = RunFolder(out)
    if not run.dataset.root.is_dir() and not run.students.is_dir():
        raise HfsynthError(f"{option} {out}: not a run folder (no {run.dataset.root.name}/ or {run.students.name}/ "
                           "in it): run `hfsynth generate` and `hfsynth train` first")
