"""The Ray engine's teacher units as streams (:class:`hfsynth.engines.ray_engine.RayTeacherPool`): every answer a
replica gets travels to the driver the moment it arrives, so the driver's call cache holds it even when the driver is
killed the next instant; a replica that dies is given back only what its unit still lacks."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

from hfsynth.engines.ray_cluster import reraise
from hfsynth.errors import HfsynthError
from hfsynth.teachers.base import GenerateUnit
from hfsynth.teachers.calls import DRAIN_SECONDS

try:
    import ray
except ImportError:  # pragma: no cover - depends on the installation
    raise HfsynthError("the Ray engine needs Ray, which is not installed: pip install 'hfsynth[ray]'") from None

_POLL_SECONDS = 0.2

#: What a replica streams for a unit: ``(unit index, place, answer)``, then ``(unit index, None, outcome)``.
UnitItem = tuple[int, int | None, Any]


def streamed(index: int, places: Sequence[int], call: Callable[[Callable[[int, Any], None]], Any]
             ) -> Iterator[UnitItem]:
    """Runs ``call(hand_over)`` in a thread and yields each answer it hands over the moment it does, then its
    outcome: what it returned, or its error."""
    items: queue.SimpleQueue[tuple[int | None, Any]] = queue.SimpleQueue()

    def run() -> None:
        try:
            outcome = call(lambda position, answer: items.put((places[position], answer)))
        except Exception as error:  # noqa: BLE001 - handed to the driver, which raises it
            outcome = error
        items.put((None, None if isinstance(outcome, list) else outcome))

    threading.Thread(target=run, name="teacher-unit", daemon=True).start()
    while True:
        place, value = items.get()
        yield index, place, value
        if place is None:
            return


class UnitStreams:
    """Units streamed from the replicas, one per replica at a time: each answer reaches ``on_answer`` the moment it
    arrives. A replica that dies (it restarts, up to ``retries`` times) gets back only the prompts of its unit that
    were not answered yet, each in its place, so nothing is paid twice. On leaving early (a unit failed, Ctrl-C),
    :meth:`drain` asks the replicas still running to stop and keeps the answers of requests already in flight."""

    def __init__(self, actors: Sequence[Any], method: str, units: Sequence[Any],
                 on_answer: Callable[[int, int, Any], None] | None, retries: int) -> None:
        self.method, self.units, self.on_answer, self.retries = method, units, on_answer, retries
        self.idle = list(actors)
        self.waiting = collections.deque(range(len(units)))
        self.running: dict[Any, tuple[Any, int]] = {}  # a unit's stream -> (its replica, the unit's index)
        self.answers: list[dict[int, Any]] = [{} for _ in units]
        self.attempts = [0] * len(units)

    def run(self) -> Iterator[tuple[int, dict[int, Any], Any]]:
        self._launch()
        while self.running:
            # With a timeout: Ctrl-C reaches this thread at once, not when an answer comes.
            ready, _ = ray.wait(list(self.running), num_returns=1, timeout=_POLL_SECONDS)
            if not ready:
                continue
            finished = self._receive(ready[0])
            if finished is not None:
                yield finished
            self._launch()

    def drain(self) -> None:
        if not self.running:
            return
        self.waiting.clear()
        for actor, _ in self.running.values():
            actor.interrupt.remote()
        deadline = time.monotonic() + DRAIN_SECONDS + 2  # the replicas wait DRAIN_SECONDS for their requests
        while self.running and (left := deadline - time.monotonic()) > 0:
            ready, _ = ray.wait(list(self.running), num_returns=1, timeout=left)
            if ready:
                with contextlib.suppress(Exception):  # the error that ended the stage is the one to raise
                    self._receive(ready[0], failing=True)

    def _launch(self) -> None:
        while self.idle and self.waiting:
            index = self.waiting.popleft()
            actor = self.idle.pop()
            unit, places = remaining_part(self.units[index], self.answers[index])
            # Retried here, not by Ray: a retry asks only what is still unanswered.
            stream = getattr(actor, self.method).options(max_task_retries=0).remote(index, unit, places)
            self.running[stream] = (actor, index)

    def _receive(self, stream: Any, failing: bool = False) -> tuple[int, dict[int, Any], Any] | None:
        """The stream's next item: an answer (handed over), or its unit's end (the finished unit, or its error)."""
        actor, index = self.running[stream]
        try:
            _, place, value = ray.get(next(stream))
        except (ray.exceptions.RayError, StopIteration) as error:
            del self.running[stream]
            self.attempts[index] += 1
            if failing or self.attempts[index] > self.retries:
                if isinstance(error, StopIteration):
                    raise HfsynthError("a teacher replica ended its unit without an answer") from None
                reraise(error, "a teacher replica", self.retries)
            self.idle.append(actor)  # restarting (max_restarts): it takes the rest of the unit again
            self.waiting.appendleft(index)
            return None
        if place is not None:
            self.answers[index][place] = value
            if self.on_answer is not None:
                self.on_answer(index, place, value)
            return None
        del self.running[stream]
        self.idle.append(actor)
        if isinstance(value, BaseException):
            raise value
        return index, self.answers[index], value


def remaining_part(unit: Any, answered: Collection[int]) -> tuple[Any, list[int]]:
    """The part of a unit still to ask, and each of its prompts' place in the unit; a generation unit's prompts keep
    their place in the seeded batch (:class:`GenerateUnit`)."""
    places = [place for place in range(len(unit.prompts)) if place not in answered]
    if len(places) == len(unit.prompts):
        return unit, places
    prompts = tuple(unit.prompts[place] for place in places)
    if isinstance(unit, GenerateUnit):
        batch = unit.positions or tuple(range(len(unit.prompts)))
        return dataclasses.replace(unit, prompts=prompts, positions=tuple(batch[place] for place in places)), places
    return dataclasses.replace(unit, prompts=prompts), places
