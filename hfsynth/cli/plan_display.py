"""``hfsynth plan`` on the terminal and as JSON: each recipe's grid and teacher, then the totals, with whole recipe
names and every number at 80 columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from hfsynth.cli.display import console

if TYPE_CHECKING:
    from hfsynth.grid_plan import GridPlan


def _size(size: int | None) -> str:
    if size is None:
        return "?"
    if size == 0:
        return "its examples only"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size / 1e3:,.1f} kB"


def _plan_cells(prompts: int, prompts_max: int, test_texts: int | None, runs: int, evaluations: int,
                gpu_hours: float, storage: int | None) -> list[str]:
    return [f"{prompts:,}", f"{prompts_max:,}", "?" if test_texts is None else f"{test_texts:,}", f"{runs:,}",
            f"{evaluations:,}", f"{gpu_hours:,.0f}", _size(storage)]


def show_plans(plans: Sequence[GridPlan], training_minutes: float, evaluation_minutes: float) -> None:
    """``hfsynth plan``: each recipe's grid, then the totals; whole recipe names and every number at 80 columns."""
    from hfsynth.model_shapes import CONFIG_TIMEOUT

    table = Table(title="What the grid takes (hfsynth plan: nothing run)", title_justify="left", box=box.SIMPLE_HEAD,
                  padding=(0, 1), pad_edge=False, collapse_padding=True, show_edge=False)
    table.add_column("recipe", no_wrap=True)
    # Headers on two lines and numbers never wrapped: four recipes and a total fit 80 columns.
    for column in ("gen.\nprompts", "at\nmost", "eval.\nprompts", "student\nruns", "evalu-\nations", "GPU-\nhours",
                   "on\ndisk"):
        table.add_column(column, justify="right", no_wrap=True)
    for position, plan in enumerate(plans):
        table.add_row(plan.recipe, *_plan_cells(
            plan.generation_prompts, plan.generation_prompts_max, plan.test_texts, plan.student_runs,
            plan.student_runs * plan.test_sets, plan.gpu_hours(training_minutes, evaluation_minutes),
            plan.storage_bytes), end_section=position == len(plans) - 1)
    total = plans_json(plans, training_minutes, evaluation_minutes)["total"]
    table.add_row("total", *_plan_cells(
        total["generation_prompts"], total["generation_prompts_max"], total["test_texts"], total["student_runs"],
        total["evaluations"], total["gpu_hours"], total["storage_bytes"]))
    console.print(table)
    for plan in plans:
        for student in plan.students:
            console.print(f"  {plan.recipe} / {student.name} ({student.kind}, {student.model}): {student.runs:,} "
                          f"runs x {_size(student.bytes_per_run)}", highlight=False)
    console.print("  gen./eval. prompts: the teacher's, for generation (at most: with every top-up and feedback "
                  "round the recipe allows) and evaluation; evaluations: student runs x test sets; on disk: the "
                  "saved students", highlight=False)
    unreached = sorted({name for plan in plans for name in plan.unreached})
    if unreached:
        console.print(f"  ?: the config.json of {', '.join(unreached)} could not be reached from here within "
                      f"{CONFIG_TIMEOUT:g} s (offline, or a gated model without a token): gave up on it",
                      highlight=False)
    unknown = [plan.recipe for plan in plans if plan.test_texts is None]
    if unknown:
        console.print(f"  evaluation prompts: one per test text; the test sets' sizes of {', '.join(unknown)} are "
                      "on the Hub (set evaluation.max_samples to bound them)", highlight=False)
    console.print(f"  GPU-hours at {training_minutes:g} min per student run and {evaluation_minutes:g} min per "
                  "evaluation on the GPUs the recipe's execution section gives them (in-context runs train "
                  "nothing: evaluation only; --training-minutes, --evaluation-minutes: measure one run on the "
                  "target hardware)", highlight=False)
    show_teacher_plans(plans)


def _tokens(count: int | None, estimated: bool) -> str:
    return "?" if count is None else f"{'~' if estimated else ''}{count:,}"


def _cost(plans: Sequence[GridPlan]) -> str:
    costs = [plan.teacher.cost_max for plan in plans if plan.teacher]
    currencies = {plan.teacher.pricing.currency for plan in plans if plan.teacher and plan.teacher.pricing}
    if not costs or any(value is None for value in costs) or len(currencies) != 1:
        return "-"
    return f"{sum(value or 0 for value in costs):,.2f} {currencies.pop()}"


