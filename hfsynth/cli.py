"""The ``hfsynth`` command: thin over :mod:`hfsynth.pipeline`; user mistakes end as one line and a non-zero exit."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperCommand

from hfsynth.checks import check_out_dir, check_run_dir
from hfsynth.errors import HfsynthError
from hfsynth.run_folder import RunFolder
from hfsynth.stage_stats import summary as stage_summary

if TYPE_CHECKING:
    from hfsynth.run_records import EvaluationResults

app = typer.Typer(help="Let a large LLM teach small models: synthetic data, students, evaluation, the Hub.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
recipes_app = typer.Typer(help="Work with recipes.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

RecipeArg = Annotated[str, typer.Argument(help="A recipe YAML file (or hf://datasets/OWNER/NAME/recipe.yaml).")]
OutOption = Annotated[Path, typer.Option("--out", help="The run folder: cache, dataset, students, eval.")]


RayOption = Annotated[str | None, typer.Option(
    "--ray", metavar="[ADDRESS]",
    help="Run on Ray (install the ray extra of hfsynth): --ray alone uses the recipe's execution.address, else "
         "RAY_ADDRESS, else a new local instance; or give an address: auto (the cluster `ray start` started on this "
         "machine), HOST:6379, ray://HOST:10001.")]


class _RayCommand(TyperCommand):
    """Lets ``--ray`` go without a value (``--ray [ADDRESS]``): typer options otherwise always take one."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args = list(args)
        for index, arg in enumerate(args):
            if arg == "--":
                break
            if arg == "--ray" and (index + 1 == len(args) or args[index + 1].startswith("-")):
                args.insert(index + 1, "")
                break
        return super().parse_args(ctx, args)


# The engine `run` opened, which the stage commands it calls reuse (one Ray connection for all stages).
_active_engine: ContextVar[Any] = ContextVar("hfsynth_engine", default=None)


@contextlib.contextmanager
def _engine(recipes: Sequence[Any], ray: str | None) -> Iterator[Any]:  # hfsynth.execution.Engine
    active = _active_engine.get()
    if active is not None:
        yield active
        return
    from hfsynth.execution import engine_for

    if ray and Path(ray).suffix in {".yaml", ".yml"}:
        raise HfsynthError(f"--ray {ray}: that is a recipe, not a Ray address: put --ray after the recipes")
    engine = engine_for(recipes, ray)
    if engine.name == "ray":
        engine.on_progress = _stage_progress
    token = _active_engine.set(engine)
    try:
        yield engine
    finally:
        _active_engine.reset(token)
        engine.close()


def _stage_progress(recipe: str, stage: str, done: int, total: int) -> None:
    console.print(f"{recipe}: {stage} {done}/{total} done", highlight=False)


