"""What :func:`hfsynth.pipeline.run` reports as it goes: hooks that do nothing here and that the CLI overrides to show
progress and tables (:mod:`hfsynth.cli.display`). Kept apart from the pipeline so the CLI can subclass it without
importing the stages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from hfsynth.engines.base import Engine
    from hfsynth.errors import HfsynthError
    from hfsynth.evaluation.results import EvaluationResults
    from hfsynth.generation.samples import GenerationProgress, GenerationResult
    from hfsynth.recipe.schema import Recipe
    from hfsynth.training import TrainedRun


class RunEvents:
    """What :func:`hfsynth.pipeline.run` reports as it goes; every hook does nothing here, the CLI's subclass shows
    them. With an engine that runs several recipes together, hooks are called from one thread per recipe. A context
    manager: a display that holds something (a live progress bar) lets it go on exit."""

    def __enter__(self) -> RunEvents:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def generation_progress(self, recipe: Recipe) -> GenerationProgress | None:
        """Callbacks for the recipe's generation (teacher calls, curation rounds)."""
        return None

    def generated(self, recipe: Recipe, out_dir: Path, result: GenerationResult) -> None:
        pass

    def training_callbacks(self, recipe: Recipe, engine: Engine) -> Sequence[TrainerCallback]:
        """Trainer callbacks for every run of the recipe, wherever it trains."""
        return ()

    def units_done(self, recipe: Recipe, stage: str, done: int, total: int) -> None:
        """A stage's units finished so far ("students", "evaluations")."""

    def progress_of(self, recipe: Recipe, stage: str) -> Callable[[int, int], None]:
        """:meth:`units_done` as a stage's ``on_progress(done, total)``."""
        return lambda done, total: self.units_done(recipe, stage, done, total)

    def trained(self, recipe: Recipe, out_dir: Path, runs: list[TrainedRun]) -> None:
        pass

    def evaluated(self, recipe: Recipe, out_dir: Path, results: EvaluationResults) -> None:
        pass

    def published(self, recipe: Recipe, urls: list[str]) -> None:
        pass

    def finished(self, recipe: Recipe, out_dir: Path, error: HfsynthError | None) -> None:
        """The recipe is done (or failed with ``error``, when several recipes run: the others go on)."""
