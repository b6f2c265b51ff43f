"""What the command line shows of a run: hfsynth's own progress and tables on stderr (:class:`RunDisplay`, one
recipe at a time), or one line per event when several recipes run together (:class:`RecipeLines`). Both are the
pipeline's :class:`~hfsynth.run_events.RunEvents`; the libraries' own output stays behind ``-v``
(:mod:`hfsynth.logs`)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hfsynth.run_events import RunEvents
from hfsynth.run_folder import RunFolder
from hfsynth.stage_stats import summary as stage_summary
from hfsynth.storage import shown_path

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from hfsynth.errors import HfsynthError
    from hfsynth.evaluation.results import EvaluationResults, SummaryEntry
    from hfsynth.execution import Engine
    from hfsynth.generation import GenerationProgress, GenerationResult
    from hfsynth.grid_plan import GridPlan
    from hfsynth.recipe import Recipe
    from hfsynth.training import TrainedRun
    from hfsynth.training_progress import TrainingStep

console = Console(stderr=True)


class RunDisplay(RunEvents):
    """Progress bars and tables for one recipe at a time; a context manager that stops any bar still shown."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._progress: Progress | None = None
        self._sinks = ExitStack()
        self._run_tasks: dict[str, Any] = {}

    def __exit__(self, *exc_info: object) -> None:
        self._stop()

    def _bars(self, *columns: Any) -> Progress:
        self._stop()
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *columns,
                                  TimeElapsedColumn(), console=console)
        self._progress.start()
        return self._progress

    def _stop(self) -> None:
        self._sinks.close()  # events still on their way are shown first
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def generation_progress(self, recipe: Recipe) -> GenerationProgress:
        from hfsynth.generation import GenerationProgress

        generation = recipe.generation
        console.print(f"plan: {recipe.planned_calls:,} teacher calls ({len(recipe.labels)} labels x "
                      f"{len(recipe.languages)} language(s) x {generation.samples_per_label} samples in calls of "
                      f"{generation.samples_per_call}), then top-up calls for what curation drops", highlight=False,
                      soft_wrap=True)
        progress = self._bars(TextColumn("{task.fields[samples]} samples parsed"))
        task = progress.add_task("teacher calls", total=0, samples=0)
        samples = 0

        def planned(total: int, cached: int) -> None:
            progress.update(task, total=(progress.tasks[task].total or 0) + total)
            if cached:
                console.print(f"resuming: {cached} of {total} calls already in the cache")

        def batch_done(calls: int, parsed: int) -> None:
            nonlocal samples
            samples += parsed
            progress.update(task, advance=calls, samples=samples)

        def round_done(round_index: int, kept: int, dropped: int) -> None:
            console.print(f"round {round_index + 1}: {kept} samples kept, {dropped} dropped by curation")

        return GenerationProgress(planned, batch_done, round_done)

    def generated(self, recipe: Recipe, out_dir: Path, result: GenerationResult) -> None:
        self._stop()
        console.print(kept_table(recipe, result))
        drops = ", ".join(f"{reason} {count}" for reason, count in result.drop_counts().items())
        console.print(f"{result.calls} teacher calls ({result.cached_calls} from the cache), {result.parsed} samples "
                      f"parsed, {len(result.samples)} kept; dropped: {drops or 'none'}", highlight=False)
        if result.feedback is not None:
            curve = " -> ".join(f"{value:.3f}" for value in result.feedback.learning_curve)
            console.print(f"feedback ({result.feedback.signal}): {len(result.feedback.rounds)} rounds, "
                          f"{result.feedback.budget} extra samples asked; validation macro-F1 of the steering "
                          f"student per round: {curve}", highlight=False)
        console.print(f"dataset saved to {shown_path(RunFolder(out_dir).dataset.root)}", highlight=False)

    def training_callbacks(self, recipe: Recipe, engine: Engine) -> Sequence[TrainerCallback]:
        """One bar per training, wherever it runs: its steps come back through the engine's event sink."""
        from hfsynth.training_progress import StepReporter

        progress = self._bars()
        self._run_tasks = {}
        send = self._sinks.enter_context(engine.event_sink(lambda step: self._training_step(progress, step)))
        return [StepReporter(send)]

    def _training_step(self, progress: Progress, step: TrainingStep) -> None:
        task = self._run_tasks.get(step.run)
        if task is None:
            label = f"training steps ({step.run})" if step.run else "training steps"
            task = self._run_tasks[step.run] = progress.add_task(label, total=step.total, completed=step.step)
        progress.update(task, completed=step.step, total=step.total)
        if step.ended:
            del self._run_tasks[step.run]

    def units_done(self, recipe: Recipe, stage: str, done: int, total: int) -> None:
        if not self.engine.units_run_here:
            console.print(f"{recipe.name}: {stage} {done}/{total} done", highlight=False)

    def trained(self, recipe: Recipe, out_dir: Path, runs: list[TrainedRun]) -> None:
        self._stop()
        console.print(students_table(recipe, runs))

    def evaluated(self, recipe: Recipe, out_dir: Path, results: EvaluationResults) -> None:
        console.print(results_table(results))
        console.print(f"report: {shown_path(RunFolder(out_dir).eval.report)}", highlight=False)

    def published(self, recipe: Recipe, urls: list[str]) -> None:
        for url in urls:
            console.print(f"pushed {url}")

    def finished(self, recipe: Recipe, out_dir: Path, error: HfsynthError | None) -> None:
        stages = stage_summary(out_dir)
        if error is None and stages:
            console.print(stages, highlight=False)