def user_errors(command: F) -> F:
    """A user mistake becomes one red line and exit code 1; Ctrl-C says that a re-run resumes."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except HfsynthError as error:
            # Escaped: a message may hold brackets that rich would take for markup ("hfsynth[ray]").
            console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted:[/] everything finished so far is kept; run the same command to resume")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main_options(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, show_default=False,
                                         help="Show library logs, warnings and progress bars (-vv: debug). "
                                              "Also HFSYNTH_VERBOSITY=quiet|info|debug.")] = 0,
) -> None:
    """Let a large LLM teach small models: synthetic data, students, evaluation, the Hub."""
    from hfsynth import logs

    try:
        logs.configure(verbose)
    except ValueError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _quiet_libraries() -> None:
    # Library chatter (and any request URL it might log) stays at the level hfsynth.logs set (-v shows it).
    from hfsynth.logs import apply_to_loaded_libraries

    apply_to_loaded_libraries()


def _load(recipe: str):  # noqa: ANN202 - returns hfsynth.recipe.Recipe; imported lazily to keep --help fast
    from hfsynth.hub.publish import load_recipe_source

    return load_recipe_source(recipe)


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


def _summary(recipe, result) -> tuple[Table, str]:  # noqa: ANN001 - Recipe, GenerationResult
    counts = result.counts()
    table = Table(title=f"samples kept per label (target {recipe.generation.samples_per_label})")
    table.add_column("label")
    for language in recipe.languages:
        table.add_column(language, justify="right")
    for label in recipe.label_names:
        table.add_row(label, *(str(counts[(language, label)]) for language in recipe.languages))
    drops = ", ".join(f"{reason} {count}" for reason, count in result.drop_counts().items())
    line = (f"{result.calls} teacher calls ({result.cached_calls} from the cache), {result.parsed} samples parsed, "
            f"{len(result.samples)} kept; dropped: {drops or 'none'}")
    return table, line


@app.command(cls=_RayCommand)
@user_errors
def generate(recipe: RecipeArg, out: OutOption,
             push: Annotated[bool, typer.Option(help="Push the dataset to the Hub when done.")] = False,
             ray: RayOption = None) -> None:
    """Generate and curate the synthetic dataset into OUT/dataset (re-running resumes from the call cache)."""
    from hfsynth import pipeline

    _quiet_libraries()
    loaded = _load(recipe)
    check_out_dir(out)
    generation = loaded.generation
    console.print(f"plan: {loaded.planned_calls:,} teacher calls ({len(loaded.labels)} labels x "
                  f"{len(loaded.languages)} language(s) x {generation.samples_per_label} samples in calls of "
                  f"{generation.samples_per_call}), then top-up calls for what curation drops", highlight=False,
                  soft_wrap=True)
    with _engine([loaded], ray) as engine, _progress() as progress:
        _, result = pipeline.generate(loaded, out, _generation_progress(progress), engine)
    table, line = _summary(loaded, result)
    console.print(table)
    console.print(line, highlight=False)
    console.print(f"dataset saved to {RunFolder(out).dataset.root}")
    if push:
        _push_dataset(loaded, out)


def _push_dataset(recipe, out: Path) -> None:  # noqa: ANN001
    from hfsynth.hub.publish import push_dataset

    url = push_dataset(recipe, RunFolder(out).dataset.root)
    console.print(f"pushed dataset to {url}")


DatasetOption = Annotated[
    str | None, typer.Option("--dataset", help="Train on this synthetic dataset (folder or Hub id) instead of OUT's.")
]


@app.command(cls=_RayCommand)
@user_errors
def train(recipe: RecipeArg, out: OutOption, dataset: DatasetOption = None, ray: RayOption = None) -> None:
    """Train the recipe's students into OUT/students (finished students are skipped, killed ones resume)."""
    from hfsynth import pipeline

    _quiet_libraries()
    loaded = _load(recipe)
    check_out_dir(out)
    from hfsynth.logs import training_steps_callback

    with _engine([loaded], ray) as engine, Progress(TextColumn("{task.description}"), BarColumn(),
                                                    MofNCompleteColumn(), TimeElapsedColumn(),
                                                    console=console) as progress:
        # On Ray the runs train on the workers: the engine reports finished runs instead of steps.
        callbacks = [training_steps_callback(progress)] if engine.name == "local" else []
        runs = pipeline.train(loaded, out, dataset, callbacks=callbacks, engine=engine)
    table = Table(title=f"{loaded.name}: students")
    for column in ("student", "kind", "data", "train size", "seed", "status", "seconds"):
        table.add_column(column, no_wrap=column == "status")  # "already trained" stays one phrase on narrow terminals
    for trained in runs:
        run = trained.run
        table.add_row(run.config.name, run.config.kind, run.data, str(run.train_size or "all"), str(run.repeat),
                      "already trained" if trained.skipped else "trained", f"{trained.seconds:.0f}")
    console.print(table)


def _results_table(results: EvaluationResults) -> Table:
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


def _results_cell(entry) -> str:  # noqa: ANN001 - hfsynth.run_records.SummaryEntry
    """The score with its interval; under it the teacher's completion rate, or the student's verdicts."""
    lines = [escape(entry.score_text("macro_f1"))]  # its [low, high] is not rich markup
    if entry.completion_rate is not None:
        lines.append(f"{entry.completion_rate:.0%} answered")
    if entry.vs_teacher is not None:
        lines.append(entry.vs_teacher.statement)
    if entry.vs_human is not None:
        lines.append(escape(f"{entry.vs_human.ratio_text()} of human data"))
    return "\n".join(lines)


