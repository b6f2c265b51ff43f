"""The stages a recipe runs through, as functions researchers can import, and :func:`run`, the one orchestrator of
them; the CLI is a thin shell that parses arguments and shows what these return and report (:class:`RunEvents`).

Each stage owns its plan and its unit of work and hands them to an engine (:mod:`hfsynth.engines.base`), which only
executes. The run folder ``DIR`` and every name in it: :mod:`hfsynth.runs.folder`. Each stage's wall time and peak
memory go to ``DIR/run_stats.json`` (:mod:`hfsynth.stage_stats`).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import datasets

from hfsynth.cache import checkpoint
from hfsynth.cards.render import student_card, write_dataset_card
from hfsynth.checks import check_out_dir
from hfsynth.dataset import load_synthetic_dataset, load_teacher_shown, save_dataset
from hfsynth.engines.base import LOCAL, Engine, UnitsProgress, release_memory
from hfsynth.errors import HfsynthError
from hfsynth.evaluation import run_evaluation
from hfsynth.evaluation.results import EvaluationResults
from hfsynth.generation.samples import GenerationProgress, GenerationResult
from hfsynth.generation.stage import generate_samples
from hfsynth.hub.publish import push_dataset, push_folder
from hfsynth.quality import teacher_classifier, write_quality
from hfsynth.recipe.execution import ExecutionConfig
from hfsynth.recipe.schema import Recipe, StudentConfig
from hfsynth.repo_ids import dataset_repo_id, student_repo_id
from hfsynth.reproducibility import pin_threads
from hfsynth.runs.events import RunEvents
from hfsynth.runs.folder import RUN_FOLDER_LOCK, RunFolder
from hfsynth.stage_stats import measured_stage
from hfsynth.storage.folder_lock import locked_folder
from hfsynth.storage.mirror import push_if_mirrored
from hfsynth.students.base import Student
from hfsynth.training import TrainedRun, train_students

if TYPE_CHECKING:
    from transformers import TrainerCallback

Stage = TypeVar("Stage", bound=Callable[..., Any])


def holds_run_folder(stage: Stage) -> Stage:
    """The stage ``stage(recipe, out_dir, ...)`` holds its run folder for its life: a second command on the same
    folder is refused with one line naming the holder, instead of paying every call again and writing over it.
    Torch gets hfsynth's fixed thread count first, so the stage's numbers never depend on the launcher's. When the
    run folder is a copy of object storage (:mod:`hfsynth.storage.mirror`), what the stage wrote goes up as it ends."""

    @functools.wraps(stage)
    def locked(recipe: Recipe, out_dir: Path, *args: Any, **kwargs: Any) -> Any:
        check_out_dir(out_dir)  # a folder hfsynth can write into (one line otherwise), before it is created
        pin_threads()
        with locked_folder(Path(out_dir), RUN_FOLDER_LOCK, "run folder"):
            try:
                return stage(recipe, out_dir, *args, **kwargs)
            finally:
                push_if_mirrored(out_dir)  # a run folder on object storage keeps what the stage wrote

    return locked  # type: ignore[return-value]


@holds_run_folder
def generate(
    recipe: Recipe, out_dir: Path, progress: GenerationProgress | None = None, engine: Engine | None = None
) -> tuple[datasets.DatasetDict, GenerationResult]:
    """Generate and curate the synthetic dataset into ``out_dir/dataset`` (resuming from the call cache), with its
    quality report.

    ``engine``: where the teacher runs (:mod:`hfsynth.engines.base`; default: in this process)."""
    run_folder = RunFolder(out_dir)
    dataset_dir = run_folder.dataset.root
    engine = engine or LOCAL
    checkpoint(run_folder.cache)  # a damaged cache fails now, not after the teacher loaded; a killed run's -wal merged
    with contextlib.ExitStack() as loaded:
        with measured_stage(out_dir, "generate", engine.name) as costs:
            teacher = loaded.enter_context(engine.load_teacher(recipe))
            result = generate_samples(recipe, teacher, run_folder.cache, progress, embeddings=run_folder.embeddings)
            costs.teacher_tokens = result.teacher_tokens
            dataset = save_dataset(recipe, result, dataset_dir)
        # While the teacher is loaded: it judges label fidelity when the recipe has no real reference data.
        with measured_stage(out_dir, "quality report", engine.name):
            write_quality(recipe, dataset_dir, lambda: teacher_classifier(recipe, teacher, run_folder.cache),
                          teacher.model_id, embeddings=run_folder.embeddings)
    release_memory()  # the teacher's weights, before students train
    write_dataset_card(recipe, dataset_dir)
    return dataset, result


@holds_run_folder
def train(recipe: Recipe, out_dir: Path, dataset_source: str | Path | None = None,
          callbacks: Sequence[TrainerCallback] = (), engine: Engine | None = None,
          on_progress: UnitsProgress | None = None) -> list[TrainedRun]:
    """Train the recipe's students on the synthetic dataset: the run's own, a local folder, or a Hub dataset id.

    ``callbacks`` go to every training's Trainer, wherever it runs (on a cluster they are pickled to the workers).
    ``engine``: where the runs train (default: in this process).
    """
    dataset_dir = RunFolder(out_dir).dataset.root
    source = dataset_source or dataset_dir
    if dataset_source is None and not dataset_dir.is_dir():
        raise HfsynthError(f"{dataset_dir}: no synthetic dataset yet: run `hfsynth generate` first, "
                           "or pass --dataset with a folder or a Hub dataset id")
    with measured_stage(out_dir, "train", (engine or LOCAL).name):
        return train_students(recipe, load_synthetic_dataset(source), out_dir, callbacks=callbacks, engine=engine,
                              teacher_shown=load_teacher_shown(source), on_progress=on_progress)


@holds_run_folder
def evaluate(recipe: Recipe, out_dir: Path, engine: Engine | None = None,
             on_progress: UnitsProgress | None = None) -> EvaluationResults:
    """Teacher and students on the real test sets; results, report and plots into ``out_dir/eval``, then cards."""
    with measured_stage(out_dir, "evaluate", (engine or LOCAL).name) as costs:
        results = run_evaluation(recipe, out_dir, engine=engine, on_progress=on_progress)
        costs.teacher_tokens = results.teacher_tokens
        write_cards(recipe, out_dir, results)
    return results


def read_results(out_dir: Path) -> EvaluationResults | None:
    """The run's ``results.json``, or ``None`` before its evaluation."""
    return EvaluationResults.load_if_present(RunFolder(out_dir).eval.results)


