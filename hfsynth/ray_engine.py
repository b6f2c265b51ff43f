"""The Ray engine: a recipe's teacher calls, student runs and evaluations on a Ray cluster (``hfsynth[ray]``).

- **Teacher**: ``execution.teacher.replicas`` Ray actors, each holding one teacher built from the recipe's
  ``teacher:`` section (a local model on the GPU/CPU share the actor asked for, or a remote client, which may itself
  spread its requests over a list of replica URLs). The replicas' resources are reserved together in one placement
  group, spread over nodes, so that several recipes on one cluster never deadlock holding half their replicas each.
  Units (the cache's fixed batches) go to the actors through ``ray.util.ActorPool`` and stream back to the driver as
  they finish; the driver alone writes them to its call cache. Actors restart and re-run the unit they were running
  when their process or node died (``max_restarts`` / ``max_task_retries``); nothing reached the cache half-written.
- **Student runs** and **evaluations** are Ray tasks with the recipe's resources and ``max_retries``. A retried
  student run resumes from the checkpoints in its run folder.

What travels through Ray: prompts, answers, the training data (synthetic, and the human reference set), the test
sets, and each evaluation's results row with its predictions. What
must be on storage shared by the driver and every node: the run folder (``--out``), where student tasks write their
students and evaluation tasks read them. Every task first checks that it sees a file the driver has just written
there, and the driver checks that it sees every student a task wrote; a set-up where that fails stops with a message
saying so, never with partial results. The call cache stays with the driver.

Reproducibility: a unit's answers depend only on its content (prompts, sampling, batch seed), never on the actor that
ran it. On CPU, torch's results in bfloat16 also depend on its thread count, so each actor and task runs torch with
as many threads as the local engine would on the driver's machine (torch's default there, or ``OMP_NUM_THREADS``),
unless the recipe sets ``execution.<unit>.threads``: on the same kind of hardware, the dataset and the scores are
then byte for byte the local engine's.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfsynth.errors import HfsynthError
from hfsynth.execution import ClassifyUnit, Engine, GenerateUnit, TeacherPool
from hfsynth.recipe import ExecutionConfig, Recipe, TeacherConfig, WorkResources
from hfsynth.teachers.base import LabelScores, Teacher, TeacherStats

try:
    import ray
    from ray.util.actor_pool import ActorPool
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
except ImportError:  # pragma: no cover - depends on the installation
    raise HfsynthError("the Ray engine needs Ray, which is not installed: pip install 'hfsynth[ray]'") from None

if TYPE_CHECKING:
    import datasets
    from transformers import TrainerCallback

    from hfsynth.evaluation.summary import ScoredRun
    from hfsynth.realdata import TestSet
    from hfsynth.training import StudentRun, TrainedRun

logger = logging.getLogger(__name__)

#: The driver's environment variables that Ray workers get too (when set): Hub endpoint and offline mode, token,
#: hfsynth's model cache, training threads and verbosity, and the import path.
FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HUB_DISABLE_XET", "HF_TOKEN", "TRANSFORMERS_OFFLINE",
                 "HF_DATASETS_OFFLINE", "HFSYNTH_CACHE", "HFSYNTH_TRAINING_THREADS", "HFSYNTH_VERBOSITY",
                 "PYTHONPATH")
#: How often the driver says it is still waiting for cluster resources.
_WAIT_NOTICE_SECONDS = 30.0

TeacherFactory = Callable[[TeacherConfig], Teacher]


class SharedStorageError(HfsynthError):
    """A Ray node does not see the run folder the driver sees."""


def _runtime_env() -> dict[str, Any] | None:
    env_vars = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
    return {"env_vars": env_vars} if env_vars else None


def _local_threads() -> int:
    """Torch's thread count in this process: what the local engine computes with on the driver's machine."""
    import torch

    return torch.get_num_threads()


def _limit_threads(threads: int | None) -> None:
    if threads is not None and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _demand(spec: WorkResources) -> dict[str, float]:
    demand = {"CPU": spec.num_cpus, "GPU": spec.num_gpus, **spec.resources}
    return {name: amount for name, amount in demand.items() if amount > 0}


def _describe_demand(demand: dict[str, float]) -> str:
    return ", ".join(f"{name}={amount:g}" for name, amount in demand.items()) or "nothing"


def _check_fits(demand: dict[str, float], what: str, field: str) -> None:
    """Fail at once, rather than wait forever, when no node of the cluster could ever run the unit."""
    if not demand:
        return
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    if any(all(resources.get(name, 0) >= amount for name, amount in demand.items()) for resources in nodes):
        return
    offered = "; ".join(_describe_demand({k: v for k, v in resources.items()
                                          if not k.startswith(("node:", "memory", "object_store_memory"))})
                        for resources in nodes)
    raise HfsynthError(f"no node of the Ray cluster has {_describe_demand(demand)} for {what} (its nodes have: "
                       f"{offered or 'no nodes'}): lower execution.{field} in the recipe or add such a node")


def _cause(error: BaseException) -> BaseException:
    """The exception a task raised, out of the Ray error that carries it (``cause``; Ray's error also subclasses the
    cause's class, but its message is a traceback)."""
    for _ in range(5):
        inner = getattr(error, "cause", None)
        if not isinstance(error, ray.exceptions.RayError) or not isinstance(inner, BaseException):
            break
        error = inner
    return error


def _reraise(error: BaseException, what: str, retries: int) -> None:
    cause = _cause(error)
    if isinstance(cause, HfsynthError):
        raise cause from None
    if isinstance(error, (ray.exceptions.ActorDiedError, ray.exceptions.WorkerCrashedError,
                          ray.exceptions.NodeDiedError, ray.exceptions.ActorUnavailableError)):
        raise HfsynthError(f"{what}: its Ray worker died {retries + 1} times (execution.max_retries is {retries}); "
                           "everything finished so far is kept: run the same command to resume") from error
    raise error


@dataclass(frozen=True)
class SharedFolderProbe:
    """A file the driver writes into the run folder; a task that cannot read it is on a node without the folder."""

    path: str
    token: str
    driver_host: str

    @classmethod
    def create(cls, folder: Path) -> SharedFolderProbe:
        folder.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        path = folder / f".hfsynth-ray-probe-{token}"
        path.write_text(token, encoding="utf-8")
        return cls(str(path), token, socket.gethostname())

    def check(self) -> None:
        try:
            seen = Path(self.path).read_text(encoding="utf-8") == self.token
        except OSError:
            seen = False
        if not seen:
            raise SharedStorageError(
                f"Ray node {socket.gethostname()} does not see the run folder {Path(self.path).parent} that the driver "
                f"({self.driver_host}) writes: put --out on storage shared by the driver and every Ray node (NFS, a "
                "cluster file system), mounted at the same path"
            )

    def remove(self) -> None:
        Path(self.path).unlink(missing_ok=True)


# --- remote functions: they run on the workers ----------------------------------------------------------------------


class TeacherActor:
    """One teacher replica: builds the teacher on its first call (so that a teacher that cannot load fails that call
    with its own error), then runs units one at a time."""

    def __init__(self, config: TeacherConfig, factory: TeacherFactory | None, threads: int | None) -> None:
        self.config, self.factory, self.threads = config, factory, threads
        self._teacher: Teacher | None = None

    @property
    def teacher(self) -> Teacher:
        if self._teacher is None:
            if self.factory is None:
                from hfsynth.teachers import load_teacher

                self._teacher = load_teacher(self.config)
            else:
                self._teacher = self.factory(self.config)
        _limit_threads(self.threads)
        return self._teacher

    def describe(self) -> dict[str, Any]:
        teacher = self.teacher
        context = ray.get_runtime_context()
        return {"model_id": teacher.model_id, "uses_chat": teacher.uses_chat, "batch_size": teacher.batch_size,
                "node_id": context.get_node_id(), "pid": os.getpid(), "gpu_ids": ray.get_gpu_ids()}

    def generate(self, index: int, unit: GenerateUnit) -> tuple[int, list[str]]:
        return index, self.teacher.generate(list(unit.prompts), unit.sampling, unit.seed)

    def classify(self, index: int, unit: ClassifyUnit) -> tuple[int, list[LabelScores], float]:
        teacher = self.teacher
        started = time.perf_counter()
        scores = teacher.classify(list(unit.prompts), list(unit.labels))
        return index, scores, time.perf_counter() - started

    def stats(self) -> TeacherStats:
        return self.teacher.stats

    def close(self) -> None:
        if self._teacher is not None:
            self._teacher.close()


def train_task(recipe: Recipe, run: StudentRun, train_data: datasets.Dataset,
               callbacks: Sequence[TrainerCallback], probe: SharedFolderProbe,
               threads: int | None) -> tuple[TrainedRun, str, str]:
    """One student run on a worker: (result, the fingerprint it wrote, the node's host name)."""
    import torch

    from hfsynth.students.base import read_meta
    from hfsynth.training import train_run

    if threads is not None:
        torch.set_num_threads(threads)
    probe.check()
    trained = train_run(recipe, run, train_data, callbacks)
    meta = read_meta(run.directory)
    return trained, meta.training.fingerprint if meta else "", socket.gethostname()


def evaluate_task(recipe: Recipe, run: StudentRun, test_set: TestSet, probe: SharedFolderProbe,
                  threads: int | None) -> ScoredRun:
    """One (student run, test set) evaluation on a worker: its results row and predictions."""
    import torch

    from hfsynth.evaluation.runner import evaluate_student
    from hfsynth.students.base import Student

    if threads is not None:
        torch.set_num_threads(threads)
    probe.check()
    return evaluate_student(recipe, run, Student.load(run.directory), test_set)


# --- the driver's side ----------------------------------------------------------------------------------------------


class RayTeacherPool(TeacherPool):
    """The recipe's teacher as a pool of Ray actors; a ``Teacher`` to the stages, which stream units through it."""

    def __init__(self, config: TeacherConfig, execution: ExecutionConfig, factory: TeacherFactory | None = None,
                 runtime_env: dict[str, Any] | None = None, threads: int | None = None) -> None:
        super().__init__()
        spec = execution.teacher
        self.retries = execution.max_retries
        self._placement = None
        self._streaming = False
        self.actors: list[Any] = []
        demand = _demand(spec)
        _check_fits(demand, "a teacher replica", "teacher")
        options: dict[str, Any] = {
            "num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus, "resources": dict(spec.resources),
            "max_restarts": self.retries, "max_task_retries": self.retries, "runtime_env": runtime_env,
        }
        try:
            if demand:
                # All replicas or none: recipes sharing a cluster then wait for each other instead of each holding
                # part of what it needs. SPREAD: one replica per node where possible.
                self._placement = placement_group([demand] * spec.replicas, strategy="SPREAD")
                _wait_for(self._placement.ready(), f"{spec.replicas} teacher replica(s) ({_describe_demand(demand)} "
                                                   "each)")
            actor_class = ray.remote(TeacherActor)
            for index in range(spec.replicas):
                placed = {"scheduling_strategy": PlacementGroupSchedulingStrategy(
                    placement_group=self._placement, placement_group_bundle_index=index)} if self._placement else {}
                self.actors.append(actor_class.options(**options, **placed).remote(config, factory,
                                                                                   spec.threads or threads))
            try:
                self.replicas = ray.get([actor.describe.remote() for actor in self.actors])
            except ray.exceptions.RayError as error:
                _reraise(error, "loading the teacher", 0)
        except BaseException:
            self.close()
            raise
        first = self.replicas[0]
        self.model_id, self.uses_chat, self._batch_size = first["model_id"], first["uses_chat"], first["batch_size"]

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def _stream(self, method: str, units: Sequence[Any]) -> Iterator[Any]:
        pool = ActorPool(list(self.actors))
        self._streaming = True
        try:
            yield from pool.map_unordered(lambda actor, item: getattr(actor, method).remote(*item),
                                          list(enumerate(units)))
        except ray.exceptions.RayError as error:
            _reraise(error, "a teacher replica", self.retries)
        finally:
            self._streaming = False

    def stream_generate(self, units: Sequence[GenerateUnit]) -> Iterator[tuple[int, list[str]]]:
        return self._stream("generate", units)

    def stream_classify(self, units: Sequence[ClassifyUnit]) -> Iterator[tuple[int, list[LabelScores], float]]:
        return self._stream("classify", units)

    def generate(self, prompts: Sequence[Any], sampling: Any, seed: int,
                 on_answer: Callable[[int, str], None] | None = None) -> list[str]:
        answers = next(iter(self.stream_generate([GenerateUnit(tuple(prompts), sampling, seed)])))[1]
        for index, answer in enumerate(answers):  # a unit's answers come back together
            if on_answer is not None:
                on_answer(index, answer)
        return answers

    def classify(self, prompts: Sequence[Any], labels: Sequence[str]) -> list[LabelScores]:
        return next(iter(self.stream_classify([ClassifyUnit(tuple(prompts), tuple(labels))])))[1]

    def close(self) -> None:
        # Statistics only from idle actors: after an interruption they would answer when their unit is done.
        if self.actors and not self._streaming:
            try:
                for stats in ray.get([actor.stats.remote() for actor in self.actors], timeout=30):
                    self.stats.calls += stats.calls
                    self.stats.prompt_tokens += stats.prompt_tokens
                    self.stats.completion_tokens += stats.completion_tokens
                    self.stats.retries += stats.retries
                    self.stats.failures += stats.failures
            except (ray.exceptions.RayError, TimeoutError):
                pass
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        if self._placement is not None:
            remove_placement_group(self._placement)
            self._placement = None


def _wait_for(ready: Any, what: str) -> None:
    """Wait for an object ref (a placement group's reservation), saying now and then what is awaited."""
    started = time.monotonic()
    while True:
        done, _ = ray.wait([ready], timeout=_WAIT_NOTICE_SECONDS)
        if done:
            return
        logger.warning("still waiting for the Ray cluster to free %s (%.0f s): other work holds them", what,
                       time.monotonic() - started)


class RayEngine(Engine):
    """Connects to (or starts) a Ray cluster; resources come from each recipe's ``execution`` section."""

    name = "ray"

    def __init__(self, address: str | None = None, *, teacher_factory: TeacherFactory | None = None) -> None:
        super().__init__()
        self.address = address
        #: Builds the teacher inside each actor (default: hfsynth's ``load_teacher``); tests script one.
        self.teacher_factory = teacher_factory
        self.runtime_env = _runtime_env()
        #: Torch threads of a unit whose recipe does not say: what the local engine uses on this machine.
        self.default_threads = _local_threads()
        self._owns_connection = not ray.is_initialized()
        if self._owns_connection:
            # Unset: the cluster of RAY_ADDRESS (as `ray job submit` sets it), else a new local instance, never a
            # cluster an earlier `ray start` may have left behind ("auto" asks for that one).
            target = address or (None if os.environ.get("RAY_ADDRESS") else "local")
            try:
                ray.init(address=target, include_dashboard=False, log_to_driver=False,
                         runtime_env=self.runtime_env, logging_level=logging.WARNING)
            except (ConnectionError, ValueError, RuntimeError) as error:
                where = address or os.environ.get("RAY_ADDRESS") or "a new local instance"
                raise HfsynthError(f"cannot connect to the Ray cluster at {where}: "
                                   f"{str(error).strip().splitlines()[0]}") from None

    def close(self) -> None:
        if self._owns_connection and ray.is_initialized():
            ray.shutdown()
        self._owns_connection = False

    # --- teacher ------------------------------------------------------------------------------------------------------

    def load_teacher(self, recipe: Recipe) -> Teacher:
        return RayTeacherPool(recipe.teacher, recipe.execution, self.teacher_factory, self.runtime_env,
                              self.default_threads)

    # --- tasks --------------------------------------------------------------------------------------------------------

    def _task(self, function: Callable[..., Any], spec: WorkResources, retries: int) -> Any:
        return ray.remote(function).options(
            num_cpus=spec.num_cpus, num_gpus=spec.num_gpus, resources=dict(spec.resources), max_retries=retries,
            retry_exceptions=False, runtime_env=self.runtime_env,
        )

    def _gather(self, recipe: Recipe, stage: str, refs: list[Any], describe: Callable[[int], str],
                check: Callable[[int, Any], None] = lambda index, value: None) -> list[Any]:
        """Results in submission order, taken as they finish (progress counts them); the first failure cancels
        the rest."""
        results: list[Any] = [None] * len(refs)
        index_of = {ref: index for index, ref in enumerate(refs)}
        pending = list(refs)
        self._progress(recipe, stage, 0, len(refs))
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                index = index_of[done[0]]
                try:
                    value = ray.get(done[0])
                except ray.exceptions.RayError as error:
                    _reraise(error, describe(index), recipe.execution.max_retries)
                check(index, value)
                results[index] = value
                self._progress(recipe, stage, len(refs) - len(pending), len(refs))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return results

    def train_runs(self, recipe: Recipe, runs: Sequence[StudentRun], train_data: datasets.Dataset,
                   callbacks: Sequence[TrainerCallback] = ()) -> list[TrainedRun]:
        import datasets as hf_datasets

        from hfsynth.students.base import read_meta

        if not runs:
            return []
        spec = recipe.execution.students
        _check_fits(_demand(spec), "a student run", "students")
        probe = SharedFolderProbe.create(Path(os.path.commonpath([str(run.directory.parent) for run in runs])))
        # In memory: a dataset memory-mapped from the driver's disk would be pickled as a path.
        data = ray.put(hf_datasets.Dataset.from_dict(train_data.to_dict(), features=train_data.features))
        task = self._task(train_task, spec, recipe.execution.max_retries)
        threads = spec.threads or self.default_threads
        refs = [task.remote(recipe, run, data, list(callbacks), probe, threads) for run in runs]

        def check(index: int, value: tuple[TrainedRun, str, str]) -> None:
            _, fingerprint, host = value
            meta = read_meta(runs[index].directory)
            if meta is None or meta.training.fingerprint != fingerprint:
                raise SharedStorageError(
                    f"student run {runs[index].directory} finished on Ray node {host}, but the driver "
                    f"({socket.gethostname()}) does not see it there: put --out on storage shared by the driver and "
                    "every Ray node, mounted at the same path"
                )

        try:
            results = self._gather(recipe, "students", refs, lambda i: f"student run {runs[i].directory}", check)
        finally:
            probe.remove()
        return [trained for trained, _, _ in results]

    def evaluate_runs(self, recipe: Recipe, runs: Sequence[StudentRun],
                      test_sets: Sequence[TestSet]) -> list[ScoredRun]:
        if not runs or not test_sets:
            return []
        spec = recipe.execution.evaluation
        _check_fits(_demand(spec), "an evaluation", "evaluation")
        probe = SharedFolderProbe.create(Path(os.path.commonpath([str(run.directory.parent) for run in runs])))
        task = self._task(evaluate_task, spec, recipe.execution.max_retries)
        pairs = [(run, index) for run in runs for index in range(len(test_sets))]
        shared = [ray.put(test_set) for test_set in test_sets]  # sent once, not once per run
        threads = spec.threads or self.default_threads
        refs = [task.remote(recipe, run, shared[index], probe, threads) for run, index in pairs]
        try:
            return self._gather(recipe, "evaluations", refs,
                                lambda i: f"evaluation of {pairs[i][0].directory} on {test_sets[pairs[i][1]].language}")
        finally:
            probe.remove()
