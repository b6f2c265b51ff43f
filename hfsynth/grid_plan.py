"""What a recipe's whole grid will take, worked out from the recipe alone in seconds (``hfsynth plan``): nothing is
generated, trained or downloaded but, where it can be reached, each base model's ``config.json``.

- **Teacher prompts**: generation's own plan (:func:`hfsynth.generation.plan.plan_requests`) for the first pass, and the
  most the top-up rounds (and feedback rounds) may add; the classification prompts of the evaluation, one per test
  text when the test sets' sizes are known here (a local file, or ``max_samples``).
- **Units**: every student run (:func:`hfsynth.training.planned_runs`: students x training sizes x seeds, and the
  human-data runs) and as many evaluations (each run on all its test sets), with the GPUs the recipe's
  ``execution`` section gives each unit; GPU-hours at stated minutes per unit (a measurement on the target
  hardware, or the defaults, which are assumptions and said so).
- **Storage**: each run's saved student, from the parameter count of its base model (built on torch's meta device
  from its config: no weights): the whole model in float32 for SetFit and encoder students, the LoRA adapter
  alone for SFT students (r x (inputs + outputs) of each adapted linear layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hfsynth.generation.feedback import round_budgets
from hfsynth.generation.plan import plan_requests
from hfsynth.model_shapes import lora_parameters, meta_models
from hfsynth.recipe.schema import Recipe
from hfsynth.training import StudentRun, planned_runs, run_params

if TYPE_CHECKING:
    import torch

#: Bytes per saved parameter (safetensors, float32).
FLOAT32_BYTES = 4


@dataclass(frozen=True)
class StudentPlan:
    name: str
    kind: str
    model: str
    runs: int
    #: Bytes one saved run takes; None when the base model's config cannot be reached from here.
    bytes_per_run: int | None


@dataclass(frozen=True)
class GridPlan:
    """What a recipe's grid will take (``hfsynth plan``): samples, teacher prompts, student runs and GPU-hours."""

    recipe: str
    languages: int
    labels: int
    samples: int
    generation_prompts: int
    #: With every top-up round (and feedback round) the recipe allows: the most generation can cost.
    generation_prompts_max: int
    #: Test texts the teacher classifies (and every run predicts); None when a test set's size is unknown here.
    test_texts: int | None
    #: Test sets (languages) each evaluation unit scores its run on.
    test_sets: int
    students: tuple[StudentPlan, ...]
    gpus_per_training: float
    gpus_per_evaluation: float
    #: Base models whose config could not be reached (offline, gated) or did not arrive within
    #: model_shapes.CONFIG_TIMEOUT.
    unreached: tuple[str, ...] = ()

    @property
    def student_runs(self) -> int:
        return sum(student.runs for student in self.students)

    @property
    def trained_runs(self) -> int:
        """Runs that train (an in-context student only shows examples: it costs its evaluation alone)."""
        return sum(student.runs for student in self.students if student.kind != "in-context")

    @property
    def storage_bytes(self) -> int | None:
        sizes = [student.bytes_per_run for student in self.students]
        if any(size is None for size in sizes):
            return None
        return sum(student.runs * (student.bytes_per_run or 0) for student in self.students)

    def gpu_hours(self, training_minutes: float, evaluation_minutes: float) -> float:
        return (self.trained_runs * self.gpus_per_training * training_minutes
                + self.student_runs * self.gpus_per_evaluation * evaluation_minutes) / 60


def plan_grid(recipe: Recipe) -> GridPlan:
    """The recipe's plan, from the stages' own plans, running nothing (student sizes on the meta device)."""
    full = {(language, label): recipe.generation.samples_per_label
            for language in recipe.languages for label in recipe.label_names}
    first_pass = len(plan_requests(recipe, full, 0, {}))
    runs = planned_runs(recipe, Path("."))
    models = meta_models([config.model for config in recipe.students if config.kind != "in-context"])
    students = []
    for config in recipe.students:
        count = sum(1 for run in runs if run.config.name == config.name)
        students.append(StudentPlan(config.name, config.kind, config.model, count,
                                    _saved_bytes(runs, config.name, models)))
    return GridPlan(
        recipe=recipe.name,
        languages=len(recipe.languages),
        labels=len(recipe.label_names),
        samples=sum(full.values()),
        generation_prompts=first_pass,
        generation_prompts_max=first_pass * (1 + recipe.generation.top_up_rounds) + _feedback_prompts(recipe),
        test_texts=_test_texts(recipe),
        test_sets=len({test_set.language for test_set in recipe.evaluation.sets}),
        students=tuple(students),
        gpus_per_training=recipe.execution.students.num_gpus,
        gpus_per_evaluation=recipe.execution.evaluation.num_gpus,
        unreached=tuple(sorted(name for name, model in models.items() if model is None)),
    )


def _feedback_prompts(recipe: Recipe) -> int:
    """The most prompts feedback rounds may send: each round's samples
    (:func:`hfsynth.generation.feedback.round_budgets`) spread over the cells, each cell's share asked
    ``samples_per_call`` at a time (one short call per cell at most)."""
    if recipe.generation.feedback is None:
        return 0
    cells = len(recipe.languages) * len(recipe.label_names)
    per_call = recipe.generation.samples_per_call
    return sum(math.ceil(budget / per_call) + min(cells, budget) for budget in round_budgets(recipe))


def _test_texts(recipe: Recipe) -> int | None:
    """Texts per test set: ``max_samples`` when set, else a local file's lines; None when a set lies on the Hub."""
    total = 0
    for test_set in recipe.evaluation.sets:
        path = getattr(test_set, "path", None)
        lines = None
        if path is not None and Path(path).is_file():
            with Path(path).open(encoding="utf-8") as handle:
                lines = sum(1 for line in handle if line.strip())
        cap = recipe.evaluation.max_samples
        if lines is None and cap is None:
            return None
        total += min(value for value in (lines, cap) if value is not None)
    return total


def _saved_bytes(runs: list[StudentRun], name: str, models: dict[str, torch.nn.Module | None]) -> int | None:
    run = next(run for run in runs if run.config.name == name)
    config, params = run.config, run_params(run)
    if config.kind == "in-context":
        return 0  # a few examples and their embeddings
    model = models[config.model]
    if model is None:
        return None
    if config.kind != "sft":
        return sum(parameter.numel() for parameter in model.parameters()) * FLOAT32_BYTES
    return lora_parameters(model, params.r, params.target_modules) * FLOAT32_BYTES
