"""What a recipe's whole grid will take, worked out from the recipe alone in seconds (``hfsynth plan``): nothing is
generated, trained or downloaded but, where it can be reached, each base model's ``config.json``.

- **Teacher prompts**: generation's own plan (:func:`hfsynth.generation.plan.plan_requests`) for the first pass, and the
  most the top-up rounds (and feedback rounds) may add; the classification prompts of the evaluation, one per test
  text when the test sets' sizes are known here (a local file, or ``max_samples``).
- **Units**: every student run (:func:`hfsynth.training.planned_runs`: students x training sizes x seeds, and the
  human-data runs) and as many evaluations (each run on all its test sets), with the GPUs the recipe's
  ``execution`` section gives each unit; GPU-hours at stated minutes per unit (a measurement on the target
  hardware, or the defaults, which are assumptions and said so).
- **Teacher tokens and cost**: the rendered prompts of generation's first pass and of the evaluation, counted with the
  teacher's tokenizer when it is available offline (otherwise estimated, and said so); their answers at most
  ``max_new_tokens`` each (a remote teacher's label at most its few tokens); with every top-up and feedback round at
  the first pass's average; the cost at ``teacher.pricing``, checked against ``teacher.budget``.
- **Storage**: each run's saved student, from the parameter count of its base model (built on torch's meta device
  from its config: no weights): the whole model in float32 for SetFit and encoder students, the LoRA adapter
  alone for SFT students (r x (inputs + outputs) of each adapted linear layer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hfsynth.embedded import EMBEDDED_MODELS, folder_if_present
from hfsynth.generation.feedback import round_budgets
from hfsynth.generation.plan import load_seed_examples, plan_requests
from hfsynth.generation.prompts import generation_prompt
from hfsynth.model_shapes import lora_parameters, meta_models
from hfsynth.prompting import classification_prompt, prompt_text
from hfsynth.realdata import load_test_sets, teacher_demonstrations
from hfsynth.recipe.schema import Recipe, SeedSet
from hfsynth.recipe.teacher_costs import Budget, Pricing
from hfsynth.runs.records import TeacherTokens
from hfsynth.teachers.remote import CLASSIFY_MAX_TOKENS
from hfsynth.teachers.spending import cost, estimate_tokens
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
class TeacherPlan:
    """The teacher's tokens, prompts and answers apart: generation's first pass (its answers at most
    ``max_new_tokens`` each), scaled to every top-up and feedback round the recipe allows, and the evaluation."""

    generation_prompt_tokens: int
    generation_answer_tokens: int
    #: Generation's most calls over its first pass's: top-up and feedback rounds at the first pass's average.
    generation_scale: float
    #: ``None`` when a test set is not here (on the Hub without ``evaluation.max_samples``).
    evaluation_prompt_tokens: int | None
    evaluation_answer_tokens: int | None
    #: No tokenizer of the teacher here, or seed files not readable: the counts are estimates.
    estimated: bool
    #: Generation's answers at a run's measured average length, not at ``max_new_tokens``.
    measured: bool = False
    pricing: Pricing | None = None
    budget: Budget | None = None

    @property
    def generation_tokens(self) -> int:
        return self.generation_prompt_tokens + self.generation_answer_tokens

    @property
    def generation_tokens_max(self) -> int:
        return round(self.generation_tokens * self.generation_scale)

    @property
    def evaluation_tokens(self) -> int | None:
        if self.evaluation_prompt_tokens is None or self.evaluation_answer_tokens is None:
            return None
        return self.evaluation_prompt_tokens + self.evaluation_answer_tokens

    @property
    def tokens_max(self) -> int:
        """The most the whole run may take (the evaluation's part only when it is known)."""
        return self.generation_tokens_max + (self.evaluation_tokens or 0)

    @property
    def cost_max(self) -> float | None:
        """At ``teacher.pricing`` (``None`` without one)."""
        if self.pricing is None:
            return None
        return cost(self.pricing, round(self.generation_prompt_tokens * self.generation_scale)
                    + (self.evaluation_prompt_tokens or 0),
                    round(self.generation_answer_tokens * self.generation_scale) + (self.evaluation_answer_tokens or 0))

    @property
    def over_budget(self) -> str | None:
        """Why the plan may pass ``teacher.budget``, when it may."""
        budget, cost_max = self.budget, self.cost_max
        if budget is None:
            return None
        if budget.max_tokens is not None and self.tokens_max > budget.max_tokens:
            return f"at most {self.tokens_max:,} tokens, above teacher.budget.max_tokens {budget.max_tokens:,}"
        if budget.max_cost is not None and cost_max is not None and self.pricing and cost_max > budget.max_cost:
            return (f"at most {cost_max:,.2f} {self.pricing.currency}, above teacher.budget.max_cost "
                    f"{budget.max_cost:,.2f}")
        return None


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
    teacher: TeacherPlan | None = None

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


def plan_grid(recipe: Recipe, measured: TeacherTokens | None = None) -> GridPlan:
    """The recipe's plan, from the stages' own plans, running nothing (student sizes on the meta device).
    ``measured``: a run's generation tokens (its ``generation.json``): answers then count at their measured average
    instead of ``max_new_tokens``."""
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
        teacher=plan_teacher(recipe, first_pass * (1 + recipe.generation.top_up_rounds) + _feedback_prompts(recipe),
                             measured),
    )


