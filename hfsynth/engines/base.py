"""Where a recipe's work runs: in this process (the local engine) or on a Ray cluster
(:mod:`hfsynth.engines.ray_engine`).

An engine is a generic executor and knows no stage. The stages own their plan and their unit function and hand them
over (as ``concurrent.futures`` and Ray's own libraries do):

- ``Engine.map(fn, items, context, spec)`` runs ``fn(context, item)`` for every item (a student run, an evaluation)
  with the resources, retries and shared folder of ``spec``, and streams ``(index, result)`` back as units finish;
- ``Engine.event_sink(handler)`` gives a picklable callable that units call with events (a training's steps); the
  handler gets them in this process, wherever the units run;
- ``Engine.load_teacher(recipe)`` gives the recipe's teacher: the backend itself here, a pool of replicas on Ray. A
  teacher streams its units (:meth:`hfsynth.teachers.base.Teacher.stream_generate`) and the caller, the driver,
  alone writes the answers to the cache.

A unit's result depends only on its content, never on the engine that ran it. A new engine (a thread pool, Dask, a
Slurm array) is one small class with these methods.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hfsynth.recipe.execution import WorkResources
from hfsynth.recipe.schema import Recipe
from hfsynth.teachers import Teacher, load_teacher

#: ``on_progress(done, total)``: a stage's units (student runs, evaluations) finished so far.
UnitsProgress = Callable[[int, int], None]
Context = TypeVar("Context")
Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class UnitSpec:
    """How the units of one ``Engine.map`` call run."""

    #: The stage's name for its units, in progress and errors ("students", "evaluations").
    stage: str
    resources: WorkResources = field(default_factory=WorkResources)
    #: Times a unit whose worker died runs again.
    retries: int = 0
    #: A folder the units read and write: on a cluster it must be storage every node sees (the engine checks).
    shared_folder: Path | None = None
    #: The setting ``resources`` come from, named when no worker could ever offer them ("execution.students").
    resources_field: str | None = None
    #: Names unit ``i`` in an error message.
    describe: Callable[[int], str] = lambda index: f"unit {index}"  # noqa: E731


class Engine(ABC):
    """Runs units of work. One engine may serve several recipes at once (``hfsynth run A B --ray``)."""

    name: str
    #: Whether several recipes' stages run at the same time on this engine (one driver thread each).
    runs_recipes_together: bool = False
    #: Whether units run in this process (so a callback may update this process's display).
    units_run_here: bool = True
    #: Where the units run, said when a command starts ("" for this process).
    description: str = ""

    @abstractmethod
    def load_teacher(self, recipe: Recipe) -> Teacher:
        """The recipe's teacher, to use as a context manager (closing it frees the model or the replicas)."""

    @abstractmethod
    def map(self, fn: Callable[[Context, Item], Result], items: Sequence[Item], context: Context,
            spec: UnitSpec) -> Iterator[tuple[int, Result]]:
        """``(index, fn(context, items[index]))`` for every item, as units finish. ``context`` (what every unit
        shares: the recipe, the training data) is sent once. The first failure stops the rest and is raised."""

    @contextmanager
    def event_sink(self, handler: Callable[[Any], None]) -> Iterator[Callable[[Any], None]]:
        """A callable to hand to units (inside their context: it is pickled with it) that delivers each event it is
        called with to ``handler`` in this process, in order, until the block ends. Here units run in this process:
        the handler itself."""
        yield handler

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the engine's resources."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def gather(stream: Iterator[tuple[int, Result]], count: int,
           on_done: Callable[[int, Result, int], None] = lambda index, result, done: None) -> list[Result]:
    """A ``map`` stream's results in item order; ``on_done(index, result, done)`` as each arrives, with the number
    of units done so far (progress, checks)."""
    results: list[Any] = [None] * count
    for done, (index, result) in enumerate(stream, 1):
        on_done(index, result, done)
        results[index] = result
    return results


class LocalEngine(Engine):
    """Every unit in this process, one after the other: no threads, no pools."""

    name = "local"

    def load_teacher(self, recipe: Recipe) -> Teacher:
        return load_teacher(recipe.teacher)

    def map(self, fn: Callable[[Context, Item], Result], items: Sequence[Item], context: Context,
            spec: UnitSpec) -> Iterator[tuple[int, Result]]:
        for index, item in enumerate(items):
            result = fn(context, item)
            release_memory()  # the next unit starts from the memory this one took, not from its peak
            yield index, result


def release_memory() -> None:
    """Free what the last unit left behind and hand it back to the system: glibc keeps freed heap memory for reuse,
    so without ``malloc_trim`` a training's peak would stay resident through the rest of the run."""
    gc.collect()
    library = ctypes.util.find_library("c")
    if library is not None:
        try:
            ctypes.CDLL(library).malloc_trim(0)
        except (AttributeError, OSError):  # not glibc (macOS, musl): nothing to trim
            pass


#: The engine stages use when they are given none.
LOCAL = LocalEngine()
