"""The Ray engine: a recipe's teacher calls, student runs and evaluations on a Ray cluster (``hfsynth[ray]``).

- **Teacher**: ``execution.teacher.replicas`` Ray actors, each holding one teacher built from the recipe's
  ``teacher:`` section (a local model on the GPU/CPU share the actor asked for, or a remote client, which may itself
  spread its requests over a list of replica URLs). The replicas' resources are reserved together in one placement
  group, spread over nodes, so that several recipes on one cluster never deadlock holding half their replicas each.
  Units (the cache's fixed batches) go to the actors one at a time each, and every answer streams back to the
  driver the moment the actor has it (:mod:`hfsynth.engines.ray_streams`); the driver alone writes them to its call
  cache.
  An actor whose process or node died restarts (``max_restarts``) and is given only what its unit still lacks; on
  Ctrl-C the actors send no new request and hand over the answers in flight.
- **Other units** (``RayEngine.map``: a stage's student runs, its evaluations) are Ray tasks with the resources and
  retries the stage asks for; what every unit shares (the recipe, the training data) is put in the object store
  once. A retried student run resumes from the checkpoints in its run folder. The engine knows no stage.

What travels through Ray: prompts, answers, the units and their shared context, and their results. What must be on
storage shared by the driver and every node: the folder a stage names (``UnitSpec.shared_folder``: the run folder,
where student tasks write their students and evaluation tasks read them). Every task first checks that it sees a
file the driver has just written there; a set-up where that fails stops with a message saying so, never with
partial results. The call cache stays with the driver.

Reproducibility: a unit's answers depend only on its content (prompts, sampling, batch seed), never on the actor that
ran it. On CPU, torch's results also depend on its thread count, so each actor and task runs torch with the fixed
count the local engine uses (:mod:`hfsynth.reproducibility`: ``HFSYNTH_THREADS`` read on the driver, never the
worker's ``OMP_NUM_THREADS``, which Ray sets from its CPUs), unless the recipe sets ``execution.<unit>.threads``: on
the same kind of hardware, the dataset and the scores are then byte for byte the local engine's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hfsynth.engines.base import Context, Engine, Item, Result, UnitSpec
from hfsynth.engines.ray_cluster import (
    SharedFolderProbe,
    check_fits,
    connect,
    describe_demand,
    forwarded_runtime_env,
    limit_threads,
    reraise,
    resource_demand,
    wait_for,
)
from hfsynth.engines.ray_streams import UnitItem, UnitStreams, streamed
from hfsynth.errors import HfsynthError
from hfsynth.prompting import LabelScores
from hfsynth.recipe.execution import ExecutionConfig
from hfsynth.recipe.schema import Recipe, TeacherConfig
from hfsynth.reproducibility import compute_threads, pin_threads
from hfsynth.teachers import load_teacher
from hfsynth.teachers.base import (
    ClassifyUnit,
    GenerateUnit,
    Teacher,
    TeacherStats,
    UnitAnswerCallback,
    UnitScoresCallback,
)

try:
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.queue import Empty, Queue
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
except ImportError:  # pragma: no cover - depends on the installation
    raise HfsynthError("the Ray engine needs Ray, which is not installed: pip install 'hfsynth[ray]'") from None

logger = logging.getLogger(__name__)

TeacherFactory = Callable[[TeacherConfig], Teacher]


# --- on the workers -------------------------------------------------------------------------------------------------


class TeacherActor:
    """One teacher replica: builds the teacher on its first call (so that a teacher that cannot load fails that call
    with its own error), then runs units one at a time."""

    def __init__(self, config: TeacherConfig, factory: TeacherFactory | None, threads: int | None) -> None:
        self.config, self.factory, self.threads = config, factory or load_teacher, threads
        self._teacher: Teacher | None = None

    @property
    def teacher(self) -> Teacher:
        if self._teacher is None:
            self._teacher = self.factory(self.config)
        limit_threads(self.threads)
        return self._teacher

    def describe(self) -> dict[str, Any]:
        teacher = self.teacher
        context = ray.get_runtime_context()
        return {"model_id": teacher.model_id, "uses_chat": teacher.uses_chat, "batch_size": teacher.batch_size,
                "answers_need_their_batch": teacher.answers_need_their_batch,
                "node_id": context.get_node_id(), "pid": os.getpid(), "gpu_ids": ray.get_gpu_ids()}

    def generate(self, index: int, unit: GenerateUnit, places: Sequence[int]) -> Iterator[UnitItem]:
        """Streams ``(index, place, answer)`` as each answer arrives (``places``: each prompt's position in the
        driver's unit), then ``(index, None, error or None)``: answers that arrived before a failure were paid for,
        and reach the driver's cache all the same."""
        yield from streamed(index, places, lambda hand_over: list(self.teacher.stream_generate(
            [unit], on_answer=lambda _, position, answer: hand_over(position, answer))))

    def classify(self, index: int, unit: ClassifyUnit, places: Sequence[int]) -> Iterator[UnitItem]:
        """As :meth:`generate`, with label scores; the last item has the seconds the unit took instead of ``None``."""
        yield from streamed(index, places, lambda hand_over: next(iter(self.teacher.stream_classify(
            [unit], on_answer=lambda _, position, scores: hand_over(position, scores))))[2])

    def interrupt(self) -> None:
        """The driver was interrupted: the unit running sends no new request and ends with the answers in flight."""
        if self._teacher is not None:
            self._teacher.interrupt()

    def stats(self) -> TeacherStats:
        return self.teacher.stats

    def close(self) -> None:
        if self._teacher is not None:
            self._teacher.close()


def run_unit(fn: Callable[[Context, Item], Result], context: Context, item: Item, probe: SharedFolderProbe | None,
             threads: int | None) -> Result:
    """One unit of ``RayEngine.map`` on a worker: torch threads as the driver would use, then the stage's own
    function."""
    pin_threads(threads)  # also when torch is not loaded yet: it would start with Ray's OMP_NUM_THREADS
    if probe is not None:
        probe.check()
    return fn(context, item)


@dataclass(frozen=True)
class QueueSink:
    """An event sink that units on any node call: the event goes into a Ray queue the driver drains."""

    queue: Any  # ray.util.queue.Queue: an actor handle, pickled with the unit's context

    def __call__(self, event: Any) -> None:
        self.queue.put_nowait(event)


# --- the driver's side ----------------------------------------------------------------------------------------------


class RayTeacherPool(Teacher):
    """The recipe's teacher as a pool of Ray actors: to the stages an ordinary teacher, whose units run on all
    replicas at once and stream back as they finish."""

    def __init__(self, config: TeacherConfig, execution: ExecutionConfig, factory: TeacherFactory | None = None,
                 runtime_env: dict[str, Any] | None = None, threads: int | None = None) -> None:
        super().__init__()
        spec = execution.teacher
        self.retries = execution.max_retries
        self._placement = None
        self._streaming = False
        self.actors: list[Any] = []
        demand = resource_demand(spec)
        check_fits(demand, "a teacher replica", "execution.teacher")
        options: dict[str, Any] = {
            "num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus, "resources": dict(spec.resources),
            "max_restarts": self.retries, "max_task_retries": self.retries, "runtime_env": runtime_env,
            # Threaded: the driver's interrupt reaches a replica while it runs a unit (one unit at a time still).
            "max_concurrency": 2,
        }
        try:
            if demand:
                # All replicas or none: recipes sharing a cluster then wait for each other instead of each holding
                # part of what it needs. SPREAD: one replica per node where possible.
                self._placement = placement_group([demand] * spec.replicas, strategy="SPREAD")
                wait_for(self._placement.ready(), f"{spec.replicas} teacher replica(s) ({describe_demand(demand)} "
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
                reraise(error, "loading the teacher", 0)
        except BaseException:
            self.close()
            raise
        first = self.replicas[0]
        self.model_id, self.uses_chat, self._batch_size = first["model_id"], first["uses_chat"], first["batch_size"]
        self.answers_need_their_batch = first["answers_need_their_batch"]

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def _stream(self, method: str, units: Sequence[Any],
                on_answer: Callable[[int, int, Any], None] | None) -> Iterator[tuple[int, dict[int, Any], Any]]:
        """``(unit index, answers by position, outcome)`` for every unit as it finishes, one unit per replica at a
        time; every answer is handed to ``on_answer`` the moment it reaches the driver
        (:class:`hfsynth.engines.ray_streams.UnitStreams`)."""
        streams = UnitStreams(self.actors, method, units, on_answer, self.retries)
        self._streaming = True
        try:
            yield from streams.run()
        finally:
            try:
                streams.drain()
            finally:
                self._streaming = False

    def stream_generate(self, units: Sequence[GenerateUnit],
                        on_answer: UnitAnswerCallback | None = None) -> Iterator[tuple[int, list[str]]]:
        for index, answers, _ in self._stream("generate", units, on_answer):
            yield index, [answers[position] for position in range(len(units[index].prompts))]

    def stream_classify(self, units: Sequence[ClassifyUnit], on_answer: UnitScoresCallback | None = None
                        ) -> Iterator[tuple[int, list[LabelScores], float]]:
        for index, answers, seconds in self._stream("classify", units, on_answer):
            yield index, [answers[position] for position in range(len(units[index].prompts))], seconds

    def generate(self, prompts: Sequence[Any], sampling: Any, seed: int,
                 on_answer: Callable[[int, str], None] | None = None,
                 positions: Sequence[int] | None = None) -> list[str]:
        forward = None if on_answer is None else (lambda unit, position, answer: on_answer(position, answer))
        unit = GenerateUnit(tuple(prompts), sampling, seed, None if positions is None else tuple(positions))
        return next(iter(self.stream_generate([unit], forward)))[1]

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


class RayEngine(Engine):
    """Connects to (or starts) a Ray cluster; resources come from each recipe's ``execution`` section."""

    name = "ray"
    runs_recipes_together = True
    units_run_here = False

    def __init__(self, address: str | None = None, *, teacher_factory: TeacherFactory | None = None) -> None:
        self.address = address
        #: Builds the teacher inside each actor (default: hfsynth's ``load_teacher``); tests script one.
        self.teacher_factory = teacher_factory
        self.runtime_env = forwarded_runtime_env()
        #: Torch threads of a unit whose recipe does not say: the local engine's fixed count, read on the driver.
        self.default_threads = compute_threads()
        self._owns_connection = not ray.is_initialized()
        if self._owns_connection:
            # Unset: the cluster of RAY_ADDRESS (as `ray job submit` sets it), else a new local instance, never a
            # cluster an earlier `ray start` may have left behind ("auto" asks for that one).
            connect(address or os.environ.get("RAY_ADDRESS") or "local", self.runtime_env)
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        started_here = self._owns_connection and not address and not os.environ.get("RAY_ADDRESS")
        where = ("a new local Ray instance" if started_here
                 else f"the Ray cluster at {ray.get_runtime_context().gcs_address}")
        #: Which cluster this is, for the user: a run never joins one silently.
        self.description = f"{where} ({len(nodes)} node(s), {ray.cluster_resources().get('CPU', 0):g} CPUs)"

    def close(self) -> None:
        if self._owns_connection and ray.is_initialized():
            ray.shutdown()
        self._owns_connection = False

    @contextlib.contextmanager
    def event_sink(self, handler: Callable[[Any], None]) -> Iterator[Callable[[Any], None]]:
        # Ray's own queue (an actor taking no CPU, so it never waits for one); a driver thread hands its events on.
        queue = Queue(actor_options={"num_cpus": 0, "runtime_env": self.runtime_env})
        stop = threading.Event()

        def drain() -> None:
            while True:
                try:
                    handler(queue.get(timeout=0.5))
                except Empty:
                    if stop.is_set():
                        return
                except ray.exceptions.RayError:  # the queue is gone (the engine shut down): nothing more comes
                    return

        thread = threading.Thread(target=drain, name="hfsynth-events", daemon=True)
        thread.start()
        try:
            yield QueueSink(queue)
        finally:
            stop.set()
            thread.join(timeout=10)
            queue.shutdown(force=True)

    def load_teacher(self, recipe: Recipe) -> Teacher:
        runtime_env = self.runtime_env
        if recipe.teacher.api_key_env:  # the replicas need the key the recipe names; unset: one line, no actor
            from hfsynth.teachers.remote import teacher_credential

            key = {recipe.teacher.api_key_env: teacher_credential(recipe.teacher)}
            runtime_env = {**runtime_env, "env_vars": {**runtime_env["env_vars"], **key}}
        return RayTeacherPool(recipe.teacher, recipe.execution, self.teacher_factory, runtime_env,
                              self.default_threads)

    def map(self, fn: Callable[[Context, Item], Result], items: Sequence[Item], context: Context,
            spec: UnitSpec) -> Iterator[tuple[int, Result]]:
        if not items:
            return
        resources = spec.resources
        check_fits(resource_demand(resources), f"a unit of {spec.stage}", spec.resources_field)
        probe = SharedFolderProbe.create(spec.shared_folder) if spec.shared_folder is not None else None
        task = ray.remote(run_unit).options(
            num_cpus=resources.num_cpus, num_gpus=resources.num_gpus, resources=dict(resources.resources),
            max_retries=spec.retries, retry_exceptions=False, runtime_env=self.runtime_env,
        )
        shared = ray.put(context)  # sent once, not once per unit
        threads = resources.threads or self.default_threads
        refs = [task.remote(fn, shared, item, probe, threads) for item in items]
        index_of = {ref: index for index, ref in enumerate(refs)}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                index = index_of[done[0]]
                try:
                    value = ray.get(done[0])
                except ray.exceptions.RayError as error:
                    reraise(error, spec.describe(index), spec.retries)
                yield index, value
        finally:
            # The first failure (or an interruption) cancels the rest.
            for ref in pending:
                ray.cancel(ref, force=True)
            if probe is not None:
                probe.remove()
