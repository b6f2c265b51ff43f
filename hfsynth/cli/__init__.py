"""The ``hfsynth`` command: thin over :mod:`hfsynth.pipeline`; user mistakes end as one line and a non-zero exit."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from typer.core import TyperCommand

from hfsynth.checks import check_out_dir
from hfsynth.cli import usage as cli_usage
from hfsynth.cli.display import RecipeLines, RunDisplay, console
from hfsynth.errors import HfsynthError, out_of_space
from hfsynth.logs import apply_to_loaded_libraries
from hfsynth.runs.folder import RunFolder, check_run_dir
from hfsynth.stop_signals import Terminated, quit_on_next_interrupt, restore_interrupt, terminate_as_interrupt
from hfsynth.storage.mirror import run_folder_on

app = typer.Typer(help="Let a large LLM teach small models: synthetic data, students, evaluation, the Hub.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
recipes_app = typer.Typer(help="Work with recipes.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")

F = TypeVar("F", bound=Callable[..., Any])

RecipeArg = Annotated[str, typer.Argument(help="A recipe YAML file (or hf://datasets/OWNER/NAME/recipe.yaml).")]
OutOption = Annotated[str, typer.Option(
    "--out", help="The run folder (cache, dataset, students, eval): a folder, or object storage such as "
                  "s3://BUCKET/PREFIX (worked on in a local copy; see hfsynth.storage.mirror).")]


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


@contextlib.contextmanager
def _engine(recipes: Sequence[Any], ray: str | None) -> Iterator[Any]:  # hfsynth.engines.base.Engine
    from hfsynth import pipeline

    if ray and Path(ray).suffix in {".yaml", ".yml"}:
        raise HfsynthError(f"--ray {ray}: that is a recipe, not a Ray address: put --ray after the recipes")
    engine = pipeline.engine_for(recipes, ray)
    if engine.description:
        console.print(f"running on {engine.description}", highlight=False)
    try:
        yield engine
    finally:
        engine.close()


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
            quit_on_next_interrupt()
            raise typer.Exit(130) from None
        except Exception as error:
            full = out_of_space(error)
            if full is None:
                raise
            where = f" (writing {full})" if full else ""
            console.print(f"[bold red]error:[/] no space left on the device{where}: free some space and run the "
                          "same command: everything finished so far is kept", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main_options(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, show_default=False,
                                         help="Show library logs, warnings and progress bars (-vv: debug). "
                                              "Also HFSYNTH_VERBOSITY=quiet|info|debug.")] = 0,
) -> None:
    """Let a large LLM teach small models: synthetic data, students, evaluation, the Hub."""
    from hfsynth import logs

    restore_interrupt()
    try:
        logs.configure(verbose)
    except ValueError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _quiet_libraries() -> None:
    # Library chatter (and any request URL it might log) stays at the level hfsynth.logs set (-v shows it).
    apply_to_loaded_libraries()


def _load(recipe: str):  # noqa: ANN202 - returns hfsynth.recipe.schema.Recipe; imported lazily to keep --help fast
    from hfsynth.hub.publish import HUB_PREFIX, load_recipe_source

    loaded = load_recipe_source(recipe)
    if recipe.startswith(HUB_PREFIX) and loaded.teacher.base_url:
        # Someone else's recipe chose that server: the user sees where the prompts go before the first call.
        urls = loaded.teacher.base_url if isinstance(loaded.teacher.base_url, list) else [loaded.teacher.base_url]
        from hfsynth.teachers.remote import is_hugging_face_url

        key = (f"the key in ${loaded.teacher.api_key_env}" if loaded.teacher.api_key_env
               else "your Hugging Face token" if all(map(is_hugging_face_url, urls)) else "no API key")
        console.print(f"[yellow]warning:[/] {escape(recipe)} sends the teacher's requests to {escape(', '.join(urls))} "
                      f"(a server the recipe names) with {key}", highlight=False, soft_wrap=True)
    return loaded


def _check_teacher_keys(recipes: Sequence[Any]) -> None:
    """A key a recipe's teacher names (``teacher.api_key_env``) is there: else one line before anything starts."""
    for recipe in recipes:
        if recipe.teacher.api_key_env:
            from hfsynth.teachers.remote import teacher_credential

            teacher_credential(recipe.teacher)