class RecipeLines(RunEvents):
    """One line per event, each naming its recipe: for several recipes running at once (bars would interleave)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one recipe's table is not cut by another's line

    def _say(self, *lines: Any) -> None:
        with self._lock:
            for line in lines:
                console.print(line, highlight=False, soft_wrap=True)

    def generation_progress(self, recipe: Recipe) -> GenerationProgress:
        from hfsynth.generation import GenerationProgress

        def planned(total: int, cached: int) -> None:
            self._say(f"{recipe.name}: {total} teacher calls planned ({cached} in the cache)")

        def round_done(round_index: int, kept: int, dropped: int) -> None:
            self._say(f"{recipe.name}: generation round {round_index + 1}: {kept} kept, {dropped} dropped")

        return GenerationProgress(planned, lambda calls, samples: None, round_done)

    def units_done(self, recipe: Recipe, stage: str, done: int, total: int) -> None:
        self._say(f"{recipe.name}: {stage} {done}/{total} done")

    def evaluated(self, recipe: Recipe, out_dir: Path, results: EvaluationResults) -> None:
        self._say(results_table(results))

    def published(self, recipe: Recipe, urls: list[str]) -> None:
        self._say(*(f"{recipe.name}: pushed {url}" for url in urls))

    def finished(self, recipe: Recipe, out_dir: Path, error: HfsynthError | None) -> None:
        if error is not None:
            self._say(f"[bold red]error:[/] {recipe.name}: {escape(str(error))}")
            return
        stages = stage_summary(out_dir)
        self._say(f"{recipe.name}: done in {shown_path(out_dir)}",
                  *([f"{recipe.name}: {stages} (the driver's memory, shared by the recipes)"] if stages else []))


# --- tables ---------------------------------------------------------------------------------------------------------


def kept_table(recipe: Recipe, result: GenerationResult) -> Table:
    counts = result.counts()
    table = Table(title=f"samples kept per label (target {recipe.generation.samples_per_label})")
    table.add_column("label")
    for language in recipe.languages:
        table.add_column(language, justify="right")
    for label in recipe.label_names:
        table.add_row(label, *(str(counts[(language, label)]) for language in recipe.languages))
    return table


def students_table(recipe: Recipe, runs: Sequence[TrainedRun]) -> Table:
    table = Table(title=f"{recipe.name}: students")
    for column in ("student", "kind", "data", "train size", "seed", "status", "seconds"):
        table.add_column(column, no_wrap=column == "status")  # "already trained" stays one phrase on narrow terminals
    for trained in runs:
        run = trained.run
        table.add_row(run.config.name, run.config.kind, run.data, str(run.train_size or "all"), str(run.repeat),
                      "already trained" if trained.skipped else "trained", f"{trained.seconds:.0f}")
    return table


def results_table(results: EvaluationResults) -> Table:
    languages = results.languages
    table = Table(title=f"{results.recipe}: macro-F1 on real test data (bootstrap interval), verdicts")
    table.add_column("model")
    table.add_column("role")
    for language in languages:
        table.add_column(language, justify="right")
    table.add_column("texts/s", justify="right")
    for role, model, _ in results.headline_models():
        cells = {entry.language: entry for entry in results.headline if (entry.role, entry.model) == (role, model)}
        speed = [cell.texts_per_s for cell in cells.values() if cell.texts_per_s]
        table.add_row(model, role, *(_results_cell(cells[lang]) if lang in cells else "-" for lang in languages),
                      f"{sum(speed) / len(speed):.1f}" if speed else "-")
    return table


def _results_cell(entry: SummaryEntry) -> str:
    """The score with its interval; under it the teacher's completion rate, or the student's verdicts."""
    lines = [escape(entry.score_text("macro_f1"))]  # its [low, high] is not rich markup
    if entry.completion_rate is not None:
        lines.append(f"{entry.completion_rate:.0%} answered")
    if entry.vs_teacher is not None:
        lines.append(entry.vs_teacher.statement)
    if entry.vs_human is not None:
        lines.append(escape(f"{entry.vs_human.ratio_text()} of human data"))
    return "\n".join(lines)


def _size(size: int | None) -> str:
    if size is None:
        return "?"
    if size == 0:
        return "its examples only"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size / 1e3:,.1f} kB"


def show_plans(plans: Sequence[GridPlan], training_minutes: float, evaluation_minutes: float) -> None:
    """``hfsynth plan``: each recipe's grid, then the totals."""
    table = Table(title="What the grid takes (hfsynth plan: nothing run)", title_justify="left")
    for column in ("recipe", "teacher prompts: generation (max)", "evaluation", "student runs",
                   "evaluations (x test sets)", "GPU-hours", "students on disk"):
        table.add_column(column, justify="left" if column == "recipe" else "right")
    for plan in plans:
        table.add_row(plan.recipe, f"{plan.generation_prompts:,} ({plan.generation_prompts_max:,})",
                      "?" if plan.test_texts is None else f"{plan.test_texts:,}", f"{plan.student_runs:,}",
                      f"{plan.student_runs:,} ({plan.student_runs * plan.test_sets:,})",
                      f"{plan.gpu_hours(training_minutes, evaluation_minutes):,.0f}",
                      _size(plan.storage_bytes))
    console.print(table)
    for plan in plans:
        for student in plan.students:
            console.print(f"  {plan.recipe} / {student.name} ({student.kind}, {student.model}): {student.runs:,} "
                          f"runs x {_size(student.bytes_per_run)}", highlight=False)
    if any(plan.storage_bytes is None for plan in plans):
        console.print("  ?: a base model's config.json cannot be reached from here (offline, or a gated model "
                      "without a token)", highlight=False)
    unknown = [plan.recipe for plan in plans if plan.test_texts is None]
    if unknown:
        console.print(f"  evaluation prompts: one per test text; the test sets' sizes of {', '.join(unknown)} are "
                      "on the Hub (set evaluation.max_samples to bound them)", highlight=False)
    console.print(f"  GPU-hours at {training_minutes:g} min per student run and {evaluation_minutes:g} min per "
                  "evaluation on the GPUs the recipe's execution section gives them (--training-minutes, "
                  "--evaluation-minutes: measure one run on the target hardware)", highlight=False)
