"""One teacher over several replicas of the same deployment: ``teacher.base_url: [URL, URL, ...]``.

A replica is one OpenAI-compatible server (vLLM, TGI, ``transformers serve``), typically one per node. This teacher
holds one :class:`~hfsynth.teachers.remote.RemoteTeacher` per URL (each with the recipe's concurrency, timeout and
retry rules) and spreads the requests of every call over them, at most ``max_concurrency`` in flight per replica,
each request to the least busy healthy replica. A replica whose request fails for good (its own retries spent) is
left out for ``cooldown`` seconds and the request moves to another replica; only when every replica has failed does
the call fail.

Reproducibility: the request at position ``i`` of a batch with seed ``s`` (its place in the whole batch, also when
a resumed run asks only part of it) is always sent as its own one-prompt call with seed ``request_seed(s, i)``, so
what it asks for does not depend on which replica serves it, how many replicas there are, or what else is in flight.
(A single URL is served by a plain ``RemoteTeacher``, which seeds by position in the same way but one level down; a
list of one URL is treated exactly as that single URL.)
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from hfsynth.errors import TeacherError
from hfsynth.prompting import LabelScores, Prompt
from hfsynth.recipe.schema import SamplingParams, TeacherConfig
from hfsynth.teachers.base import Teacher, TeacherStats
from hfsynth.teachers.calls import DaemonPool, Stopped, run_calls
from hfsynth.teachers.remote import RemoteTeacher, request_seed

logger = logging.getLogger(__name__)

#: Seconds a replica that failed for good is left out before it is tried again.
REPLICA_COOLDOWN_SECONDS = 60.0

T = TypeVar("T")


class ReplicaTeacher(Teacher):
    def __init__(self, config: TeacherConfig, *, cooldown: float = REPLICA_COOLDOWN_SECONDS,
                 **remote_options: float) -> None:
        super().__init__()
        urls = config.base_url if isinstance(config.base_url, list) else [config.base_url]
        if not urls or not all(urls):
            raise TeacherError("teacher.base_url: give at least one replica URL")
        self.config = config
        self.urls = list(urls)
        self.replicas = [RemoteTeacher(config.model_copy(update={"base_url": url}), **remote_options)
                         for url in self.urls]
        self.model_id = self.replicas[0].model_id
        self.uses_chat = self.replicas[0].uses_chat
        self._cooldown = cooldown
        self._lock = threading.Condition()
        self._in_flight = [0] * len(self.replicas)
        self._failed_at: list[float | None] = [None] * len(self.replicas)
        self._last_error: list[str] = [""] * len(self.replicas)
        self._pool = DaemonPool(config.max_concurrency * len(self.replicas), "replica-teacher")
        self._running: set[threading.Event] = set()

    @property
    def batch_size(self) -> int:
        # Enough to keep every replica busy: twice its concurrency, per replica.
        return self.config.max_concurrency * 2 * len(self.replicas)

    @property
    def stats(self) -> TeacherStats:  # type: ignore[override]
        total = TeacherStats()
        for replica in getattr(self, "replicas", []):
            total.calls += replica.stats.calls
            total.prompt_tokens += replica.stats.prompt_tokens
            total.completion_tokens += replica.stats.completion_tokens
            total.retries += replica.stats.retries
            total.failures += replica.stats.failures
        return total

    @stats.setter
    def stats(self, value: TeacherStats) -> None:  # Teacher.__init__ assigns one; the replicas keep the real counts
        pass

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingParams, seed: int,
                 on_answer: Callable[[int, str], None] | None = None,
                 positions: Sequence[int] | None = None) -> list[str]:
        def one(prompt: Prompt, request: int, replica: RemoteTeacher) -> str:
            return replica.generate([prompt], sampling, request)[0]

        places = list(positions) if positions is not None else list(range(len(prompts)))
        return self._spread([functools.partial(one, prompt, request_seed(seed, place))
                             for place, prompt in zip(places, prompts, strict=True)], on_answer)

    def classify(self, prompts: Sequence[Prompt], labels: Sequence[str],
                 on_answer: Callable[[int, LabelScores], None] | None = None) -> list[LabelScores]:
        def one(prompt: Prompt, replica: RemoteTeacher) -> LabelScores:
            return replica.classify([prompt], labels)[0]

        return self._spread([functools.partial(one, prompt) for prompt in prompts], on_answer)

    def classify_streaming(self, prompts: Sequence[Prompt], labels: Sequence[str],
                           on_answer: Callable[[int, LabelScores], None] | None = None) -> list[LabelScores]:
        return self.classify(prompts, labels, on_answer)

    def interrupt(self) -> None:
        for stop in list(self._running):
            stop.set()
        for replica in self.replicas:
            replica.interrupt()

    def close(self) -> None:
        self._pool.shutdown()
        for replica in self.replicas:
            replica.close()

    # --- spreading ----------------------------------------------------------------------------------------------------

    def _spread(self, requests: list[Callable[[RemoteTeacher], T]],
                on_answer: Callable[[int, T], None] | None = None) -> list[T]:
        """Answers in request order, each also handed to ``on_answer`` (in this thread) as it arrives (also those in
        flight when the call ends early: :func:`hfsynth.teachers.calls.run_calls`); the first request that fails on
        every replica fails the call."""
        stop = threading.Event()
        self._running.add(stop)
        try:
            return run_calls(self._pool, [functools.partial(self._serve, request, stop) for request in requests],
                             stop, on_answer)
        finally:
            self._running.discard(stop)

    def _serve(self, request: Callable[[RemoteTeacher], T], stop: threading.Event) -> T:
        tried: set[int] = set()
        while True:
            if stop.is_set():
                raise Stopped
            index = self._acquire(tried)
            try:
                answer = request(self.replicas[index])
            except TeacherError as error:
                self._release(index, error)
                tried.add(index)
                logger.warning("teacher replica %s failed (%s); moving its request to another replica",
                               self.urls[index], error)
                continue
            self._release(index, None)
            return answer

    def _acquire(self, tried: set[int]) -> int:
        """The least busy healthy replica this request has not failed on yet (waits while all are busy)."""
        limit = self.config.max_concurrency
        with self._lock:
            while True:
                now = time.monotonic()
                usable = [i for i in range(len(self.replicas)) if i not in tried and (
                    self._failed_at[i] is None or now - self._failed_at[i] >= self._cooldown)]
                if not usable:
                    details = "; ".join(f"{url}: {error or 'not tried'}"
                                        for url, error in zip(self.urls, self._last_error, strict=True))
                    raise TeacherError(f"every teacher replica failed ({details})")
                free = [i for i in usable if self._in_flight[i] < limit]
                if free:
                    index = min(free, key=lambda i: (self._in_flight[i], i))
                    self._in_flight[index] += 1
                    return index
                self._lock.wait(timeout=1.0)

    def _release(self, index: int, error: TeacherError | None) -> None:
        with self._lock:
            self._in_flight[index] -= 1
            if error is None:
                self._failed_at[index] = None
            else:
                self._failed_at[index] = time.monotonic()
                self._last_error[index] = str(error)
            self._lock.notify_all()