def _warn_about_the_human_pool(recipe: Any) -> None:  # hfsynth.recipe.schema.Recipe
    from hfsynth.human_reference import pool_warnings

    for line in pool_warnings(recipe):
        console.print(f"[yellow]warning:[/] {recipe.name}: {escape(line)}", highlight=False, soft_wrap=True)


@recipes_app.command("validate")
@user_errors
def recipes_validate(recipe: RecipeArg) -> None:
    """Check a recipe; print what it will do, or one line naming the file and field that is wrong."""
    loaded = _load(recipe)
    _warn_about_the_human_pool(loaded)
    console.print(
        f"[green]ok[/] {recipe}: task [bold]{loaded.task.name}[/], {len(loaded.labels)} labels, "
        f"languages {', '.join(loaded.languages)}, teacher {loaded.teacher.backend}:{loaded.teacher.model}, "
        f"{len(loaded.students)} student(s)",
        highlight=False,
    )


@app.command(cls=_RayCommand)
@user_errors
def generate(recipe: RecipeArg, out: OutOption,
             push: Annotated[bool, typer.Option(help="Push the dataset to the Hub when done.")] = False,
             ray: RayOption = None) -> None:
    """Generate and curate the synthetic dataset into OUT/dataset (re-running resumes from the call cache)."""
    from hfsynth import pipeline

    _quiet_libraries()
    loaded = _load(recipe)
    _check_teacher_keys([loaded])
    with run_folder_on(out) as out_dir:
        check_out_dir(out_dir)
        with _engine([loaded], ray) as engine, RunDisplay(engine) as display:
            _, result = pipeline.generate(loaded, out_dir, display.generation_progress(loaded), engine)
            display.generated(loaded, out_dir, result)
        if push:
            from hfsynth.hub.publish import push_dataset

            console.print(f"pushed dataset to {push_dataset(loaded, RunFolder(out_dir).dataset.root)}")


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
    with run_folder_on(out) as out_dir:
        check_out_dir(out_dir)
        with _engine([loaded], ray) as engine, RunDisplay(engine) as display:
            runs = pipeline.train(loaded, out_dir, dataset, callbacks=display.training_callbacks(loaded, engine),
                                  engine=engine, on_progress=display.progress_of(loaded, "students"))
            display.trained(loaded, out_dir, runs)


@app.command(cls=_RayCommand)
@user_errors
def evaluate(recipe: RecipeArg, out: OutOption, ray: RayOption = None) -> None:
    """Teacher and students on the real test sets: OUT/eval/results.json, report.md, plots; then the cards."""
    from hfsynth import pipeline

    _quiet_libraries()
    loaded = _load(recipe)
    _check_teacher_keys([loaded])
    with run_folder_on(out) as out_dir:
        check_out_dir(out_dir)
        with _engine([loaded], ray) as engine, RunDisplay(engine) as display:
            results = pipeline.evaluate(loaded, out_dir, engine,
                                        on_progress=display.progress_of(loaded, "evaluations"))
            display.evaluated(loaded, out_dir, results)


@app.command()
@user_errors
def publish(recipe: RecipeArg, out: OutOption) -> None:
    """Push the run's dataset and students, with their cards, to the Hub (HF_ENDPOINT; token from HF_TOKEN/login)."""
    from hfsynth import pipeline

    _quiet_libraries()
    loaded = _load(recipe)
    with run_folder_on(out) as out_dir:
        check_run_dir(out_dir)
        for url in pipeline.publish(loaded, out_dir):
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
    from hfsynth import pipeline

    _quiet_libraries()
    loaded = [_load(recipe) for recipe in recipes]
    pipeline.run_folders(loaded, Path(out))  # the same name twice fails before anything starts
    _check_teacher_keys(loaded)
    with run_folder_on(out) as out_dir, _engine(loaded, ray) as engine:
        # Recipes running at the same time get a line per event: their bars would interleave.
        with (RecipeLines() if pipeline.runs_together(loaded, engine) else RunDisplay(engine)) as display:
            pipeline.run(loaded, out_dir, engine, display, push=push)


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (for scripts) instead of tables.")]


