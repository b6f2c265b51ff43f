"""Where a recipe's work runs: in this process (the local engine) or on a Ray cluster (:mod:`hfsynth.ray_engine`).

The stages hand their units of work to an :class:`Engine`; what a unit computes never depends on the engine:

- **teacher calls**: the fixed, content-addressed batches of :class:`~hfsynth.generation.CachedTeacher` (a
  :class:`GenerateUnit`: prompts, sampling parameters and the batch seed) and chunks of classification prompts
  (:class:`ClassifyUnit`). ``Engine.load_teacher`` gives the teacher; :func:`stream_generate` and
  :func:`stream_classify` hand it units and give the answers back as each unit finishes. The caller (the driver)
  alone writes them to the cache.
- **student runs** (student x train size x repeat): ``Engine.train_runs``.
- **evaluations** (student run x test set): ``Engine.evaluate_runs``.

The local engine is the loops hfsynth always had: one unit after the other, in order, no threads, no pools. The Ray
engine (``execution.engine: ray`` in a recipe, or ``--ray`` on the command line) runs teacher units on a pool of
Ray actors, and student runs and evaluations as Ray tasks.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hfsynth.errors import HfsynthError
from hfsynth.recipe import ExecutionConfig, Recipe, SamplingParams
from hfsynth.teachers.base import LabelScores, Prompt, Teacher

if TYPE_CHECKING:
    import datasets
    from transformers import TrainerCallback

    from hfsynth.evaluation.summary import ScoredRun
    from hfsynth.realdata import TestSet
    from hfsynth.training import StudentRun, TrainedRun

#: ``on_progress(recipe_name, stage, done, total)``: a stage's units finished so far ("students", "evaluations").
ProgressCallback = Callable[[str, str, int, int], None]


@dataclass(frozen=True)
class GenerateUnit:
    """One batch of generation calls; its answers are a function of these fields alone."""

    prompts: tuple[Prompt, ...]
    sampling: SamplingParams
    seed: int


@dataclass(frozen=True)
class ClassifyUnit:
    prompts: tuple[Prompt, ...]
    labels: tuple[str, ...]


class TeacherPool(Teacher):
    """A teacher whose units run elsewhere, several at a time (the Ray engine's actor pool)."""

    @abstractmethod
    def stream_generate(self, units: Sequence[GenerateUnit]) -> Iterator[tuple[int, list[str]]]:
        """``(unit index, answers)`` for every unit, in the order they finish."""

    @abstractmethod
    def stream_classify(self, units: Sequence[ClassifyUnit]) -> Iterator[tuple[int, list[LabelScores], float]]:
        """``(unit index, scores, seconds the teacher took)`` for every unit, in the order they finish."""


def stream_generate(teacher: Teacher, units: Sequence[GenerateUnit]) -> Iterator[tuple[int, list[str]]]:
    """Answers per unit as units finish: in order, one after the other, for an ordinary teacher."""
    if isinstance(teacher, TeacherPool):
        yield from teacher.stream_generate(units)
        return
    for index, unit in enumerate(units):
        yield index, teacher.generate(list(unit.prompts), unit.sampling, unit.seed)


def stream_classify(teacher: Teacher, units: Sequence[ClassifyUnit]) -> Iterator[tuple[int, list[LabelScores], float]]:
    """Label scores per unit, and the wall time the teacher took for it, as units finish."""
    if isinstance(teacher, TeacherPool):
        yield from teacher.stream_classify(units)
        return
    for index, unit in enumerate(units):
        started = time.perf_counter()
        scores = teacher.classify(list(unit.prompts), list(unit.labels))
        yield index, scores, time.perf_counter() - started


class Engine(ABC):
    """Runs a recipe's units of work. One engine may serve several recipes at once (``hfsynth run A B --ray``)."""

    name: str

    def __init__(self) -> None:
        self.on_progress: ProgressCallback | None = None

    @abstractmethod
    def load_teacher(self, recipe: Recipe) -> Teacher:
        """The recipe's teacher, to use as a context manager (closing it frees the model or the actors)."""

    @abstractmethod
    def train_runs(self, recipe: Recipe, runs: Sequence[StudentRun], train_data: datasets.Dataset,
                   callbacks: Sequence[TrainerCallback] = ()) -> list[TrainedRun]:
        """Train (or skip, when finished) every run; results in the order of ``runs``."""

    @abstractmethod
    def evaluate_runs(self, recipe: Recipe, runs: Sequence[StudentRun],
                      test_sets: Sequence[TestSet]) -> list[ScoredRun]:
        """One scored run (results row and predictions) per (run, test set), runs first, in the order given."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the engine's resources."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _progress(self, recipe: Recipe, stage: str, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(recipe.name, stage, done, total)


class LocalEngine(Engine):
    """Today's in-process behaviour: every unit in this process, one after the other."""

    name = "local"

    def load_teacher(self, recipe: Recipe) -> Teacher:
        from hfsynth.teachers import load_teacher

        return load_teacher(recipe.teacher)

    def train_runs(self, recipe: Recipe, runs: Sequence[StudentRun], train_data: datasets.Dataset,
                   callbacks: Sequence[TrainerCallback] = ()) -> list[TrainedRun]:
        from hfsynth.training import train_run

        trained = []
        for run in runs:
            trained.append(train_run(recipe, run, train_data, callbacks))
            release_memory()  # the next run starts from the memory this one took, not from its peak
        return trained

    def evaluate_runs(self, recipe: Recipe, runs: Sequence[StudentRun],
                      test_sets: Sequence[TestSet]) -> list[ScoredRun]:
        from tqdm.auto import tqdm

        from hfsynth.evaluation.runner import evaluate_student
        from hfsynth.students.base import Student

        rows = []
        for run in tqdm(runs, desc="students", unit="run"):
            student = Student.load(run.directory)
            rows += [evaluate_student(recipe, run, student, test_set) for test_set in test_sets]
            del student
            release_memory()  # one model in memory at a time
        return rows


def release_memory() -> None:
    """Free what the last unit left behind and hand it back to the system: glibc keeps freed heap memory for reuse,
    so without ``malloc_trim`` a training's peak would stay resident through the rest of the run."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    library = ctypes.util.find_library("c")
    if library is not None:
        try:
            ctypes.CDLL(library).malloc_trim(0)
        except (AttributeError, OSError):  # not glibc (macOS, musl): nothing to trim
            pass


#: The engine stages use when they are given none.
LOCAL = LocalEngine()


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
    from hfsynth.ray_engine import RayEngine  # says which extra to install when ray is missing

    return RayEngine(address)
