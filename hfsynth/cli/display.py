"""What the command line shows of a run: hfsynth's own progress and tables on stderr (:class:`RunDisplay`, one
recipe at a time), or one line per event when several recipes run together (:class:`RecipeLines`). Both are the
pipeline's :class:`~hfsynth.runs.events.RunEvents`; the libraries' own output stays behind ``-v``
(:mod:`hfsynth.logs`)."""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hfsynth.runs.events import RunEvents
from hfsynth.runs.folder import RunFolder
from hfsynth.stage_stats import summary as stage_summary
from hfsynth.storage.mirror import shown_path

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from hfsynth.engines.base import Engine
    from hfsynth.errors import HfsynthError
    from hfsynth.evaluation.results import EvaluationResults, SummaryEntry
    from hfsynth.generation.samples import GenerationProgress, GenerationResult
    from hfsynth.recipe.schema import Recipe
    from hfsynth.training import TrainedRun
    from hfsynth.training_progress import TrainingStep

console = Console(stderr=True)


class Milestones:
    """Plain progress lines instead of a bar, for output that is not a terminal (a log file, CI, ``ray job logs``,
    where a bar only shows its final state): one line each time another ``every`` of the total is done."""

    def __init__(self, label: str, every: float) -> None:
        self.label, self.every = label, every
        self._said = -1  # the last milestone said
        self._started = time.monotonic()

    def update(self, done: int, total: int | None, extra: str = "") -> None:
        if not total:
            return
        reached = math.floor(min(done / total, 1.0) / self.every + 1e-9)
        if reached > self._said:
            self._said = reached
            minutes, seconds = divmod(int(time.monotonic() - self._started), 60)
            console.print(f"{self.label}: {done:,}/{total:,} ({done / total:.0%}){extra}, {minutes}:{seconds:02d}",
                          highlight=False, soft_wrap=True)


class RunDisplay(RunEvents):
    """Progress bars and tables for one recipe at a time; a context manager that stops any bar still shown."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._progress: Progress | None = None
        self._sinks = ExitStack()
        self._run_tasks: dict[str, Any] = {}
        # Bars only on a terminal: elsewhere they reach the output in their final state only.
        self._live = console.is_terminal

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
        from hfsynth.generation.samples import GenerationProgress

        generation = recipe.generation
        console.print(f"plan: {recipe.planned_calls:,} teacher calls ({len(recipe.labels)} labels x "
                      f"{len(recipe.languages)} language(s) x {generation.samples_per_label} samples in calls of "
                      f"{generation.samples_per_call}), then top-up calls for what curation drops", highlight=False)
        if not self._live:
            return self._generation_lines()
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

        return GenerationProgress(planned, batch_done, _round_done)

    @staticmethod
    def _generation_lines() -> GenerationProgress:
        from hfsynth.generation.samples import GenerationProgress

        lines = Milestones("teacher calls", every=0.1)
        done = total = samples = 0

        def planned(calls: int, cached: int) -> None:
            # Each round (first pass, top-up, feedback) plans its calls: its own tenths, from its start.
            nonlocal lines, done, total
            lines, done, total = Milestones("teacher calls", every=0.1), 0, calls
            if cached:
                console.print(f"resuming: {cached} of {calls} calls already in the cache")

        def batch_done(calls: int, parsed: int) -> None:
            nonlocal done, samples
            done, samples = done + calls, samples + parsed
            lines.update(done, total, f", {samples:,} samples parsed")

        return GenerationProgress(planned, batch_done, _round_done)

    def generated(self, recipe: Recipe, out_dir: Path, result: GenerationResult) -> None:
        self._stop()
        console.print(kept_table(recipe, result))
        drops = ", ".join(f"{reason} {count}" for reason, count in result.drop_counts().items())
        console.print(f"{result.calls} teacher calls ({result.cached_calls} from the cache), {result.parsed} samples "
                      f"parsed, {len(result.samples)} kept; dropped: {drops or 'none'}", highlight=False)
        if result.teacher_tokens is not None:
            console.print(f"generation: {result.teacher_tokens.describe()}", highlight=False)
        if result.feedback is not None:
            curve = " -> ".join(f"{value:.3f}" for value in result.feedback.learning_curve)
            console.print(f"feedback ({result.feedback.signal}): {len(result.feedback.rounds)} rounds, "
                          f"{result.feedback.budget} extra samples asked; validation macro-F1 of the steering "
                          f"student per round: {curve}", highlight=False)
        console.print(f"dataset saved to {shown_path(RunFolder(out_dir).dataset.root)}", highlight=False)

    def training_callbacks(self, recipe: Recipe, engine: Engine) -> Sequence[TrainerCallback]:
        """One bar per training, wherever it runs: its steps come back through the engine's event sink."""
        from hfsynth.training_progress import StepReporter

        self._run_tasks = {}
        if self._live:
            progress = self._bars()
            show: Callable[[TrainingStep], None] = functools.partial(self._training_step, progress)
        else:
            show = self._training_line
        send = self._sinks.enter_context(engine.event_sink(show))
        return [StepReporter(send)]

    def _training_step(self, progress: Progress, step: TrainingStep) -> None:
        task = self._run_tasks.get(step.run)
        if task is None:
            label = f"training steps ({step.run})" if step.run else "training steps"
            task = self._run_tasks[step.run] = progress.add_task(label, total=step.total, completed=step.step)
        progress.update(task, completed=step.step, total=step.total)
        if step.ended:
            del self._run_tasks[step.run]

    def _training_line(self, step: TrainingStep) -> None:
        """Each training's start, every quarter of its steps, and its end, as lines."""
        lines = self._run_tasks.get(step.run)
        if lines is None:
            label = f"training steps ({step.run})" if step.run else "training steps"
            lines = self._run_tasks[step.run] = Milestones(label, every=0.25)
        lines.update(step.step, step.total)
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
        if results.teacher_tokens is not None:
            console.print(f"the teacher's evaluation: {results.teacher_tokens.describe()}", highlight=False)
        console.print(f"report: {shown_path(RunFolder(out_dir).eval.report)}", highlight=False)

    def published(self, recipe: Recipe, urls: list[str]) -> None:
        for url in urls:
            console.print(f"pushed {url}")

    def finished(self, recipe: Recipe, out_dir: Path, error: HfsynthError | None) -> None:
        stages = stage_summary(out_dir)
        if error is None and stages:
            console.print(stages, highlight=False)