@app.command(cls=_RayCommand)
@user_errors
def evaluate(recipe: RecipeArg, out: OutOption, ray: RayOption = None) -> None:
    """Teacher and students on the real test sets: OUT/eval/results.json, report.md, plots; then the cards."""
    from hfsynth import pipeline

    _quiet_libraries()
    loaded = _load(recipe)
    check_out_dir(out)
    with _engine([loaded], ray) as engine:
        results = pipeline.evaluate(loaded, out, engine)
    console.print(_results_table(results))
    console.print(f"report: {RunFolder(out).eval.report}")


@app.command()
@user_errors
def publish(recipe: RecipeArg, out: OutOption) -> None:
    """Push the run's dataset and students, with their cards, to the Hub (HF_ENDPOINT; token from HF_TOKEN/login)."""
    from hfsynth import pipeline

    _quiet_libraries()
    loaded = _load(recipe)
    check_run_dir(out)
    for url in pipeline.publish(loaded, out):
        console.print(f"pushed {url}")


@app.command(cls=_RayCommand)
@user_errors
def run(recipes: Annotated[list[str], typer.Argument(
            help="One or more recipe YAML files (or hf://datasets/OWNER/NAME/recipe.yaml); several go to OUT/<name>.")],
        out: OutOption,
        push: Annotated[bool, typer.Option(help="Publish dataset and students when done.")] = False,
        ray: RayOption = None) -> None:
    """All stages: generate, train, evaluate (and publish with --push). Re-running resumes.

    Several recipes each get their own folder OUT/<recipe name>; with --ray they all run at once on one cluster."""
    loaded = [_load(recipe) for recipe in recipes]
    names = [recipe.name for recipe in loaded]
    if len(set(names)) != len(names):
        raise HfsynthError(f"two recipes have the same name ({', '.join(names)}): each needs its own OUT/<name>")
    with _engine(loaded, ray) as engine:
        if len(recipes) > 1 and engine.name == "ray":
            _run_together(loaded, out, engine)
        else:
            for recipe, recipe_out in zip(recipes, _run_folders(loaded, out), strict=True):
                _run_one(recipe, recipe_out)
    if push:
        for recipe, recipe_out in zip(recipes, _run_folders(loaded, out), strict=True):
            publish(recipe, recipe_out)


def _run_folders(recipes: Sequence[Any], out: Path) -> list[Path]:
    return [out] if len(recipes) == 1 else [out / recipe.name for recipe in recipes]


def _run_one(recipe: str, out: Path) -> None:
    loaded = _load(recipe)
    check_out_dir(out)
    generate(recipe, out, push=False)
    if loaded.students:
        train(recipe, out)
    if loaded.evaluation.sets:
        evaluate(recipe, out)
    stages = stage_summary(out)
    if stages:
        console.print(stages, highlight=False)