def write_cards(recipe: Recipe, out_dir: Path, results: EvaluationResults | None = None) -> list[Path]:
    """(Re)write the cards of the run's dataset and students from the run's own files; numbers from results.json."""
    run_folder = RunFolder(out_dir)
    results = results if results is not None else read_results(out_dir)
    written = []
    dataset = run_folder.dataset
    if dataset.root.is_dir():
        write_dataset_card(recipe, dataset.root, results)
        written.append(dataset.card)
    example = _example_text(dataset.root)
    for student in recipe.students:
        folder = run_folder.student(student.name)
        if not folder.root.is_dir():
            continue
        if run_folder.eval.bars_plot.is_file():
            shutil.copyfile(run_folder.eval.bars_plot, folder.comparison_plot)
        card = student_card(recipe, folder.root, results, student_repo_id(recipe, student), dataset_repo_id(recipe),
                            example)
        card.save(folder.card)
        written.append(folder.card)
    return written


def _example_text(dataset_dir: Path) -> str:
    try:
        return load_synthetic_dataset(dataset_dir)["train"][0]["text"]
    except (HfsynthError, IndexError):
        return "Your text here."


@holds_run_folder
def publish(recipe: Recipe, out_dir: Path) -> list[str]:
    """Push the dataset and every trained student (with their cards) to the Hub; returns the repo URLs."""
    run_folder = RunFolder(out_dir)
    write_cards(recipe, out_dir)
    urls = []
    if run_folder.dataset.root.is_dir():
        urls.append(push_dataset(recipe, run_folder.dataset.root, dataset_repo_id(recipe)))
    for student in recipe.students:
        if run_folder.student(student.name).root.is_dir():
            urls.append(publish_student(recipe, out_dir, student))
    return urls


def publish_student(recipe: Recipe, out_dir: Path, student: StudentConfig) -> str:
    """Push one trained student's folder as it is (run :func:`write_cards` first for its card); returns the URL.

    Its repo id is :func:`hfsynth.repo_ids.student_repo_id`'s, where ``hfsynth space deploy`` finds it.
    """
    folder = RunFolder(out_dir).student(student.name).root
    with tempfile.TemporaryDirectory(prefix="hfsynth-release-") as release:
        Student.release_any(folder, Path(release))  # e.g. an SFT student's merged model
        return push_folder(Path(release), student_repo_id(recipe, student), "model", recipe.publish.private,
                           f"hfsynth: {student.kind} student {student.name} of {recipe.name}")


# --- the orchestrator -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecipeOutcome:
    """What :func:`run` did with one recipe: its run folder, its results (``None`` without test sets) or its error."""

    recipe: Recipe
    out_dir: Path
    results: EvaluationResults | None
    error: HfsynthError | None = None


def run_folders(recipes: Sequence[Recipe], out_dir: Path) -> list[Path]:
    """One recipe runs in ``out_dir`` itself; several each in ``out_dir/<recipe name>``."""
    names = [recipe.name for recipe in recipes]
    if len(set(names)) != len(names):
        raise HfsynthError(f"two recipes have the same name ({', '.join(names)}): each needs its own OUT/<name>")
    return [Path(out_dir)] if len(recipes) == 1 else [Path(out_dir) / recipe.name for recipe in recipes]


