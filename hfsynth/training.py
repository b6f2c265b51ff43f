"""The training stage: every run of every recipe student on the synthetic data (the kinds: :mod:`hfsynth.students`).

Every recipe student is trained once on all the synthetic training data (``RunFolder.student``, the one that is
published) and, for the learning curve and the seed repeats, on per-label subsets and with further seeds
(``RunFolder.student_run``). One student serves all the recipe's languages; a subset of
size ``n`` keeps ``n`` examples of each label in each language. When the recipe names real reference training data,
the reference students repeat all of it on real data (``RunFolder.student_run(..., data="human")``; where the human pool is smaller, also on a synthetic subsample of
the human size, :mod:`hfsynth.human_reference`): the human-data
reference that the synthetic data is measured against.

Runs are resumable: a finished run (its meta file matches the configuration and the data) is skipped, and an
interrupted one resumes from the last checkpoint in its checkpoint folder.
"""

from __future__ import annotations

import logging
import random
import shutil
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import datasets

from hfsynth import __version__
from hfsynth.cache import call_key
from hfsynth.embeddings import Embedder, EmbeddingSpec, EmbeddingTables
from hfsynth.engines.base import LOCAL, Engine, UnitSpec, UnitsProgress, gather
from hfsynth.errors import HfsynthError, SharedStorageError
from hfsynth.human_reference import human_reference, synthetic_at_human_size
from hfsynth.recipe.schema import Recipe, StudentConfig
from hfsynth.recipe.student_kinds import student_kind
from hfsynth.recipe.student_params import StudentParams
from hfsynth.reproducibility import training_context
from hfsynth.runs.folder import RunFolder, StudentFolder
from hfsynth.runs.records import DataSource, HumanReference, TrainingRecord
from hfsynth.storage.mirror import FolderAccess, unit_folders
from hfsynth.students.base import read_meta, student_class

if TYPE_CHECKING:
    from transformers import TrainerCallback

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudentRun:
    """One training of one recipe student: all the data or ``train_size`` examples per label, with one seed."""

    config: StudentConfig
    train_size: int | None  # per label and language; None: all the synthetic training data
    repeat: int  # trains with params.seed + repeat
    directory: Path
    #: "human": the reference run, trained on real data sized like the synthetic data (never published).
    data: DataSource = "synthetic"

    @property
    def is_main(self) -> bool:
        """The run on all the synthetic data with the first seed: the student that is published."""
        return self.train_size is None and self.repeat == 0 and self.data == "synthetic"


@dataclass(frozen=True)
class TrainedRun:
    """One planned student run after the training stage: trained now, or found trained with the same configuration."""

    run: StudentRun
    skipped: bool  # already trained with the same configuration and data
    seconds: float  # training time (of the earlier run, when skipped)
    #: What the run's meta file records (its configuration and data), and the machine that wrote it: the driver
    #: checks it sees that file too.
    fingerprint: str = ""
    host: str = field(default_factory=socket.gethostname)


@dataclass(frozen=True)
class TrainingContext:
    """What every run of one ``train_students`` call shares (sent once to a cluster's workers)."""

    recipe: Recipe
    train_data: datasets.Dataset
    callbacks: tuple[TrainerCallback, ...] = ()
    #: How the runs reach their folders (directly, or staged through the run folder's object storage).
    folders: FolderAccess = field(default_factory=FolderAccess)
    #: The training texts' embeddings, per pretrained model a student embeds with (:func:`embedding_tables`).
    embeddings: EmbeddingTables = field(default_factory=dict)


def run_params(run: StudentRun) -> StudentParams:
    """The run's params; repeat ``k`` trains with ``seed + k``."""
    params = run.config.params
    return params.model_copy(update={"seed": params.seed + run.repeat})


def planned_runs(recipe: Recipe, out_dir: Path) -> list[StudentRun]:
    """Every training the recipe asks for, in order: each student's main run first, then its sweep, then (for the
    reference students of a recipe with real reference data) the same runs on real data."""
    run_folder = RunFolder(out_dir)
    reference = {config.name for config in recipe.reference_students}
    runs = []
    for config in recipe.students:
        sources: list[DataSource] = ["synthetic", "human"] if config.name in reference else ["synthetic"]
        for data in sources:
            for train_size in [None, *sorted(set(config.train_sizes))]:
                for repeat in range(config.repeats):
                    directory = run_folder.student_run(config.name, train_size, repeat, data).root
                    runs.append(StudentRun(config, train_size, repeat, directory, data))
    return runs


def equal_size_runs(recipe: Recipe, out_dir: Path) -> list[StudentRun]:
    """The runs the human-data runs are compared with where the human pool was smaller than the synthetic data:
    each reference student on a synthetic subsample of the human size, with the same seeds."""
    run_folder = RunFolder(out_dir)
    data: DataSource = "synthetic-at-human-size"
    return [StudentRun(config, None, repeat, run_folder.student_run(config.name, None, repeat, data).root, data)
            for config in recipe.reference_students for repeat in range(config.repeats)]


