"""hfsynth: a large LLM teaches small models through synthetic labelled data.

The package reads like the pipeline: recipe -> teachers -> generation -> dataset -> students -> evaluation -> cards
-> hub / space. Its public names (``__all__``, documented in ``docs/api.md``) are imported when first used, so
``import hfsynth`` loads no model library.

The one side effect of importing hfsynth: unless already set, ``OMP_WAIT_POLICY=PASSIVE``, before anything loads
torch's OpenMP runtime (waiting threads sleep instead of spinning against other processes; see
:mod:`hfsynth.reproducibility`). It changes how a wait is spent, never a result.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hfsynth.reproducibility import passive_openmp

__version__ = "0.1.0"

passive_openmp()

#: Each public name and the module it lives in.
_PUBLIC = {
    "Recipe": "hfsynth.recipe.schema",
    "load_recipe": "hfsynth.recipes.files",
    "run": "hfsynth.pipeline",
    "run_recipe": "hfsynth.pipeline",
    "generate": "hfsynth.pipeline",
    "train": "hfsynth.pipeline",
    "evaluate": "hfsynth.pipeline",
    "write_cards": "hfsynth.pipeline",
    "publish": "hfsynth.pipeline",
    "read_results": "hfsynth.pipeline",
    "RecipeOutcome": "hfsynth.pipeline",
    "plan_grid": "hfsynth.grid_plan",
    "GridPlan": "hfsynth.grid_plan",
    "generate_samples": "hfsynth.generation.stage",
    "GenerationResult": "hfsynth.generation.samples",
    "Sample": "hfsynth.generation.samples",
    "TrainedRun": "hfsynth.training",
    "EvaluationResults": "hfsynth.evaluation.results",
    "RunEvents": "hfsynth.runs.events",
    "Engine": "hfsynth.engines.base",
    "HfsynthError": "hfsynth.errors",
}

__all__ = [
    "Engine", "EvaluationResults", "GenerationResult", "GridPlan", "HfsynthError", "Recipe", "RecipeOutcome",
    "RunEvents", "Sample", "TrainedRun", "evaluate", "generate", "generate_samples", "load_recipe", "plan_grid",
    "publish", "read_results", "run", "run_recipe", "train", "write_cards",
]

if TYPE_CHECKING:
    from hfsynth.engines.base import Engine
    from hfsynth.errors import HfsynthError
    from hfsynth.evaluation.results import EvaluationResults
    from hfsynth.generation.samples import GenerationResult, Sample
    from hfsynth.generation.stage import generate_samples
    from hfsynth.grid_plan import GridPlan, plan_grid
    from hfsynth.pipeline import (
        RecipeOutcome,
        evaluate,
        generate,
        publish,
        read_results,
        run,
        run_recipe,
        train,
        write_cards,
    )
    from hfsynth.recipe.schema import Recipe
    from hfsynth.recipes.files import load_recipe
    from hfsynth.runs.events import RunEvents
    from hfsynth.training import TrainedRun


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hfsynth' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
