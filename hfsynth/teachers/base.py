"""The one small interface every teacher backend implements; the pipeline never knows which backend it talks to."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from hfsynth.prompting import LabelScores, Prompt, prompt_text
from hfsynth.recipe.schema import SamplingParams
from hfsynth.teachers.spending import estimate_tokens


@dataclass(frozen=True)
class GenerateUnit:
    """One batch of generation calls: a unit of work whose answers are a function of these fields alone, whichever
    process or replica runs it."""

    prompts: tuple[Prompt, ...]
    sampling: SamplingParams
    seed: int
    #: Each prompt's place in the batch ``seed`` was drawn for, when these are part of it (the prompts a resumed run
    #: still has to ask); ``None``: the whole batch, in order.
    positions: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ClassifyUnit:
    """One chunk of classification prompts, scored over ``labels``."""

    prompts: tuple[Prompt, ...]
    labels: tuple[str, ...]


#: ``on_answer(unit index, prompt index within the unit, answer)``: an answer the moment it exists.
UnitAnswerCallback = Callable[[int, int, str], None]
#: The same for classification: ``on_answer(unit index, prompt index within the unit, label scores)``.
UnitScoresCallback = Callable[[int, int, LabelScores], None]


@dataclass
class TeacherStats:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    failures: list[str] = field(default_factory=list)


class Teacher(ABC):
    """A large model that writes labelled texts and, as the baseline students must beat, classifies texts."""

    #: Model identifier recorded as provenance in datasets and cards (a Hub id, never a local path).
    model_id: str
    #: Whether prompts go through a chat template (``Prompt.messages``) or as plain text (``Prompt.completion``).
    uses_chat: bool
    #: Whether an answer depends on the whole batch it was written in (a local model: padding, one seed for the
    #: batch), so that part of a batch is never asked alone: a batch a kill left half stored is asked again whole.
    answers_need_their_batch: bool = False

    def __init__(self) -> None:
        self.stats = TeacherStats()

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: SamplingParams,
        seed: int,
        on_answer: Callable[[int, str], None] | None = None,
        positions: Sequence[int] | None = None,
    ) -> list[str]:
        """One completion per prompt, in order. ``seed`` makes sampling reproducible for the same batch;
        ``positions`` (see :class:`GenerateUnit`) place the prompts in it, for backends that seed each prompt.

        ``on_answer(index, text)`` is called, in the caller's thread, as soon as the answer to ``prompts[index]``
        exists (after each internal batch of a local model, as each request of a remote one completes), so that a
        caller can store answers before the whole call returns. Answers that arrived before a failure have been
        handed over when ``generate`` raises.
        """

    @abstractmethod
    def classify(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[LabelScores]:
        """For each classification prompt, the label it gets, constrained to ``labels``."""

    def stream_generate(self, units: Sequence[GenerateUnit],
                        on_answer: UnitAnswerCallback | None = None) -> Iterator[tuple[int, list[str]]]:
        """``(unit index, answers)`` for every unit as it finishes. Here: in order, one after the other; a teacher
        spread over several workers (the Ray engine's replicas) runs them at once and yields them as they finish.

        ``on_answer`` gets every answer as soon as it exists (see :meth:`generate`), also those of a unit that then
        fails: the caller stores what was paid for before the error reaches it."""
        for index, unit in enumerate(units):
            forward = None if on_answer is None else (lambda position, text, index=index: on_answer(index, position,
                                                                                                      text))
            placed = {} if unit.positions is None else {"positions": list(unit.positions)}
            yield index, self.generate(list(unit.prompts), unit.sampling, unit.seed, on_answer=forward, **placed)

    def stream_classify(self, units: Sequence[ClassifyUnit], on_answer: UnitScoresCallback | None = None
                        ) -> Iterator[tuple[int, list[LabelScores], float]]:
        """``(unit index, label scores, seconds the teacher took)`` for every unit as it finishes; ``on_answer``
        gets each answer as soon as it exists (see :meth:`classify_streaming`)."""
        for index, unit in enumerate(units):
            started = time.perf_counter()
            forward = None if on_answer is None else (lambda position, scores, index=index: on_answer(index, position,
                                                                                                        scores))
            scores = self.classify_streaming(list(unit.prompts), list(unit.labels), forward)
            yield index, scores, time.perf_counter() - started

    def classify_streaming(self, prompts: Sequence[Prompt], labels: Sequence[str],
                           on_answer: Callable[[int, LabelScores], None] | None = None) -> list[LabelScores]:
        """:meth:`classify`, handing each answer to ``on_answer`` as soon as it exists: here when the call returns (a
        local model scores its prompts together); a remote teacher hands each over as its request completes, also
        when a later one fails."""
        scores = self.classify(prompts, labels)
        if on_answer is not None:
            for index, score in enumerate(scores):
                on_answer(index, score)
        return scores

    def interrupt(self) -> None:  # noqa: B027 - optional hook
        """Called from another thread: a running ``generate`` or ``classify`` sends no new request, hands over the
        answers of those in flight and raises. Backends without requests in flight ignore it."""

    def prompt_tokens(self, prompts: Sequence[Prompt]) -> list[int]:
        """Each prompt's tokens, for the budget: the backend's own tokenizer where it has one here; by default an
        estimate that errs high (:func:`hfsynth.teachers.spending.estimate_tokens`)."""
        return [estimate_tokens(prompt_text(prompt, self.uses_chat)) for prompt in prompts]

    @property
    def batch_size(self) -> int:
        """How many prompts the pipeline should hand over per ``generate`` call (also the caching unit)."""
        return 8

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the model or connections."""

    def __enter__(self) -> Teacher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