def runs_together(recipes: Sequence[Recipe], engine: Engine) -> bool:
    """Whether :func:`run` runs the recipes at the same time (one driver thread each) rather than one by one."""
    return engine.runs_recipes_together and len(recipes) > 1


@holds_run_folder
def run_recipe(recipe: Recipe, out_dir: Path, engine: Engine | None = None,
               events: RunEvents | None = None) -> EvaluationResults | None:
    """Every stage of one recipe: generate, then train (when it has students), then evaluate (when it has test
    sets). Re-running resumes."""
    engine, events = engine or LOCAL, events or RunEvents()
    _, result = generate(recipe, out_dir, events.generation_progress(recipe), engine)
    events.generated(recipe, out_dir, result)
    if recipe.students:
        runs = train(recipe, out_dir, callbacks=events.training_callbacks(recipe, engine), engine=engine,
                     on_progress=events.progress_of(recipe, "students"))
        events.trained(recipe, out_dir, runs)
    if not recipe.evaluation.sets:
        return None
    results = evaluate(recipe, out_dir, engine, on_progress=events.progress_of(recipe, "evaluations"))
    events.evaluated(recipe, out_dir, results)
    return results


def run(recipes: Sequence[Recipe], out_dir: Path, engine: Engine | None = None, events: RunEvents | None = None,
        push: bool = False) -> list[RecipeOutcome]:
    """The whole pipeline for one or more recipes (each in its folder, :func:`run_folders`), then ``publish`` with
    ``push``. On an engine that runs recipes together (Ray) they all run at once, one driver thread each; otherwise
    one after the other. One recipe's error is raised as it is; of several, one that fails does not stop the others
    (their work is as valid as it would be alone), and the failures are summed up in one error at the end."""
    engine, events = engine or LOCAL, events or RunEvents()
    folders = run_folders(recipes, out_dir)

    def one(recipe: Recipe, folder: Path) -> RecipeOutcome:
        try:
            results = run_recipe(recipe, folder, engine, events)
        except HfsynthError as error:
            if len(recipes) == 1:
                raise
            events.finished(recipe, folder, error)
            return RecipeOutcome(recipe, folder, None, error)
        events.finished(recipe, folder, None)
        return RecipeOutcome(recipe, folder, results)

    if runs_together(recipes, engine):
        threads = ThreadPoolExecutor(max_workers=len(recipes), thread_name_prefix="recipe")
        try:
            futures = [threads.submit(one, recipe, folder) for recipe, folder in zip(recipes, folders, strict=True)]
            outcomes = [future.result() for future in futures]
        except BaseException:
            engine.close()  # the other recipes' calls then fail at once, and their threads end
            raise
        finally:
            threads.shutdown(wait=False, cancel_futures=True)
    else:
        outcomes = [one(recipe, folder) for recipe, folder in zip(recipes, folders, strict=True)]
    failed = [outcome.recipe.name for outcome in outcomes if outcome.error is not None]
    if failed:
        raise HfsynthError(f"{len(failed)} of {len(recipes)} recipes failed ({', '.join(failed)}); the others "
                           "finished: run the same command to resume")
    if push:
        for outcome in outcomes:
            events.published(outcome.recipe, publish(outcome.recipe, outcome.out_dir))
    return outcomes


def engine_for(recipes: Sequence[Recipe], ray_flag: str | None = None) -> Engine:
    """The engine the recipes' ``execution`` sections ask for, ``--ray [ADDRESS]`` overriding them.

    ``ray_flag``: None without ``--ray``; "" for ``--ray`` alone (the recipes' address, else RAY_ADDRESS, else a new
    local instance); else the address. Several recipes share one engine: they must then agree on the engine and the
    Ray address.
    """
    configs = [recipe.execution for recipe in recipes] or [ExecutionConfig()]
    if ray_flag is None:
        engines = {config.engine for config in configs}
        if len(engines) > 1:
            raise HfsynthError("the recipes ask for different execution engines (local and ray): give --ray to run "
                               "them all on Ray, or run them separately")
        if engines == {"local"}:
            return LOCAL
    address = ray_flag or None
    if address is None:
        addresses = {config.address for config in configs if config.engine == "ray"}
        if len(addresses) > 1:
            named = ", ".join(sorted(str(address) for address in addresses))
            raise HfsynthError(f"the recipes name different Ray clusters ({named}): give --ray ADDRESS")
        address = next(iter(addresses), None)
    from hfsynth.engines.ray_engine import RayEngine  # says which extra to install when ray is missing

    return RayEngine(address)
