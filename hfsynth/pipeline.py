"""The stages a recipe runs through, as functions researchers can import; the CLI is a thin shell around them.

``DIR`` layout: ``cache/`` (teacher calls), ``dataset/`` (the synthetic dataset and its card), ``students/<name>/``,
``eval/`` (results, report, plots).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets

from hfsynth.dataset import save_dataset
from hfsynth.generation import GenerationProgress, GenerationResult, generate_samples
from hfsynth.recipe import Recipe
from hfsynth.teachers import load_teacher


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
    recipe: Recipe, out_dir: Path, progress: GenerationProgress | None = None
) -> tuple[datasets.DatasetDict, GenerationResult]:
    """Generate and curate the synthetic dataset into ``out_dir/dataset`` (resuming from the call cache)."""
    layout = RunLayout(out_dir)
    with load_teacher(recipe.teacher) as teacher:
        result = generate_samples(recipe, teacher, layout.cache, progress)
    return save_dataset(recipe, result, layout.dataset), result