def runs_to_evaluate(recipe: Recipe, out_dir: Path) -> list[StudentRun]:
    """Every planned run, and the equal-size runs when training found the human pool smaller (its record says)."""
    reference = HumanReference.load_if_present(RunFolder(out_dir).human_reference)
    extra = equal_size_runs(recipe, out_dir) if reference is not None and reference.smaller_than_synthetic else []
    return [*planned_runs(recipe, out_dir), *extra]


def embedding_spec(run: StudentRun) -> EmbeddingSpec | None:
    """The pretrained model the run's student embeds texts with, if any."""
    return student_class(student_kind(run.config.kind)).embedding_spec(run.config.model, run_params(run))


def embedding_tables(runs: Sequence[StudentRun], texts: Sequence[str], store: Path) -> EmbeddingTables:
    """Every text of ``texts`` embedded by each pretrained model the runs' students embed with, once per run folder
    (``store``, :mod:`hfsynth.embeddings`): computed here, on the driver, and sent to the units."""
    specs = dict.fromkeys(spec for run in runs if (spec := embedding_spec(run)) is not None)
    return {spec: Embedder(spec, store=store).table(texts) for spec in specs}


def per_label_subset(train_data: datasets.Dataset, train_size: int | None, seed: int) -> datasets.Dataset:
    """``train_size`` random examples of each (language, label), or everything when ``train_size`` is None."""
    if train_size is None:
        return train_data
    cells: dict[tuple[str, int], list[int]] = defaultdict(list)
    for index, (language, label) in enumerate(zip(train_data["language"], train_data["label"], strict=True)):
        cells[(language, label)].append(index)
    rng = random.Random(seed)
    keep = [index for key in sorted(cells) for index in rng.sample(cells[key], min(train_size, len(cells[key])))]
    return train_data.select(sorted(keep))


def _warn_if_short(run: StudentRun, subset: datasets.Dataset) -> None:
    """A run named for ``train_size`` examples per label that the data cannot fill trains on what there is: say so
    (once per student and size). Its record keeps the real size (``train_rows``; the results' examples per label)."""
    if run.train_size is None or run.repeat != 0:
        return
    fewest = min(Counter(zip(subset["language"], subset["label"], strict=True)).values(), default=0)
    if fewest < run.train_size:
        logger.warning("student %s: train size %d asks for %d examples per label and language, but the %s data has "
                       "as few as %d: the run trains on %d examples in all, and its results say so",
                       run.config.name, run.train_size, run.train_size, run.data, fewest, len(subset))


def data_fingerprint(train_data: datasets.Dataset) -> str:
    """Content hash of what a student is trained on (independent of where the dataset was loaded from)."""
    return call_key(rows=list(zip(train_data["text"], train_data["label"], train_data["language"], strict=True)))


def _check_schema(recipe: Recipe, train_data: datasets.Dataset) -> None:
    label_feature = train_data.features.get("label")
    if not isinstance(label_feature, datasets.ClassLabel) or label_feature.names != recipe.label_names:
        raise HfsynthError(
            f"the synthetic dataset's label column must be ClassLabel(names={recipe.label_names}), got {label_feature}"
        )
    missing = {"text", "language"} - set(train_data.column_names)
    if missing:
        raise HfsynthError(f"the synthetic dataset has no column(s) {sorted(missing)}")


def train_students(
    recipe: Recipe,
    dataset: datasets.DatasetDict,
    out_dir: Path,
    only: Sequence[str] = (),
    callbacks: Sequence[TrainerCallback] = (),
    engine: Engine | None = None,
    teacher_shown: Sequence[str] | None = (),
    on_progress: UnitsProgress | None = None,
) -> list[TrainedRun]:
    """Train every run of every recipe student (or of the students named in ``only``) on ``dataset["train"]``, then the
    reference runs on real data with as many examples per language and label (:func:`hfsynth.human_reference.human_reference`).

    ``callbacks`` go to each run's trainer, wherever it runs (progress reporting, early stopping). ``engine``: where
    the runs train (:mod:`hfsynth.engines.base`; default: one after the other in this process). ``teacher_shown``: the
    real texts the dataset's teacher was shown (:func:`hfsynth.dataset.load_teacher_shown`), kept out of the
    human-data reference; None when the dataset does not say (then there can be no reference runs).
    """
    unknown = set(only) - {config.name for config in recipe.students}
    if unknown:
        raise HfsynthError(f"no student named {sorted(unknown)} in the recipe")
    _check_schema(recipe, dataset["train"])
    runs = [run for run in planned_runs(recipe, out_dir) if not only or run.config.name in only]
    synthetic = [run for run in runs if run.data != "human"]
    human = [run for run in runs if run.data == "human"]
    training_sets = [(synthetic, dataset["train"])]
    if human:
        human_train, reference = human_reference(recipe, dataset["train"], teacher_shown)
        reference.save(RunFolder(out_dir).human_reference)
        training_sets.append((human, human_train))
        if reference.smaller_than_synthetic:
            _warn_smaller_pool(reference)
            equal = [run for run in equal_size_runs(recipe, out_dir) if not only or run.config.name in only]
            runs += equal
            training_sets.append((equal, synthetic_at_human_size(dataset["train"], reference,
                                                                 recipe.evaluation.reference.seed)))
    progress = on_progress or (lambda done, total: None)
    progress(0, len(runs))
    engine = engine or LOCAL
    folders = unit_folders(out_dir, engine)
    trained: list[TrainedRun] = []
    # One engine call per training set: the synthetic data, then the human reference data (when the recipe has it).
    for planned, train_data in training_sets:
        if not planned:
            continue
        # In memory: sent whole to a cluster's workers (a memory-mapped dataset would travel as a local path).
        in_memory = datasets.Dataset.from_dict(train_data.to_dict(), features=train_data.features)
        spec = UnitSpec("students", recipe.execution.students, recipe.execution.max_retries,
                        shared_folder=Path(out_dir) if folders.direct else None, resources_field="execution.students",
                        describe=lambda index, planned=planned: f"student run {planned[index].directory}")

        before = len(trained)  # runs of the earlier training set

        def finished(index: int, result: TrainedRun, done: int) -> None:
            folders.collect(result.run.directory)
            _check_visible(result)
            progress(before + done, len(runs))

        tables = embedding_tables(planned, in_memory["text"], RunFolder(out_dir).embeddings)
        context = TrainingContext(recipe, in_memory, tuple(callbacks), folders, tables)
        stream = engine.map(train_run, planned, context, spec)
        trained += gather(stream, len(planned), finished)
    return trained