@app.command()
@user_errors
def plan(recipes: Annotated[list[str], typer.Argument(help="One or more recipe YAML files.")],
         training_minutes: Annotated[float, typer.Option(
             help="Minutes one student run takes on its resources (measure one on the target hardware).",
             min=0)] = 30.0,
         evaluation_minutes: Annotated[float, typer.Option(
             help="Minutes one evaluation (a trained run on all its test sets) takes.", min=0)] = 2.0,
         input_per_million: Annotated[float | None, typer.Option(
             help="A teacher price to plan with, per million prompt tokens (instead of the recipes' "
                  "teacher.pricing): what the grid would cost at another provider.", min=0)] = None,
         output_per_million: Annotated[float | None, typer.Option(
             help="The same, per million answer tokens.", min=0)] = None,
         currency: Annotated[str, typer.Option(help="The currency of those prices.")] = "USD",
         out: Annotated[Path | None, typer.Option(
             help="A local run folder of these recipes (as `hfsynth run` makes it): generation's answers then count "
                  "at its measured average length instead of max_new_tokens.")] = None,
         as_json: JsonOption = False) -> None:
    """What the recipes' whole grid will take (teacher prompts and tokens, their cost, units, GPU-hours, storage),
    without running it."""
    from hfsynth.cli.plan_display import plans_json, show_plans
    from hfsynth.grid_plan import plan_grid
    from hfsynth.pipeline import run_folders
    from hfsynth.recipe.teacher_costs import Pricing
    from hfsynth.runs.records import GenerationStats

    if (input_per_million is None) != (output_per_million is None):
        raise HfsynthError("--input-per-million and --output-per-million go together: give both")
    loaded = [_load(recipe) for recipe in recipes]
    if input_per_million is not None and output_per_million is not None:
        pricing = Pricing(input_per_million=input_per_million, output_per_million=output_per_million,
                          currency=currency)
        loaded = [one.model_copy(update={"teacher": one.teacher.model_copy(update={"pricing": pricing})})
                  for one in loaded]
    for one in loaded:
        _warn_about_the_human_pool(one)  # on stderr, as every message: --json's standard output stays JSON
    folders = run_folders(loaded, out) if out is not None else [None] * len(loaded)
    stats = [None if folder is None else GenerationStats.load_if_present(RunFolder(folder).dataset.stats)
             for folder in folders]
    plans = [plan_grid(one, run.teacher_tokens if run else None) for one, run in zip(loaded, stats, strict=True)]
    if as_json:
        print(json.dumps(plans_json(plans, training_minutes, evaluation_minutes), indent=2))
    else:
        show_plans(plans, training_minutes, evaluation_minutes)


@app.command()
@user_errors
def results(out: OutOption, as_json: JsonOption = False) -> None:
    """The results table of an evaluated run (a row per language and model), or its numbers as JSON."""
    from hfsynth.cli.display import results_rows, results_table
    from hfsynth.evaluation.results import EvaluationResults

    with run_folder_on(out) as out_dir:
        check_run_dir(out_dir)
        loaded = EvaluationResults.load(RunFolder(out_dir).eval.results)
        if as_json:
            print(json.dumps({"recipe": loaded.recipe, "rows": results_rows(loaded)}, indent=2))
        else:
            console.print(results_table(loaded))


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

    with run_folder_on(out) as out_dir:
        check_out_dir(out_dir)
        serve(out_dir, port=port, host=host)


@space_app.command("deploy")
@user_errors
def space_deploy(recipe: RecipeArg, out: OutOption,
                 repo_id: Annotated[str | None, typer.Option(help="Space repo id (default from the recipe).")] = None
                 ) -> None:
    """Push the comparison Space as a Gradio Space repo with the run's configuration."""
    from hfsynth.space.commands import deploy

    loaded = _load(recipe)
    with run_folder_on(out) as out_dir:
        check_run_dir(out_dir)
        console.print(f"deployed {deploy(loaded, out_dir, repo_id)}")


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
    try:
        with terminate_as_interrupt():  # SIGTERM, too, ends through the clean-up: a temporary folder is removed
            serve(host, port, data_dir, tokens, on_ready=lambda url: console.print(
                f"Hub API on {url}; clients: HF_ENDPOINT={url} HF_HUB_DISABLE_XET=1"))
    except KeyboardInterrupt as stop:
        kept = (f"its repos are kept in {data_dir}" if data_dir
                else "its temporary data folder and the repos in it were removed (--data-dir keeps them)")
        console.print(f"[yellow]stopped:[/] the Hub server; {kept}", highlight=False, soft_wrap=True)
        raise typer.Exit(143 if isinstance(stop, Terminated) else 130) from None


def main() -> None:  # pragma: no cover - console entry point convenience
    sys.exit(cli_usage.run(app, "hfsynth"))