def _run_together(recipes: Sequence[Any], out: Path, engine: Any) -> None:
    """Every recipe's stages at once on one Ray cluster, one driver thread per recipe (each writes its own cache)."""
    from concurrent.futures import ThreadPoolExecutor

    from hfsynth import pipeline
    from hfsynth.generation import GenerationProgress

    _quiet_libraries()

    def one(recipe: Any, recipe_out: Path) -> EvaluationResults | None:
        def planned(total: int, cached: int) -> None:
            console.print(f"{recipe.name}: {total} teacher calls planned ({cached} in the cache)", highlight=False)

        def round_done(round_index: int, kept: int, dropped: int) -> None:
            console.print(f"{recipe.name}: generation round {round_index + 1}: {kept} kept, {dropped} dropped",
                          highlight=False)

        pipeline.generate(recipe, recipe_out, GenerationProgress(planned, lambda calls, samples: None, round_done),
                          engine)
        if recipe.students:
            pipeline.train(recipe, recipe_out, engine=engine)
        return pipeline.evaluate(recipe, recipe_out, engine) if recipe.evaluation.sets else None

    folders = _run_folders(recipes, out)
    threads = ThreadPoolExecutor(max_workers=len(recipes), thread_name_prefix="recipe")
    failures = []
    try:
        futures = [threads.submit(one, recipe, folder) for recipe, folder in zip(recipes, folders, strict=True)]
        # A recipe that fails does not stop the others: their work is as valid as it would be alone.
        for recipe, future, folder in zip(recipes, futures, folders, strict=True):
            try:
                results = future.result()
            except HfsynthError as error:
                console.print(f"[bold red]error:[/] {recipe.name}: {escape(str(error))}", highlight=False,
                              soft_wrap=True)
                failures.append(recipe.name)
                continue
            if results is not None:
                console.print(_results_table(results))
            console.print(f"{recipe.name}: done in {folder}", highlight=False)
            stages = stage_summary(folder)
            if stages:
                console.print(f"{recipe.name}: {stages} (the driver's memory, shared by the recipes)", highlight=False)
    except BaseException:
        engine.close()  # the other recipes' Ray calls then fail at once, and their threads end
        raise
    finally:
        threads.shutdown(wait=False, cancel_futures=True)
    if failures:
        raise HfsynthError(f"{len(failures)} of {len(recipes)} recipes failed ({', '.join(failures)}); the others "
                           "finished: run the same command to resume")


space_app = typer.Typer(help="The Gradio Space that compares the teacher with its students.", no_args_is_help=True)
app.add_typer(space_app, name="space")


@space_app.command("serve")
@user_errors
def space_serve(out: OutOption,
                port: Annotated[int | None, typer.Option(help="Port (default: the first free one).", min=1,
                                                         max=65535)] = None,
                host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1") -> None:
    """Serve the comparison Space on a local run folder."""
    from hfsynth.space.commands import serve

    check_out_dir(out)
    serve(out, port=port, host=host)


@space_app.command("deploy")
@user_errors
def space_deploy(recipe: RecipeArg, out: OutOption,
                 repo_id: Annotated[str | None, typer.Option(help="Space repo id (default from the recipe).")] = None
                 ) -> None:
    """Push the comparison Space as a Gradio Space repo with the run's configuration."""
    from hfsynth.space.commands import deploy

    loaded = _load(recipe)
    check_run_dir(out)
    console.print(f"deployed {deploy(loaded, out, repo_id)}")


hub_app = typer.Typer(help="The loopback Hub-compatible server.", no_args_is_help=True)
app.add_typer(hub_app, name="hub")


@hub_app.command("serve")
@user_errors
def hub_serve(
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8765,
    host: Annotated[str, typer.Option(help="Interface (keep it on loopback).")] = "127.0.0.1",
    data_dir: Annotated[Path | None, typer.Option(help="Persist repos here (default: a temporary folder); "
                                                       "one server per folder.")] = None,
    token: Annotated[list[str] | None, typer.Option(help="USER:TOKEN:read|write[:ORG,...]; repeatable. Visible to "
                                                         "other users in `ps`: prefer --token-file.")] = None,
    token_file: Annotated[Path | None, typer.Option(help="A file of token specs, one a line, # comments.")] = None,
) -> None:
    """Run a Hub-compatible server that huggingface_hub and datasets talk to through HF_ENDPOINT.

    Tokens come from --token, --token-file and HFSYNTH_HUB_TOKENS (specs separated by whitespace), all together.
    """
    import os

    from hfsynth.hub_server.server import serve
    from hfsynth.hub_server.tokens import collect_tokens

    tokens = collect_tokens(token or [], token_file, os.environ)
    if token:
        # Said at run time, not only in --help: the spec (never printed here) sits in the process list.
        console.print("[yellow]warning:[/] --token is visible to other users of this machine in `ps`; prefer "
                      "--token-file or HFSYNTH_HUB_TOKENS", highlight=False, soft_wrap=True)
    serve(host, port, data_dir, tokens, on_ready=lambda url: console.print(
        f"Hub API on {url}; clients: HF_ENDPOINT={url} HF_HUB_DISABLE_XET=1"))


def main() -> None:  # pragma: no cover - console entry point convenience
    from hfsynth.cli_usage import run

    sys.exit(run(app, "hfsynth"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