def _round_done(round_index: int, kept: int, dropped: int) -> None:
    console.print(f"round {round_index + 1}: {kept} samples kept, {dropped} dropped by curation")


class RecipeLines(RunEvents):
    """One line per event, each naming its recipe: for several recipes running at once (bars would interleave)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one recipe's table is not cut by another's line

    def _say(self, *lines: Any) -> None:
        with self._lock:
            for line in lines:
                console.print(line, highlight=False, soft_wrap=True)

    def generation_progress(self, recipe: Recipe) -> GenerationProgress:
        from hfsynth.generation.samples import GenerationProgress

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
    # Compact (no frame, one space between columns): 11 languages of 3-digit counts fit 80 columns.
    table = Table(title=f"samples kept per label (target {recipe.generation.samples_per_label})",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_edge=False)
    table.add_column("label", overflow="fold")
    for language in recipe.languages:
        table.add_column(language, justify="right", no_wrap=True)
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
    """A row per language and model (a column per language would cut every number at 11 languages)."""
    table = Table(title=f"{results.recipe}: macro-F1 on real test data (bootstrap interval), verdicts")
    table.add_column("lang", no_wrap=True)
    table.add_column("model", overflow="fold")  # a long Hub id breaks across lines, whole
    table.add_column("macro-F1", no_wrap=True)
    table.add_column("verdicts", overflow="fold")
    table.add_column("texts/s", justify="right", no_wrap=True)
    models = results.headline_models()
    for language in results.languages:
        entries = [entry for role, model, _ in models
                   if (entry := results.headline_entry(role, model, language)) is not None]
        for position, entry in enumerate(entries):
            table.add_row(language, escape(entry.display_name), escape(entry.score_text("macro_f1")),
                          _verdicts(results, entry), f"{entry.texts_per_s:.1f}" if entry.texts_per_s else "-",
                          end_section=position == len(entries) - 1)
    return table


def results_rows(results: EvaluationResults) -> list[dict[str, Any]]:
    """The results table's rows for scripts (``hfsynth results --json``): the numbers, not their text."""
    rows = []
    for language in results.languages:
        for role, model, _ in results.headline_models():
            entry = results.headline_entry(role, model, language)
            human = results.human_comparison(model, language)
            if entry is not None:
                rows.append({
                    "language": language, "model": model, "role": role, "data": entry.data,
                    "macro_f1": entry.macro_f1, "macro_f1_ci": entry.macro_f1_ci, "macro_f1_std": entry.macro_f1_std,
                    "repeats": entry.repeats, "completion_rate": entry.completion_rate,
                    "vs_teacher": entry.vs_teacher.statement if entry.vs_teacher else None,
                    # Against human data of the same size (a synthetic subsample where the human pool is smaller).
                    "vs_human": human.comparison.statement if human else None,
                    "vs_human_ratio": human.comparison.ratio if human else None,
                    "human_pool": results.reference_pool.pool if human and results.reference_pool else None,
                    "texts_per_s": entry.texts_per_s})
    return rows


def _verdicts(results: EvaluationResults, entry: SummaryEntry) -> str:
    """The teacher's completion rate, or the student's verdicts (against human data: at the same size)."""
    lines = []
    if entry.completion_rate is not None:
        lines.append(f"{entry.completion_rate:.0%} answered")
    if entry.vs_teacher is not None:
        lines.append(entry.vs_teacher.statement)
    human = results.human_comparison(entry.model, entry.language) if entry.role == "student" else None
    if human is not None:
        pool = f", pool {results.reference_pool.pool}" if results.reference_pool is not None else ""
        lines.append(escape(f"{human.comparison.ratio_text()} of human data ({human.human_examples_per_label or 0:.0f}"
                            f" per label{pool})"))
    return "\n".join(lines)
