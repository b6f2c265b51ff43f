"""The ``hfsynth`` command: thin over :mod:`hfsynth.pipeline`; user mistakes end as one line and a non-zero exit."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hfsynth.errors import HfsynthError

app = typer.Typer(help="Let a large LLM teach small models: synthetic data, students, evaluation, the Hub.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
recipes_app = typer.Typer(help="Work with recipes.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

RecipeArg = Annotated[str, typer.Argument(help="A recipe YAML file (or hf://datasets/OWNER/NAME/recipe.yaml).")]
OutOption = Annotated[Path, typer.Option("--out", help="The run folder: cache, dataset, students, eval.")]


def user_errors(command: F) -> F:
    """A user mistake becomes one red line and exit code 1; Ctrl-C says that a re-run resumes."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except HfsynthError as error:
            console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted:[/] everything finished so far is kept; run the same command to resume")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _quiet_libraries() -> None:
    # Library chatter (and any request URL it might log) stays out of the user's terminal and logs.
    for name in ("httpx", "httpcore", "urllib3", "huggingface_hub", "datasets", "transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _load(recipe: str):  # noqa: ANN202 - returns hfsynth.recipe.Recipe; imported lazily to keep --help fast
    from hfsynth.recipe import load_recipe

    return load_recipe(recipe)


@recipes_app.command("validate")
@user_errors
def recipes_validate(recipe: RecipeArg) -> None:
    """Check a recipe; print what it will do, or one line naming the file and field that is wrong."""
    loaded = _load(recipe)
    console.print(
        f"[green]ok[/] {recipe}: task [bold]{loaded.task.name}[/], {len(loaded.labels)} labels, "
        f"languages {', '.join(loaded.languages)}, teacher {loaded.teacher.backend}:{loaded.teacher.model}, "
        f"{len(loaded.students)} student(s)",
        highlight=False,
    )


def _generation_progress(progress: Progress):  # noqa: ANN202 - hfsynth.generation.GenerationProgress
    from hfsynth.generation import GenerationProgress

    task = progress.add_task("teacher calls", total=0, samples=0)
    state = {"samples": 0}

    def planned(total: int, cached: int) -> None:
        progress.update(task, total=(progress.tasks[task].total or 0) + total)
        if cached:
            console.print(f"resuming: {cached} of {total} calls already in the cache")

    def batch_done(calls: int, samples: int) -> None:
        state["samples"] += samples
        progress.update(task, advance=calls, samples=state["samples"])

    def round_done(round_index: int, kept: int, dropped: int) -> None:
        console.print(f"round {round_index + 1}: {kept} samples kept, {dropped} dropped by curation")

    return GenerationProgress(planned, batch_done, round_done)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[samples]} samples parsed"), TimeElapsedColumn(), console=console)


def _summary(recipe, result) -> Table:  # noqa: ANN001 - Recipe, GenerationResult
    counts = result.counts()
    table = Table(title=f"{recipe.name}: synthetic samples kept (target {recipe.generation.samples_per_label})")
    table.add_column("label")
    for language in recipe.languages:
        table.add_column(language, justify="right")
    for label in recipe.label_names:
        table.add_row(label, *(str(counts[(language, label)]) for language in recipe.languages))
    drops = ", ".join(f"{reason} {count}" for reason, count in result.drop_counts().items())
    table.caption = (f"{result.calls} teacher calls ({result.cached_calls} from cache), {result.parsed} parsed, "
                     f"{len(result.samples)} kept, dropped: {drops or 'none'}")
    return table


@app.command()
@user_errors
def generate(recipe: RecipeArg, out: OutOption,
             push: Annotated[bool, typer.Option(help="Push the dataset to the Hub when done.")] = False) -> None:
    """Generate and curate the synthetic dataset into OUT/dataset (re-running resumes from the call cache)."""
    from hfsynth import pipeline

    _quiet_libraries()
    loaded = _load(recipe)
    with _progress() as progress:
        _, result = pipeline.generate(loaded, out, _generation_progress(progress))
    console.print(_summary(loaded, result))
    console.print(f"dataset saved to {pipeline.RunLayout(out).dataset}")
    if push:
        _push_dataset(loaded, out)


def _push_dataset(recipe, out: Path) -> None:  # noqa: ANN001
    from hfsynth import publish

    url = publish.push_dataset(recipe, out / "dataset")
    console.print(f"pushed dataset to {url}")


def main() -> None:  # pragma: no cover - console entry point convenience
    app(prog_name="hfsynth")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