def _check_visible(trained: TrainedRun) -> None:
    """The driver sees the student the run wrote (a worker on another disk would leave it nowhere it looks)."""
    meta = read_meta(trained.run.directory)
    if meta is None or meta.training.fingerprint != trained.fingerprint:
        raise SharedStorageError(
            f"student run {trained.run.directory} finished on {trained.host}, but this driver ({socket.gethostname()}) "
            "does not see it there: put --out on storage shared by the driver and every worker, mounted at the same "
            "path")


def train_run(context: TrainingContext, run: StudentRun) -> TrainedRun:
    """One student run, the training stage's unit of work (whichever engine runs it): trained, or skipped when its
    folder already holds it."""
    with context.folders.staged(run.directory, write=True) as directory:
        callbacks = (*context.callbacks, *context.folders.checkpoint_callbacks(run.directory, directory))
        return _train_into(context, callbacks, run, directory)


def _train_into(context: TrainingContext, callbacks: Sequence[TrainerCallback], run: StudentRun,
                directory: Path) -> TrainedRun:
    recipe, train_data = context.recipe, context.train_data
    config = run.config
    params = run_params(run)
    subset = per_label_subset(train_data, run.train_size, params.seed)
    _warn_if_short(run, subset)
    fingerprint = call_key(
        kind=config.kind, model=config.model, params=params.model_dump(mode="json"),
        task=recipe.task.model_dump(mode="json"), labels=[label.model_dump(mode="json") for label in recipe.labels],
        train_size=run.train_size, data=data_fingerprint(subset),
    )
    folder = StudentFolder(directory)
    meta = read_meta(directory)
    if meta is not None and meta.training.fingerprint == fingerprint:
        logger.info("student %s: already trained (%s), skipped", config.name, directory)
        return TrainedRun(run, skipped=True, seconds=meta.training.seconds, fingerprint=fingerprint)

    checkpoint_dir = folder.checkpoints
    marker = folder.run_marker
    if checkpoint_dir.is_dir() and (not marker.is_file() or marker.read_text() != fingerprint):
        # Checkpoints of another configuration or data: resuming from them would mix two trainings.
        shutil.rmtree(checkpoint_dir)
    if meta is not None:
        folder.meta.unlink()  # a stale student must not pass as finished
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(fingerprint)

    student = student_class(student_kind(config.kind))(recipe, config.model, params)
    student.embedding_table = context.embeddings.get(embedding_spec(run))
    logger.info("student %s: training on %d %s examples (%s per label, seed %d)", config.name, len(subset),
                run.data, run.train_size or "all", params.seed)
    started = time.monotonic()
    with training_context(params.seed):  # seeded, deterministic, fixed thread count (hfsynth.reproducibility)
        student.train(subset, checkpoint_dir, callbacks)
    seconds = time.monotonic() - started
    student.training = TrainingRecord(
        train_size=run.train_size,
        train_rows=len(subset),
        languages=sorted(set(subset["language"])),
        seed=params.seed,
        repeat=run.repeat,
        seconds=round(seconds, 2),
        fingerprint=fingerprint,
        hfsynth_version=__version__,
        data=run.data,
    )
    student.save(directory)
    shutil.rmtree(checkpoint_dir)  # only needed to resume; a finished student is never retrained
    return TrainedRun(run, skipped=False, seconds=seconds, fingerprint=fingerprint)


def _warn_smaller_pool(reference: HumanReference) -> None:
    for language in reference.cells:
        counts = reference.per_label(language)
        if counts["human"] < counts["synthetic"]:
            logger.warning("human-data reference, %s: %s; the human runs train on %.1f examples per label, the "
                           "synthetic data has %.1f: the verdict compares them with the same student on a synthetic "
                           "subsample of the human size", language, reference.pool_text(language), counts["human"],
                           counts["synthetic"])
