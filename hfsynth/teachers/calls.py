"""Teacher requests in flight: answers handed over the moment they arrive, also those that arrive while a call ends
early (a request that failed for good, Ctrl-C, an interruption from another thread), so nothing paid for is lost.

The requests run on daemon threads (:class:`DaemonPool`): a request hanging on a dead server must not keep the
process from exiting after Ctrl-C for its whole timeout, as ``ThreadPoolExecutor``'s workers (joined at exit) would.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, TypeVar

T = TypeVar("T")

#: After a failure or an interruption, how long requests already sent may take to finish (their answers are paid
#: for, so they are kept); one still running then is abandoned. A second Ctrl-C ends the wait at once.
DRAIN_SECONDS = 5.0
#: How often the waiting thread looks at the stop flag (Ctrl-C interrupts the wait at any time).
_POLL_SECONDS = 0.2


class Stopped(Exception):
    """A request dropped before it was answered: its call is ending (another request failed, or an interruption)."""


class Interrupted(Exception):
    """A call stopped from another thread (:meth:`hfsynth.teachers.base.Teacher.interrupt`) before every answer."""


class DaemonPool:
    """``workers`` daemon threads running submitted functions, one at a time each."""

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue())
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{index}", daemon=True)
                         for index in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        """Drop what has not started; each worker ends after its current function (never waited for)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in self._threads:
            self._queue.put(None)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
                future.set_exception(error)
            else:
                future.set_result(result)


def run_calls(pool: DaemonPool, calls: Sequence[Callable[[], T]], stop: threading.Event,
              on_answer: Callable[[int, T], None] | None = None) -> list[T]:
    """Every call's answer, in call order, each handed to ``on_answer(index, answer)`` in this thread as it arrives.

    The first call that fails for good (its error is raised), Ctrl-C in this thread, or ``stop`` set from another
    thread (:class:`Interrupted`) ends the call early: calls not started are dropped, and those in flight get
    :data:`DRAIN_SECONDS` to finish, their answers handed over too. Calls should give up when ``stop`` is set.
    """
    futures = [pool.submit(call) for call in calls]
    index_of = {future: index for index, future in enumerate(futures)}
    answers: list[Any] = [None] * len(calls)
    answered: set[int] = set()

    def hand_over(done: Collection[Future[T]]) -> BaseException | None:
        failure = None
        for future in sorted(done, key=index_of.__getitem__):
            if future.cancelled():
                continue
            error = future.exception()
            if error is None:
                index = index_of[future]
                answers[index] = future.result()
                answered.add(index)
                if on_answer is not None:
                    on_answer(index, answers[index])
            elif failure is None and not isinstance(error, Stopped):
                failure = error
        return failure

    pending: set[Future[T]] = set(futures)
    failure: BaseException | None = None
    try:
        while pending and failure is None and not stop.is_set():
            done, pending = wait(pending, timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
            failure = hand_over(done)
    except KeyboardInterrupt as interrupt:
        failure = interrupt
    if pending:
        stop.set()
        for future in pending:
            future.cancel()
        done, _ = wait(pending, timeout=DRAIN_SECONDS)
        drained = hand_over(done)
        failure = failure or drained
    if failure is not None:
        raise failure
    if len(answered) < len(calls):
        raise Interrupted("interrupted before every answer arrived")
    return answers