def show_teacher_plans(plans: Sequence[GridPlan]) -> None:
    """What the teacher takes, per recipe and in total: tokens (generation's first pass, with every top-up and
    feedback round, the evaluation) and their cost at the recipe's prices."""
    teachers = [(plan, plan.teacher) for plan in plans if plan.teacher is not None]
    if not teachers:
        return
    table = Table(title="What the teacher takes (tokens; cost at teacher.pricing)", title_justify="left",
                  box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True, show_edge=False)
    table.add_column("recipe", no_wrap=True)
    for column in ("gen.\ntokens", "at\nmost", "eval.\ntokens", "cost at\nmost"):
        table.add_column(column, justify="right", no_wrap=True)
    for position, (plan, teacher) in enumerate(teachers):
        table.add_row(plan.recipe, _tokens(teacher.generation_tokens, teacher.estimated),
                      _tokens(teacher.generation_tokens_max, teacher.estimated),
                      _tokens(teacher.evaluation_tokens, teacher.estimated), _cost([plan]),
                      end_section=position == len(teachers) - 1)
    estimated = any(teacher.estimated for _, teacher in teachers)
    evaluations = [teacher.evaluation_tokens for _, teacher in teachers]
    table.add_row("total", _tokens(sum(t.generation_tokens for _, t in teachers), estimated),
                  _tokens(sum(t.generation_tokens_max for _, t in teachers), estimated),
                  _tokens(None if None in evaluations else sum(e or 0 for e in evaluations), estimated),
                  _cost([plan for plan, _ in teachers]))
    console.print(table)
    measured = [plan.recipe for plan, teacher in teachers if teacher.measured]
    console.print("  tokens: prompts and their answers at most (max_new_tokens each" + (
                      f"; {', '.join(measured)}: generation's answers at the run's measured average" if measured
                      else "") + "); at most: with every top-up "
                  "and feedback round; cost at most: of everything the plan may take (where a part is ?, without "
                  "it)" + (
                      "; ~: estimated, the teacher's tokenizer or seed files are not here (about 3 bytes a token, "
                      "on the high side)" if estimated else "") + (
                      "; ?: test sets on the Hub (set evaluation.max_samples, or give local files)"
                      if None in evaluations else ""), highlight=False)
    for plan, teacher in teachers:
        if teacher.over_budget:
            console.print(f"  [yellow]warning:[/] {plan.recipe}: the plan may pass teacher.budget: "
                          f"{teacher.over_budget}; the run stops before the cap (raise it to go on)", highlight=False)


def plans_json(plans: Sequence[GridPlan], training_minutes: float, evaluation_minutes: float) -> dict[str, Any]:
    """``hfsynth plan --json``: each recipe's grid and the totals (None where a part is unknown here)."""
    rows = []
    for plan in plans:
        rows.append({
            "recipe": plan.recipe, "languages": plan.languages, "labels": plan.labels, "samples": plan.samples,
            "generation_prompts": plan.generation_prompts, "generation_prompts_max": plan.generation_prompts_max,
            "test_texts": plan.test_texts, "test_sets": plan.test_sets, "student_runs": plan.student_runs,
            "trained_runs": plan.trained_runs, "evaluations": plan.student_runs * plan.test_sets,
            "gpu_hours": plan.gpu_hours(training_minutes, evaluation_minutes), "storage_bytes": plan.storage_bytes,
            "unreached_configs": list(plan.unreached),
            "teacher": None if plan.teacher is None else {
                "generation_tokens": plan.teacher.generation_tokens,
                "generation_answer_tokens": plan.teacher.generation_answer_tokens, "measured": plan.teacher.measured,
                "generation_tokens_max": plan.teacher.generation_tokens_max,
                "evaluation_tokens": plan.teacher.evaluation_tokens, "tokens_max": plan.teacher.tokens_max,
                "estimated": plan.teacher.estimated, "cost_max": plan.teacher.cost_max,
                "currency": plan.teacher.pricing.currency if plan.teacher.pricing else None,
                "over_budget": plan.teacher.over_budget},
            "students": [{"name": s.name, "kind": s.kind, "model": s.model, "runs": s.runs,
                          "bytes_per_run": s.bytes_per_run} for s in plan.students]})

    def total(key: str) -> Any:
        values = [row[key] for row in rows]
        return None if any(value is None for value in values) else sum(values)

    keys = ("samples", "generation_prompts", "generation_prompts_max", "test_texts", "student_runs",
            "trained_runs", "evaluations", "gpu_hours", "storage_bytes")
    return {"training_minutes": training_minutes, "evaluation_minutes": evaluation_minutes, "recipes": rows,
            "total": {key: total(key) for key in keys}}
