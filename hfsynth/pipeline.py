"""The stages a recipe runs through, as functions researchers can import; the CLI is a thin shell around them.

The run folder ``DIR`` and every name in it: :mod:`hfsynth.run_folder`. Each stage's wall time and peak memory go
to ``DIR/run_stats.json`` (:mod:`hfsynth.stage_stats`).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import datasets

from hfsynth.cache import checkpoint
from hfsynth.dataset import load_synthetic_dataset, save_dataset
from hfsynth.errors import HfsynthError
from hfsynth.execution import LOCAL, Engine, release_memory
from hfsynth.generation import GenerationProgress, GenerationResult, generate_samples
from hfsynth.hub.publish import push_dataset, push_folder
from hfsynth.hub.repo_ids import dataset_repo_id, student_repo_id
from hfsynth.recipe import Recipe, StudentConfig
from hfsynth.run_folder import CHECKPOINTS_DIR, RunFolder
from hfsynth.run_records import EvaluationResults
from hfsynth.stage_stats import measured_stage

if TYPE_CHECKING:
    from transformers import TrainerCallback


def generate(
    recipe: Recipe, out_dir: Path, progress: GenerationProgress | None = None, engine: Engine | None = None
) -> tuple[datasets.DatasetDict, GenerationResult]:
    """Generate and curate the synthetic dataset into ``out_dir/dataset`` (resuming from the call cache), with its
    quality report.

    ``engine``: where the teacher runs (:mod:`hfsynth.execution`; default: in this process)."""
    from hfsynth.cards import write_dataset_card
    from hfsynth.quality import teacher_classifier, write_quality

    run_folder = RunFolder(out_dir)
    dataset_dir = run_folder.dataset.root
    engine = engine or LOCAL
    checkpoint(run_folder.cache)  # a damaged cache fails now, not after the teacher loaded; a killed run's -wal merged
    with measured_stage(out_dir, "generate", engine.name), engine.load_teacher(recipe) as teacher:
        result = generate_samples(recipe, teacher, run_folder.cache, progress)
        dataset = save_dataset(recipe, result, dataset_dir)
        # While the teacher is loaded: it judges label fidelity when the recipe has no real reference data.
        write_quality(recipe, dataset_dir, lambda: teacher_classifier(recipe, teacher, run_folder.cache),
                      teacher.model_id)
    release_memory()  # the teacher's weights, before students train
    write_dataset_card(recipe, dataset_dir)
    return dataset, result


def train(recipe: Recipe, out_dir: Path, dataset_source: str | Path | None = None,
          callbacks: Sequence[TrainerCallback] = (), engine: Engine | None = None) -> list:
    """Train the recipe's students on the synthetic dataset: the run's own, a local folder, or a Hub dataset id.

    ``callbacks`` go to every training's Trainer (the CLI's progress display); with the Ray engine they are pickled
    to the workers. ``engine``: where the runs train (default: in this process).
    """
    from hfsynth.dataset import load_synthetic_dataset
    from hfsynth.training import train_students

    dataset_dir = RunFolder(out_dir).dataset.root
    source = dataset_source or dataset_dir
    if dataset_source is None and not dataset_dir.is_dir():
        raise HfsynthError(f"{dataset_dir}: no synthetic dataset yet: run `hfsynth generate` first, "
                           "or pass --dataset with a folder or a Hub dataset id")
    with measured_stage(out_dir, "train", (engine or LOCAL).name):
        return train_students(recipe, load_synthetic_dataset(source), out_dir, callbacks=callbacks, engine=engine)


def evaluate(recipe: Recipe, out_dir: Path, engine: Engine | None = None) -> EvaluationResults:
    """Teacher and students on the real test sets; results, report and plots into ``out_dir/eval``, then cards."""
    from hfsynth.evaluation import run_evaluation

    with measured_stage(out_dir, "evaluate", (engine or LOCAL).name):
        results = run_evaluation(recipe, out_dir, engine=engine)
        write_cards(recipe, out_dir, results)
    return results


def read_results(out_dir: Path) -> EvaluationResults | None:
    return EvaluationResults.load_if_present(RunFolder(out_dir).eval.results)


def write_cards(recipe: Recipe, out_dir: Path, results: EvaluationResults | None = None) -> list[Path]:
    """(Re)write the cards of the run's dataset and students from the run's own files; numbers come from results.json."""
    from hfsynth.cards import student_card, write_dataset_card

    run_folder = RunFolder(out_dir)
    results = results if results is not None else read_results(out_dir)
    written = []
    dataset = run_folder.dataset
    if dataset.root.is_dir():
        write_dataset_card(recipe, dataset.root, results.headline if results else None)
        written.append(dataset.card)
    example = _example_text(dataset.root)
    for student in recipe.students:
        folder = run_folder.student(student.name)
        if not folder.root.is_dir():
            continue
        if run_folder.eval.bars_plot.is_file():
            shutil.copyfile(run_folder.eval.bars_plot, folder.comparison_plot)
        card = student_card(recipe, folder.root, results, student_repo_id(recipe, student), dataset_repo_id(recipe),
                            example)
        card.save(folder.card)
        written.append(folder.card)
    return written


def _example_text(dataset_dir: Path) -> str:
    try:
        return load_synthetic_dataset(dataset_dir)["train"][0]["text"]
    except (HfsynthError, IndexError):
        return "Your text here."


def publish(recipe: Recipe, out_dir: Path) -> list[str]:
    """Push the dataset and every trained student (with their cards) to the Hub; returns the repo URLs."""
    run_folder = RunFolder(out_dir)
    write_cards(recipe, out_dir)
    urls = []
    if run_folder.dataset.root.is_dir():
        urls.append(push_dataset(recipe, run_folder.dataset.root, dataset_repo_id(recipe)))
    for student in recipe.students:
        if run_folder.student(student.name).root.is_dir():
            urls.append(publish_student(recipe, out_dir, student))
    return urls


def publish_student(recipe: Recipe, out_dir: Path, student: StudentConfig) -> str:
    """Push one trained student's folder as it is (run :func:`write_cards` first for its card); returns the URL.

    Its repo id is :func:`hfsynth.hub.repo_ids.student_repo_id`'s, where ``hfsynth space deploy`` finds it.
    """
    folder = RunFolder(out_dir).student(student.name).root
    return push_folder(folder, student_repo_id(recipe, student), "model", recipe.publish.private,
                       f"hfsynth: {student.kind} student {student.name} of {recipe.name}",
                       ignore_patterns=[f"{CHECKPOINTS_DIR}/*"])
