"""The stages a recipe runs through, as functions researchers can import; the CLI is a thin shell around them.

``DIR`` layout: ``cache/`` (teacher calls), ``dataset/`` (the synthetic dataset and its card), ``students/<name>/``,
``eval/`` (results, report, plots).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from hfsynth.dataset import load_synthetic_dataset, save_dataset
from hfsynth.errors import HfsynthError
from hfsynth.execution import LOCAL, Engine
from hfsynth.generation import GenerationProgress, GenerationResult, generate_samples
from hfsynth.hub.publish import push_dataset, push_folder, qualified_repo_id
from hfsynth.recipe import Recipe, StudentConfig


@dataclass(frozen=True)
class RunLayout:
    root: Path

    @property
    def cache(self) -> Path:
        return self.root / "cache" / "teacher_calls.sqlite"

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def students(self) -> Path:
        return self.root / "students"

    @property
    def eval(self) -> Path:
        return self.root / "eval"


def generate(
    recipe: Recipe, out_dir: Path, progress: GenerationProgress | None = None, engine: Engine | None = None
) -> tuple[datasets.DatasetDict, GenerationResult]:
    """Generate and curate the synthetic dataset into ``out_dir/dataset`` (resuming from the call cache).

    ``engine``: where the teacher runs (:mod:`hfsynth.execution`; default: in this process)."""
    layout = RunLayout(out_dir)
    with (engine or LOCAL).load_teacher(recipe) as teacher:
        result = generate_samples(recipe, teacher, layout.cache, progress)
    return save_dataset(recipe, result, layout.dataset), result


def train(recipe: Recipe, out_dir: Path, dataset_source: str | Path | None = None,
          engine: Engine | None = None) -> list:
    """Train the recipe's students on the synthetic dataset: the run's own, a local folder, or a Hub dataset id."""
    from hfsynth.dataset import load_synthetic_dataset
    from hfsynth.students import train_students

    layout = RunLayout(out_dir)
    source = dataset_source or layout.dataset
    if dataset_source is None and not layout.dataset.is_dir():
        raise HfsynthError(f"{layout.dataset}: no synthetic dataset yet: run `hfsynth generate` first, "
                           "or pass --dataset with a folder or a Hub dataset id")
    return train_students(recipe, load_synthetic_dataset(source), out_dir, engine=engine)


def evaluate(recipe: Recipe, out_dir: Path, engine: Engine | None = None) -> dict[str, Any]:
    """Teacher and students on the real test sets; results, report and plots into ``out_dir/eval``, then cards."""
    from hfsynth.evaluation import run_evaluation

    results = run_evaluation(recipe, out_dir, engine=engine)
    write_cards(recipe, out_dir, results)
    return results


def dataset_repo_id(recipe: Recipe) -> str:
    return qualified_repo_id(recipe.dataset.repo_id, recipe.publish.organization)


def student_repo_id(recipe: Recipe, student: StudentConfig) -> str:
    return qualified_repo_id(student.repo_id or f"{recipe.name}-{student.name}", recipe.publish.organization)


def read_results(out_dir: Path) -> dict[str, Any] | None:
    from hfsynth.evaluation import RESULTS_FILE

    path = RunLayout(out_dir).eval / RESULTS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_cards(recipe: Recipe, out_dir: Path, results: dict[str, Any] | None = None) -> list[Path]:
    """(Re)write the cards of the run's dataset and students from the run's own files; numbers come from results.json."""
    from hfsynth.cards import COMPARISON_PLOT, student_card, write_dataset_card
    from hfsynth.evaluation import BARS_PLOT

    layout = RunLayout(out_dir)
    results = results if results is not None else read_results(out_dir)
    written = []
    if layout.dataset.is_dir():
        write_dataset_card(recipe, layout.dataset, (results or {}).get("summary"))
        written.append(layout.dataset / "README.md")
    example = _example_text(layout.dataset)
    for student in recipe.students:
        folder = layout.students / student.name
        if not folder.is_dir():
            continue
        plot = layout.eval / BARS_PLOT
        if plot.is_file():
            shutil.copyfile(plot, folder / COMPARISON_PLOT)
        card = student_card(recipe, folder, results, student_repo_id(recipe, student), dataset_repo_id(recipe),
                            example)
        card.save(folder / "README.md")
        written.append(folder / "README.md")
    return written


def _example_text(dataset_dir: Path) -> str:
    try:
        return load_synthetic_dataset(dataset_dir)["train"][0]["text"]
    except (HfsynthError, IndexError):
        return "Your text here."


def publish(recipe: Recipe, out_dir: Path) -> list[str]:
    """Push the dataset and every trained student (with their cards) to the Hub; returns the repo URLs."""
    layout = RunLayout(out_dir)
    write_cards(recipe, out_dir)
    urls = []
    if layout.dataset.is_dir():
        urls.append(push_dataset(recipe, layout.dataset, dataset_repo_id(recipe)))
    for student in recipe.students:
        folder = layout.students / student.name
        if folder.is_dir():
            private = recipe.publish.private
            urls.append(push_folder(folder, student_repo_id(recipe, student), "model", private,
                                    f"hfsynth: {student.kind} student {student.name} of {recipe.name}",
                                    ignore_patterns=["checkpoints/*"]))
    return urls