def plan_teacher(recipe: Recipe, generation_prompts_max: int, measured: TeacherTokens | None = None) -> TeacherPlan:
    count, estimated = _token_counter(recipe)
    chat = _uses_chat(recipe)
    full = {(language, label): recipe.generation.samples_per_label
            for language in recipe.languages for label in recipe.label_names}
    seeds: dict[str, dict[str, list[str]]] = {}
    if recipe.generation.strategy == "few-shot":
        # Seed sets on the Hub are not fetched (plan waits on no network): prompts without their examples.
        seeds = load_seed_examples(recipe) if _all_local(recipe.generation.seeds) else {}
        estimated = estimated or not seeds
    requests = plan_requests(recipe, full, 0, seeds)
    evaluation = _evaluation_tokens(recipe, count, chat)
    per_answer = _measured_answer_tokens(measured)
    return TeacherPlan(
        generation_prompt_tokens=sum(count(prompt_text(generation_prompt(recipe, request), chat))
                                     for request in requests),
        generation_answer_tokens=round(len(requests) * (per_answer or recipe.teacher.sampling.max_new_tokens)),
        generation_scale=generation_prompts_max / len(requests) if requests else 0.0,
        evaluation_prompt_tokens=evaluation[0] if evaluation else None,
        evaluation_answer_tokens=evaluation[1] if evaluation else None,
        estimated=estimated, measured=per_answer is not None, pricing=recipe.teacher.pricing,
        budget=recipe.teacher.budget)


def _measured_answer_tokens(measured: TeacherTokens | None) -> float | None:
    """A generation answer's average tokens in a run, when it has answers with counted tokens."""
    if measured is None:
        return None
    counted = measured.calls + measured.cached_calls - measured.uncounted_calls
    return (measured.completion_tokens + measured.cached_completion_tokens) / counted if counted > 0 else None


def _token_counter(recipe: Recipe) -> tuple[Callable[[str], int], bool]:
    """The teacher's tokenizer as a counter when it is here (offline), else :func:`estimate_tokens`; and whether
    the counts are estimates."""
    folder = folder_if_present(recipe.teacher.model)
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder or recipe.teacher.model, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached here, gated, or not a transformers model: estimate
        return estimate_tokens, True
    return (lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])), False


def _all_local(sets: Sequence[SeedSet]) -> bool:
    return all(getattr(seed_set, "path", None) and Path(seed_set.path).is_file() for seed_set in sets)


def _uses_chat(recipe: Recipe) -> bool:
    config = recipe.teacher
    if config.prompt_format != "auto":
        return config.prompt_format == "chat"
    if config.backend == "remote":
        return True
    embedded = EMBEDDED_MODELS.get(config.model)
    return embedded.chat if embedded else True


def _evaluation_tokens(recipe: Recipe, count: Callable[[str], int], chat: bool) -> tuple[int, int] | None:
    """The teacher's evaluation prompts' tokens and their answers' at most; ``None`` when a test set is not here."""
    if not _all_local(recipe.evaluation.sets):
        return None  # not fetched: plan waits on no network
    test_sets = load_test_sets(recipe) if recipe.evaluation.sets else []
    prompt = answers = 0
    for test_set in test_sets:
        demonstrations = teacher_demonstrations(recipe, test_set)
        prompt += sum(count(prompt_text(classification_prompt(recipe, text, test_set.language, demonstrations), chat))
                      for text in test_set.texts)
        # A local teacher scores the labels; a remote one writes one, in a few tokens at most.
        answers += len(test_set.texts) * (CLASSIFY_MAX_TOKENS if recipe.teacher.backend == "remote" else 0)
    return prompt, answers


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
